"""Stop requests: Slurm preemption or time limit (SIGUSR1), cancel (SIGTERM), stop files.

Contract of a `should_stop` callable given to `train()` (StyleGAN2-ADA's abort_fn idea): it
answers for THIS process only and may differ between processes; the loop agrees on one
answer across processes with a collective, so every process stops at the same step.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path

EXIT_STOPPED = 75  # checkpoint saved after a stop request; `--resume auto` continues
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class _SignalScope:
    """Inside `with`, SIGUSR1 and SIGTERM call `on_signal(name)` instead of killing the
    process; on exit the previous handlers are restored, so nothing is left changed."""

    def __enter__(self):
        self._previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame) -> None:
        self.on_signal(signal.Signals(signum).name)

    def on_signal(self, name: str) -> None:
        raise NotImplementedError


class StopRequest(_SignalScope):
    """True once a stop signal arrived (inside `with`) or a stop file exists."""

    def __init__(self, files: Iterable[str | Path] = ()):
        self.files = [Path(f) for f in files if f]
        self.signalled: str | None = None

    def on_signal(self, name: str) -> None:
        self.signalled = name

    def __call__(self) -> bool:
        return self.signalled is not None or any(f.exists() for f in self.files)

    def reason(self) -> str | None:
        """Why a stop was asked for, for the run's events.jsonl."""
        if self.signalled:
            return self.signalled
        for file in self.files:  # the launcher writes the signal's name, slurm/train.sh the reason
            try:
                return file.read_text().strip()[:100] or f"stop file {file}"
            except OSError:
                continue
        return None


class ForwardStopSignals(_SignalScope):
    """In the launcher: SIGUSR1/SIGTERM write `stop_file`, which the workers watch (the
    elastic agent would otherwise just kill them)."""

    def __init__(self, stop_file: Path):
        self.stop_file = Path(stop_file)

    def on_signal(self, name: str) -> None:
        self.stop_file.write_text(name)
