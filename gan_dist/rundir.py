"""Every path and every write of a run directory. Inert off the main process.

EDM's trick: non-main ranks get a RunDir whose writers do nothing, so no code path can
write from the wrong process. Reading helpers are plain functions usable anywhere (the
report and `gan runs` read runs without torch); this module never imports torch, and the
writers that take tensors import what they need when called. Every file name of a run
directory is spelled here; what lies inside checkpoints/ is training/checkpoint.py's business.

A write that fails for lack of space or quota raises DiskFull (diskspace.py) naming what it
wrote, and leaves what was complete before: atomic writes remove their temp file, an append
cut short is truncated back to its last whole line. Who may write at all is decided before:
one `gan train` per run directory holds RUN_DIR/.lock (runlock.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from gan_dist.atomic import TMP_SUFFIX, write_atomic
from gan_dist.diskspace import writing
from gan_dist.epochs import epoch_tag, parse_epoch_tag

METRICS = "metrics.jsonl"
QUALITY = "quality.jsonl"
QUALITY_RAW = "quality_raw.jsonl"  # `gan eval --raw` of a run with an EMA: the trained G's rows
EVENTS = "events.jsonl"
CONFIG = "config.json"
STATUS = "status.json"
GENERATOR = "generator.safetensors"  # the EMA generator when the run keeps one, else the trained G
GENERATOR_RAW = "generator_raw.safetensors"  # the trained G, when GENERATOR is its EMA
REPORT = "report.pdf"
QUALITY_LOCK = ".quality.lock"  # `gan eval` and training's evaluation merge quality.jsonl in turn


def read_jsonl(path: Path, key: Callable[[dict[str, Any]], Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of a per-epoch JSONL file (metrics.jsonl, quality.jsonl), one per epoch (the last
    written wins; `key`: one per key instead, e.g. quality_key), sorted; plus how many lines
    could not be read (a killed writer leaves a truncated last line)."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    rows: dict[Any, dict[str, Any]] = {}
    bad = 0
    for row in _json_lines(path):
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows[key(row) if key else row["epoch"]] = row
        else:
            bad += 1
    return [rows[e] for e in sorted(rows)], bad


def quality_key(row: dict[str, Any]) -> tuple[int, str]:
    """quality.jsonl holds one row per (epoch, feature space): an inception row sits beside the
    classifier row of the same epoch (rows without "features" are the digit classifier's)."""
    return int(row["epoch"]), str(row.get("features") or "digit-classifier")


def read_events(path: Path) -> list[dict[str, Any]]:
    """events.jsonl in file order (unreadable lines skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [row for row in _json_lines(path) if isinstance(row, dict) and "event" in row]


def _json_lines(path: Path):
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS)[0]


def epoch_files(folder: Path, suffix: str) -> dict[int, Path]:
    """{epoch: path} of folder/epoch_NNNN<suffix>, in epoch order."""
    found = {}
    for path in Path(folder).glob(f"epoch_*{suffix}"):
        epoch = parse_epoch_tag(path.name[: -len(suffix)] if suffix else path.name)
        if epoch is not None:
            found[epoch] = path
    return dict(sorted(found.items()))


def generator_record(keeps_ema: bool) -> dict[str, Any]:
    """config.json's account of the generator files: which one is shown, and their names."""
    if keeps_ema:
        return {"sample_source": "ema", "generator_files": {"ema": GENERATOR, "raw": GENERATOR_RAW}}
    return {"sample_source": "raw", "generator_files": {"raw": GENERATOR}}


class RunDir:
    """Paths of one run; `write_*`/`save_*` methods act only when `is_main`."""

    CHECKPOINTS = "checkpoints"

    def __init__(self, path: Path, *, is_main: bool):
        self.path = Path(path)
        self.is_main = is_main
        self.samples = self.path / "samples"
        self.generators = self.path / "generators"
        self.checkpoints = self.path / self.CHECKPOINTS

    # ---- reading ---------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    def read_config(self) -> dict[str, Any] | None:
        """config.json, or None when it is missing or unreadable."""
        try:
            return json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return None

    def keeps_ema(self) -> bool:
        """Whether the generator files shown are an EMA of G (the trained G's are kept beside them)."""
        return (self.read_config() or {}).get("sample_source") == "ema"

    def raw_files(self, raw: bool) -> bool:
        """Whether asking for the trained G (`--raw`) means other files than the shown ones."""
        return raw and self.keeps_ema()

    # ---- paths -------------------------------------------------------------------------
    def sample_png(self, epoch: int) -> Path:
        return self.samples / f"{epoch_tag(epoch)}.png"

    def generator_file(self, epoch: int | None = None, *, raw: bool = False) -> Path:
        """The generator shown (EMA if any), or with `raw` the trained one of an EMA run."""
        if epoch is None:
            return self.path / (GENERATOR_RAW if raw else GENERATOR)
        return (self.generators / "raw" if raw else self.generators) / f"{epoch_tag(epoch)}.safetensors"

    # ---- writes (main process only) ----------------------------------------------------
    def create(self) -> None:
        if self.is_main:
            with writing(f"creating the run directory {self.path}", self.path):
                for folder in (self.path, self.samples, self.generators, self.checkpoints):
                    folder.mkdir(parents=True, exist_ok=True)

    def remove_leftovers(self) -> None:
        """Temp files of atomic writes a killed training run left (.NAME.<random>.tmp) beside the
        files training writes; checkpoints/ has its own cleaner (training/checkpoint.py). Not
        quality.jsonl's or report.pdf's: `gan eval` / `gan report` may be writing them now."""
        if not self.is_main:
            return
        ours = tuple(f".{name}." for name in (CONFIG, STATUS, METRICS, GENERATOR, GENERATOR_RAW))
        for folder in (self.path, self.samples, self.generators, self.generators / "raw"):
            for tmp in folder.glob(f".*{TMP_SUFFIX}") if folder.is_dir() else ():
                if tmp.is_file() and (folder != self.path or tmp.name.startswith(ours)):
                    tmp.unlink(missing_ok=True)

    def write_config(self, data: dict[str, Any]) -> None:
        if self.is_main:
            write_atomic(self.path / CONFIG, json.dumps(data, indent=2) + "\n")

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One line per epoch, flushed and fsynced so a kill loses at most this line."""
        self._append(METRICS, row)

    def append_event(self, event: str, **fields: Any) -> None:
        """One line per start, resume, stop, finish or failure: the report's timeline."""
        self._append(EVENTS, {"event": event, "time": time.time(), **fields})

    def _append(self, name: str, row: dict[str, Any]) -> None:
        if not self.is_main:
            return
        path = self.path / name
        with writing(f"appending to {path}", path.parent), open(path, "a") as fh:
            size = fh.tell()
            try:
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    fh.truncate(size)  # no half line left behind; truncating needs no space
                raise

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """On resume: exactly the epochs the checkpoint holds, each once."""
        if self.is_main:
            write_atomic(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

    def merge_quality(self, new_rows: list[dict[str, Any]], name: str = QUALITY) -> None:
        """Merge rows into quality.jsonl (or `name`): one per (epoch, feature space), the newest wins."""
        if not self.is_main:
            return
        with self._quality_turn():
            rows = {quality_key(row): row for row in read_jsonl(self.path / name, quality_key)[0]}
            rows.update({quality_key(row): row for row in new_rows})
            write_atomic(self.path / name, "".join(json.dumps(rows[k]) + "\n" for k in sorted(rows)))

    @contextlib.contextmanager
    def _quality_turn(self):
        """Read-merge-write of quality.jsonl one process at a time: a `gan eval` beside a training
        run that evaluates would otherwise drop the other's row. A file system without locks:
        no waiting (the window is milliseconds)."""
        import fcntl

        with writing(f"writing {self.path / QUALITY_LOCK}", self.path):
            fh = open(self.path / QUALITY_LOCK, "a")
        with fh:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            yield

    def write_status(self, state: str, **extra: Any) -> None:
        if self.is_main:
            status = {"state": state, "pid": os.getpid(), "hostname": socket.gethostname(),
                      "updated": time.time(), **extra}
            write_atomic(self.path / STATUS, json.dumps(status) + "\n")

    def save_sample_grid(self, epoch: int, images, *, nrow: int) -> None:
        """A grid of images in [-1, 1] (a (N, C, H, W) tensor) as samples/epoch_NNNN.png."""
        if not self.is_main:
            return
        from torchvision.utils import save_image

        write_atomic(self.sample_png(epoch), lambda tmp: save_image(images, tmp, format="png", nrow=nrow,
                                                                     normalize=True, value_range=(-1, 1)))
