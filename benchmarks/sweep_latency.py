"""Submit -> first epoch on disk: a single job (`sbatch slurm/train.sh`) beside a task of a
job array (`gan sweep NAME --slurm`, one point), on a running Slurm cluster, one job at a
time, alternating, so both see the same machine.

    scripts/slurm_cluster.sh start --nodes 2 --cpus-per-node 2    # as root
    eval "$(scripts/slurm_cluster.sh env)"
    python benchmarks/sweep_latency.py --repeats 3 [--nodes 2] [--out /tmp/sweep-latency]

Each job trains mnist-sample, batch 500, 1 epoch, one CPU process per node. Times are taken
from just before the submit command: `submit` is the command itself (sbatch alone, or gan
sweep's start, validation and sbatch), `first epoch` is when metrics.jsonl has its first row.
Prints one line per job and a JSON summary (medians) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--cpu", "--dataset", "mnist-sample", "--batch-size", "500", "--epochs", "1"]
SBATCH = ["--cpus-per-task=1", "--time=00:10:00"]


def first_row_after(metrics: Path, t0: float, job: str, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while not (metrics.is_file() and metrics.read_text().strip()):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job}: no epoch after {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def wait_gone(job: str) -> None:
    """Until the job has left the queue (the next one must not share the machine with it)."""
    while subprocess.run(["squeue", "--noheader", f"--jobs={job}", "--format=%i"], capture_output=True,
                         text=True).stdout.strip():
        time.sleep(0.5)


def single_job(out: Path, nodes: int, i: int) -> dict:
    name = f"single-{i}"
    env = {**os.environ, "GAN_OUT": str(out), "GAN_NAME": name, "GAN_PYTHON": sys.executable}
    t0 = time.monotonic()
    proc = subprocess.run(["sbatch", "--parsable", f"--nodes={nodes}", *SBATCH, f"--output={out}/{name}.out",
                           str(REPO / "slurm" / "train.sh"), *TRAIN], env=env, capture_output=True, text=True,
                          check=True)
    submit = time.monotonic() - t0
    job = proc.stdout.strip().split(";")[0]
    first = first_row_after(out / name / "metrics.jsonl", t0, job)
    wait_gone(job)
    return {"kind": "single job", "job": job, "submit_seconds": submit, "first_epoch_seconds": first}


def array_task(out: Path, nodes: int, i: int) -> dict:
    name = f"sweep-{i}"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "gan_dist", "sweep", name, "--grid", "seed=0", *TRAIN,
                    "--nodes", str(nodes), "--slurm", "--out", str(out), *(f"--sbatch={o}" for o in SBATCH)],
                   capture_output=True, text=True, check=True)
    submit = time.monotonic() - t0
    job = json.loads((out / name / "submissions.jsonl").read_text().splitlines()[-1])["job_id"]
    first = first_row_after(out / name / "seed=0" / "metrics.jsonl", t0, f"{job}_0")
    wait_gone(str(job))
    return {"kind": "array task", "job": f"{job}_0", "submit_seconds": submit, "first_epoch_seconds": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sweep-latency"))
    args = parser.parse_args()
    if "SLURM_CONF" not in os.environ:
        raise SystemExit("SLURM_CONF is not set: eval \"$(scripts/slurm_cluster.sh env)\" first")
    out = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    rows = []
    for i in range(args.repeats):
        for measure in (single_job, array_task):
            row = measure(out, args.nodes, i)
            rows.append(row)
            print(f"{row['kind']:<11} {row['job']:>8}: submit {row['submit_seconds']:5.2f} s, "
                  f"first epoch {row['first_epoch_seconds']:6.1f} s", flush=True)
    summary = {kind: {key: statistics.median(r[key] for r in rows if r["kind"] == kind)
                      for key in ("submit_seconds", "first_epoch_seconds")}
               for kind in ("single job", "array task")}
    print(json.dumps({"nodes": args.nodes, "repeats": args.repeats, "load_average": os.getloadavg(),
                      "median": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
