"""The training loop: Algorithm 1 of Goodfellow et al. (2014), data-parallel via Accelerate.

Every random choice is a function of (seed, epoch, step) and the GLOBAL batch, never of the
RNG's history: data order of (seed, epoch), noise of (seed, epoch, step), dropout masks of
(seed, epoch, step, rank). So a run gives the same numbers on 1 or N processes (up to
summation order, with dropout off), and a run resumed at any step repeats the uninterrupted
one exactly without replaying anything.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from gan_dist import __version__
from gan_dist.config import TrainConfig, check_batch_split
from gan_dist.datasets import load_dataset
from gan_dist.datasets.resident import DeviceData
from gan_dist.errors import GanError
from gan_dist.nets import NetSpec, build_models, parameter_count
from gan_dist.rundir import RunDir
from gan_dist.training.checkpoint import load_checkpoint, save_checkpoint
from gan_dist.training.steps import d_step, g_step, generator_forwards
from gan_dist.training.stopping import EXIT_STOPPED, agree_to_stop

SAMPLE_GRID = 64  # fixed-noise images per grid (8 x 8)
StopCheck = Callable[[], bool]
FaultHook = Callable[[int, int, int], "str | None"]


# ---- the networks and their optimisers, as one bundle ---------------------------------------
@dataclass
class Models:
    """G and D as prepared by Accelerate (DDP-wrapped when distributed), their plain modules,
    their optimisers and the spec that built them. G and D are prepared separately: one DDP
    wrapper holding both breaks the reducer."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_plain: torch.nn.Module
    D_plain: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    spec: NetSpec
    ema: torch.nn.Module | None = None  # room for an EMA copy of G


def build_training_models(cfg: TrainConfig, spec: NetSpec, accelerator) -> Models:
    torch.manual_seed(cfg.seed)  # same initial weights on every process
    G, D = build_models(spec)
    fused = {"fused": True} if accelerator.device.type in ("cuda", "cpu") else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    if cfg.compile:
        # Module.compile() compiles __call__ in place: state_dict keys stay the same, so
        # checkpoints move freely between compiled and eager runs.
        G.compile()
        D.compile()
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    return Models(G, D, accelerator.unwrap_model(G), accelerator.unwrap_model(D), opt_g, opt_d, spec)


# ---- randomness as a function of (seed, epoch, step) ----------------------------------------
def stream_seed(seed: int, *parts) -> int:
    """A 63-bit seed for one named stream, e.g. (seed, "noise", epoch, step)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StepRandomness:
    """Data order, noise and dropout seeds, each derivable at any (epoch, step)."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        self.device = device
        self.generator = torch.Generator(device=device)

    def order(self, epoch: int, dataset_size: int, steps: int, global_batch: int) -> torch.Tensor:
        """(steps, global_batch) dataset indices of the epoch's global batches."""
        self.generator.manual_seed(stream_seed(self.seed, "order", epoch))
        perm = torch.randperm(dataset_size, generator=self.generator, device=self.device)
        return perm[: steps * global_batch].view(steps, global_batch)

    def noise(self, epoch: int, step: int, global_batch: int, latent_dim: int) -> torch.Tensor:
        """(2, global_batch, latent_dim): z for the D step and z for the G step."""
        self.generator.manual_seed(stream_seed(self.seed, "noise", epoch, step))
        return torch.randn(2, global_batch, latent_dim, generator=self.generator, device=self.device)

    def seed_dropout(self, epoch: int, step: int, rank: int) -> None:
        """Dropout draws from the global RNG: seed it per (epoch, step, rank)."""
        torch.manual_seed(stream_seed(self.seed, "dropout", epoch, step, rank))


def fixed_noise(seed: int, latent_dim: int, device) -> torch.Tensor:
    """The sample grids' z: the same all run long, across resumes and process counts."""
    return torch.randn(SAMPLE_GRID, latent_dim, generator=torch.Generator().manual_seed(seed + 7)).to(device)


@dataclass
class Shard:
    """Which rows of each global batch this process trains on."""

    rank: int
    world: int
    global_batch: int

    @property
    def per_process_batch(self) -> int:
        return self.global_batch // self.world

    def rows(self) -> slice:
        b = self.per_process_batch
        return slice(self.rank * b, (self.rank + 1) * b)


# ---- one epoch ------------------------------------------------------------------------------
@dataclass
class EpochProgress:
    """Statistics of the epoch in progress, kept on the device (no host sync per step)."""

    sums: torch.Tensor  # (4,): d_loss, d_real, d_fake, g_loss summed over steps
    steps_done: int = 0
    g_steps: int = 0

    @classmethod
    def fresh(cls, device) -> "EpochProgress":
        return cls(torch.zeros(4, device=device))


def run_epoch(cfg: TrainConfig, epoch: int, models: Models, data: DeviceData, shard: Shard,
              accelerator, *, rng: StepRandomness | None = None, progress: EpochProgress | None = None,
              fault: FaultHook | None = None) -> EpochProgress:
    """Train the steps of `epoch` from `progress.steps_done` on; returns the progress."""
    device = accelerator.device
    rng = rng or StepRandomness(cfg.seed, device)
    progress = progress or EpochProgress.fresh(device)
    steps = len(data) // cfg.batch_size
    order = rng.order(epoch, len(data), steps, cfg.batch_size)[:, shard.rows()]  # (steps, per_process)
    for step in range(progress.steps_done, steps):
        poison = float("nan") if fault is not None and fault(shard.rank, epoch, step) == "nan" else None
        g_turn = (step + 1) % cfg.k_disc == 0  # Algorithm 1: k D steps, then one G step
        z = rng.noise(epoch, step, cfg.batch_size, cfg.latent_dim)[:, shard.rows()]
        rng.seed_dropout(epoch, step, shard.rank)
        fake_for_d, fake_for_g = generator_forwards(models.G, models.G_plain, z[0], z[1] if g_turn else None,
                                                    accelerator)
        real, _ = data.batch(order[step])
        d_loss, d_real, d_fake = d_step(models.D, models.opt_d, real, fake_for_d, accelerator, poison=poison)
        progress.sums[:3] += torch.stack([d_loss, d_real, d_fake])
        if g_turn:
            progress.sums[3] += g_step(fake_for_g, models.D_plain, models.opt_g, cfg.loss, accelerator)
            progress.g_steps += 1
        progress.steps_done = step + 1
    return progress


# ---- the run ------------------------------------------------------------------------------
def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    use_cpu = cfg.cpu or not torch.cuda.is_available()
    if cfg.precision == "fp16" and use_cpu:
        raise GanError("--precision fp16 needs a GPU: use --precision bf16 on the CPU")
    return Accelerator(cpu=use_cpu, mixed_precision=cfg.precision)


def environment(accelerator) -> dict:
    import accelerate

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"gan_dist": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "device": device.type, "device_name": name,
            "hostname": socket.gethostname(), "platform": platform.platform(),
            "num_nodes": num_nodes(), "threads_per_process": torch.get_num_threads(),
            "distributed_type": str(accelerator.distributed_type)}


def num_nodes() -> int:
    return int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1)  # set by the elastic agent


@dataclass
class RunState:
    """What a checkpoint restores besides weights, optimisers and RNG."""

    epoch: int = 0  # completed epochs
    history: list[dict] = field(default_factory=list)  # metrics rows so far

    @property
    def elapsed(self) -> float:
        return self.history[-1]["elapsed_seconds"] if self.history else 0.0


def train(cfg: TrainConfig, *, should_stop: StopCheck = lambda: False, fault: FaultHook | None = None) -> int:
    """Train per `cfg` (resume from `cfg.resume` when it names a checkpoint). Returns the
    exit code: 0 finished, EXIT_STOPPED after a stop request (checkpoint saved).

    should_stop: asked once per epoch on every process; see training/stopping.py for its
    contract. fault: a test hook called before every step (training/faults.py)."""
    accelerator = make_accelerator(cfg)
    world, rank = accelerator.num_processes, accelerator.process_index
    check_batch_split(cfg.batch_size, world)
    shard = Shard(rank, world, cfg.batch_size)
    image_set = load_dataset(cfg.dataset, cfg.data_dir)
    if len(image_set.images) < cfg.batch_size:
        raise GanError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(image_set.images)} images)")
    data = DeviceData(image_set, accelerator.device)
    spec = NetSpec(arch=cfg.arch, latent_dim=cfg.latent_dim, image_shape=data.shape, d_dropout=cfg.d_dropout,
                   fast_dropout=cfg.fast_dropout)
    models = build_training_models(cfg, spec, accelerator)

    run = RunDir(cfg.run_dir, is_main=accelerator.is_main_process)
    state = RunState()
    if cfg.resume:
        saved = load_checkpoint(accelerator, Path(cfg.resume))
        state = RunState(int(saved["epoch"]), list(saved["history"]))
        run.rewrite_metrics(state.history)  # every epoch once; drops rows past the checkpoint
    else:
        run.create()
    from gan_dist.nets.describe import describe_models

    steps = len(data) // cfg.batch_size
    run.write_config({**cfg.to_dict(), "resume": None, "world_size": world,
                      "per_process_batch": shard.per_process_batch, "steps_per_epoch": steps,
                      "dataset_size": len(data), "image_shape": list(data.shape),
                      "parameters": {"generator": parameter_count(models.G_plain),
                                     "discriminator": parameter_count(models.D_plain)},
                      "architecture": describe_models(models.G_plain, models.D_plain),
                      "env": environment(accelerator)})
    where = {"world_size": world, "num_nodes": num_nodes()}
    run.append_event("resume" if cfg.resume else "start", epoch=state.epoch, step=0, **where)
    run.write_status("running", epoch=state.epoch, epochs=cfg.epochs)
    accelerator.wait_for_everyone()
    try:
        code = _train_epochs(cfg, accelerator, models, data, shard, run, state, should_stop, fault)
    except BaseException as err:
        run.append_event("failed", epoch=state.epoch, step=0, reason=f"{type(err).__name__}: {err}", **where)
        run.write_status("failed", epoch=state.epoch, epochs=cfg.epochs)
        raise
    if code == 0:
        run.save_generator(models.G_plain, spec, cfg.epochs, final=True)
        run.write_status("finished", epoch=cfg.epochs, epochs=cfg.epochs)
        run.append_event("finish", epoch=cfg.epochs, step=0, **where)
    else:
        run.append_event("stop", epoch=state.epoch, step=0, reason="stop request", **where)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return code


def _train_epochs(cfg, accelerator, models: Models, data: DeviceData, shard: Shard, run: RunDir, state: RunState,
                  should_stop: StopCheck, fault: FaultHook | None) -> int:
    device = accelerator.device
    rng = StepRandomness(cfg.seed, device)
    z_fixed = fixed_noise(cfg.seed, cfg.latent_dim, device)
    elapsed = state.elapsed
    bar = _progress(accelerator.is_main_process)
    with bar:
        task = bar.add_task("epoch", total=cfg.epochs, completed=state.epoch)
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            tic = time.perf_counter()
            progress = run_epoch(cfg, epoch, models, data, shard, accelerator, rng=rng, fault=fault)
            sums = accelerator.reduce(progress.sums, reduction="mean")  # mean over processes
            steps, g_steps = progress.steps_done, max(progress.g_steps, 1)
            # .tolist() is the epoch's one host sync: on a GPU the clock stops only after the work
            d_loss, d_real, d_fake, g_loss = (sums / torch.tensor([steps, steps, steps, g_steps], device=device)).tolist()
            seconds = accelerator.reduce(torch.tensor([time.perf_counter() - tic], device=device), "mean").item()
            elapsed += seconds
            row = {"epoch": epoch, "g_loss": g_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                   "seconds": seconds, "images_per_second": steps * cfg.batch_size / seconds,
                   "world_size": shard.world, "steps": steps, "elapsed_seconds": elapsed}
            state.history.append(row)
            state.epoch = epoch
            run.append_metrics(row)
            if epoch in cfg.saved_epochs():
                _save_samples(run, models, z_fixed, epoch)
            if epoch in cfg.eval_epochs and accelerator.is_main_process:
                _evaluate(run, models.G_plain, epoch)
            stopping = agree_to_stop(accelerator, should_stop()) and epoch < cfg.epochs
            save_checkpoint(accelerator, run, epoch, {"epoch": epoch, "history": state.history,
                            "world_size": shard.world, "config": cfg.to_dict()}, keep=cfg.keep_checkpoints)
            run.write_status("running", epoch=epoch, epochs=cfg.epochs)
            bar.update(task, completed=epoch, refresh=True,
                       description=f"epoch {epoch}/{cfg.epochs}  G {g_loss:.3f}  D {d_loss:.3f}  "
                                   f"{row['images_per_second']:,.0f} img/s")
            if stopping:
                run.write_status("stopped", epoch=epoch, epochs=cfg.epochs)
                return EXIT_STOPPED
    return 0


def _save_samples(run: RunDir, models: Models, z_fixed, epoch: int) -> None:
    if not run.is_main:
        return
    G = models.G_plain
    G.eval()
    with torch.no_grad():
        images = G(z_fixed).float().cpu()
    G.train()
    run.save_sample_grid(epoch, images, nrow=8)
    run.save_generator(G, models.spec, epoch)


def _evaluate(run: RunDir, G_plain, epoch: int) -> None:
    from gan_dist.metrics.quality import evaluate_generator_into_run

    evaluate_generator_into_run(run, G_plain, epoch)


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, quiet=not enabled)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not enabled, transient=False,
                    auto_refresh=False)  # redrawn once per epoch: no 10 Hz thread competing for 2 cores
