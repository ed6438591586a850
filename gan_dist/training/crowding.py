"""A crowded machine: one warning at the start when the CPU is already busy.

Two CPU runs side by side on a 2-core machine each ran 8-10 times slower than alone: each
starts as many threads as there are cores, and the threads fight. The fix is to give each run
its share (`--threads N`). The sign is the 1-minute load average above the cores this run may
use. The load average counts the whole machine, so when the run may use only some of its
cores (a Slurm or cgroup CPU set), the whole machine's cores are the measure: only a machine
that is busy everywhere says anything about ours.
"""

from __future__ import annotations

import os

from gan_dist.environment import RunEnvironment


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def crowding_warning(load: float | None, usable: int, machine: int) -> str | None:
    """The warning when `load` exceeds the cores that count (see the module's docstring)."""
    cores = usable if usable >= machine else machine
    if load is None or load <= cores:
        return None
    share = max(1, usable // 2)
    return (f"this machine is already busy (1-minute load average {load:.1f} on {cores} core"
            f"{'s' if cores != 1 else ''}): runs side by side fight for the cores and each runs many times "
            f"slower; give each run its share with --threads N (e.g. --threads {share} for two runs on "
            f"{usable} usable cores)")


def warn_if_crowded(env: RunEnvironment) -> None:
    """Say it once per machine (its first process), at the start of a CPU run."""
    from gan_dist.errors import warn

    if (env.local_rank or 0) != 0:
        return
    message = crowding_warning(load_average(), env.usable_cpus(), os.cpu_count() or 1)
    if message:
        warn(message)
