"""`gan sample`: images from a run's trained generator, as a PNG grid or raw uint8 .npz."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError
from gan_dist.rundir import RunDir, epoch_files

FORMATS = (".png", ".npz")


def generator_path(run_dir: Path, epoch: int | None, *, raw: bool = False) -> Path:
    """The final generator, or the one kept for sample epoch `epoch`: the EMA when the run kept
    one, or with `raw` the trained generator (the same file for runs without an EMA)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanError(f"run directory {run_dir} not found: give the path of a run (see `gan runs`)")
    run = RunDir(run_dir, is_main=False)
    path = run.generator_file(epoch, raw=run.raw_files(raw))
    if epoch is None:
        if not path.is_file():
            raise GanError(f"{run_dir} has no {path.name} yet (unfinished run): "
                           "pass --epoch E for a kept sample epoch")
        return path
    if not path.is_file():
        kept = list(epoch_files(path.parent, ".safetensors"))
        hint = f"kept epochs are {', '.join(map(str, kept))}" if kept else "this run kept no per-epoch generators"
        raise GanError(f"no generator for epoch {epoch} in {run_dir}: {hint}")
    return path


def sample_run(run_dir: Path, *, n: int, out: Path, epoch: int | None = None, seed: int = 0,
               force: bool = False, nrow: int | None = None, label: int | None = None,
               per_class: bool = False, raw: bool = False) -> Path:
    """Write `n` samples to `out` (.png grid or .npz uint8 (N, C, H, W) under key "images";
    conditional runs also store "labels"). Conditional runs: `label` draws that class only;
    `per_class` draws n images of every class, one grid row (of n) per class; otherwise every
    class equally often (image i is class i mod classes)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise GanError(f"cannot write {out.name!r}: the output must end in .png (grid) or .npz (raw uint8 images)")
    if n < 1:
        raise GanError(f"-n {n} is not a number of images: give 1 or more")
    if out.exists() and not force:
        raise GanError(f"{out} already exists: choose another name or pass --force to overwrite it")
    if not out.parent.is_dir():
        raise GanError(f"folder {out.parent} does not exist: create it first")
    if label is not None and per_class:
        raise GanError("--label and --per-class exclude each other: give one")
    path = generator_path(run_dir, epoch, raw=raw)

    from gan_dist.nets.generator_io import read_generator_info

    classes = read_generator_info(path)["spec"].num_classes
    if (label is not None or per_class) and not classes:
        which = f"--label {label}" if label is not None else "--per-class"
        raise GanError(f"{which} needs a class-conditional run (trained with --conditional); {run_dir} is not one")
    if label is not None and not 0 <= label < classes:
        raise GanError(f"--label {label} is not a class of this run: use 0..{classes - 1}")

    import torch

    from gan_dist.metrics.quality import generate
    from gan_dist.nets.generator_io import load_generator

    generator, info = load_generator(path)
    labels = None
    if label is not None:
        labels = torch.full((n,), label, dtype=torch.long)
    elif per_class:
        labels = torch.arange(classes).repeat_interleave(n)
        nrow, n = n, n * classes
    elif classes:
        labels = torch.arange(n) % classes
    images = generate(generator, n, seed, latent_dim=info["latent_dim"], labels=labels)  # uint8 (N, C, H, W)
    if suffix == ".npz":
        extra = {"labels": labels.numpy()} if labels is not None else {}
        write_atomic(out, lambda tmp: _save_npz(tmp, images.numpy(), **extra))
    else:
        from torchvision.utils import make_grid, save_image

        grid = make_grid(images.float().div(255.0), nrow=nrow or math.ceil(math.sqrt(n)), padding=2, pad_value=1.0)
        write_atomic(out, lambda tmp: save_image(grid, str(tmp), format="png"))
    return out


def _save_npz(path: Path, images: np.ndarray, **extra: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez_compressed(fh, images=images, **extra)
