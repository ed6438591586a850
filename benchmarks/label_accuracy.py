"""Per-class accuracy of a conditional run, measured exactly as the issue states it: for every
class k, `gan sample RUN --label k -n N -o k.npz` (the real CLI), then the share of those images
the project's digit classifier (gan_dist/metrics/classifier.py) assigns to class k.

    python benchmarks/label_accuracy.py runs/c32 [-n 500] [--raw] [--epoch E]

(`gan eval` reports the same thing as `label_accuracy` for images drawn every class equally often.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("-n", type=int, default=500, help="images per class")
    p.add_argument("--raw", action="store_true", help="the trained G, not its EMA")
    p.add_argument("--epoch", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from gan_dist.metrics.quality import features

    config = json.loads((args.run / "config.json").read_text())
    classes = int(config.get("num_classes") or 0)
    if not classes:
        print(f"error: {args.run} is not a conditional run", file=sys.stderr)
        return 2
    accuracy = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(classes):
            out = Path(tmp) / f"{k}.npz"
            cmd = [sys.executable, "-m", "gan_dist", "sample", str(args.run), "--label", str(k), "-n", str(args.n),
                   "--seed", str(args.seed), "-o", str(out)]
            cmd += ["--raw"] if args.raw else []
            cmd += ["--epoch", str(args.epoch)] if args.epoch is not None else []
            subprocess.run(cmd, check=True, capture_output=True)
            with np.load(out) as f:
                _, probs = features(f["images"])
            accuracy[k] = float((probs.argmax(1) == k).mean())
            print(f"label {k}: {accuracy[k]:.3f} of {args.n} classified as {k}")
    print(json.dumps({"run": str(args.run), "generator": "raw" if args.raw else config.get("sample_source"),
                      "images_per_class": args.n, "accuracy": accuracy, "min": min(accuracy.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
