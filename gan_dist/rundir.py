"""Every path and every write of a run directory. Inert off the main process.

EDM's trick: non-main ranks get a RunDir whose writers do nothing, so no code path can
write from the wrong process. Reading helpers are plain functions usable anywhere
(the report and `gan runs` read runs without torch).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"
CONFIG = "config.json"
STATUS = "status.json"


def epoch_tag(epoch: int) -> str:
    return f"epoch_{epoch:04d}"


def write_atomic(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, rename: readers see old or new."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of a per-epoch JSONL file (metrics.jsonl, quality.jsonl), one per epoch (the last
    written wins), sorted by epoch; plus how many lines could not be read (a killed writer
    leaves a truncated last line)."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    rows: dict[int, dict[str, Any]] = {}
    bad = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows[row["epoch"]] = row
        else:
            bad += 1
    return [rows[e] for e in sorted(rows)], bad


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS)[0]


def read_config(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / CONFIG).read_text())


class RunDir:
    """Paths of one run; `write_*` methods act only when `is_main`."""

    def __init__(self, path: Path, *, is_main: bool):
        self.path = Path(path)
        self.is_main = is_main
        self.samples = self.path / "samples"
        self.generators = self.path / "generators"
        self.checkpoints = self.path / "checkpoints"

    def create(self) -> None:
        if self.is_main:
            for folder in (self.path, self.samples, self.generators, self.checkpoints):
                folder.mkdir(parents=True, exist_ok=True)

    def sample_png(self, epoch: int) -> Path:
        return self.samples / f"{epoch_tag(epoch)}.png"

    def generator_file(self, epoch: int | None = None) -> Path:
        if epoch is None:
            return self.path / "generator.safetensors"
        return self.generators / f"{epoch_tag(epoch)}.safetensors"

    def write_config(self, data: dict[str, Any]) -> None:
        if self.is_main:
            write_atomic(self.path / CONFIG, json.dumps(data, indent=2) + "\n")

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One line per epoch, flushed and fsynced so a kill loses at most this line."""
        if not self.is_main:
            return
        with open(self.path / METRICS, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """On resume: exactly the epochs the checkpoint holds, each once."""
        if self.is_main:
            write_atomic(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

    def write_status(self, state: str, **extra: Any) -> None:
        if self.is_main:
            status = {"state": state, "pid": os.getpid(), "hostname": socket.gethostname(),
                      "updated": time.time(), **extra}
            write_atomic(self.path / STATUS, json.dumps(status) + "\n")
