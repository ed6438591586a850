"""The sweep folder OUT/NAME and what it records.

    OUT/NAME/sweep.json          the grid, the options shared by every point, and every point:
                                 index, run name, grid values, the options it is trained with
                                 and its resolved config (as config.json will say); written once
    OUT/NAME/submissions.jsonl   one line per launch: Slurm job id and array, or local
    OUT/NAME/logs/               Slurm task logs (JOB_TASK.out) and local runs' output
    OUT/NAME/<point name>/       each point's run directory, written by `gan train`

Every point is validated here with `gan train`'s own validation (config.resolve_config)
before anything is written. `train_args` is the one place a point becomes `gan train`
arguments: the local executor and slurm/train.sh (via task.py) both train through it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_dist.config import OPTIONS, flag, resolve_config
from gan_dist.errors import GanError
from gan_dist.rundir import write_atomic
from gan_dist.sweep.grid import grid_points, point_name, value_text

SWEEP_FILE = "sweep.json"
SUBMISSIONS = "submissions.jsonl"
LOGS = "logs"
VERSION = 1


@dataclass(frozen=True)
class Point:
    index: int
    name: str
    values: dict[str, Any]   # this point's grid values
    options: dict[str, Any]  # every option it is trained with: the shared ones and its values
    config: dict[str, Any]   # resolved, as the run's config.json will record it


@dataclass(frozen=True)
class Sweep:
    name: str
    folder: Path
    grid: dict[str, list[Any]]
    options: dict[str, Any]  # shared by every point
    points: tuple[Point, ...]

    def run_dir(self, point: Point) -> Path:
        return self.folder / point.name

    def point(self, index: int) -> Point:
        if not 0 <= index < len(self.points):
            raise GanError(f"sweep {self.name} has points 0..{len(self.points) - 1}, not {index}")
        return self.points[index]

    @property
    def varying(self) -> list[str]:
        """Grid keys with more than one value: what tells the points apart."""
        return [key for key, values in self.grid.items() if len(values) > 1]

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "sweep": self.name, "created": time.time(),
                "grid": self.grid, "options": self.options,
                "points": [{"index": p.index, "name": p.name, "values": p.values, "options": p.options,
                            "args": option_args(p.options), "config": p.config} for p in self.points]}


def build_sweep(name: str, folder: Path, grid: dict[str, list[Any]], options: dict[str, Any]) -> Sweep:
    """Every point of the grid, each validated exactly as `gan train` validates its options;
    a point that fails is named in the error."""
    grid, options = _plain(grid), _plain(options)  # as sweep.json will hold them: lists, not tuples
    points, names = [], {}
    for index, values in enumerate(grid_points(grid)):
        run_name = point_name(values)
        if run_name in names:  # values that differ only in characters a name cannot hold
            raise GanError(f"points {names[run_name]} and {index} would both be named {run_name!r}: "
                           "make the grid values differ in letters or digits")
        names[run_name] = index
        given = {**options, **values}
        try:
            cfg = resolve_config(overrides={**given, "out": str(folder), "name": run_name})
        except GanError as err:
            raise GanError(f"point {run_name}: {err}") from None
        points.append(Point(index, run_name, values, given, cfg.to_dict()))
    return Sweep(name, Path(folder), grid, dict(options), tuple(points))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))


# ---- the one translation of a point into `gan train` arguments ----------------------------
def option_args(options: dict[str, Any]) -> list[str]:
    """A point's options as `gan train` flags (what the point was given, nothing derived)."""
    args: list[str] = []
    for key, value in options.items():
        spec = OPTIONS[key]
        if value is None:
            continue
        if spec.kind is bool:
            if spec.nullable:
                args.append(flag(key) if value else "--no-" + flag(key)[2:])
            elif value:  # a plain flag: absent is False, the default of every such option
                args.append(flag(key))
        elif spec.kind is tuple:
            args += [flag(key), ",".join(map(str, value))]
        else:
            args += [flag(key), repr(value) if isinstance(value, float) else str(value)]
    return args


def train_args(sweep: Sweep, point: Point) -> list[str]:
    """`gan train` arguments that train (or continue) `point`: always --resume auto, which
    starts afresh when the run has no checkpoint yet."""
    return ["--out", str(sweep.folder), "--name", point.name, "--resume", "auto", *option_args(point.options)]


def train_command(sweep: Sweep, point: Point) -> list[str]:
    return [sys.executable, "-m", "gan_dist", "train", *train_args(sweep, point)]


# ---- sweep.json ------------------------------------------------------------------------------
def write_sweep(sweep: Sweep) -> None:
    sweep.folder.mkdir(parents=True, exist_ok=True)
    (sweep.folder / LOGS).mkdir(exist_ok=True)
    write_atomic(sweep.folder / SWEEP_FILE, json.dumps(sweep.to_json(), indent=2) + "\n")


def is_sweep(folder: Path) -> bool:
    return (Path(folder) / SWEEP_FILE).is_file()


def read_sweep(folder: Path) -> Sweep:
    """sweep.json of `folder`; the folder is where it lies now (a sweep may be moved)."""
    folder = Path(folder)
    path = folder / SWEEP_FILE
    if not path.is_file():
        raise GanError(f"{folder} is not a sweep (no {SWEEP_FILE}): start one with "
                       "`gan sweep NAME --grid KEY=V1,V2`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        points = tuple(Point(int(p["index"]), str(p["name"]), dict(p["values"]), dict(p["options"]),
                             dict(p["config"])) for p in data["points"])
        return Sweep(str(data["sweep"]), folder, dict(data["grid"]), dict(data["options"]), points)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GanError(f"{path} cannot be read ({type(err).__name__}: {err}): restore it, or start "
                       "a sweep of another name") from None


def check_same(stored: Sweep, new: Sweep) -> None:
    """A sweep name is one grid with one set of options for good: refuse another."""
    if list(stored.grid) != list(new.grid) or any(stored.grid[k] != new.grid[k] for k in new.grid):
        raise GanError(f"sweep {stored.folder} exists with another grid ({describe_grid(stored.grid)}; "
                       f"given: {describe_grid(new.grid)}): choose another NAME, or continue it with "
                       f"`gan sweep {stored.name}` and no grid")
    if stored.options != new.options:
        keys = sorted(set(stored.options) | set(new.options), key=list(OPTIONS).index)
        changed = [k for k in keys if stored.options.get(k) != new.options.get(k)]
        shown = ", ".join(f"{flag(k)} {_shown(stored.options, k)} there, {_shown(new.options, k)} now"
                          for k in changed[:3])
        raise GanError(f"sweep {stored.folder} exists with other options ({shown}): choose another NAME, "
                       f"or continue it with `gan sweep {stored.name}` and no options")


def _shown(options: dict[str, Any], key: str) -> str:
    return repr(options[key]) if key in options else "not given"


def describe_grid(grid: dict[str, list[Any]]) -> str:
    return " x ".join(f"{flag(k)[2:]}={','.join(map(value_text, v))}" for k, v in grid.items()) or "empty"


# ---- submissions.jsonl -------------------------------------------------------------------------
def record_submission(sweep: Sweep, **fields: Any) -> None:
    with open(sweep.folder / SUBMISSIONS, "a") as fh:
        fh.write(json.dumps({"time": time.time(), **fields}) + "\n")


def read_submissions(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / SUBMISSIONS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
