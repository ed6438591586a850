"""Hooks that act on training from outside the step, and the one kind the tests use: faults.

`train(hooks=...)` calls `hooks.before_step(rank, position, models)` before every step and asks
`hooks.stop_reason()` at every sync point, beside the stop requests (training/stopping.py). The
step functions know nothing of them: a fault acts on the models, as a real failure would.

A `Fault` makes one process fail, its losses NaN, or ask for a stop, at a chosen step. It reaches
training only as that hook, filled in by the hidden `gan train --fault` option (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gan_dist.errors import GanError

KINDS = ("error", "nan", "stop")


class StepHooks:
    """The do-nothing hooks of every real run."""

    def before_step(self, rank: int, position, models) -> None:
        """Called on every process before each step, with the position the step starts from."""

    def stop_reason(self) -> str | None:
        """A reason to stop, asked at every sync point (answers may differ between processes)."""
        return None


NO_HOOKS = StepHooks()


@dataclass
class Fault(StepHooks):
    """RANK:EPOCH[:STEP[:KIND]], e.g. "1:2" (rank 1 raises at the start of epoch 2),
    "0:3:5:nan" (rank 0's losses become NaN from step 5 of epoch 3 on; steps count from 0) or
    "0:3:5:stop" (rank 0 asks for a stop before step 5, as a signal would)."""

    rank: int
    epoch: int
    step: int = 0
    kind: str = "error"
    _stopping: bool = field(default=False, compare=False, repr=False)

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

    def __str__(self) -> str:
        return f"{self.rank}:{self.epoch}:{self.step}:{self.kind}"

    def __call__(self, rank: int, epoch: int, step: int) -> str | None:
        """What happens at (rank, 1-based epoch, 0-based step): raises, "nan", "stop" or None."""
        if (rank, epoch, step) != (self.rank, self.epoch, self.step):
            return None
        if self.kind == "error":
            raise RuntimeError(f"injected failure on rank {rank} at epoch {epoch} step {step} (--fault)")
        return self.kind

    def before_step(self, rank: int, position, models) -> None:
        action = self(rank, position.epoch, position.step)
        if action == "nan":
            poison(models.D_plain)
        elif action == "stop":
            self._stopping = True

    def stop_reason(self) -> str | None:
        return "--fault stop" if self._stopping else None


def poison(module) -> None:
    """Make a network's outputs NaN from now on, as a diverged update would."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))
