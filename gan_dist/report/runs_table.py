"""`gan runs [DIR]`: one table row per run directory. Reads files only; never imports torch."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from gan_dist.errors import GanError
from gan_dist.rundir import read_jsonl

# A "running" run on another host whose status.json has not been touched for this long is
# presumed killed (the trainer refreshes it at least once per epoch).
STALE_SECONDS = 3600


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_jsonl_last(path: Path) -> tuple[dict | None, int]:
    """Last epoch's row and the number of distinct epochs logged."""
    rows, _ = read_jsonl(path)
    return (rows[-1] if rows else None), len(rows)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, ValueError, TypeError):
        return False
    return True


def run_status(run_dir: Path, *, now: float | None = None) -> str:
    """running / finished / stopped / failed / killed (a "running" run that is not), or unknown."""
    status = _read_json(Path(run_dir) / "status.json")
    if status is None:
        return "unknown"
    state = str(status.get("state", "unknown"))
    if state != "running":
        return state
    now = time.time() if now is None else now
    if status.get("hostname") == socket.gethostname():
        pid = status.get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return "killed"
    updated = status.get("updated")
    if isinstance(updated, (int, float)) and now - updated > STALE_SECONDS:
        return "killed"
    return "running"


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "metrics.jsonl").is_file())


def summarize_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    cfg = _read_json(run_dir / "config.json") or {}
    last, done = _read_jsonl_last(run_dir / "metrics.jsonl")
    quality, _ = _read_jsonl_last(run_dir / "quality.jsonl")
    last = last or {}
    return {
        "name": run_dir.name,
        "path": str(run_dir),
        "status": run_status(run_dir),
        "epochs_done": done,
        "epochs_total": cfg.get("epochs"),
        "g_loss": last.get("g_loss"),
        "d_loss": last.get("d_loss"),
        "fd": (quality or {}).get("fd"),
        "fd_epoch": (quality or {}).get("epoch"),
        "fd_inception": (quality or {}).get("features") == "inception",
        "world_size": last.get("world_size", cfg.get("world_size")),
        "dataset": cfg.get("dataset"),
    }


def collect_runs(parent: Path) -> list[dict]:
    """Summaries of every run directory in `parent` (or of `parent` itself if it is a run)."""
    parent = Path(parent)
    if not parent.is_dir():
        raise GanError(f"folder {parent} not found: give the folder that holds your runs (train's --out)")
    if is_run_dir(parent):
        return [summarize_run(parent)]
    return [summarize_run(p) for p in sorted(parent.iterdir()) if is_run_dir(p)]


STATUS_STYLE = {"running": "cyan", "finished": "green", "stopped": "yellow", "killed": "red",
                "failed": "red", "unknown": "dim"}


def _num(value, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def runs_table(rows: list[dict], title: str):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("run", no_wrap=True, overflow="fold")
    table.add_column("status")
    table.add_column("epochs", justify="right")
    table.add_column("G loss", justify="right")
    table.add_column("D loss", justify="right")
    table.add_column("FD (epoch)", justify="right")
    table.add_column("procs", justify="right")
    for row in rows:
        total = row["epochs_total"] if row["epochs_total"] is not None else "?"
        fd = "-" if row["fd"] is None else (f"{_num(row['fd'], '.2f')} ({row['fd_epoch']}"
                                            f"{', FID' if row.get('fd_inception') else ''})")
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(row["name"], f"[{style}]{row['status']}[/]" if style else row["status"],
                      f"{row['epochs_done']}/{total}", _num(row["g_loss"], ".4f"),
                      _num(row["d_loss"], ".4f"), fd, _num(row["world_size"], "d"))
    return table


def print_runs(parent: Path) -> int:
    """Print the table; returns the number of runs found."""
    from rich.console import Console

    rows = collect_runs(parent)
    console = Console()
    if not rows:
        console.print(f"no runs in {parent}")
        return 0
    console.print(runs_table(rows, title=f"runs in {parent}"))
    return len(rows)
