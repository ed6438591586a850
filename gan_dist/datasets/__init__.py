"""Datasets as uint8 tensors, by name.

Training keeps the whole dataset on its device as uint8 (N, C, H, W) and normalises each
batch in one op (airbench-style), so there is no per-image Python work and no DataLoader.
"""

from __future__ import annotations

from pathlib import Path

from gan_dist.datasets.base import ImageSet, to_unit_range  # noqa: F401  (re-exported)
from gan_dist.datasets.idx import load_mnist, read_idx  # noqa: F401
from gan_dist.datasets.sample import load_sample  # noqa: F401
from gan_dist.errors import GanError


def load_dataset(name: str, data_dir: str | Path) -> ImageSet:
    if name == "mnist-sample":
        return load_sample()
    if name == "mnist":
        return load_mnist(Path(data_dir), train=True)
    raise GanError(f"unknown dataset {name!r}: use mnist or mnist-sample")
