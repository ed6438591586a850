"""Stop requests: Slurm preemption or time limit (SIGUSR1), cancel (SIGTERM), stop files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

EXIT_STOPPED = 75  # checkpoint saved after a stop request; `--resume auto` continues


class StopRequest:
    """Set by SIGUSR1/SIGTERM, or by a stop file (Slurm's batch script writes GAN_STOP_FILE)."""

    def __init__(self):
        self.signalled = False
        self.files = [Path(p) for p in (os.environ.get("GAN_STOP_FILE"), os.environ.get("GAN_LAUNCHER_STOP_FILE")) if p]

    def install(self) -> None:
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame) -> None:
        self.signalled = True

    def agreed(self, accelerator) -> bool:
        """Collective: every process learns whether any process was asked to stop."""
        local = self.signalled or any(f.exists() for f in self.files)
        flag = torch.tensor([1.0 if local else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)
