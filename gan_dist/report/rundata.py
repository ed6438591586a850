"""Reading a run directory for `gan report` and `gan compare`: files in, plain dicts out.

Reads only RUN_DIR/config.json, metrics.jsonl, quality.jsonl, events.jsonl, status.json and
samples/. Old runs lack some of these (events.jsonl, newer config keys): readers cope.
Never imports torch.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from gan_dist.config import renamed
from gan_dist.errors import GanError
from gan_dist.rundir import EVENTS, epoch_files, quality_key, read_events, read_jsonl


def load_run(run_dir: Path) -> dict[str, Any]:
    """Everything the documents need from RUN_DIR, or a GanError naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanError(f"{run_dir} is not a directory; pass a run directory written by `gan train`")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise GanError(f"{run_dir} is not a run directory (no config.json); pass the directory "
                       "`gan train` wrote, e.g. runs/<name>")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise GanError(f"{config_path} is not valid JSON ({err}); restore it from the run") from None
    if not isinstance(config, dict):
        raise GanError(f"{config_path} is not a JSON object; restore it from the run")
    config = renamed(config)  # runs written before an option was renamed read as today's
    metrics, bad_lines = read_jsonl(run_dir / "metrics.jsonl")
    if not metrics:
        raise GanError(f"{run_dir} has no completed epoch in metrics.jsonl; report once the "
                       "first epoch has finished")
    quality, _ = read_jsonl(run_dir / "quality.jsonl", quality_key)  # one per (epoch, feature space)
    try:
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = {}
    samples = {e: p for e, p in epoch_files(run_dir / "samples", ".png").items() if p.is_file()}
    return {"dir": run_dir, "config": config, "metrics": metrics, "bad_lines": bad_lines,
            "quality": quality, "status": status if isinstance(status, dict) else {},
            "samples": samples, "events": read_events(run_dir / EVENTS)}


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, without decoding the image."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])
