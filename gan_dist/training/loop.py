"""The training loop: Algorithm 1 of Goodfellow et al. (2014), data-parallel via Accelerate.

Every random choice (data order, noise, dropout) is a function of (seed, epoch) and the
GLOBAL batch, never of the rank or of the RNG's history. So a run gives the same numbers on
1 or N processes (up to summation order, with dropout off) and a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_dist import __version__
from gan_dist.config import TrainConfig
from gan_dist.datasets import load_dataset, to_unit_range
from gan_dist.errors import GanError
from gan_dist.nets import build_models, describe, parameter_count
from gan_dist.nets.generator_io import save_generator
from gan_dist.rundir import RunDir
from gan_dist.training.checkpoint import load_checkpoint, save_checkpoint
from gan_dist.training.steps import d_step, g_step, generator_forwards
from gan_dist.training.stopping import EXIT_STOPPED, StopRequest

SAMPLE_GRID = 64  # fixed-noise images per grid (8 x 8)


# ---- randomness as a function of (seed, epoch) --------------------------------------------
def epoch_generator(seed: int, epoch: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


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


def run_epoch(cfg: TrainConfig, epoch: int, models, images_u8, shard: Shard, accelerator, on_step=None):
    """Train one epoch; statistics stay on the device until the end (no host sync)."""
    G, D, G_plain, D_plain, opt_g, opt_d = models
    device = images_u8.device
    gen = epoch_generator(cfg.seed, epoch, device)
    steps = len(images_u8) // cfg.batch_size
    order = torch.randperm(len(images_u8), generator=gen, device=device)[: steps * cfg.batch_size]
    order = order.view(steps, cfg.batch_size)[:, shard.rows()]  # (steps, per_process_batch)
    noise_d = torch.randn(steps, cfg.batch_size, cfg.latent_dim, generator=gen, device=device)[:, shard.rows()]
    noise_g = torch.randn(steps, cfg.batch_size, cfg.latent_dim, generator=gen, device=device)[:, shard.rows()]
    # dropout masks: per (seed, epoch, rank), so resume is exact
    torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + shard.rank + 1)
    sums = torch.zeros(4, device=device)  # d_loss, d_real, d_fake, g_loss
    g_steps = 0
    for step in range(steps):
        g_turn = (step + 1) % cfg.k_disc == 0  # Algorithm 1: k D steps, then one G step
        fake_for_d, fake_for_g = generator_forwards(G, G_plain, noise_d[step], noise_g[step] if g_turn else None,
                                                    accelerator)
        real = to_unit_range(images_u8[order[step]])
        d_loss, d_real, d_fake = d_step(D, opt_d, real, fake_for_d, accelerator)
        sums[:3] += torch.stack([d_loss, d_real, d_fake])
        if g_turn:
            sums[3] += g_step(fake_for_g, D_plain, opt_g, cfg.loss, accelerator)
            g_steps += 1
        if on_step is not None:
            on_step(step + 1, steps)
    return sums, steps, max(g_steps, 1)


# ---- the run ------------------------------------------------------------------------------
def make_accelerator(cfg: TrainConfig):
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    from gan_dist.training.failures import collective_timeout_seconds

    use_cpu = cfg.cpu or not torch.cuda.is_available()
    if cfg.precision == "fp16" and use_cpu:
        raise GanError("--precision fp16 needs a GPU: use --precision bf16 on the CPU")
    # A peer that is gone without closing its sockets fails the run after this, not 30 min.
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=collective_timeout_seconds()))
    return Accelerator(cpu=use_cpu, mixed_precision=cfg.precision, kwargs_handlers=[timeout])


def environment(accelerator) -> dict:
    import accelerate

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"gan_dist": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "device": device.type, "device_name": name,
            "hostname": socket.gethostname(), "platform": platform.platform(),
            "num_nodes": int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1),
            "threads_per_process": torch.get_num_threads(),
            "distributed_type": str(accelerator.distributed_type)}


def train(cfg: TrainConfig) -> int:
    """Train per `cfg` (resume from `cfg.resume` when it names a checkpoint). Returns the
    exit code: 0 finished, EXIT_STOPPED after a stop request (checkpoint saved)."""
    stop = StopRequest()
    stop.install()
    accelerator = make_accelerator(cfg)
    world, rank = accelerator.num_processes, accelerator.process_index
    if cfg.batch_size % world:
        raise GanError(f"--batch-size {cfg.batch_size} cannot be split evenly over {world} processes: "
                       f"use a multiple of {world}")
    shard = Shard(rank, world, cfg.batch_size)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    if len(data.images) < cfg.batch_size:
        raise GanError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(data.images)} images)")
    device = accelerator.device
    images_u8 = torch.from_numpy(data.images).to(device)  # (N, C, H, W) uint8, resident

    torch.manual_seed(cfg.seed)  # same initial weights on every process
    G, D = build_models(cfg.arch, latent_dim=cfg.latent_dim, image_shape=data.shape, d_dropout=cfg.d_dropout)
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    if cfg.compile:
        # Module.compile() compiles __call__ in place: state_dict keys stay the same, so
        # checkpoints move freely between compiled and eager runs.
        G.compile()
        D.compile()
    # G and D prepared as separate models: one DDP wrapper holding both breaks the reducer.
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    G_plain, D_plain = accelerator.unwrap_model(G), accelerator.unwrap_model(D)
    models = (G, D, G_plain, D_plain, opt_g, opt_d)

    run = RunDir(cfg.run_dir, is_main=accelerator.is_main_process)
    history: list[dict] = []
    start_epoch = 0
    if cfg.resume:
        state = load_checkpoint(accelerator, Path(cfg.resume))
        start_epoch, history = int(state["epoch"]), list(state["history"])
        run.rewrite_metrics(history)  # every epoch once; drops rows past the checkpoint
    else:
        run.create()
    run.write_config({**cfg.to_dict(), "resume": None, "world_size": world,
                      "per_process_batch": shard.per_process_batch,
                      "steps_per_epoch": len(images_u8) // cfg.batch_size,
                      "dataset_size": len(images_u8), "image_shape": list(data.shape),
                      "parameters": {"generator": parameter_count(G_plain), "discriminator": parameter_count(D_plain)},
                      "architecture": {"generator": describe(G_plain), "discriminator": describe(D_plain)},
                      "env": environment(accelerator)})
    run.write_status("running", epoch=start_epoch, epochs=cfg.epochs)
    accelerator.wait_for_everyone()

    z_fixed = fixed_noise(cfg.seed, cfg.latent_dim, device)
    elapsed = history[-1]["elapsed_seconds"] if history else 0.0
    progress = _progress(accelerator.is_main_process)
    code = 0
    with progress:
        task = progress.add_task("epoch", total=cfg.epochs, completed=start_epoch)
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            _maybe_inject_failure(rank, epoch)
            tic = time.perf_counter()
            sums, steps, g_steps = run_epoch(cfg, epoch, models, images_u8, shard, accelerator)
            sums = accelerator.reduce(sums, reduction="mean")  # mean over processes
            # .tolist() is the epoch's one host sync: on a GPU the clock stops only after the work
            d_loss, d_real, d_fake, g_loss = (sums / torch.tensor([steps, steps, steps, g_steps], device=device)).tolist()
            seconds = accelerator.reduce(torch.tensor([time.perf_counter() - tic], device=device), "mean").item()
            elapsed += seconds
            row = {"epoch": epoch, "g_loss": g_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                   "seconds": seconds, "images_per_second": steps * cfg.batch_size / seconds,
                   "world_size": world, "steps": steps, "elapsed_seconds": elapsed}
            history.append(row)
            run.append_metrics(row)
            if epoch in cfg.saved_epochs():
                _save_samples(run, G_plain, z_fixed, epoch, cfg, data.shape, accelerator)
            if epoch in cfg.eval_epochs and accelerator.is_main_process:
                _evaluate(run, G_plain, epoch)
            stopping = stop.agreed(accelerator) and epoch < cfg.epochs
            save_checkpoint(accelerator, run.checkpoints, epoch, {"epoch": epoch, "history": history,
                            "world_size": world, "config": cfg.to_dict()}, keep=cfg.keep_checkpoints)
            run.write_status("running", epoch=epoch, epochs=cfg.epochs)
            progress.update(task, completed=epoch, refresh=True,
                            description=f"epoch {epoch}/{cfg.epochs}  G {g_loss:.3f}  D {d_loss:.3f}  {row['images_per_second']:,.0f} img/s")
            if stopping:
                code = EXIT_STOPPED
                run.write_status("stopped", epoch=epoch, epochs=cfg.epochs)
                break
    if code == 0:
        if accelerator.is_main_process:
            save_generator(G_plain, run.generator_file(), arch=cfg.arch, latent_dim=cfg.latent_dim,
                           image_shape=data.shape, epoch=cfg.epochs)
        run.write_status("finished", epoch=cfg.epochs, epochs=cfg.epochs)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return code


def _save_samples(run: RunDir, G_plain, z_fixed, epoch: int, cfg: TrainConfig, shape, accelerator) -> None:
    if not accelerator.is_main_process:
        return
    from torchvision.utils import save_image

    G_plain.eval()
    with torch.no_grad():
        images = G_plain(z_fixed).float().cpu()
    G_plain.train()
    save_image(images, run.sample_png(epoch), nrow=8, normalize=True, value_range=(-1, 1))
    save_generator(G_plain, run.generator_file(epoch), arch=cfg.arch, latent_dim=cfg.latent_dim,
                   image_shape=shape, epoch=epoch)


def _evaluate(run: RunDir, G_plain, epoch: int) -> None:
    from gan_dist.metrics.quality import evaluate_generator_into_run

    evaluate_generator_into_run(run.path, G_plain, epoch)


def _maybe_inject_failure(rank: int, epoch: int) -> None:
    """Fault injection for the tests: GAN_FAIL_AT=RANK:EPOCH makes that process fail."""
    spec = os.environ.get("GAN_FAIL_AT")
    if spec and spec == f"{rank}:{epoch}":
        raise RuntimeError(f"injected failure on rank {rank} at epoch {epoch} (GAN_FAIL_AT)")


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
