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
from gan_dist.datasets.resident import DeviceData, training_set
from gan_dist.errors import GanError
from gan_dist.nets import NetSpec, build_models, check_image_shape, parameter_count
from gan_dist.nets.layers import set_sync_batchnorm
from gan_dist.rundir import GENERATOR, GENERATOR_RAW, RunDir
from gan_dist.training.backends import configure_backends
from gan_dist.training.checkpoint import load_checkpoint, newest_checkpoint, save_checkpoint
from gan_dist.training.ema import EMA_FILE, ema_beta, load_ema, make_ema, save_ema, update_ema
from gan_dist.training.steps import d_step, g_step, generator_forwards
from gan_dist.training.stopping import EXIT_STOPPED
from gan_dist.training.tracking import Tracking

SAMPLE_GRID = 64  # fixed-noise images per grid (8 x 8)
MAX_GRID_ROWS = 16  # conditional grids: one row per class, for the first 16 classes
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
    ema: torch.nn.Module | None = None  # the EMA of G (training/ema.py), when --ema-kimg > 0

    @property
    def G_shown(self) -> torch.nn.Module:
        """The generator that draws grids and is saved as generator.safetensors: the EMA if any."""
        return self.ema if self.ema is not None else self.G_plain


def build_training_models(cfg: TrainConfig, spec: NetSpec, accelerator) -> Models:
    torch.manual_seed(cfg.seed)  # same initial weights on every process
    G, D = build_models(spec)
    ema = make_ema(G).to(accelerator.device) if cfg.ema_kimg else None  # before compile and sync BN
    if cfg.sync_bn and accelerator.num_processes > 1:
        # Our own synchronised BatchNorm on every device: torch.nn.SyncBatchNorm refuses CPU
        # tensors and cannot normalise D's real and fake halves apart (nets/layers.py).
        set_sync_batchnorm(G)
        set_sync_batchnorm(D)
    if cfg.channels_last:  # 4-D weights NHWC before the optimisers (the EMA stays NCHW: only copied into)
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if accelerator.device.type in ("cuda", "cpu") else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    if cfg.compile:
        # Module.compile() compiles __call__ in place: state_dict keys stay the same, so
        # checkpoints move freely between compiled and eager runs.
        G.compile()
        D.compile()
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    return Models(G, D, accelerator.unwrap_model(G), accelerator.unwrap_model(D), opt_g, opt_d, spec, ema)


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

    def fake_labels(self, epoch: int, step: int, global_batch: int, classes: int) -> torch.Tensor:
        """(2, global_batch) classes of the fakes: for the D step and for the G step. Uniform, from
        a stream of (seed, epoch, step) of its own: unconditional runs draw exactly as before."""
        self.generator.manual_seed(stream_seed(self.seed, "labels", epoch, step))
        return torch.randint(classes, (2, global_batch), generator=self.generator, device=self.device)

    def seed_dropout(self, epoch: int, step: int, rank: int) -> None:
        """Dropout draws from the global RNG: seed it per (epoch, step, rank)."""
        torch.manual_seed(stream_seed(self.seed, "dropout", epoch, step, rank))


def fixed_noise(seed: int, latent_dim: int, device, n: int = SAMPLE_GRID) -> torch.Tensor:
    """The sample grids' z: the same all run long, across resumes and process counts."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed + 7)).to(device)


def grid_layout(num_classes: int) -> dict:
    """The fixed-noise grid: 8 x 8, or one row of 8 per class or latent code value (at most
    MAX_GRID_ROWS rows)."""
    if not num_classes:
        return {"rows": 8, "cols": 8}
    return {"rows": min(num_classes, MAX_GRID_ROWS), "cols": 8}


def grid_inputs(seed: int, spec: NetSpec, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z, labels or None) of the fixed-noise grid; row r of a conditional grid is class r,
    of a latent-code grid code value r."""
    layout = grid_layout(spec.label_values)
    z = fixed_noise(seed, spec.latent_dim, device, layout["rows"] * layout["cols"])
    if not spec.label_values:
        return z, None
    return z, torch.arange(layout["rows"], device=device).repeat_interleave(layout["cols"])


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
    """The epoch in progress. Statistics stay on the device between sync points."""

    sums: torch.Tensor  # (4,): d_loss, d_real, d_fake, g_loss summed over the epoch's steps
    steps_done: int = 0
    g_steps: int = 0
    seconds: float = 0.0  # training time of this epoch in earlier lives (mid-epoch resume)

    @classmethod
    def fresh(cls, device) -> "EpochProgress":
        return cls(torch.zeros(4, device=device))

    def record(self, d_loss, d_real, d_fake, g_loss) -> None:
        """Add one step's statistics, on the device: no host sync."""
        self.sums[:3] += torch.stack([d_loss, d_real, d_fake])
        if g_loss is not None:
            self.sums[3] += g_loss
            self.g_steps += 1

    def to_state(self, accelerator) -> dict:
        """Collective. For a mid-epoch checkpoint: every process's exact float32 sums (each
        process resumes with its own, so the epoch's row repeats exactly)."""
        per_rank = accelerator.gather(self.sums.unsqueeze(0))  # (world, 4)
        g_steps = accelerator.gather(torch.tensor([self.g_steps], device=self.sums.device))
        return {"sums": per_rank.tolist(), "steps_done": self.steps_done, "g_steps": g_steps.tolist(),
                "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict, rank: int, world: int, device) -> "EpochProgress":
        """Rank `rank`'s share of a saved epoch in progress. Resumed on another number of
        processes, every process takes the mean (a valid continuation, not a bit-identical one)."""
        sums, g_steps = state["sums"], state["g_steps"]
        if len(sums) == world:
            mine, my_g = sums[rank], g_steps[rank]
        else:
            mine, my_g = torch.tensor(sums).mean(0).tolist(), round(sum(g_steps) / len(g_steps))
        return cls(torch.tensor(mine, dtype=torch.float32, device=device), int(state["steps_done"]), int(my_g),
                   float(state["seconds"]))


# on_sync(progress, step) -> True to end the epoch here (a stop was agreed).
SyncHook = Callable[[EpochProgress, int], bool]


def run_epoch(cfg: TrainConfig, epoch: int, models: Models, data: DeviceData, shard: Shard,
              accelerator, *, rng: StepRandomness | None = None, progress: EpochProgress | None = None,
              fault: FaultHook | None = None, sync_every: int = 0, on_sync: SyncHook | None = None) -> EpochProgress:
    """Train the steps of `epoch` from `progress.steps_done` on. Every `sync_every` steps (and
    after the last) `on_sync` runs; it may end the epoch early. Returns the progress."""
    device = accelerator.device
    rng = rng or StepRandomness(cfg.seed, device)
    progress = progress or EpochProgress.fresh(device)
    steps = len(data) // cfg.batch_size
    order = rng.order(epoch, len(data), steps, cfg.batch_size)[:, shard.rows()]  # (steps, per_process)
    for step in range(progress.steps_done, steps):
        poison = float("nan") if fault is not None and fault(shard.rank, epoch, step) == "nan" else None
        g_turn = (step + 1) % cfg.k_disc == 0  # Algorithm 1: k D steps, then one G step
        z = rng.noise(epoch, step, cfg.batch_size, cfg.latent_dim)[:, shard.rows()]
        real, real_labels = data.batch(order[step])
        if cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        y_fake = y_d = codes = None  # G's second input (classes or codes), D's labels, the codes Q reads
        if models.spec.num_classes:
            y_fake = rng.fake_labels(epoch, step, cfg.batch_size, models.spec.num_classes)[:, shard.rows()]
            y_d = torch.cat([real_labels, y_fake[0]])  # the classes of D's batch: real, then fake
        elif models.spec.latent_codes:  # G's second input; D is unconditional and predicts them
            y_fake = codes = rng.fake_labels(epoch, step, cfg.batch_size, models.spec.latent_codes)[:, shard.rows()]
        rng.seed_dropout(epoch, step, shard.rank)
        fake_for_d, fake_for_g = generator_forwards(models.G, models.G_plain, z[0], z[1] if g_turn else None,
                                                    accelerator, *(y_fake if y_fake is not None else (None, None)))
        d_loss, d_real, d_fake = d_step(models.D, models.opt_d, real, fake_for_d, accelerator, labels=y_d,
                                        poison=poison, codes=None if codes is None else codes[0])
        g_loss = None
        if g_turn:
            g_loss = g_step(fake_for_g, models.D_plain, models.opt_g, cfg.loss, accelerator,
                            labels=None if y_d is None else y_fake[1],
                            codes=None if codes is None else codes[1])
            if models.ema is not None:  # the same on every process: G is identical everywhere
                seen = ((epoch - 1) * steps + step) * cfg.batch_size  # images before this step
                update_ema(models.ema, models.G_plain, ema_beta(cfg.batch_size, seen, cfg.ema_kimg))
        progress.record(d_loss, d_real, d_fake, g_loss)
        progress.steps_done = step + 1
        if on_sync is not None and (progress.steps_done == steps or (sync_every and progress.steps_done % sync_every == 0)):
            if on_sync(progress, step) and progress.steps_done < steps:
                break
    return progress


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
    configure_backends()
    return Accelerator(cpu=use_cpu, mixed_precision=cfg.precision, kwargs_handlers=[timeout],
                       log_with=cfg.log_with, project_dir=str(cfg.run_dir))


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


def sync_interval(device: torch.device) -> int:
    """Steps between sync points (stop agreement, divergence check, logging, timed
    checkpoints). Each costs a small all-reduce and a host sync: nothing next to a CPU
    step, so every step there; on a GPU it would stall the queue of kernels, so every 10."""
    return 1 if device.type == "cpu" else 10


class Diverged(GanError):
    """A loss became NaN or infinite: the run stops without checkpointing the diverged state."""


@dataclass
class RunState:
    """What a checkpoint restores besides weights, optimisers and RNG."""

    epoch: int = 0  # completed epochs
    history: list[dict] = field(default_factory=list)  # metrics rows so far
    partial: dict | None = None  # the epoch in progress, for a mid-epoch checkpoint

    @property
    def elapsed(self) -> float:
        return self.history[-1]["elapsed_seconds"] if self.history else 0.0


def train(cfg: TrainConfig, *, should_stop: StopCheck = lambda: False, fault: FaultHook | None = None) -> int:
    """Train per `cfg` (resume from `cfg.resume` when it names a checkpoint). Returns the
    exit code: 0 finished, EXIT_STOPPED after a stop request (checkpoint saved).

    should_stop: asked at every sync point on every process; the answers are agreed across
    processes (training/stopping.py). fault: a test hook called before every step
    (training/faults.py)."""
    accelerator = make_accelerator(cfg)
    world, rank = accelerator.num_processes, accelerator.process_index
    check_batch_split(cfg.batch_size, world)
    shard = Shard(rank, world, cfg.batch_size)
    data = training_set(cfg, accelerator)  # prepared, packed once, on the device or in host memory
    check_image_shape(cfg.arch, data.shape)
    num_classes = data_classes(data) if cfg.conditional else 0
    spec = NetSpec(arch=cfg.arch, latent_dim=cfg.latent_dim, image_shape=data.shape, d_dropout=cfg.d_dropout,
                   fast_dropout=cfg.fast_dropout, num_classes=num_classes, width=cfg.width,
                   latent_codes=cfg.latent_codes)
    models = build_training_models(cfg, spec, accelerator)

    run = RunDir(cfg.run_dir, is_main=accelerator.is_main_process)
    state = RunState()
    if cfg.resume:
        saved = load_checkpoint(accelerator, Path(cfg.resume))
        if models.ema is not None:
            load_ema(models.ema, Path(cfg.resume))
        state = RunState(int(saved["epoch"]), list(saved["history"]), saved.get("partial"))
        _apply_optimiser_settings(cfg, models)  # --allow-changes may have changed them
    else:
        run.create()
    run.rewrite_metrics(state.history)  # every epoch once: drops rows past the checkpoint
    from gan_dist.nets.describe import describe_models

    steps = len(data) // cfg.batch_size
    run.write_config({**cfg.to_dict(), "resume": None, "world_size": world,
                      "per_process_batch": shard.per_process_batch, "steps_per_epoch": steps,
                      "dataset_size": len(data), "image_shape": list(data.shape), "dataset_info": data.info,
                      "parameters": {"generator": parameter_count(models.G_plain),
                                     "discriminator": parameter_count(models.D_plain)},
                      "architecture": describe_models(models.G_plain, models.D_plain),
                      "num_classes": num_classes, "grid": grid_layout(spec.label_values),
                      "sample_source": "ema" if models.ema is not None else "raw",
                      "generator_files": {"ema": GENERATOR, "raw": GENERATOR_RAW} if models.ema is not None
                      else {"raw": GENERATOR},
                      "env": environment(accelerator)})
    where = {"world_size": world, "num_nodes": num_nodes()}
    resumed_step = (state.partial or {}).get("steps_done", 0)
    run.append_event("resume" if cfg.resume else "start", epoch=state.epoch, step=resumed_step, **where)
    run.write_status("running", epoch=state.epoch, epochs=cfg.epochs)
    tracking = Tracking(accelerator, cfg.log_with, start_step=state.epoch * steps + resumed_step,
                        config=cfg.to_dict())
    accelerator.wait_for_everyone()
    loop = EpochLoop(cfg, accelerator, models, data, shard, run, state, tracking, should_stop, fault)
    try:
        code = loop.run()
    except BaseException as err:
        event = "diverged" if isinstance(err, Diverged) else "failed"
        run.append_event(event, epoch=state.epoch, step=loop.step, reason=str(err), **where)
        run.write_status(event, epoch=state.epoch, epochs=cfg.epochs)
        raise
    if code == 0:
        run.save_generator(models.G_shown, spec, cfg.epochs, final=True)
        if models.ema is not None:
            run.save_generator(models.G_plain, spec, cfg.epochs, final=True, raw=True)
        run.write_status("finished", epoch=cfg.epochs, epochs=cfg.epochs)
        run.append_event("finish", epoch=cfg.epochs, step=0, **where)
    else:
        run.write_status("stopped", epoch=state.epoch, epochs=cfg.epochs)
        run.append_event("stop", epoch=state.epoch, step=loop.step, reason=loop.stop_reason, **where)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also closes the trackers
    return code


def data_classes(data) -> int:
    """Number of classes of the placed training set, for --conditional; one line when it has
    no labels (an unlabelled folder, or a folder with a single class)."""
    if data.labels is None or len(data.labels) == 0:
        raise GanError(f"--conditional needs labelled data, and {data.info['name']} has no labels: "
                       "drop --conditional or use a labelled dataset (folder:PATH with class subfolders)")
    names = data.info.get("classes")
    return len(names) if names else int(data.labels.max()) + 1


def _apply_optimiser_settings(cfg: TrainConfig, models: Models) -> None:
    """load_state restores each optimiser's lr and betas as saved: set the run's own."""
    for opt in (models.opt_g, models.opt_d):
        for group in opt.param_groups:
            group["lr"], group["betas"] = cfg.lr, (cfg.beta1, cfg.beta2)


class EpochLoop:
    """The epochs of one run and what happens at their sync points: stop agreement, the
    divergence guard, per-step logging and time-based mid-epoch checkpoints."""

    def __init__(self, cfg, accelerator, models: Models, data: DeviceData, shard: Shard, run: RunDir,
                 state: RunState, tracking: Tracking, should_stop: StopCheck, fault: FaultHook | None):
        self.cfg, self.accelerator, self.models, self.data, self.shard = cfg, accelerator, models, data, shard
        self.run_dir, self.state, self.tracking = run, state, tracking
        self.should_stop, self.external_fault = should_stop, fault
        self._fault_stop = False  # a "stop" fault (tests) acts as a stop request would
        self.device = accelerator.device
        self.steps = len(data) // cfg.batch_size
        self.rng = StepRandomness(cfg.seed, self.device)
        self.sync_every = sync_interval(self.device)
        self.epoch = state.epoch + 1
        self.step = (state.partial or {}).get("steps_done", 0)
        self.stop_reason: str | None = None
        self._last_checkpoint = time.monotonic()
        self._tic = time.perf_counter()
        self._logged = (None, 0, 0)  # sums, G steps and steps done at the last per-step log

    # ---- epochs ----------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        z_fixed = grid_inputs(cfg.seed, self.models.spec, self.device)
        bar = _progress(self.accelerator.is_main_process)
        with bar:
            task = bar.add_task("epoch", total=cfg.epochs, completed=self.state.epoch)
            for epoch in range(self.state.epoch + 1, cfg.epochs + 1):
                self.epoch = epoch
                progress = (EpochProgress.from_state(self.state.partial, self.shard.rank, self.shard.world, self.device)
                            if self.state.partial
                            else EpochProgress.fresh(self.device))
                self.state.partial = None
                self._tic = time.perf_counter()
                self._logged = (progress.sums.clone(), progress.g_steps, progress.steps_done)
                progress = run_epoch(cfg, epoch, self.models, self.data, self.shard, self.accelerator, rng=self.rng,
                                     progress=progress, fault=self.fault, sync_every=self.sync_every,
                                     on_sync=self.on_sync)
                if self.stop_reason is not None and progress.steps_done < self.steps:
                    self.checkpoint(progress)  # mid-epoch: every process at the same step
                    return EXIT_STOPPED
                row = self.finish_epoch(progress)
                if epoch in cfg.saved_epochs():
                    self.save_samples(z_fixed, epoch)
                if epoch in cfg.eval_epochs and self.accelerator.is_main_process:
                    self.evaluate(epoch)
                self.checkpoint(None)
                self.run_dir.write_status("running", epoch=epoch, epochs=cfg.epochs)
                bar.update(task, completed=epoch, refresh=True,
                           description=f"epoch {epoch}/{cfg.epochs}  G {row['g_loss']:.3f}  D {row['d_loss']:.3f}  "
                                       f"{row['images_per_second']:,.0f} img/s")
                if self.stop_reason is not None and epoch < cfg.epochs:
                    return EXIT_STOPPED
        return 0

    def finish_epoch(self, progress: EpochProgress) -> dict:
        cfg, state = self.cfg, self.state
        sums = self.accelerator.reduce(progress.sums, reduction="mean")  # mean over processes
        steps, g_steps = progress.steps_done, max(progress.g_steps, 1)
        # .tolist() is a host sync: on a GPU the clock stops only after the work
        d_loss, d_real, d_fake, g_loss = (sums / torch.tensor([steps, steps, steps, g_steps],
                                                              device=self.device)).tolist()
        here = torch.tensor([time.perf_counter() - self._tic], device=self.device)
        seconds = progress.seconds + self.accelerator.reduce(here, "mean").item()
        row = {"epoch": self.epoch, "g_loss": g_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
               "seconds": seconds, "images_per_second": steps * cfg.batch_size / seconds,
               "world_size": self.shard.world, "steps": steps, "elapsed_seconds": state.elapsed + seconds}
        state.history.append(row)
        state.epoch = self.epoch
        self.step = 0
        self.run_dir.append_metrics(row)
        self.tracking.epoch_row(row, self.global_step)
        return row

    @property
    def global_step(self) -> int:
        return (self.epoch - 1) * self.steps + self.step if self.step else self.state.epoch * self.steps

    # ---- sync points -----------------------------------------------------------------------
    def fault(self, rank: int, epoch: int, step: int) -> str | None:
        action = self.external_fault(rank, epoch, step) if self.external_fault else None
        if action == "stop":
            self._fault_stop = True
        return action

    def stop_asked(self) -> bool:
        return self._fault_stop or self.should_stop()

    def on_sync(self, progress: EpochProgress, step: int) -> bool:
        """Every sync_every steps: ONE small all-reduce carries the stop requests, the
        timed-checkpoint clock (rank 0's), the divergence flag and the logging window."""
        cfg = self.cfg
        self.step = progress.steps_done
        last_step = progress.steps_done == self.steps
        log_now = self.tracking.active and progress.steps_done - self._logged[2] >= cfg.log_every
        time_due = (self.accelerator.is_main_process and cfg.checkpoint_minutes > 0 and not last_step
                    and time.monotonic() - self._last_checkpoint >= cfg.checkpoint_minutes * 60)
        flags = torch.tensor([float(self.stop_asked()), float(time_due)], device=self.device)
        diverged = (~torch.isfinite(progress.sums)).any().float().unsqueeze(0)
        parts = [flags, diverged]
        if log_now:
            sums0, g0, _ = self._logged
            parts += [progress.sums - sums0, torch.tensor([float(progress.g_steps - g0)], device=self.device)]
        agreed = self.accelerator.reduce(torch.cat(parts), reduction="sum").tolist()
        if agreed[2] > 0:
            self.diverged(step)
        if log_now:
            self._log_window(agreed[3:], progress)
        if agreed[0] > 0 and self.stop_reason is None:
            reason = getattr(self.should_stop, "reason", lambda: None)()
            self.stop_reason = reason or ("--fault stop" if self._fault_stop else "stop request (another process)")
            return True
        if agreed[1] > 0:
            self.checkpoint(progress)
        return False

    def _log_window(self, window: list[float], progress: EpochProgress) -> None:
        """Means over the steps since the last log, over every process."""
        world, steps = self.shard.world, progress.steps_done - self._logged[2]
        d_loss, d_real, d_fake, g_loss, g_steps = window
        values = {"loss/d": d_loss / world / steps, "d/real": d_real / world / steps,
                  "d/fake": d_fake / world / steps}
        if g_steps:
            values["loss/g"] = g_loss / g_steps  # g_steps is summed over processes too
        self.tracking.scalars(values, self.global_step)
        self._logged = (progress.sums.clone(), progress.g_steps, progress.steps_done)

    def diverged(self, step: int) -> None:
        newest = newest_checkpoint(self.run_dir.checkpoints)
        where = f"at epoch {self.epoch}, step {step + 1} of {self.steps}"
        if self.sync_every > 1:
            where += f" (checked every {self.sync_every} steps)"
        if newest is None:
            raise Diverged(f"training diverged: a loss became NaN or infinite {where}, before any checkpoint; "
                           "start again with a lower --lr or another --seed")
        raise Diverged(f"training diverged: a loss became NaN or infinite {where}; nothing diverged was saved; "
                       f"the newest good checkpoint is {newest}: continue from it with a lower learning rate, "
                       f"e.g. --resume {newest} --allow-changes --lr {self.cfg.lr / 2:g}")

    # ---- writing -------------------------------------------------------------------------
    def checkpoint(self, progress: EpochProgress | None) -> None:
        """Collective. None: at the end of an epoch; else mid-epoch with the partial statistics."""
        partial = None
        if progress is not None:
            here = torch.tensor([time.perf_counter() - self._tic], device=self.device)
            partial = progress.to_state(self.accelerator)
            partial["seconds"] = progress.seconds + self.accelerator.reduce(here, "mean").item()
        step = partial["steps_done"] if partial else 0
        ema = self.models.ema
        save_checkpoint(self.accelerator, self.run_dir,
                        {"epoch": self.state.epoch, "step": step, "partial": partial, "history": self.state.history,
                         "world_size": self.shard.world, "config": self.cfg.to_dict(),
                         "ema": {"file": EMA_FILE, "ema_kimg": self.cfg.ema_kimg} if ema is not None else None},
                        keep=self.cfg.keep_checkpoints,
                        extra=(lambda folder: save_ema(ema, folder)) if ema is not None else None)
        self._last_checkpoint = time.monotonic()

    def save_samples(self, grid_in, epoch: int) -> None:
        """The fixed-noise grid (drawn by the EMA when there is one) and the kept generator(s)."""
        if not self.run_dir.is_main:
            return
        z, labels = grid_in
        G = self.models.G_shown
        was_training = G.training
        G.eval()
        with torch.no_grad():
            images = (G(z) if labels is None else G(z, labels)).float().cpu()
        G.train(was_training)
        self.run_dir.save_sample_grid(epoch, images, nrow=grid_layout(self.models.spec.label_values)["cols"])
        self.run_dir.save_generator(G, self.models.spec, epoch)
        if self.models.ema is not None:
            self.run_dir.save_generator(self.models.G_plain, self.models.spec, epoch, raw=True)
        self.tracking.images("samples", images, self.global_step)

    def evaluate(self, epoch: int) -> None:
        from gan_dist.metrics.quality import evaluate_generator_into_run

        row = evaluate_generator_into_run(self.run_dir, self.models.G_shown, epoch)
        self.tracking.quality(row, self.global_step)


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
