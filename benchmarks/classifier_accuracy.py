"""Held-out accuracy and training time of the per-dataset classifier (metrics/dataset_classifier.py),
trained exactly as `gan eval` trains it on first use, on the real labelled data this machine has:

    .venv/bin/python benchmarks/classifier_accuracy.py [--mnist-dir ../shared/data/mnist] [--cifar-dir D] [--fashion-dir D]

- mnist-sample: the shipped 5,000 MNIST training digits, at 28 px and prepared to 32 px RGB
- MNIST t10k: the real 10,000-digit test split (only when --mnist-dir has it; never committed)
- Fashion-MNIST / CIFAR-10: only when their files are given (none are on this machine)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def report(name: str, data) -> None:
    import numpy as np

    from gan_dist.metrics.dataset_classifier import train_small_classifier

    t = time.perf_counter()
    _, info = train_small_classifier(np.asarray(data.images), data.labels, len(data.classes))
    print(f"{name:<34} {len(data):>6} images {tuple(data.shape)!s:>13}: held-out accuracy "
          f"{info['held_out_accuracy']:.3f} on {info['held_out']} ({info['epochs']} epochs, "
          f"{time.perf_counter() - t:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist-dir", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--fashion-dir", type=Path)
    parser.add_argument("--cifar-dir", type=Path)
    args = parser.parse_args()
    import torch

    from gan_dist.datasets import load_dataset, load_mnist

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    report("mnist-sample 28 px", load_dataset("mnist-sample", "unused"))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report("mnist-sample prepared to 32 px RGB",
               load_dataset("mnist-sample", tmp, image_size=32, channels=3, show_progress=False))
    if (args.mnist_dir / "t10k-images-idx3-ubyte.gz").is_file():
        report("MNIST t10k (real test split)", load_mnist(args.mnist_dir, train=False, download=False))
    if args.fashion_dir:
        report("Fashion-MNIST", load_dataset("fashion-mnist", args.fashion_dir))
    if args.cifar_dir:
        report("CIFAR-10", load_dataset("cifar10", args.cifar_dir))


if __name__ == "__main__":
    main()
