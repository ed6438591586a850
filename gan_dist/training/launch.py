"""How many processes where, and starting them.

`gan train` runs one launcher per machine. One process in all: training runs right here.
More: torch's elastic agent (the machinery behind torchrun) starts the processes of this
machine and meets the other machines at --master-addr:--master-port (static rendezvous).
Under an outside launcher (torchrun, accelerate launch) we are already a worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gan_dist.config import TrainConfig
from gan_dist.errors import GanError
from gan_dist.rundir import read_metrics
from gan_dist.training.checkpoint import newest_checkpoint, read_state

# How long nodes wait for each other before giving up (GAN_RENDEZVOUS_TIMEOUT overrides).
RENDEZVOUS_TIMEOUT_SECONDS = int(os.environ.get("GAN_RENDEZVOUS_TIMEOUT", "60"))
# Options a resumed run may change: topology, length, what is written. Everything that
# shapes the optimisation stays as the run began.
RESUMABLE = {"epochs", "sample_epochs", "eval_epochs", "keep_checkpoints", "gpus", "cpu", "processes",
             "nodes", "node_rank", "master_addr", "master_port", "data_dir", "compile", "resume", "out", "name"}


@dataclass(frozen=True)
class ProcessPlan:
    use_cpu: bool
    per_node: int
    nodes: int

    @property
    def world_size(self) -> int:
        return self.per_node * self.nodes


def under_outside_launcher() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def configure_threads() -> None:
    """Share the CPU cores between the processes of this machine unless told otherwise."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    torch.set_flush_denormal(True)  # denormals in late GAN training slow CPU matmuls many-fold


# ---- where the run lives ------------------------------------------------------------------
def plan_run(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """Resolve --resume to a concrete checkpoint (or a fresh start) and refuse overwrites."""
    run_dir = cfg.run_dir
    if cfg.resume is None:
        first = cfg.node_rank == 0 and os.environ.get("RANK", "0") == "0"  # others may see its files
        if first and run_dir.exists() and any(run_dir.iterdir()):
            raise GanError(f"run directory {run_dir} already exists: choose another --name, "
                           "or continue it with --resume auto")
        return cfg
    if cfg.resume == "auto":
        if "name" not in explicit:
            run_dir = _newest_run(Path(cfg.out))
        checkpoint = newest_checkpoint(run_dir / "checkpoints")
        if checkpoint is None:
            if read_metrics(run_dir):
                raise GanError(f"{run_dir} has trained epochs but no complete checkpoint: "
                               "start a new run with another --name")
            return cfg.replace(resume=None)  # nothing to resume yet: start (Slurm's first life)
    else:
        path = Path(cfg.resume)
        if (path / "trainer_state.json").is_file():
            checkpoint, run_dir = path, path.parent.parent
        elif path.is_dir():
            run_dir, checkpoint = path, newest_checkpoint(path / "checkpoints")
            if checkpoint is None:
                raise GanError(f"{path} holds no complete checkpoint: pass a run directory that has "
                               "checkpoints/epoch_NNNN, or start a new run")
        else:
            raise GanError(f"--resume {path}: no such run directory or checkpoint")
    return _resumed_config(cfg, explicit, checkpoint, run_dir)


def _newest_run(out: Path) -> Path:
    runs = [p.parent.parent for p in out.glob("*/checkpoints/epoch_*/trainer_state.json")]
    if not runs:
        raise GanError(f"--resume auto found no run with a checkpoint under {out}: pass --name or a path")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _resumed_config(cfg: TrainConfig, explicit: set[str], checkpoint: Path, run_dir: Path) -> TrainConfig:
    state = read_state(checkpoint)
    stored = TrainConfig.from_dict(state["config"])
    for key in sorted(explicit - RESUMABLE):
        if getattr(cfg, key) != getattr(stored, key):
            raise GanError(f"--{key.replace('_', '-')} is {getattr(stored, key)!r} in the run being resumed: "
                           "a resumed run keeps its settings; drop the option or start a new run")
    changes = {k: getattr(cfg, k) for k in explicit & RESUMABLE if k not in ("out", "name", "resume")}
    merged = stored.replace(**changes, out=str(run_dir.parent), name=run_dir.name, resume=str(checkpoint))
    if int(state["epoch"]) >= merged.epochs:
        raise GanError(f"{run_dir} already trained {state['epoch']} of {merged.epochs} epochs: "
                       "pass a larger --epochs to train longer")
    return merged.validate()


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
def launch_training(cfg: TrainConfig, explicit: set[str] | frozenset = frozenset()) -> int:
    if under_outside_launcher():
        from gan_dist.training.loop import train

        if int(os.environ["WORLD_SIZE"]) > 1 and "name" not in explicit:
            raise GanError("under torchrun / accelerate launch every process needs the same --name: pass one")

        configure_threads()
        return train(plan_run(cfg, set(explicit)))
    cfg = plan_run(cfg, set(explicit))
    plan = plan_processes(cfg, set(explicit))
    cfg = cfg.replace(cpu=plan.use_cpu)
    if plan.nodes == 1 and "master_port" not in explicit:
        cfg = cfg.replace(master_port=_free_port())  # one machine: any free port will do
    if cfg.batch_size % plan.world_size:
        raise GanError(f"--batch-size {cfg.batch_size} cannot be split evenly over {plan.world_size} "
                       f"processes: use a multiple of {plan.world_size}")
    if plan.world_size == 1:
        from gan_dist.training.loop import train

        configure_threads()
        return train(cfg)
    return _spawn(cfg, plan)


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


def _spawn(cfg: TrainConfig, plan: ProcessPlan) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _check_port(cfg)
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # we report failures ourselves
    # Share this machine's cores between its processes (Accelerate would otherwise warn and use 1).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // plan.per_node)))
    if cfg.master_addr in ("127.0.0.1", "localhost"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    workdir = Path(tempfile.mkdtemp(prefix="gan-launch-"))
    config_file = workdir / "config.json"
    config_file.write_text(json.dumps(cfg.to_dict()))
    stop_file = workdir / "stop"
    os.environ["GAN_LAUNCHER_STOP_FILE"] = str(stop_file)
    stopped_marker = workdir / "stopped"
    os.environ["GAN_STOPPED_MARKER"] = str(stopped_marker)

    def ask_workers_to_stop(signum, frame):  # Slurm / kill: the workers checkpoint and stop
        stop_file.write_text(signal.Signals(signum).name)

    signal.signal(signal.SIGUSR1, ask_workers_to_stop)
    signal.signal(signal.SIGTERM, ask_workers_to_stop)
    launch = LaunchConfig(
        min_nodes=plan.nodes, max_nodes=plan.nodes, nproc_per_node=plan.per_node,
        run_id=f"gan-{cfg.name}", rdzv_backend="static",
        rdzv_endpoint=f"{cfg.master_addr}:{cfg.master_port}",
        rdzv_configs={"rank": cfg.node_rank, "timeout": RENDEZVOUS_TIMEOUT_SECONDS},
        max_restarts=0, monitor_interval=0.2, start_method="spawn",
        signals_to_handle="SIGINT,SIGHUP,SIGQUIT",
    )
    import sys

    try:
        elastic_launch(launch, entrypoint=sys.executable)("-m", "gan_dist.training.worker", str(config_file))
    except ChildFailedError as err:
        from gan_dist.training.failures import root_cause

        where = f" on node {_node_name()}" if plan.nodes > 1 else ""
        raise GanError(root_cause(err.failures, where)) from None
    except SignalException as err:  # Ctrl-C / SIGHUP: the agent has stopped the workers
        raise GanError(f"interrupted ({signal.Signals(err.sigval).name}): the newest complete checkpoint "
                       f"is kept; continue with --resume auto --name {cfg.name}") from None
    except Exception as err:  # rendezvous timeout, unreachable master, store errors
        raise GanError(f"could not start the {plan.world_size}-process run via {cfg.master_addr}:"
                       f"{cfg.master_port} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                       f"check that every node runs with the same --master-addr/--master-port and that node 0 "
                       f"is reachable (waited up to {RENDEZVOUS_TIMEOUT_SECONDS} s)") from None
    from gan_dist.training.stopping import EXIT_STOPPED

    return EXIT_STOPPED if stopped_marker.exists() else 0


def _node_name() -> str:
    """Slurm's name for this node when there is one (on the local test cluster every node has
    the same host name), else the host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()
