"""A sweep's points on this machine: at most --max-parallel `gan train` processes at once.

The usable cores (this process's affinity mask: a Slurm allocation or cgroup cpuset shows up
there) are cut into equal, disjoint shares, one per point running at once, and each point is
pinned to its share with OMP_NUM_THREADS = share // its processes: never more threads than
cores. Never more points at once than cores. Each point's output goes to
OUT/NAME/logs/POINT.log; one line here when it ends.

Ctrl-C reaches the points too (one process group): each checkpoints and stops, and running
`gan sweep NAME` again continues them. A SIGTERM to the sweep is passed on to the points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from gan_dist.errors import GanError
from gan_dist.sweep.spec import LOGS, Point, Sweep, train_command

POLL_SECONDS = 0.2


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def plan_shares(max_parallel: int, points: int, cores: list[int]) -> list[list[int]]:
    """Disjoint, equal shares of `cores`: min(max_parallel, cores, points) of them."""
    parallel = max(1, min(max_parallel, len(cores), points))
    per = len(cores) // parallel
    return [cores[i * per:(i + 1) * per] for i in range(parallel)]


@dataclass
class Running:
    point: Point
    process: subprocess.Popen
    started: float


def _start(sweep: Sweep, point: Point, cores: list[int]) -> Running:
    processes = int(point.config.get("processes") or 1) if point.config.get("cpu") else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, len(cores) // processes))}
    with open(sweep.folder / LOGS / f"{point.name}.log", "ab") as log:
        process = subprocess.Popen(train_command(sweep, point), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env,
                                   preexec_fn=lambda: os.sched_setaffinity(0, cores))
    return Running(point, process, time.monotonic())


def run_local(sweep: Sweep, points: list[Point], *, max_parallel: int,
              ended: Callable[[Point, int, float], None]) -> dict[int, int]:
    """Train `points`, `max_parallel` at a time; `ended(point, exit status, seconds)` after each.
    Returns {point index: exit status}."""
    shares = plan_shares(max_parallel, len(points), usable_cores())
    waiting, running, codes = list(points), {}, {}
    forward = _forward_sigterm(running, waiting)
    try:
        while waiting or running:
            for slot, cores in enumerate(shares):
                if slot not in running and waiting:
                    running[slot] = _start(sweep, waiting.pop(0), cores)
            time.sleep(POLL_SECONDS)
            for slot, job in list(running.items()):
                code = job.process.poll()
                if code is not None:
                    del running[slot]
                    codes[job.point.index] = code
                    ended(job.point, code, time.monotonic() - job.started)
    except KeyboardInterrupt:
        for job in running.values():  # they heard Ctrl-C too: let them checkpoint
            job.process.wait()
        raise Interrupted(f"interrupted: running points stopped with a checkpoint; continue with "
                          f"`gan sweep {sweep.name} --local`") from None
    finally:
        signal.signal(signal.SIGTERM, forward)
    return codes


class Interrupted(GanError):
    exit_code = 130


def _forward_sigterm(running: dict[int, Running], waiting: list[Point]):
    """On SIGTERM start no more points and pass it on to the running ones (they checkpoint and
    stop); returns the old handler."""
    def handler(signum, frame):
        waiting.clear()
        for job in running.values():
            job.process.send_signal(signal.SIGTERM)

    return signal.signal(signal.SIGTERM, handler)
