"""A run's file system filling up: the early warning, and the one line the run ends with.

The size of the newest complete checkpoint is what the next one needs (every checkpoint of a
run holds the same tensors), so it is known from the first checkpoint on. The warning comes
once per run life, at the start or after a checkpoint, when free space is below two more of
them. When a write fails for lack of space or quota (DiskFull, diskspace.py), the run ends with
one line saying what failed, what the next checkpoint needs, the newest complete checkpoint
and the command that continues; partial files are already removed by then.
"""

from __future__ import annotations

import functools
import shlex
from pathlib import Path

from gan_dist.diskspace import DiskFull, disk_full_errno, free_bytes, human_bytes
from gan_dist.errors import GanError

CHECKPOINTS_AHEAD = 2  # warn when free space is below this many more checkpoints


class OutOfSpace(GanError):
    """The run ended because its file system (or quota) is full: one line, exit 2."""


def low_space_warning(folder: Path, checkpoint_size: int) -> str | None:
    """The warning's text when `folder`'s file system has less free space than
    CHECKPOINTS_AHEAD checkpoints of `checkpoint_size` bytes, else None."""
    free = free_bytes(folder)
    needed = CHECKPOINTS_AHEAD * checkpoint_size
    if checkpoint_size <= 0 or free >= needed:
        return None
    return (f"only {human_bytes(free)} free on the file system of {folder}; each checkpoint takes "
            f"{human_bytes(checkpoint_size)}, the next {CHECKPOINTS_AHEAD} need {human_bytes(needed)}: free space "
            "now, or the run will stop at a checkpoint (nothing complete is lost)")


def continue_command(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    return f"gan train --resume auto --out {shlex.quote(str(run_dir.parent))} --name {shlex.quote(run_dir.name)}"


def out_of_space_line(err: BaseException, run_dir: Path) -> str | None:
    """The one line a run ends with when `err` says space or quota ran out, else None."""
    from gan_dist.training.checkpoint import checkpoint_bytes, newest_checkpoint

    if isinstance(err, OutOfSpace):  # already the run's line
        return None
    if isinstance(err, DiskFull):
        first = str(err)
    elif disk_full_errno(err) is not None:
        first = f"a write of the run failed for lack of space or quota ({type(err).__name__}: {err})"
    else:
        return None
    newest = newest_checkpoint(Path(run_dir) / "checkpoints")
    if newest is None:
        return (f"{first}; no checkpoint was complete yet (how much one needs shows after the first); free "
                f"space, then start again with: {continue_command(run_dir)}")
    return (f"{first}; the next checkpoint needs about {human_bytes(checkpoint_bytes(newest))} (the size of the "
            f"newest complete one, {newest}, which is intact); free space, then continue with: "
            f"{continue_command(run_dir)}")


def one_line_when_full(train):
    """Decorate train(cfg, env, ...): a full disk anywhere in it ends with out_of_space_line."""
    @functools.wraps(train)
    def wrapper(cfg, *args, **kwargs):
        try:
            return train(cfg, *args, **kwargs)
        except Exception as err:
            line = out_of_space_line(err, cfg.run_dir)
            if line is None:
                raise
            raise OutOfSpace(line) from None
    return wrapper
