"""How many processes where, and starting them.

`gan train` runs one launcher per machine. One process in all: training runs right here.
More: torch's elastic agent (the machinery behind torchrun) starts the processes of this
machine and meets the other machines at --master-addr:--master-port (static rendezvous).
Under an outside launcher (torchrun, accelerate launch) we are already a worker.

The launcher leaves nothing changed behind: environment variables it sets for its workers
and the signal handlers it installs are restored when it returns.

The process that owns the run (node 0's launcher, or rank 0 under an outside launcher) holds
the run's lock (runlock.py) from before anything is checked or written until training ends,
its workers' lives included (they die with it: training/worker.py). Everything that can
refuse a run (options, resume, processes, precision) is checked before the first write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from gan_dist.config import TrainConfig, check_batch_split, check_pack_split
from gan_dist.diskspace import DiskFull
from gan_dist.environment import RunEnvironment
from gan_dist.errors import GanError
from gan_dist.runlock import RunLock
from gan_dist.training.checkpoint import resolve_resume, target_run_dir
from gan_dist.training.faults import Fault
from gan_dist.training.stopping import EXIT_STOPPED, ForwardStopSignals, StopRequest


@dataclass(frozen=True)
class ProcessPlan:
    use_cpu: bool
    per_node: int
    nodes: int

    @property
    def world_size(self) -> int:
        return self.per_node * self.nodes


def configure_threads(env: RunEnvironment, threads: int | None = None) -> None:
    """CPU threads of this process: `threads` (--threads), else OMP_NUM_THREADS, else the
    usable cores shared between the processes of this machine."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    elif env.omp_num_threads is None:
        torch.set_num_threads(worker_threads(env, env.local_world_size or 1))
    torch.set_flush_denormal(True)  # denormals in late GAN training slow CPU matmuls many-fold


def worker_threads(env: RunEnvironment, per_node: int) -> int:
    return max(1, env.usable_cpus() // per_node)


def start_threads(cfg: TrainConfig, env: RunEnvironment) -> None:
    """Each training process, first thing: its threads (the crowded-machine warning comes from
    train(), once the run is sure to start)."""
    configure_threads(env, cfg.threads)


def owns_run(cfg: TrainConfig, env: RunEnvironment) -> bool:
    """The one process that locks and checks the run directory: node 0's launcher, or
    rank 0 under an outside launcher."""
    return cfg.node_rank == 0 and env.is_first_process


def plan_run(cfg: TrainConfig, explicit: set[str], env: RunEnvironment) -> TrainConfig:
    """Resolve --resume to a concrete checkpoint (or a fresh start) and refuse overwrites; only
    the owner checks for an existing run (the others may already see its files)."""
    return resolve_resume(cfg, explicit, first_process=owns_run(cfg, env))


@contextlib.contextmanager
def run_directory_owned(cfg: TrainConfig, explicit: set[str], env: RunEnvironment):
    """Inside: the run's lock held (by its owner), the run directory pinned (`--resume auto`
    without --name names the newest run once, the one locked). Yields (cfg, explicit) to plan
    with. (What a killed life left behind is removed by the Checkpointer, on the main process,
    before training writes anything.)"""
    if not owns_run(cfg, env):
        yield cfg, explicit
        return
    run_dir = target_run_dir(cfg, explicit)
    if cfg.resume == "auto" and "name" not in explicit:
        cfg, explicit = cfg.replace(out=str(run_dir.parent), name=run_dir.name), explicit | {"name"}
    with RunLock(run_dir):
        yield cfg, explicit


def check_precision(cfg: TrainConfig, use_cpu: bool) -> None:
    """Refuse a precision the CPU cannot run well before anything is written or spawned. Each
    training process makes the same choice again on its own device (training/loop.py), first
    thing, before writing: that is where a GPU's answer comes from (asking here would open a
    CUDA context in the launcher for the whole run)."""
    from gan_dist.training.precision import choose_precision

    if use_cpu:
        choose_precision(cfg.precision, "cpu", allow_slow_bf16=cfg.allow_slow_bf16)


# ---- how many processes -------------------------------------------------------------------
def plan_processes(cfg: TrainConfig, explicit: set[str]) -> ProcessPlan:
    if cfg.cpu or cfg.gpus == 0:
        return ProcessPlan(True, cfg.processes, cfg.nodes)
    import torch

    visible = torch.cuda.device_count()
    if cfg.gpus is not None and cfg.gpus > visible:
        raise GanError(f"--gpus {cfg.gpus} asked for, but {visible} GPU(s) are visible: "
                       f"use --gpus {visible}" + (" or fewer" if visible else ", or --cpu --processes N"))
    if visible == 0:
        return ProcessPlan(True, cfg.processes, cfg.nodes)
    if "processes" in explicit:
        raise GanError("--processes is for CPU runs: use --gpus N on a GPU machine, or add --cpu")
    return ProcessPlan(False, cfg.gpus or visible, cfg.nodes)


# ---- starting them ------------------------------------------------------------------------
def launch_training(cfg: TrainConfig, explicit: set[str] | frozenset = frozenset(), *,
                    env: RunEnvironment | None = None, stop_files: Iterable[str | Path] = (),
                    fault: Fault | None = None) -> int:
    """Train `cfg` on every process it asks for. `env`: the environment read at the edge (read
    here when not given). `stop_files`: files whose appearance asks the run to checkpoint and
    stop; the environment's GAN_STOP_FILE (slurm/train.sh's) is one; SIGUSR1/SIGTERM do the
    same. `fault`: a test hook (training/faults.py). Returns 0 when finished, EXIT_STOPPED when
    stopped with a checkpoint."""
    env = env or RunEnvironment.read()
    stop_files = [str(f) for f in (*stop_files, *([env.stop_file] if env.stop_file else []))]
    check_tracker(cfg.log_with)
    if env.under_launcher and (env.world_size or 1) > 1 and "name" not in explicit:
        raise GanError("under torchrun / accelerate launch every process needs the same --name: pass one")
    try:
        with run_directory_owned(cfg, set(explicit), env) as (cfg, explicit):
            if env.under_launcher:
                return _train_here(plan_run(cfg, explicit, env), env, stop_files, fault)
            cfg = plan_run(cfg, explicit, env)
            plan = plan_processes(cfg, explicit)
            cfg = cfg.replace(cpu=plan.use_cpu)
            if plan.nodes == 1 and "master_port" not in explicit:
                cfg = cfg.replace(master_port=_free_port())  # one machine: any free port will do
            check_pack_split(check_batch_split(cfg.batch_size, plan.world_size), cfg.pack)
            check_precision(cfg, plan.use_cpu)
            if plan.world_size == 1:
                return _train_here(cfg, env, stop_files, fault)
            return _spawn(cfg, plan, env, stop_files, fault)
    except DiskFull as err:  # before training (the lock, the leftovers): the same one line
        from gan_dist.training.space import OutOfSpace, out_of_space_line

        raise OutOfSpace(out_of_space_line(err, cfg.run_dir)) from None


def check_tracker(name: str | None) -> None:
    """--log-with: one of Accelerate's trackers, installed; else one line saying what to do."""
    if name is None:
        return
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    from gan_dist.config import check_choice

    check_choice("tracker", name, tuple(LOGGER_TYPE_TO_CLASS))
    if name not in [str(t) for t in get_available_trackers()]:
        extra = "pip install 'gan_dist[tensorboard]'" if name == "tensorboard" else f"pip install {name}"
        raise GanError(f"--log-with {name}: the {name} package is not installed: {extra}")


def _train_here(cfg: TrainConfig, env: RunEnvironment, stop_files: list[str], fault: Fault | None) -> int:
    from gan_dist.training.faults import NO_HOOKS
    from gan_dist.training.loop import train

    start_threads(cfg, env)
    with preserved_environ(), StopRequest(stop_files) as stop:
        return train(cfg, env, should_stop=stop, hooks=fault or NO_HOOKS)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port(cfg: TrainConfig) -> None:
    """Node 0 hosts the rendezvous store: say clearly when its port is taken."""
    if cfg.node_rank != 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the store binds: SO_REUSEADDR lets a requeued job (same id, same port) take the
        # port over its earlier life's TIME_WAIT connections; a live listener still blocks it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", cfg.master_port))
        except OSError:
            raise GanError(f"--master-port {cfg.master_port} is already in use on this machine: "
                           "pick a free port") from None


@contextlib.contextmanager
def preserved_environ(**defaults: str):
    """Set environment defaults for the workers; afterwards restore the whole environment
    exactly (libraries set variables too, e.g. torch's TORCHINDUCTOR_CACHE_DIR)."""
    saved = dict(os.environ)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def preserved_signal_handlers():
    """The elastic agent installs its own SIGINT/SIGHUP/SIGQUIT handlers and leaves them."""
    import signal

    signals = (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
    saved = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def quiet_elastic_logs():
    """We report failures ourselves, once: silence torch's elastic loggers meanwhile."""
    loggers = [logging.getLogger(n) for n in ("torch.distributed.elastic", "torch.distributed.launcher")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _spawn(cfg: TrainConfig, plan: ProcessPlan, env: RunEnvironment, stop_files: list[str],
           fault: Fault | None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _check_port(cfg)
    workdir = Path(tempfile.mkdtemp(prefix="gan-launch-"))
    launcher_stop = workdir / "stop"
    result_file = workdir / "result.json"
    launch_file = workdir / "launch.json"
    launch_file.write_text(json.dumps({
        "config": cfg.to_dict(), "stop_files": [*stop_files, str(launcher_stop)],
        "result_file": str(result_file), "fault": str(fault) if fault else None,
        "launcher_pid": os.getpid()}))  # the workers die with this process (and its run lock)
    launch = LaunchConfig(
        min_nodes=plan.nodes, max_nodes=plan.nodes, nproc_per_node=plan.per_node,
        run_id=f"gan-{cfg.name}", rdzv_backend="static",
        rdzv_endpoint=f"{cfg.master_addr}:{cfg.master_port}",
        rdzv_configs={"rank": cfg.node_rank, "timeout": env.rendezvous_timeout_seconds},
        max_restarts=0, monitor_interval=0.2, start_method="spawn",
        signals_to_handle="SIGINT,SIGHUP,SIGQUIT",
    )
    worker_env = {"OMP_NUM_THREADS": str(worker_threads(env, plan.per_node))}  # share the cores
    if cfg.master_addr in ("127.0.0.1", "localhost"):
        worker_env["GLOO_SOCKET_IFNAME"] = "lo"
    try:
        with preserved_environ(**worker_env), preserved_signal_handlers(), quiet_elastic_logs(), \
                ForwardStopSignals(launcher_stop):
            if cfg.threads:  # --threads wins over an OMP_NUM_THREADS the user set
                os.environ["OMP_NUM_THREADS"] = str(cfg.threads)
            elastic_launch(launch, entrypoint=sys.executable)("-m", "gan_dist.training.worker", str(launch_file))
        return EXIT_STOPPED if result_file.exists() else 0
    except ChildFailedError as err:
        from gan_dist.training.failures import root_cause

        where = f" on node {env.node_name or socket.gethostname()}" if plan.nodes > 1 else ""
        raise GanError(root_cause(err.failures, where)) from None
    except SignalException as err:  # Ctrl-C / SIGHUP: the agent has stopped the workers
        import signal

        raise GanError(f"interrupted ({signal.Signals(err.sigval).name}): the newest complete checkpoint "
                       f"is kept; continue with --resume auto --name {cfg.name}") from None
    except Exception as err:  # rendezvous timeout, unreachable master, store errors
        raise GanError(f"could not start the {plan.world_size}-process run via {cfg.master_addr}:"
                       f"{cfg.master_port} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                       f"check that every node runs with the same --master-addr/--master-port and that node 0 "
                       f"is reachable (waited up to {env.rendezvous_timeout_seconds} s)") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
