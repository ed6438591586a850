"""Every environment variable gan_dist reads, read once at the edge into one value.

`gan` (cli.py) and each training worker (training/worker.py) call `RunEnvironment.read()` and
pass the result down; nothing deeper reads `os.environ`. config.json records the variables that
were in force (`record()`), so a run's record says under which settings it ran. No secrets are
read; should one ever be, it must stay out of `record()`.

Two kinds of variables:
- gan_dist's own settings (GAN_*), documented in docs/environment.md;
- what launchers tell a process about its place: torch's elastic agent (RANK, LOCAL_RANK,
  WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE, TORCHELASTIC_ERROR_FILE) and Slurm
  (SLURM_CPUS_PER_TASK, SLURMD_NODENAME).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from gan_dist.errors import GanError

# Every variable read, with what it means (docs/environment.md explains each; tests/test_docs.py checks it names them all).
VARIABLES: dict[str, str] = {
    "GAN_STOP_FILE": "a file whose appearance asks the run to checkpoint and stop (slurm/train.sh sets it)",
    "GAN_RENDEZVOUS_TIMEOUT": "seconds nodes wait for each other at start (default 60)",
    "GAN_COLLECTIVE_TIMEOUT": "seconds a process waits for a silent peer in a collective (default 600)",
    "GAN_DIST_CACHE": "where real-data statistics and classifiers are cached (default ~/.cache/gan_dist)",
    "XDG_CACHE_HOME": "the cache's parent when GAN_DIST_CACHE is unset",
    "OMP_NUM_THREADS": "CPU threads per process; unset: the usable cores shared between the processes",
    "SLURM_CPUS_PER_TASK": "Slurm's CPU allocation, a cap on the usable cores",
    "SLURMD_NODENAME": "Slurm's name of this node, for error messages",
    "RANK": "this process's global rank (launchers)",
    "LOCAL_RANK": "this process's rank on its machine (launchers)",
    "WORLD_SIZE": "processes in the run (launchers)",
    "LOCAL_WORLD_SIZE": "processes on this machine (launchers)",
    "GROUP_WORLD_SIZE": "machines in the run (torch's elastic agent)",
    "TORCHELASTIC_ERROR_FILE": "where a worker writes its error for the elastic agent (read by the worker first)",
}


def _seconds(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, str(default)).strip()
    if not value.isdigit() or int(value) == 0:
        raise GanError(f"{name}={value!r} is not a positive number of seconds: unset it ({default}) "
                       f"or give e.g. {default * 3 // 2}")
    return int(value)


def _int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class RunEnvironment:
    stop_file: str | None = None
    rendezvous_timeout_seconds: int = 60
    collective_timeout_seconds: int = 600
    cache_dir: str = str(Path.home() / ".cache" / "gan_dist")
    omp_num_threads: int | None = None
    slurm_cpus_per_task: int | None = None
    node_name: str | None = None  # SLURMD_NODENAME
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    local_world_size: int | None = None
    group_world_size: int | None = None
    in_force: tuple[tuple[str, str], ...] = ()  # (name, value) of every variable above that was set

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> "RunEnvironment":
        """Read (and check) every variable once; one-line GanError for a malformed setting."""
        env = os.environ if environ is None else environ
        cache = env.get("GAN_DIST_CACHE") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                                 / "gan_dist")
        return cls(
            stop_file=env.get("GAN_STOP_FILE") or None,
            rendezvous_timeout_seconds=_seconds(env, "GAN_RENDEZVOUS_TIMEOUT", 60),
            collective_timeout_seconds=_seconds(env, "GAN_COLLECTIVE_TIMEOUT", 600),
            cache_dir=cache,
            omp_num_threads=_int(env, "OMP_NUM_THREADS"),
            slurm_cpus_per_task=_int(env, "SLURM_CPUS_PER_TASK"),
            node_name=env.get("SLURMD_NODENAME") or None,
            rank=_int(env, "RANK"),
            local_rank=_int(env, "LOCAL_RANK"),
            world_size=_int(env, "WORLD_SIZE"),
            local_world_size=_int(env, "LOCAL_WORLD_SIZE"),
            group_world_size=_int(env, "GROUP_WORLD_SIZE"),
            in_force=tuple((name, env[name]) for name in VARIABLES if name in env),
        )

    @property
    def under_launcher(self) -> bool:
        """Started by torchrun / accelerate launch / our own elastic agent: already a worker."""
        return self.local_rank is not None and self.world_size is not None

    @property
    def nodes(self) -> int:
        return self.group_world_size or 1

    @property
    def is_first_process(self) -> bool:
        return (self.rank or 0) == 0

    def usable_cpus(self) -> int:
        """CPUs this process may run on: its affinity mask (Slurm's and cgroups' cpusets show up
        there), capped by Slurm's --cpus-per-task allocation when there is one."""
        try:
            count = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            count = os.cpu_count() or 1
        return min(count, self.slurm_cpus_per_task) if self.slurm_cpus_per_task else count

    def record(self) -> dict[str, str]:
        """The variables in force, by name, for config.json."""
        return dict(self.in_force)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["in_force"] = [list(pair) for pair in self.in_force]
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> "RunEnvironment":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["in_force"] = tuple(tuple(pair) for pair in known.get("in_force", ()))
        return cls(**known)
