"""Speed of the modern recipe (issue 26) beside the DCGAN, through real `gan train` runs.

    .venv/bin/python benchmarks/recipe_speed.py [--epochs 2] [--batch-size 64] [--only NAME,...]

Each row trains the shipped 5,000 digits for `--epochs` epochs (78 steps of 64 at the default
batch) and reports the images/s of the last epoch (the first pays for start-up), so rows differ
only in what each step computes: the network (dcgan vs resnet, 28 vs 32 px), the R1/R2 penalty
(every step vs lazily every 16 steps), DiffAugment, and 1 vs 2 CPU processes. Run it on a quiet
machine: other CPU work changes every figure. Results go to benchmarks/results/recipe_speed-HOST.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESNET = ["--arch", "resnet", "--width", "16", "--blocks", "2", "--loss", "rpgan"]
PENALTY = ["--r1", "0.1", "--r2", "0.1"]
ROWS: dict[str, list[str]] = {
    "dcgan 28 px": ["--arch", "dcgan"],
    "dcgan 32 px": ["--arch", "dcgan", "--image-size", "32"],
    "resnet 28 px": RESNET,
    "resnet 32 px": [*RESNET, "--image-size", "32"],
    "resnet 28 px + R1/R2 every step": [*RESNET, *PENALTY],
    "resnet 28 px + R1/R2 every 16 steps": [*RESNET, *PENALTY, "--reg-interval", "16"],
    "resnet 28 px + DiffAugment (translation,cutout,color; p 1)": [*RESNET, "--augment", "translation,cutout,color"],
    "dcgan 28 px + R1/R2 every step": ["--arch", "dcgan", "--loss", "rpgan", *PENALTY],
    "dcgan 28 px on 2 processes": ["--arch", "dcgan", "--processes", "2"],
    "resnet 28 px on 2 processes": [*RESNET, "--processes", "2"],
}


def last_epoch(out: Path, name: str, extra: list[str], epochs: int, batch: int) -> dict:
    cmd = [sys.executable, "-m", "gan_dist", "train", "--cpu", "--dataset", "mnist-sample", "--batch-size",
           str(batch), "--epochs", str(epochs), "--sample-epochs", str(epochs), "--out", str(out), "--name", name,
           *extra]
    tic = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    return {"images_per_second": rows[-1]["images_per_second"], "seconds_per_step": rows[-1]["seconds"] / rows[-1]["steps"],
            "wall_seconds": time.perf_counter() - tic, "command": " ".join(cmd[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--only", default="", help="comma list of row names (default: all)")
    args = parser.parse_args()
    wanted = [r for r in ROWS if not args.only or r in args.only.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, label in enumerate(wanted):
            results[label] = last_epoch(Path(tmp), f"r{i}", ROWS[label], args.epochs, args.batch_size)
            print(f"{label:60s} {results[label]['images_per_second']:8,.0f} images/s  "
                  f"{results[label]['seconds_per_step'] * 1000:7,.0f} ms/step", flush=True)
    load = os.getloadavg()
    path = REPO / "benchmarks" / "results" / f"recipe_speed-{socket.gethostname()}.json"
    path.write_text(json.dumps({"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
                                "date": time.strftime("%Y-%m-%d"), "epochs": args.epochs, "batch_size": args.batch_size,
                                "load_average_after": load, "rows": results}, indent=2) + "\n")
    print(f"wrote {path} (load average after: {load[0]:.2f})")


if __name__ == "__main__":
    main()
