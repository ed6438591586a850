"""Epoch numbers in names and lists: the one place that spells `epoch_NNNN` and parses
"10,20,50,100". Torch-free (the report uses it). Checkpoint folder names build on `epoch_tag`
in training/position.py."""

from __future__ import annotations

import re
from typing import Any

from gan_dist.errors import GanError

_TAG = re.compile(r"^epoch_(\d{4,})$")


def epoch_tag(epoch: int) -> str:
    """The stem of every per-epoch file and folder: samples/epoch_0010.png, checkpoints/epoch_0010."""
    return f"epoch_{epoch:04d}"


def parse_epoch_tag(stem: str) -> int | None:
    """epoch_0010 -> 10; anything else (a temp folder, a stray file) -> None."""
    match = _TAG.match(stem)
    return int(match.group(1)) if match else None


def parse_epoch_list(value: Any, option: str) -> tuple[int, ...]:
    """Epochs >= 1 from "10,20,50,100" (CLI) or [10, 20] (TOML/JSON); one-line error otherwise.
    Duplicates are dropped, order is kept."""
    example = "10,50,100"
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise GanError(f"{option} must be a comma-separated list of epochs such as {example}, got {value!r}")
        epochs = [int(p) for p in parts]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        epochs = list(value)
    else:
        raise GanError(f"{option} must be a list of epochs such as [10, 20, 50, 100], got {value!r}")
    if any(e < 1 for e in epochs):
        raise GanError(f"{option} must list epochs >= 1 such as {example}, got {value!r}")
    return tuple(dict.fromkeys(epochs))
