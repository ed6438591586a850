"""Datasets as uint8 tensors, by name: one name -> loader table (DATASETS) that config
validation, `--help` and errors all read.

Training keeps the whole dataset on its device as uint8 (N, C, H, W) and normalises each
batch in one op (airbench-style), so there is no per-image Python work and no DataLoader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gan_dist.datasets.base import ImageSet, to_unit_range  # noqa: F401  (re-exported)
from gan_dist.datasets.idx import load_mnist, read_idx  # noqa: F401
from gan_dist.datasets.sample import load_sample  # noqa: F401
from gan_dist.errors import GanError

# name -> loader(data_dir) -> ImageSet
DATASETS: dict[str, Callable[[Path], ImageSet]] = {
    "mnist": lambda data_dir: load_mnist(Path(data_dir), train=True),
    "mnist-sample": lambda data_dir: load_sample(),
}


def is_known_dataset(name: str) -> bool:
    return name in DATASETS


def load_dataset(name: str, data_dir: str | Path) -> ImageSet:
    if not is_known_dataset(name):
        raise GanError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name](Path(data_dir))
