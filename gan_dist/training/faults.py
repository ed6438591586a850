"""Fault injection for the tests: make one process fail, or its losses NaN, at a chosen step.

Reaches training only as an explicit `fault=` argument of `train()` (the hidden `gan train
--fault` option fills it in); nothing in the loop reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_dist.errors import GanError

KINDS = ("error", "nan", "stop")


@dataclass(frozen=True)
class Fault:
    """RANK:EPOCH[:STEP[:KIND]], e.g. "1:2" (rank 1 raises at the start of epoch 2),
    "0:3:5:nan" (rank 0's losses become NaN at step 5 of epoch 3; steps count from 0) or
    "0:3:5:stop" (rank 0 asks for a stop before step 5, as a signal would)."""

    rank: int
    epoch: int
    step: int = 0
    kind: str = "error"

    @classmethod
    def parse(cls, text: str) -> "Fault":
        parts = text.split(":")
        try:
            kind = parts[3] if len(parts) > 3 else "error"
            fault = cls(*(int(p) for p in parts[:3]), kind=kind)
        except (TypeError, ValueError):
            fault = None
        if fault is None or not 2 <= len(parts) <= 4 or fault.kind not in KINDS:
            raise GanError(f"--fault {text!r} must be RANK:EPOCH[:STEP[:error|nan|stop]]")
        return fault

    def __call__(self, rank: int, epoch: int, step: int) -> str | None:
        """Called by the loop before each step: raises, returns "nan" or "stop", or None."""
        if (rank, epoch, step) != (self.rank, self.epoch, self.step):
            return None
        if self.kind == "error":
            raise RuntimeError(f"injected failure on rank {rank} at epoch {epoch} step {step} (--fault)")
        return self.kind
