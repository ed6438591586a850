"""The 5,000 real MNIST training digits shipped in the package (`mnist-sample`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gan_dist.datasets.base import ImageSet

SAMPLE_FILE = Path(__file__).resolve().parents[1] / "data" / "mnist_sample.npz"


def load_sample(path: Path = SAMPLE_FILE) -> ImageSet:
    """The 5,000 real MNIST training digits shipped in the package (see data/ATTRIBUTION.md)."""
    with np.load(path) as archive:
        return ImageSet(archive["images"], archive["labels"], "mnist-sample", tuple(str(d) for d in range(10)))
