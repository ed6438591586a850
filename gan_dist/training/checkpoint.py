"""Complete, atomically published training checkpoints; finding the newest; resuming.

A checkpoint is written into `checkpoints/.tmp-<tag>/` by every process (Accelerate's
save_state: models, optimisers, every library's RNG per process), then the main process
adds `trainer_state.json` and renames the folder to `checkpoints/<tag>/` (RunDir does both).
The tag is `epoch_0003` after three whole epochs, `epoch_0004_step_000120` inside epoch 4
(a mid-epoch checkpoint: the state then also holds the epoch's partial statistics). A folder only counts as a checkpoint when its name has no `.tmp-` prefix and it holds
`trainer_state.json`, so a kill at any moment never leaves a broken "newest".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan_dist.errors import GanError
from gan_dist.rundir import CHECKPOINT_STATE, RunDir, complete_checkpoints


def newest_checkpoint(folder: Path) -> Path | None:
    found = complete_checkpoints(folder)
    return found[-1][1] if found else None


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / CHECKPOINT_STATE).is_file()


def read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        state = json.loads((Path(checkpoint) / CHECKPOINT_STATE).read_text())
        int(state["epoch"]), list(state["history"])
        return state
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GanError(f"checkpoint {checkpoint} is damaged ({err}): resume from an older one "
                       "(pass its folder to --resume) or start a new run") from None


def save_checkpoint(accelerator, run: RunDir, state: dict[str, Any], *, keep: int,
                    extra: Callable[[Path], None] | None = None) -> Path:
    """Collective: call on every process. `state` holds "epoch" (whole epochs done) and
    "step" (steps into the next epoch, 0 at a boundary). `extra(folder)` writes more files
    into the checkpoint on the main process (the EMA generator), before it is published.
    Returns the published folder."""
    epochs_done, step = int(state["epoch"]), int(state.get("step", 0))
    tmp = run.prepare_checkpoint(epochs_done, step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if extra is not None and run.is_main:
        extra(tmp)
    accelerator.wait_for_everyone()
    final = run.publish_checkpoint(epochs_done, step, state, keep=keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, checkpoint: Path) -> dict[str, Any]:
    """Collective: restores models, optimisers and RNG into the prepared objects."""
    state = read_state(checkpoint)
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as err:  # missing or corrupt weight files
        raise GanError(f"checkpoint {checkpoint} cannot be loaded ({type(err).__name__}: {err}): "
                       "resume from an older one or start a new run") from None
    return state
