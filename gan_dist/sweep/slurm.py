"""A sweep's points as ONE Slurm job array of slurm/train.sh, and the queue's view of it.

Array task N trains point N (the task ids are the point indices, also when only some points
are submitted again). slurm/train.sh sees GAN_SWEEP (the sweep folder) and SLURM_ARRAY_TASK_ID
and asks gan_dist.sweep.task for that point's `gan train` options; everything else (the
placement of its nodes, preemption -> checkpoint -> requeue -> resume) is what a single job
does. Task logs go to OUT/NAME/logs/ARRAYJOB_TASK.out, appended across requeues.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from gan_dist.errors import GanError
from gan_dist.sweep.spec import LOGS, Sweep

SCRIPT = Path("slurm") / "train.sh"


def find_script(given: Path | None) -> Path:
    """--script, else slurm/train.sh of the checkout gan_dist runs from, else ./slurm/train.sh."""
    candidates = [Path(given)] if given else [Path(__file__).resolve().parents[2] / SCRIPT, SCRIPT]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise GanError(f"{candidates[0]} not found: pass --script PATH to slurm/train.sh of a gan_dist checkout")


def check_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise GanError("sbatch is not on PATH: run `gan sweep --slurm` where Slurm's commands are "
                       "(e.g. a login node), or run the points here with --local")


def sbatch_options(values: list[str]) -> list[str]:
    """--sbatch values, each split as a shell would ("--time=1:00:00 -c 4" is two options)."""
    try:
        return [word for value in values for word in shlex.split(value)]
    except ValueError as err:
        raise GanError(f"--sbatch {values!r}: {err}: quote each sbatch option once") from None


def array_spec(indices: list[int], max_parallel: int | None) -> str:
    """[0, 1, 2, 5] and 2 -> '0-2,5%2' (at most 2 tasks running at once)."""
    parts, start = [], None
    ordered = sorted(indices)
    for i, index in enumerate(ordered):
        start = index if start is None else start
        if i + 1 == len(ordered) or ordered[i + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts) + (f"%{max_parallel}" if max_parallel else "")


def submit_array(sweep: Sweep, indices: list[int], *, max_parallel: int | None, nodes: int,
                 sbatch: list[str], script: Path) -> tuple[int, list[str]]:
    """Submit; returns (array job id, the sbatch command). Options in `sbatch` win over ours."""
    spec = array_spec(indices, max_parallel)
    command = ["sbatch", "--parsable", f"--array={spec}", f"--job-name=gan-sweep-{sweep.name}",
               f"--output={sweep.folder.resolve() / LOGS}/%A_%a.out", f"--nodes={nodes}", *sbatch, str(script)]
    env = {**os.environ, "GAN_SWEEP": str(sweep.folder.resolve()),
           "GAN_PYTHON": os.environ.get("GAN_PYTHON", sys.executable)}  # the tasks run this Python
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GanError(f"sbatch could not be run ({err}): check that Slurm answers (sinfo)") from None
    if proc.returncode != 0:
        why = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise GanError(f"sbatch refused the job array ({why}); nothing was submitted")
    try:
        return int(proc.stdout.strip().split(";")[0]), command
    except ValueError:
        raise GanError(f"sbatch answered {proc.stdout.strip()!r}, not a job id") from None


def queue_states() -> dict[tuple[int, int], str] | None:
    """{(array job id, task id): state} of this user's array tasks in the queue; None when
    squeue is not there or does not answer (then only the run directories tell)."""
    if shutil.which("squeue") is None:
        return None
    try:
        proc = subprocess.run(["squeue", "--me", "--noheader", "--array", "--format=%F|%K|%T"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    states = {}
    for line in proc.stdout.splitlines():
        job, task, state = (line.strip().split("|") + ["", ""])[:3]
        if job.isdigit() and task.isdigit():
            states[(int(job), int(task))] = state
    return states
