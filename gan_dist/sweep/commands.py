"""`gan sweep NAME ...` and `gan sweep status NAME` as plain functions (cli.py only parses).

Starting or continuing a sweep checks everything first (the grid, every point with `gan
train`'s validation, an existing sweep of that name, the executor), then writes sweep.json
(once) and runs or submits only the points that are not finished, not in flight, and (unless
asked) not diverged. A failed submission of a new sweep leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_dist.config import NAME_PATTERN, flag, load_toml, toml_options
from gan_dist.errors import GanError
from gan_dist.sweep import slurm
from gan_dist.sweep.grid import SET_BY_SWEEP, grid_from_toml, option_key, parse_grid_args
from gan_dist.sweep.spec import (
    Sweep,
    build_sweep,
    check_same,
    describe_grid,
    is_sweep,
    read_submissions,
    read_sweep,
    record_submission,
    write_sweep,
)
from gan_dist.sweep.state import DIVERGED, FINISHED, PointState, counts, point_states, select

RESERVED = ("run", "status")  # `gan sweep status NAME` must not be read as a sweep named status


@dataclass(frozen=True)
class Executor:
    kind: str                     # "slurm" or "local"
    max_parallel: int | None      # Slurm: None = no throttle; local: at least 1
    sbatch: tuple[str, ...] = ()  # extra sbatch options
    script: Path | None = None


def sweep_folder(name: str, out: str | Path) -> Path:
    if not NAME_PATTERN.match(name) or name in RESERVED:
        why = f"{name!r} is a sub-command" if name in RESERVED else "use letters, digits, '.', '_', '-', '=' or ','"
        raise GanError(f"sweep name {name!r} is not usable ({why}): choose a plain folder name")
    return Path(out) / name


def read_sweep_toml(path: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(grid, options) of a TOML file: its [sweep] table and its train options."""
    data = dict(load_toml(path))
    table = data.pop("sweep", {})
    return grid_from_toml(table, str(path)), toml_options(data, path)


def gather(grid_args: list[str], config: Path | None, options: dict[str, Any]) -> tuple[dict, dict]:
    """The grid (TOML first, --grid keys replace TOML ones) and the shared options (TOML, then
    flags), checked against each other and against what a sweep sets itself."""
    toml_grid, toml_opts = read_sweep_toml(config) if config else ({}, {})
    grid = {**toml_grid, **parse_grid_args(grid_args)}
    fixed = {**toml_opts, **{option_key(k, "option"): v for k, v in options.items()}}
    for key in fixed:
        if key in SET_BY_SWEEP:
            raise GanError(f"{flag(key)} cannot be given to gan sweep: {SET_BY_SWEEP[key]}")
        if key in grid:
            raise GanError(f"{flag(key)} is both a grid key and a fixed option: drop one of them")
    return grid, fixed


def plan_sweep(name: str, grid_args: list[str], config: Path | None, options: dict[str, Any]) -> tuple[Sweep, bool]:
    """(the sweep, whether it is new). Nothing is written."""
    out = options.pop("out", None)
    grid, fixed = gather(grid_args, config, options)
    toml_out = fixed.pop("out", None)  # where the sweep folder lies, not a point's option
    folder = sweep_folder(name, out or toml_out or "runs")
    stored = read_sweep(folder) if is_sweep(folder) else None
    if stored is not None and not grid and not fixed:
        return stored, False  # `gan sweep NAME`: continue it as it was
    if not grid:
        raise GanError("the grid is empty: give at least one --grid KEY=V1,V2 (or a [sweep] table "
                       "in --config), e.g. --grid lr=1e-4,2e-4")
    if stored is None and folder.exists() and any(folder.iterdir()):
        raise GanError(f"{folder} exists and is not a sweep (no sweep.json): choose another NAME")
    sweep = build_sweep(name, folder, grid, fixed)
    if stored is not None:
        check_same(stored, sweep)
        return stored, False
    return sweep, True


def choose_executor(sweep: Sweep, *, use_slurm: bool, use_local: bool, max_parallel: int | None,
                    sbatch: list[str], script: Path | None) -> Executor:
    """--slurm or --local; neither: what the sweep ran on last time, else --local."""
    if use_slurm and use_local:
        raise GanError("--slurm and --local exclude each other: choose where the points run")
    if max_parallel is not None and max_parallel < 1:
        raise GanError(f"--max-parallel must be at least 1, got {max_parallel}")
    kind = "slurm" if use_slurm else "local" if use_local else _last_executor(sweep) or "local"
    if kind == "local":
        if sbatch:
            raise GanError("--sbatch is for --slurm sweeps: drop it, or add --slurm")
        nodes = {p.config["nodes"] for p in sweep.points}
        if nodes != {1}:
            raise GanError(f"--nodes {max(nodes)} needs Slurm: run this sweep with --slurm")
        return Executor("local", max_parallel or 1)
    slurm.check_sbatch()
    return Executor("slurm", max_parallel, tuple(slurm.sbatch_options(sbatch)), slurm.find_script(script))


def _last_executor(sweep: Sweep) -> str | None:
    runs = read_submissions(sweep.folder)
    return runs[-1].get("executor") if runs else None


def run_sweep(name: str, *, grid_args: list[str], config: Path | None, options: dict[str, Any],
              use_slurm: bool, use_local: bool, max_parallel: int | None, retry_diverged: bool,
              sbatch: list[str], script: Path | None, dry_run: bool, echo: Callable[[str], None]) -> int:
    """Start or continue sweep NAME; returns the exit status."""
    sweep, new = plan_sweep(name, grid_args, config, dict(options))
    executor = choose_executor(sweep, use_slurm=use_slurm, use_local=use_local, max_parallel=max_parallel,
                               sbatch=sbatch, script=script)
    states = point_states(sweep, slurm.queue_states() if not new else None)
    todo, left = select(states, retry_diverged=retry_diverged)
    _say_left_alone(left, echo)
    if dry_run:
        echo(f"sweep {sweep.folder}: {len(sweep.points)} point(s) of {describe_grid(sweep.grid)}")
        for s in todo:
            echo(f"would run point {s.point.index} {s.point.name} ({s.state}) with {executor.kind}")
        return 0
    if not todo:
        echo(f"sweep {sweep.folder}: nothing to run: {counts(states)}")
        return 0
    if executor.kind == "local":
        if new:
            write_sweep(sweep)
        return _run_here(sweep, todo, executor, echo)
    missing = [p for p in (sweep.folder.parent, sweep.folder) if not p.exists()]
    if new:
        write_sweep(sweep)
    try:
        return _submit(sweep, todo, executor, echo)
    except GanError:
        if new:  # a sweep that never ran leaves nothing behind
            shutil.rmtree(sweep.folder, ignore_errors=True)
            for folder in reversed(missing):  # and OUT, when it was made for it
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


def _say_left_alone(left: dict[str, list[PointState]], echo) -> None:
    for state, points in left.items():
        names = ", ".join(s.point.name for s in points)
        if state == DIVERGED:
            echo(f"not retried, diverged: {names} (pass --retry-diverged to resume them from their "
                 "newest good checkpoint)")
        elif state != FINISHED:
            echo(f"left alone, {state}: {names}")


def _submit(sweep: Sweep, todo: list[PointState], executor: Executor, echo) -> int:
    indices = [s.point.index for s in todo]
    nodes = sweep.points[0].config["nodes"]
    job_id, command = slurm.submit_array(sweep, indices, max_parallel=executor.max_parallel, nodes=nodes,
                                         sbatch=list(executor.sbatch), script=executor.script)
    spec = slurm.array_spec(indices, executor.max_parallel)
    record_submission(sweep, executor="slurm", job_id=job_id, array=spec, points=indices, command=command)
    echo(f"submitted job array {job_id} (tasks {spec}) for {len(indices)} point(s); "
         f"watch it with `gan sweep status {sweep.name}`")
    return 0


def _run_here(sweep: Sweep, todo: list[PointState], executor: Executor, echo) -> int:
    from gan_dist.sweep.local import plan_shares, run_local, usable_cores

    shares = plan_shares(executor.max_parallel, len(todo), usable_cores())
    indices = [s.point.index for s in todo]
    record_submission(sweep, executor="local", points=indices, parallel=len(shares), cores=len(shares[0]))
    echo(f"running {len(todo)} point(s) here, {len(shares)} at a time, {len(shares[0])} core(s) each; "
         f"output in {sweep.folder / 'logs'}")

    def ended(point, code: int, seconds: float) -> None:
        state = point_states(sweep, None)[point.index]
        echo(f"point {point.index} {point.name}: {state.state} ({state.epochs_done}/{state.epochs_total} "
             f"epochs, exit {code}, {seconds:.0f} s)")

    run_local(sweep, [s.point for s in todo], max_parallel=executor.max_parallel, ended=ended)
    states = point_states(sweep, None)
    unfinished = [s.point.name for s in states if s.state != FINISHED]
    echo(f"sweep {sweep.name}: {counts(states)}")
    return 1 if unfinished else 0


def sweep_status(name: str, out: str | Path, echo_table: Callable[[Any], None]) -> None:
    from gan_dist.sweep.status import status_table

    sweep = read_sweep(sweep_folder(name, out))
    states = point_states(sweep, slurm.queue_states())
    echo_table(status_table(sweep, states))
