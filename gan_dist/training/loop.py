"""The training loop: Algorithm 1 of Goodfellow et al. (2014), data-parallel via Accelerate.

`train()` reads top-down, as StyleGAN2-ADA's training_loop() does: set up, resume, announce,
then one loop over steps. Its only counter is a Position (training/position.py). At sync
points one block does the maintenance: the processes agree in ONE all-reduce on a stop, a due
checkpoint, divergence and the logging window, and then act in plain sequence: log, close the
epoch (metrics row, samples, evaluation, checkpoint), or checkpoint mid-epoch, or stop.

Every random choice is a function of (seed, epoch, step) (training/randomness.py), so a run
gives the same numbers on 1 or N processes and a resume at any step repeats the uninterrupted
run exactly. Nothing here reads the environment: it arrives as a RunEnvironment.
"""

from __future__ import annotations

import contextlib
import platform
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gan_dist import __version__
from gan_dist.config import TrainConfig, check_batch_split, check_pack_split
from gan_dist.datasets.resident import training_set
from gan_dist.diskspace import DiskFull
from gan_dist.environment import RunEnvironment
from gan_dist.errors import GanError
from gan_dist.nets import check_image_shape, parameter_count
from gan_dist.nets.generator_io import save_generator
from gan_dist.progress_bar import progress_bar
from gan_dist.rundir import RunDir, generator_record
from gan_dist.training.augment import AdaController
from gan_dist.training.backends import configure_backends
from gan_dist.training.checkpoint import Checkpointer
from gan_dist.training.crowding import warn_if_crowded
from gan_dist.training.faults import NO_HOOKS, StepHooks
from gan_dist.training.grids import draw_grid, grid_inputs, grid_layout
from gan_dist.training.models import (
    Models,
    apply_optimiser_settings,
    build_training_models,
    net_spec,
)
from gan_dist.training.position import Position
from gan_dist.training.precision import PrecisionChoice, settle_precision
from gan_dist.training.progress import EpochProgress, History, LogWindow
from gan_dist.training.randomness import Shard, StepRandomness
from gan_dist.training.space import one_line_when_full
from gan_dist.training.steps import Augmenter, draw_step, penalty_gammas, train_step
from gan_dist.training.stopping import EXIT_STOPPED
from gan_dist.training.tracking import Tracking

StopCheck = Callable[[], bool]


class Diverged(GanError):
    """A loss became NaN or infinite: the run stops without checkpointing the diverged state."""


@one_line_when_full  # a full disk or quota ends the run with one line (training/space.py)
def train(cfg: TrainConfig, env: RunEnvironment, *, should_stop: StopCheck = lambda: False,
          hooks: StepHooks = NO_HOOKS) -> int:
    """Train per `cfg` (resume from `cfg.resume` when it names a checkpoint). Returns the exit
    code: 0 finished, EXIT_STOPPED after a stop request (checkpoint saved).

    should_stop: asked at every sync point on every process; the answers are agreed across
    processes (training/stopping.py). hooks: act from outside the step (training/faults.py)."""
    # Processes, devices and the training set.
    cfg, precision = settle_precision(cfg, uses_device(cfg))  # 'auto' made concrete; slow bf16 refused
    accelerator = make_accelerator(cfg, env)
    shard = Shard(accelerator.process_index, accelerator.num_processes, cfg.batch_size)
    check_pack_split(check_batch_split(cfg.batch_size, shard.world), cfg.pack)
    data = training_set(cfg, accelerator)  # prepared, packed once, on the device or in host memory
    check_image_shape(cfg.arch, data.shape)
    device, steps = accelerator.device, len(data) // cfg.batch_size

    if cfg.eval_epochs:  # evaluation during training caches its real statistics where the environment says
        from gan_dist.metrics.quality import use_cache_dir

        use_cache_dir(env.cache_dir)

    # Networks, optimisers and the EMA, identical on every process; DiffAugment's p (fixed, or
    # ADA's controller, which checkpoints save).
    models = build_training_models(cfg, net_spec(cfg, data), accelerator)
    ada = (AdaController(target=cfg.ada_target, ada_kimg=cfg.ada_kimg)
           if cfg.augment_ops and cfg.augment_probability is None else None)

    # Resume from a checkpoint, or start the run directory.
    run = RunDir(cfg.run_dir, is_main=accelerator.is_main_process)
    checkpointer = Checkpointer(run, accelerator, keep=cfg.keep_checkpoints, every_minutes=cfg.checkpoint_minutes)
    tensor_state = {"ema": models.ema} if models.ema is not None else {}
    position, progress, history = Position(0, 0, steps), EpochProgress.fresh(device), History()
    if cfg.resume:
        position, saved = checkpointer.restore(Path(cfg.resume), steps, tensor_state=tensor_state)
        history.load_state_dict(saved)
        if ada is not None and saved.get("augment"):
            ada.load_state_dict({**saved["augment"], "target": cfg.ada_target, "ada_kimg": cfg.ada_kimg})  # p goes on
        if saved.get("partial"):
            progress.load_state_dict(saved["partial"], shard.rank, shard.world)
        apply_optimiser_settings(cfg, models)
    else:
        run.create()

    # Announce the run: config.json, the start event, the status, the trackers; a CPU run on a
    # machine already busy says so (after every refusal of bad input, which stays one line).
    if device.type == "cpu":
        warn_if_crowded(env)
    run.rewrite_metrics(history.rows)  # every epoch once: drops rows past the checkpoint
    run.write_config(run_record(cfg, env, accelerator, data, models, shard, precision))
    where = {"world_size": shard.world, "num_nodes": env.nodes}
    run.append_event("resume" if cfg.resume else "start", epoch=position.epochs_done, step=position.step, **where)
    run.write_status("running", epoch=position.epochs_done, epochs=cfg.epochs)
    tracking = Tracking(accelerator, cfg.log_with, start_step=position.global_step, config=cfg.to_dict())
    accelerator.wait_for_everyone()

    # Train: one loop over steps, with the maintenance at sync points.
    rng = StepRandomness(cfg.seed, device)
    grid = grid_inputs(cfg.seed, models.spec, device)
    sync_every = sync_interval(device)
    order = rng.order(position.epoch, len(data), steps, cfg.batch_size)[:, shard.rows()]  # (steps, per_process)
    window = LogWindow.start(progress, position.step)
    ada_signs, since_sync = torch.zeros(2, device=device), 0  # ADA's sign sum and count, steps since the last sync
    progress.restart_clock()
    stop_reason: str | None = None
    bar = progress_bar(enabled=accelerator.is_main_process, terminal_only=False, auto_refresh=False)
    try:
        with bar:
            task = bar.add_task("epoch", total=cfg.epochs, completed=position.epochs_done)
            while position.epochs_done < cfg.epochs:
                hooks.before_step(shard.rank, position, models)
                batch = draw_step(cfg, models.spec, rng, data, order, position, shard)
                augment = None
                if cfg.augment_ops:
                    p = ada.p if ada is not None else cfg.augment_probability
                    augment = Augmenter(cfg.augment_ops, p, rng.augment(position.epoch, position.step), shard.rows(),
                                        cfg.batch_size)
                rng.seed_dropout(position.epoch, position.step, shard.rank)
                stats = train_step(cfg, models, batch, accelerator, images_seen=position.global_step * cfg.batch_size,
                                   gammas=penalty_gammas(cfg, position.global_step), augment=augment,
                                   ada=ada is not None)
                progress.record(stats)
                if ada is not None:
                    ada_signs += stats.signs
                since_sync += 1
                position = position.advanced()
                if not (position.at_epoch_end or position.step % sync_every == 0):
                    continue

                # ---- maintenance at a sync point: agree once, then act in sequence ----------
                log_now = tracking.active and window.due(position.step, cfg.log_every)
                agreed = agree(accelerator, progress, stop=bool(should_stop() or hooks.stop_reason()),
                               checkpoint_due=accelerator.is_main_process and checkpointer.due(position),
                               window=window.delta(progress) if log_now else None,
                               ada_signs=ada_signs if ada is not None else None)
                if agreed.diverged:
                    raise Diverged(divergence_message(position, checkpointer.newest(), cfg.lr, sync_every))
                if ada is not None:  # every process moves p the same way, from every process's signs
                    ada.observe(*agreed.ada_signs)
                    ada.step(since_sync * cfg.batch_size, d_steps=since_sync)
                    ada_signs.zero_()
                since_sync = 0
                if agreed.window is not None:
                    values = LogWindow.means(agreed.window, shard.world, position.step - window.step,
                                             penalties=bool(cfg.r1 or cfg.r2))
                    tracking.scalars(values | ({"augment/p": ada.p} if ada is not None else {}), position.global_step)
                    window = LogWindow.start(progress, position.step)
                if agreed.stop and stop_reason is None:
                    stop_reason = (getattr(should_stop, "reason", lambda: None)() or hooks.stop_reason()
                                   or "stop request (another process)")

                if position.at_epoch_end:  # close the epoch: row, samples, evaluation, checkpoint
                    row = epoch_row(accelerator, progress, position, cfg, shard, history, ada)
                    position = position.closed_epoch()
                    history.append(row)
                    run.append_metrics(row)
                    tracking.epoch_row(row, position.global_step)
                    if position.epochs_done in cfg.saved_epochs():
                        images = draw_grid(models.G_shown, grid)
                        run.save_sample_grid(position.epochs_done, images, nrow=grid_layout(models.spec.label_values)["cols"])
                        save_generators(run, models, position.epochs_done)
                        tracking.images("samples", images, position.global_step)
                    if position.epochs_done in cfg.eval_epochs and accelerator.is_main_process:
                        from gan_dist.metrics.quality import evaluate_generator_into_run

                        quality = evaluate_generator_into_run(run, models.G_shown, position.epochs_done)
                        tracking.quality(quality, position.global_step)
                    checkpointer.save(position, checkpoint_state(cfg, shard, history, models, ada=ada),
                                      tensor_state=tensor_state)
                    run.write_status("running", epoch=position.epochs_done, epochs=cfg.epochs)
                    bar.update(task, completed=position.epochs_done, refresh=True, description=_bar_text(row, cfg))
                    if stop_reason is not None and position.epochs_done < cfg.epochs:
                        break
                    progress = EpochProgress.fresh(device)  # the next epoch; its clock starts now
                    window = LogWindow.start(progress, 0)
                    order = rng.order(position.epoch, len(data), steps, cfg.batch_size)[:, shard.rows()]
                elif stop_reason is not None or agreed.checkpoint_due:  # mid-epoch, every process at this step
                    partial = progress.state_dict(accelerator, position.step)
                    checkpointer.save(position, checkpoint_state(cfg, shard, history, models, partial, ada=ada),
                                      tensor_state=tensor_state)
                    if stop_reason is not None:
                        break
    except BaseException as err:
        event = "diverged" if isinstance(err, Diverged) else "failed"
        with contextlib.suppress(DiskFull):  # on a full disk the record may not fit: the error still tells
            run.append_event(event, epoch=position.epochs_done, step=position.step, reason=str(err), **where)
            run.write_status(event, epoch=position.epochs_done, epochs=cfg.epochs)
        raise

    # Finish: the final generators, or the record of the stop.
    if position.epochs_done == cfg.epochs:
        save_generators(run, models, cfg.epochs, final=True)
        run.write_status("finished", epoch=cfg.epochs, epochs=cfg.epochs)
        run.append_event("finish", epoch=cfg.epochs, step=0, **where)
        code = 0
    else:
        run.write_status("stopped", epoch=position.epochs_done, epochs=cfg.epochs)
        run.append_event("stop", epoch=position.epochs_done, step=position.step, reason=stop_reason, **where)
        code = EXIT_STOPPED
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also closes the trackers
    return code


# ---- set-up -------------------------------------------------------------------------------
def make_accelerator(cfg: TrainConfig, env: RunEnvironment):
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    use_cpu = uses_device(cfg) == "cpu"
    # A peer that is gone without closing its sockets fails the run after this, not 30 min.
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=env.collective_timeout_seconds))
    configure_backends()
    return Accelerator(cpu=use_cpu, mixed_precision=cfg.precision, kwargs_handlers=[timeout],
                       log_with=cfg.log_with, project_dir=str(cfg.run_dir))


def uses_device(cfg: TrainConfig) -> str:
    """"cpu" or "cuda": the kind of device this process trains on."""
    return "cpu" if cfg.cpu or not torch.cuda.is_available() else "cuda"


def sync_interval(device: torch.device) -> int:
    """Steps between sync points (stop agreement, divergence check, logging, timed
    checkpoints). Each costs a small all-reduce and a host sync: nothing next to a CPU
    step, so every step there; on a GPU it would stall the queue of kernels, so every 10."""
    return 1 if device.type == "cpu" else 10


def run_record(cfg: TrainConfig, env: RunEnvironment, accelerator, data, models: Models, shard: Shard,
               precision: PrecisionChoice) -> dict:
    """config.json: every resolved option, and what this run ran on and with."""
    from gan_dist.nets.describe import describe_models

    return {**cfg.to_dict(), "resume": None, "world_size": shard.world,
            "per_process_batch": shard.per_process_batch, "steps_per_epoch": len(data) // cfg.batch_size,
            "dataset_size": len(data), "image_shape": list(data.shape), "dataset_info": data.info,
            "parameters": {"generator": parameter_count(models.G_plain),
                           "discriminator": parameter_count(models.D_plain)},
            "architecture": describe_models(models.G_plain, models.D_plain),
            "num_classes": models.spec.num_classes, "grid": grid_layout(models.spec.label_values),
            "precision_choice": precision.record(),
            **generator_record(models.ema is not None), "loss_terms": loss_terms(cfg, models.spec),
            "env": host_record(accelerator, env), "environment_variables": env.record()}


def loss_terms(cfg: TrainConfig, spec) -> dict[str, str]:
    """What the logged losses hold, term by term (metrics.jsonl and the trackers)."""
    from gan_dist.training.losses import LOSSES

    code = " + InfoGAN code cross-entropy" if spec.latent_codes else ""
    terms = {"d_loss": LOSSES[cfg.loss].d_terms + code, "g_loss": LOSSES[cfg.loss].g_terms + code}
    lazy = f", gamma x {cfg.reg_interval} on every {cfg.reg_interval}th D step, 0 between" if cfg.reg_interval > 1 else ""
    for key, images in (("r1", "real"), ("r2", "generated")):
        if getattr(cfg, key):
            terms[f"{key}_penalty"] = (f"(gamma/2) E|grad_x D(x)|^2 on {images} images before augmentation, "
                                       f"gamma {getattr(cfg, key):g}{lazy}; logged apart, not in d_loss")
    return terms


def host_record(accelerator, env: RunEnvironment) -> dict:
    import accelerate

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"gan_dist": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "device": device.type, "device_name": name,
            "hostname": socket.gethostname(), "platform": platform.platform(),
            "num_nodes": env.nodes, "threads_per_process": torch.get_num_threads(),
            "distributed_type": str(accelerator.distributed_type)}


# ---- the maintenance block's pieces ----------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """What every process agreed on at a sync point."""

    stop: bool
    checkpoint_due: bool
    diverged: bool
    window: list[float] | None  # the logging window's sums over every process, when logging
    ada_signs: list[float] | None  # ADA's sign sum and count over every process, since the last sync


def agree(accelerator, progress: EpochProgress, *, stop: bool, checkpoint_due: bool,
          window: torch.Tensor | None, ada_signs: torch.Tensor | None = None) -> Agreement:
    """Collective: ONE small all-reduce carries the stop requests, the timed-checkpoint clock
    (rank 0's), the divergence flag, ADA's signs and the logging window."""
    device = progress.sums.device
    parts = [torch.tensor([float(stop), float(checkpoint_due)], device=device),
             (~torch.isfinite(progress.sums)).any().float().unsqueeze(0)]
    if ada_signs is not None:
        parts.append(ada_signs)
    if window is not None:
        parts.append(window)
    summed = accelerator.reduce(torch.cat(parts), reduction="sum").tolist()
    signs, rest = (summed[3:5], summed[5:]) if ada_signs is not None else (None, summed[3:])
    return Agreement(summed[0] > 0, summed[1] > 0, summed[2] > 0, rest if window is not None else None, signs)


def divergence_message(position: Position, newest: Path | None, lr: float, sync_every: int) -> str:
    where = f"at {position.describe()}"
    if sync_every > 1:
        where += f" (checked every {sync_every} steps)"
    if newest is None:
        return (f"training diverged: a loss became NaN or infinite {where}, before any checkpoint; "
                "start again with a lower --lr or another --seed")
    return (f"training diverged: a loss became NaN or infinite {where}; nothing diverged was saved; "
            f"the newest good checkpoint is {newest}: continue from it with a lower learning rate, "
            f"e.g. --resume {newest} --allow-changes --lr {lr / 2:g}")


def epoch_row(accelerator, progress: EpochProgress, position: Position, cfg: TrainConfig, shard: Shard,
              history: History, ada: AdaController | None = None) -> dict:
    """Collective: the epoch's metrics.jsonl row, means over every step on every process; the
    penalties (mean term per D step, as applied) and DiffAugment's p when the run has them."""
    sums = accelerator.reduce(progress.sums, reduction="mean")  # mean over processes
    steps, g_steps = position.step, max(progress.g_steps, 1)
    # .tolist() is a host sync: on a GPU the clock stops only after the work
    d_loss, d_real, d_fake, g_loss, r1, r2 = (sums / torch.tensor([steps, steps, steps, g_steps, steps, steps],
                                                                  device=sums.device)).tolist()
    seconds = progress.elapsed_seconds(accelerator)
    row = {"epoch": position.epoch, "g_loss": g_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
           "seconds": seconds, "images_per_second": steps * cfg.batch_size / seconds,
           "world_size": shard.world, "steps": steps, "elapsed_seconds": history.elapsed_seconds + seconds}
    if cfg.r1:
        row["r1_penalty"] = r1
    if cfg.r2:
        row["r2_penalty"] = r2
    if cfg.augment_ops:
        row["augment_p"] = ada.p if ada is not None else cfg.augment_probability
    return row


def checkpoint_state(cfg: TrainConfig, shard: Shard, history: History, models: Models,
                     partial: dict | None = None, *, ada: AdaController | None = None) -> dict:
    """trainer_state.json besides the position: the epoch in progress (mid-epoch), the history,
    the config, ADA's controller (so a resumed run continues with the same p) and what the
    tensor pieces are."""
    from gan_dist.training.ema import EMA_FILE

    ema = {"file": EMA_FILE, "ema_kimg": cfg.ema_kimg} if models.ema is not None else None
    state = {"partial": partial, **history.state_dict(), "world_size": shard.world, "config": cfg.to_dict(),
             "ema": ema}
    if ada is not None:
        state["augment"] = ada.state_dict()
    return state


def save_generators(run: RunDir, models: Models, epoch: int, *, final: bool = False) -> None:
    """The generator shown (the EMA if any) and, beside an EMA, the trained G: kept per sample
    epoch under generators/, or as the run's final generator files. Main process only."""
    if not run.is_main:
        return
    kept = [(models.G_shown, False)] + ([(models.G_plain, True)] if models.ema is not None else [])
    for generator, raw in kept:
        path = run.generator_file(None if final else epoch, raw=raw)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_generator(generator, path, spec=models.spec, epoch=epoch)


def _bar_text(row: dict, cfg: TrainConfig) -> str:
    return (f"epoch {row['epoch']}/{cfg.epochs}  G {row['g_loss']:.3f}  D {row['d_loss']:.3f}  "
            f"{row['images_per_second']:,.0f} img/s")
