"""Train the digit classifier shipped as gan_dist/data/digit_classifier.safetensors.

    python scripts/train_classifier.py --test-dir ../shared/data/mnist [--train-dir DIR]

Trains on the full MNIST training set when --train-dir holds it, else on the shipped
5,000-digit sample; measures accuracy on the MNIST test split and records it, with how the
network was trained, in the JSON sidecar. Deterministic for a given --seed (CPU, one thread).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from gan_dist.datasets import load_mnist, load_sample
from gan_dist.errors import GanError
from gan_dist.metrics.classifier import CLASSIFIER_FILE, accuracy, save_classifier, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-dir", type=Path, default=None, help="MNIST training IDX files (optional)")
    parser.add_argument("--test-dir", type=Path, required=True, help="MNIST test IDX files")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CLASSIFIER_FILE)
    args = parser.parse_args()

    torch.set_num_threads(1)  # one summation order: the same bytes on every machine
    train = load_sample()
    if args.train_dir is not None:
        try:
            train = load_mnist(args.train_dir, train=True, download=False)
        except GanError as err:
            print(f"full MNIST not found ({err}); training on the shipped sample")
    test = load_mnist(args.test_dir, train=False, download=False)
    start = time.time()
    model = train_classifier(train.images, train.labels, epochs=args.epochs, seed=args.seed, log=print)
    seconds = time.time() - start
    test_acc = accuracy(model, test.images, test.labels)
    train_acc = accuracy(model, train.images, train.labels)
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} ({seconds:.0f} s)")
    info = {
        "architecture": "conv5x5(16)-pool-conv5x5(32)-pool-linear(512->10), ReLU; features = the 512 pooled conv outputs",
        "train_data": train.name, "train_images": len(train.images),
        "test_data": "MNIST t10k", "test_images": len(test.images),
        "test_accuracy": round(test_acc, 4), "train_accuracy": round(train_acc, 4),
        "epochs": args.epochs, "seed": args.seed, "augmentation": "random shifts of up to 2 px",
        "optimizer": "Adam lr 2e-3, cosine schedule, batch 100",
        "seconds": round(seconds, 1), "torch": torch.__version__, "python": platform.python_version(),
    }
    save_classifier(model, args.out, info)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
