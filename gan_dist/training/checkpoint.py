"""Complete, atomically published training checkpoints; finding the newest; resuming.

A checkpoint is written into `checkpoints/.tmp-epoch_NNNN/` by every process (Accelerate's
save_state: models, optimisers, every library's RNG per process), then the main process
adds `trainer_state.json` and renames the folder to `checkpoints/epoch_NNNN/`. A folder
only counts as a checkpoint when its name has no `.tmp-` prefix and it holds
`trainer_state.json`, so a kill at any moment never leaves a broken "newest".
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from gan_dist.errors import GanError
from gan_dist.rundir import epoch_tag

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^epoch_(\d{4,})$")


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every complete checkpoint in `folder`, oldest first."""
    found = []
    if Path(folder).is_dir():
        for child in Path(folder).iterdir():
            match = _NAME.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def newest_checkpoint(folder: Path) -> Path | None:
    found = complete_checkpoints(folder)
    return found[-1][1] if found else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
        int(state["epoch"]), list(state["history"])
        return state
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GanError(f"checkpoint {checkpoint} is damaged ({err}): resume from an older one "
                       "(pass its folder to --resume) or start a new run") from None


def save_checkpoint(accelerator, folder: Path, epoch: int, state: dict[str, Any], *, keep: int) -> Path:
    """Collective: call on every process. Returns the published folder."""
    folder = Path(folder)
    final = folder / epoch_tag(epoch)
    tmp = folder / f".tmp-{epoch_tag(epoch)}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed save
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(tmp / STATE_FILE, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():  # an incomplete folder of the same epoch from an earlier life
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in complete_checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
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
