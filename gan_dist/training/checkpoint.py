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
"history", "world_size", "config", "ema"), so runs written before still resume; it adds
"files", the name and size of every file of the checkpoint, which resuming checks.

A save is all or nothing on every process: each stage ends with one small all-reduce that says
whether it failed anywhere (in place of a barrier), so a full disk on one process ends the
save on all of them at once, the half-written folder is removed, and each raises the same
DiskFull. Resuming picks the newest checkpoint that can be read (`checkpoint_problem`): a
truncated or missing piece makes `--resume auto` fall back to the one before, with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gan_dist.atomic import write_atomic
from gan_dist.config import RESUMABLE, TUNABLE, TrainConfig, flag
from gan_dist.diskspace import DiskFull, disk_full_errno, folder_bytes
from gan_dist.errors import GanError, warn
from gan_dist.rundir import RunDir
from gan_dist.runlock import LOCK_FILE
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


def checkpoint_bytes(checkpoint: Path | None) -> int:
    """What a checkpoint takes on disk (0 for None)."""
    return folder_bytes(checkpoint) if checkpoint is not None else 0


def read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
        int(state["epoch"]), list(state["history"])
        return state
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GanError(f"checkpoint {checkpoint} is damaged ({err}): resume from an older one "
                       "(pass its folder to --resume) or start a new run") from None


# ---- can it be read? --------------------------------------------------------------------------
def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why this complete-looking checkpoint cannot be loaded (a piece missing, truncated or
    unreadable), or None. Reads headers and sizes only: nothing is unpickled or loaded."""
    checkpoint = Path(checkpoint)
    try:
        state = read_state(checkpoint)
    except GanError:
        return f"{STATE_FILE} is unreadable"
    files = state.get("files")
    if isinstance(files, dict):  # written with its list of files: all there, each whole
        for name, size in sorted(files.items()):
            path = checkpoint / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} bytes of {size}"
    else:  # older checkpoints: the pieces every one has
        needed = ["model.safetensors"] + ([f"{_ema_name(state)}.safetensors"] if state.get("ema") else [])
        for name in needed:
            if not (checkpoint / name).is_file():
                return f"{name} is missing"
    for path in sorted(checkpoint.iterdir()):
        problem = _file_problem(path)
        if problem:
            return f"{path.name} {problem}"
    return None


def _ema_name(state: Mapping) -> str:
    ema = state.get("ema")
    return Path(ema.get("file", "ema.safetensors")).stem if isinstance(ema, Mapping) else "ema"


def _file_problem(path: Path) -> str | None:
    """A safetensors file whose header and length disagree, or a torch.save zip that does not
    open (its directory is at the end: a cut file loses it), else None."""
    try:
        if path.suffix == ".safetensors":
            size = path.stat().st_size
            with open(path, "rb") as fh:
                head = fh.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else -1
                if not 0 < length <= size - 8:
                    return "is truncated (no whole header)"
                header = json.loads(fh.read(length))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + length + end != size:
                return f"is truncated ({size} of {8 + length + end} bytes)"
        elif path.suffix in (".bin", ".pkl", ".pt"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"is damaged ({bad} fails its checksum)"
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as err:
        return f"is unreadable ({type(err).__name__})"
    return None


def readable_checkpoint(folder: Path, *, show_warning: bool = True) -> Path | None:
    """The newest complete checkpoint in `folder` that can be read, warning (once, when
    `show_warning`) when newer ones were passed over. None when there is none at all; one line
    when there are some and none can be read."""
    found = [path for _, path in reversed(complete_checkpoints(folder))]
    passed: list[tuple[Path, str]] = []
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            if passed and show_warning:
                newest, why = passed[0]
                warn(f"the newest checkpoint {newest} cannot be read ({why}): resuming from {path}, "
                     f"the newest readable one" + (f" ({len(passed)} newer ones passed over)" if len(passed) > 1 else ""))
            return path
        passed.append((path, problem))
    if passed:
        newest, why = passed[0]
        which = (f"the only checkpoint, {newest}, cannot be read ({why})" if len(passed) == 1 else
                 f"none of the {len(passed)} checkpoints in {folder} can be read (newest: {newest.name}, {why})")
        raise GanError(f"{which}: move {folder} aside to start this run again, or start a new run with "
                       "another --name")
    return None


# ---- what --resume means --------------------------------------------------------------------
def resolve_resume(cfg: TrainConfig, explicit: set[str], *, first_process: bool = True) -> TrainConfig:
    """The config to train: --resume resolved to a concrete checkpoint (or a fresh start), the
    resumed run's settings merged with the options a resume may change. A fresh run refuses a
    run directory that already holds files (`first_process`: only the process that creates it
    checks; others may already see its files)."""
    run_dir = target_run_dir(cfg, explicit)
    if cfg.resume is None:
        if first_process and run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            raise GanError(f"run directory {run_dir} already exists: choose another --name, "
                           "or continue it with --resume auto")
        return cfg
    checkpoints = RunDir(run_dir, is_main=False).checkpoints
    if cfg.resume == "auto":
        checkpoint = readable_checkpoint(checkpoints, show_warning=first_process)
        if checkpoint is None:
            # Nothing to resume yet (Slurm's first life, or one killed before its first
            # checkpoint): start from the beginning; training rewrites metrics.jsonl.
            return cfg.replace(resume=None)
    elif is_checkpoint(Path(cfg.resume)):  # this one and no other: no silent fallback
        checkpoint = Path(cfg.resume)
        problem = checkpoint_problem(checkpoint)
        if problem is not None:
            older = [p for _, p in complete_checkpoints(checkpoints) if p.name < checkpoint.name]
            hint = f"pass an older one (e.g. {older[-1]})" if older else "start a new run"
            raise GanError(f"checkpoint {checkpoint} cannot be read ({problem}): {hint}, or --resume auto "
                           "for the newest readable one")
    else:  # a run directory: its newest readable checkpoint, as --resume auto
        checkpoint = readable_checkpoint(checkpoints, show_warning=first_process)
        if checkpoint is None:
            raise GanError(f"{run_dir} holds no complete checkpoint: pass a run directory that has "
                           "checkpoints/epoch_NNNN, or start a new run")
    return _resumed_config(cfg, explicit, checkpoint, run_dir)


def target_run_dir(cfg: TrainConfig, explicit: set[str]) -> Path:
    """The run directory `cfg` writes to, before any checkpoint is chosen (what the run lock
    covers): --out/--name, the newest run under --out for `--resume auto` without --name, or
    the run of the checkpoint or folder given to --resume."""
    if cfg.resume is None:
        return cfg.run_dir
    if cfg.resume == "auto":
        return cfg.run_dir if "name" in explicit else _newest_run(Path(cfg.out))
    path = Path(cfg.resume)
    if is_checkpoint(path):
        return path.parent.parent
    if path.is_dir():
        return path
    raise GanError(f"--resume {path}: no such run directory or checkpoint")


def _newest_run(out: Path) -> Path:
    runs = {p.parent.parent for p in out.glob(f"*/{RunDir.CHECKPOINTS}/epoch_*") if is_checkpoint(p)}
    if not runs:
        raise GanError(f"--resume auto found no run with a checkpoint under {out}: pass --name or a path")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _resumed_config(cfg: TrainConfig, explicit: set[str], checkpoint: Path, run_dir: Path) -> TrainConfig:
    state = read_state(checkpoint)
    stored = TrainConfig.from_dict(state["config"])
    if cfg.precision == "auto":  # chosen once, at the run's start: a resume keeps that choice
        explicit = explicit - {"precision"}
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

        self.warned_low_space = False
        self.warn_if_low_on_space(self.newest())

    def remove_leftovers(self) -> None:
        remove_leftovers(self.run)

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
        what = f"writing checkpoint {self.folder / position.tag}"
        with self._on_every_process(what, tmp):
            if self.run.is_main:
                shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed save
                tmp.mkdir(parents=True)
        with self._on_every_process(what, tmp):
            self.accelerator.save_state(str(tmp), safe_serialization=True)
            if self.run.is_main:
                for name, piece in tensor_state.items():
                    _save_tensors(piece.state_dict(), tmp / f"{name}.safetensors")
        with self._on_every_process(what, tmp):
            final = self._publish(tmp, position, {"epoch": position.epochs_done, "step": position.step, **state})
        self.last_saved = time.monotonic()
        self.warn_if_low_on_space(final)
        return final

    @contextlib.contextmanager
    def _on_every_process(self, what: str, tmp: Path):
        """Collective, in place of a barrier: the body runs on every process, then one all-reduce
        says whether it failed on any. If so, the main process removes the half-written `tmp`
        and every process raises: DiskFull (the same line everywhere) when space ran out
        anywhere, else its own error or PeerSaveFailed."""
        import torch

        mine: Exception | None = None
        full = 0
        try:
            yield
        except Exception as err:  # noqa: BLE001 - every process must reach the all-reduce
            mine, full = err, disk_full_errno(err, tmp) or 0
        flags = torch.tensor([float(full == errno.ENOSPC), float(full == errno.EDQUOT),
                              float(mine is not None and not full)], device=self.accelerator.device)
        no_space, no_quota, failed = (self.accelerator.reduce(flags, reduction="sum") > 0).tolist()
        if not (no_space or no_quota or failed):
            return
        if self.run.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        if no_space or no_quota:
            raise DiskFull(what, self.folder, errno.ENOSPC if no_space else errno.EDQUOT) from mine
        if mine is not None:
            raise mine
        raise PeerSaveFailed(f"{what} failed on another process (its own error line names the cause)")

    def warn_if_low_on_space(self, newest: Path | None) -> None:
        """Once per run life (main process): free space below what two more checkpoints need."""
        if not self.run.is_main or self.warned_low_space or newest is None:
            return
        from gan_dist.training.space import low_space_warning

        message = low_space_warning(self.folder, checkpoint_bytes(newest))
        if message:
            warn(message)
            self.warned_low_space = True

    def _publish(self, tmp: Path, position: Position, state: dict[str, Any]) -> Path:
        """Add the state file, rename the temp folder into place, then drop all but the newest
        `keep` (in this order: a kill in between leaves one extra, never one too few)."""
        final = self.folder / position.tag
        if not self.run.is_main:
            return final
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}  # what resuming checks
        write_atomic(tmp / STATE_FILE, json.dumps({**state, "files": files}))
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


class PeerSaveFailed(GanError):
    """This process saved its part; another one failed (and says why on its own error line)."""


def remove_leftovers(run: RunDir) -> None:
    """What a killed run left behind (main process): checkpoint folders half written, half
    deleted, or without their state file, and the temp files of the run's atomic writes.
    Complete checkpoints are never touched."""
    if not run.is_main:
        return
    run.remove_leftovers()
    if not run.checkpoints.is_dir():
        return
    for path in run.checkpoints.iterdir():
        if path.is_dir() and (path.name.startswith((TMP_PREFIX, TRASH_PREFIX))
                              or (parse_checkpoint_tag(path.name) and not is_checkpoint(path))):
            shutil.rmtree(path, ignore_errors=True)


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


__all__ = ["Checkpointer", "checkpoint_bytes", "checkpoint_problem", "checkpoint_tag", "complete_checkpoints",
           "is_checkpoint", "newest_checkpoint", "read_state", "readable_checkpoint", "remove_leftovers",
           "resolve_resume", "target_run_dir"]
