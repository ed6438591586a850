"""The run's checkpoints: when to save, how, which is newest, pruning, restoring, and what
`--resume` means. The one owner of everything under RUN_DIR/checkpoints/.

A checkpoint is written into `checkpoints/.tmp-<tag>/` by every process (Accelerate's
save_state: models, optimisers, every library's RNG per process, as safetensors), then the main
process adds the tensors of the other stateful pieces (the EMA: `ema.safetensors`) and
`trainer_state.json` (position, the epoch in progress, the metrics history, the config), and
renames the folder to `checkpoints/<tag>/` (tags: training/position.py). A folder counts only
when its name has no `.tmp-` prefix and it holds `trainer_state.json`, so a kill at any moment
never leaves a broken "newest". Nothing is unpickled: Accelerate's register_for_checkpointing
would unpickle on load, so the EMA and the run's state are saved here instead.

trainer_state.json keeps the format of the first version (keys "epoch", "step", "partial",
"history", "world_size", "config", "ema"), so runs written before still resume.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gan_dist.atomic import write_atomic
from gan_dist.config import RESUMABLE, TUNABLE, TrainConfig, flag
from gan_dist.errors import GanError
from gan_dist.rundir import RunDir
from gan_dist.training.position import Position, checkpoint_tag, parse_checkpoint_tag

STATE_FILE = "trainer_state.json"  # a checkpoint folder counts only when it holds this
TMP_PREFIX = ".tmp-"  # a checkpoint being written
TRASH_PREFIX = ".old-"  # a checkpoint being deleted


# ---- finding checkpoints ------------------------------------------------------------------
def complete_checkpoints(folder: Path) -> list[tuple[tuple[int, int], Path]]:
    """((whole epochs done, steps into the next), path) of every complete checkpoint folder
    in `folder`, oldest first."""
    found = []
    for path in Path(folder).glob("epoch_*"):
        position = parse_checkpoint_tag(path.name)
        if position is not None and (path / STATE_FILE).is_file():
            found.append((position, path))
    return sorted(found)


def newest_checkpoint(folder: Path) -> Path | None:
    found = complete_checkpoints(folder)
    return found[-1][1] if found else None


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
        int(state["epoch"]), list(state["history"])
        return state
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GanError(f"checkpoint {checkpoint} is damaged ({err}): resume from an older one "
                       "(pass its folder to --resume) or start a new run") from None


# ---- what --resume means --------------------------------------------------------------------
def resolve_resume(cfg: TrainConfig, explicit: set[str], *, first_process: bool = True) -> TrainConfig:
    """The config to train: --resume resolved to a concrete checkpoint (or a fresh start), the
    resumed run's settings merged with the options a resume may change. A fresh run refuses a
    run directory that already holds files (`first_process`: only the process that creates it
    checks; others may already see its files)."""
    run_dir = cfg.run_dir
    if cfg.resume is None:
        if first_process and run_dir.exists() and any(run_dir.iterdir()):
            raise GanError(f"run directory {run_dir} already exists: choose another --name, "
                           "or continue it with --resume auto")
        return cfg
    if cfg.resume == "auto":
        if "name" not in explicit:
            run_dir = _newest_run(Path(cfg.out))
        checkpoint = newest_checkpoint(RunDir(run_dir, is_main=False).checkpoints)
        if checkpoint is None:
            # Nothing to resume yet (Slurm's first life, or one killed before its first
            # checkpoint): start from the beginning; training rewrites metrics.jsonl.
            return cfg.replace(resume=None)
    else:
        path = Path(cfg.resume)
        if is_checkpoint(path):
            checkpoint, run_dir = path, path.parent.parent
        elif path.is_dir():
            run_dir, checkpoint = path, newest_checkpoint(RunDir(path, is_main=False).checkpoints)
            if checkpoint is None:
                raise GanError(f"{path} holds no complete checkpoint: pass a run directory that has "
                               "checkpoints/epoch_NNNN, or start a new run")
        else:
            raise GanError(f"--resume {path}: no such run directory or checkpoint")
    return _resumed_config(cfg, explicit, checkpoint, run_dir)


def _newest_run(out: Path) -> Path:
    runs = {p.parent.parent for p in out.glob(f"*/{RunDir.CHECKPOINTS}/epoch_*") if is_checkpoint(p)}
    if not runs:
        raise GanError(f"--resume auto found no run with a checkpoint under {out}: pass --name or a path")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _resumed_config(cfg: TrainConfig, explicit: set[str], checkpoint: Path, run_dir: Path) -> TrainConfig:
    state = read_state(checkpoint)
    stored = TrainConfig.from_dict(state["config"])
    changeable = RESUMABLE | (TUNABLE if cfg.allow_changes else frozenset())
    for key in sorted(explicit - changeable):
        if getattr(cfg, key) != getattr(stored, key):
            how = " (or pass --allow-changes)" if key in TUNABLE else ""
            raise GanError(f"{flag(key)} is {getattr(stored, key)!r} in the run being resumed: "
                           f"a resumed run keeps its settings; drop the option{how} or start a new run")
    changes = {k: getattr(cfg, k) for k in explicit & changeable if k not in ("out", "name", "resume")}
    merged = stored.replace(**changes, out=str(run_dir.parent), name=run_dir.name, resume=str(checkpoint))
    if int(state["epoch"]) >= merged.epochs:
        raise GanError(f"{run_dir} already trained {state['epoch']} of {merged.epochs} epochs: "
                       "pass a larger --epochs to train longer")
    return merged.validate()


# ---- saving and restoring ---------------------------------------------------------------------
class Checkpointer:
    """Saves, restores and prunes one run's checkpoints, and says when a timed one is due.

    `save` and `restore` are collective: every process calls them at the same point. The pieces
    of state are passed in by name: `json_state` objects give `state_dict()` (JSON) and are
    merged into trainer_state.json; `tensor_state` objects give `state_dict()` (tensors) and are
    written as NAME.safetensors beside it.
    """

    def __init__(self, run: RunDir, accelerator, *, keep: int, every_minutes: float):
        self.run = run
        self.accelerator = accelerator
        self.folder = run.checkpoints
        self.keep = keep
        self.every_seconds = every_minutes * 60
        self.last_saved = time.monotonic()
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """What a killed run left behind (main process): folders half written, half deleted, or
        without their state file. Complete checkpoints are never touched."""
        if not self.run.is_main or not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.is_dir() and (path.name.startswith((TMP_PREFIX, TRASH_PREFIX))
                                  or (parse_checkpoint_tag(path.name) and not is_checkpoint(path))):
                shutil.rmtree(path, ignore_errors=True)

    def newest(self) -> Path | None:
        return newest_checkpoint(self.folder)

    def due(self, position: Position) -> bool:
        """A timed mid-epoch checkpoint is due (this process's clock; the loop agrees on rank 0's).
        Never at an epoch's last step: the epoch's own checkpoint follows at once."""
        return (self.every_seconds > 0 and not position.at_epoch_end
                and time.monotonic() - self.last_saved >= self.every_seconds)

    def save(self, position: Position, state: Mapping[str, Any], *,
             tensor_state: Mapping[str, Any] = {}) -> Path:
        """Collective. `state`: the JSON of trainer_state.json, besides the position; `tensor_state`:
        name -> object whose state_dict() holds tensors (saved as NAME.safetensors)."""
        tmp = self.folder / f"{TMP_PREFIX}{position.tag}"
        if self.run.is_main:
            shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed save
            tmp.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(tmp), safe_serialization=True)
        if self.run.is_main:
            for name, piece in tensor_state.items():
                _save_tensors(piece.state_dict(), tmp / f"{name}.safetensors")
        self.accelerator.wait_for_everyone()
        final = self._publish(tmp, position, {"epoch": position.epochs_done, "step": position.step, **state})
        self.accelerator.wait_for_everyone()
        self.last_saved = time.monotonic()
        return final

    def _publish(self, tmp: Path, position: Position, state: dict[str, Any]) -> Path:
        """Add the state file, rename the temp folder into place, then drop all but the newest
        `keep` (in this order: a kill in between leaves one extra, never one too few)."""
        final = self.folder / position.tag
        if not self.run.is_main:
            return final
        write_atomic(tmp / STATE_FILE, json.dumps(state))
        if final.exists():  # a folder of the same position from an earlier life
            self._discard(final)
        os.replace(tmp, final)
        for _, old in complete_checkpoints(self.folder)[:-self.keep]:
            self._discard(old)
        return final

    def _discard(self, checkpoint: Path) -> None:
        """Rename, then delete: a kill while deleting leaves a dot-folder that no reader counts and
        the next start removes, never a checkpoint folder that lost its state file midway."""
        trash = checkpoint.with_name(TRASH_PREFIX + checkpoint.name)
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(checkpoint, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def restore(self, checkpoint: Path, steps_per_epoch: int, *,
                tensor_state: Mapping[str, Any] = {}) -> tuple[Position, dict[str, Any]]:
        """Collective: models, optimisers and RNG into the prepared objects, `tensor_state`
        pieces from their files. Returns the position and trainer_state.json's contents."""
        state = read_state(checkpoint)
        try:
            self.accelerator.load_state(str(checkpoint))
        except Exception as err:  # missing or corrupt weight files
            raise GanError(f"checkpoint {checkpoint} cannot be loaded ({type(err).__name__}: {err}): "
                           "resume from an older one or start a new run") from None
        for name, piece in tensor_state.items():
            piece.load_state_dict(_load_tensors(Path(checkpoint), name))
        return Position(int(state["epoch"]), int(state.get("step", 0)), steps_per_epoch), state


def _save_tensors(tensors, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def _load_tensors(folder: Path, name: str):
    from safetensors.torch import load_file

    path = folder / f"{name}.safetensors"
    if not path.is_file():
        option = _SAVED_WITH.get(name, f"--{name.replace('_', '-')}")
        raise GanError(f"checkpoint {folder} has no {path.name} (saved without {option}?): "
                       f"resume it with {option} 0 or start a new run")
    return load_file(str(path))


_SAVED_WITH = {"ema": "--ema-kimg"}  # the option that adds a tensor piece to checkpoints


__all__ = ["Checkpointer", "checkpoint_tag", "complete_checkpoints", "is_checkpoint", "newest_checkpoint",
           "read_state", "resolve_resume"]
