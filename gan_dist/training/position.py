"""Where a run is: the one counter the training loop keeps, and the names it gives checkpoints.

A position is `epochs_done` whole epochs plus `step` steps into the next one. Every other view
is derived here: the epoch in progress (1-based, what users and grids call "epoch 4"), the global
optimiser step (TensorBoard's x axis, the EMA's image count) and the checkpoint folder's tag.

Tags: `epoch_0003` after three whole epochs; `epoch_0004_step_000120` after 120 steps of
epoch 4 (a mid-epoch checkpoint names the epoch in progress). Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gan_dist.epochs import epoch_tag

_TAG = re.compile(r"^epoch_(\d{4,})(?:_step_(\d{6,}))?$")


@dataclass(frozen=True)
class Position:
    epochs_done: int
    step: int  # steps done in epoch `epochs_done + 1`; 0 at an epoch boundary
    steps_per_epoch: int

    @property
    def epoch(self) -> int:
        """The epoch in progress, 1-based (the one the next step belongs to)."""
        return self.epochs_done + 1

    @property
    def global_step(self) -> int:
        """Optimiser steps since the run began."""
        return self.epochs_done * self.steps_per_epoch + self.step

    @property
    def at_epoch_end(self) -> bool:
        """Every step of the epoch in progress is done (the epoch is not yet closed)."""
        return self.step == self.steps_per_epoch

    def advanced(self) -> "Position":
        """After one more step."""
        return replace(self, step=self.step + 1)

    def closed_epoch(self) -> "Position":
        """After the epoch in progress is closed: its steps become one whole epoch."""
        return replace(self, epochs_done=self.epochs_done + 1, step=0)

    @property
    def tag(self) -> str:
        return checkpoint_tag(self.epochs_done, self.step)

    def describe(self) -> str:
        """For messages: "epoch 2, step 4 of 10" (the step just done, 1-based)."""
        return f"epoch {self.epoch}, step {self.step} of {self.steps_per_epoch}"


def checkpoint_tag(epochs_done: int, step: int = 0) -> str:
    """A checkpoint's folder name: epoch_0003 after 3 whole epochs, epoch_0004_step_000120
    inside epoch 4 after 120 of its steps."""
    return epoch_tag(epochs_done) if step == 0 else f"{epoch_tag(epochs_done + 1)}_step_{step:06d}"


def parse_checkpoint_tag(name: str) -> tuple[int, int] | None:
    """(whole epochs done, steps into the next epoch), which also orders checkpoints; None for
    anything else (a .tmp- folder, a stray file)."""
    match = _TAG.match(name)
    if not match:
        return None
    epoch, step = int(match.group(1)), int(match.group(2) or 0)
    return (epoch, 0) if step == 0 else (epoch - 1, step)
