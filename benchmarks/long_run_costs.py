"""What long-run safety costs: step-level stop agreement, per-step logging, checkpoint writes.

Runs real 2-process CPU training (torchrun, gloo) of the coursework MLP on the shipped
sample for a few epochs per variant and reads images/s from each run's metrics.jsonl (the
first epoch excluded):

* sync every step (the CPU default) vs a sync only at each epoch's end, i.e. no step-level
  agreement: the cost of the per-step all-reduce + host sync;
* with TensorBoard every 50 steps and every step (`--log-with tensorboard --log-every N`);
* checkpoint write times: one process timing `Checkpointer.save` directly (models, optimisers,
  RNG, the state file, the atomic publish), and 2 processes checkpointing at every step
  (`--checkpoint-minutes 0.0001`) against none, per checkpoint.

    python benchmarks/long_run_costs.py [--epochs 4] [--rounds 2]    # about 5 minutes here

Prints a table and writes benchmarks/results/long_run_costs-<host>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from gan_dist.rundir import read_jsonl  # noqa: E402

PATCHED = Path(__file__).resolve().parent / "_sync_patched_gan.py"
BASE = ["train", "--cpu", "--dataset", "mnist-sample", "--batch-size", "100", "--checkpoint-minutes", "0"]


def run(out: Path, name: str, sync_every: int, extra: list[str], epochs: int, processes: int = 2) -> float:
    """Median images/s over epochs 2.. of one torchrun-launched run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           str(PATCHED), str(sync_every), *BASE, "--epochs", str(epochs), "--out", str(out), "--name", name, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes)),
           "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    rows, _ = read_jsonl(out / name / "metrics.jsonl")
    return statistics.median(r["images_per_second"] for r in rows[1:])


def checkpoint_seconds(repeats: int = 5) -> float:
    """Median seconds of one checkpoint save of the coursework MLP (one process)."""
    import torch
    from accelerate import Accelerator

    from gan_dist.config import TrainConfig
    from gan_dist.nets import NetSpec
    from gan_dist.rundir import RunDir
    from gan_dist.training.checkpoint import Checkpointer
    from gan_dist.training.models import build_training_models
    from gan_dist.training.position import Position

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(cpu=True, name="c", out=tmp)
        acc = Accelerator(cpu=True)
        models = build_training_models(cfg, NetSpec("mlp", 100, (1, 28, 28), d_dropout=0.3), acc)
        x = torch.randn(10, 100)
        models.G(x).sum().backward()  # give Adam state to save, as in training
        models.opt_g.step()
        run_dir = RunDir(Path(tmp) / "c", is_main=True)
        run_dir.create()
        checkpointer = Checkpointer(run_dir, acc, keep=2, every_minutes=0)
        times = []
        for i in range(repeats):
            tic = time.perf_counter()
            checkpointer.save(Position(1, i + 1, 100), {"history": [], "config": cfg.to_dict()})
            times.append(time.perf_counter() - tic)
        size = sum(p.stat().st_size for p in run_dir.checkpoints.rglob("*") if p.is_file()) / 2
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each row keeps its best")
    args = parser.parse_args()
    variants = {
        "sync every step (default), no tracker": (1, []),
        "sync at epoch end only, no tracker": (10**9, []),
        "sync every step, tensorboard every 50 steps": (1, ["--log-with", "tensorboard", "--log-every", "50"]),
        "sync every step, tensorboard every step": (1, ["--log-with", "tensorboard", "--log-every", "1"]),
        "sync every step, checkpoint every step": (1, ["--checkpoint-minutes", "0.0001"]),
    }
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (label, (every, extra)) in enumerate(variants.items()):
                ips = run(Path(tmp), f"r{r}v{i}", every, extra, args.epochs)
                best[label] = max(best.get(label, 0.0), ips)
                print(f"round {r + 1}: {label:48s} {ips:8,.0f} images/s", flush=True)
    seconds, size = checkpoint_seconds()
    base = best["sync every step (default), no tracker"]
    steps_per_second = base / 100
    per_checkpoint = (1 / best["sync every step, checkpoint every step"] - 1 / base) * 100
    print(f"\n{'variant':58s} {'images/s':>9s} {'vs default':>10s}")
    for label, ips in best.items():
        print(f"{label:58s} {ips:9,.0f} {ips / base:9.2f}x")
    print(f"\none checkpoint save, 1 process: {seconds * 1000:.0f} ms ({size / 1e6:.1f} MB on disk)")
    print(f"2 processes, checkpoint at every step: +{per_checkpoint * 1000:.0f} ms per checkpoint "
          f"({steps_per_second:.0f} steps/s without)")
    results = {"host": socket.gethostname(), "epochs": args.epochs, "rounds": args.rounds, "processes": 2,
               "batch_size": 100, "images_per_second": best, "checkpoint_seconds_1_process": seconds,
               "checkpoint_bytes": size, "checkpoint_seconds_2_processes": per_checkpoint}
    path = REPO / "benchmarks" / "results" / f"long_run_costs-{socket.gethostname()}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
