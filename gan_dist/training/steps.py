"""One training step: its inputs (`draw_step`), and the two updates of Algorithm 1, a
discriminator step and a generator step (`train_step` runs them, then the EMA).

Labels are part of the interface from the start (StyleGAN2-ADA's loss takes `c`): `None` for
unconditional networks, else the class of every image the network sees. `codes`: the InfoGAN
latent codes the fakes were drawn with (a D with a code head), else `None`; both steps then
add code_loss, so Q (in the D step) and G (in the G step) learn to keep the code readable.

The adversarial loss is LOSSES[cfg.loss] (training/losses.py); R1/R2 (training/penalties.py)
are taken on the images before augmentation, in the same backward as the loss (one DDP
all-reduce); DiffAugment (training/augment.py) acts on every image D sees, in both steps,
drawing from the step's own (seed, epoch, step) stream in a fixed order: D's real half, D's
fake half, then (relativistic loss only) G's real batch, then G's fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from gan_dist.training.augment import augment as diff_augment
from gan_dist.training.ema import ema_beta, update_ema
from gan_dist.training.losses import CODE_LOSS_WEIGHT, LOSSES, code_loss, overfitting_signs
from gan_dist.training.penalties import lazy_gamma, penalty_due, r1_r2_penalties


@dataclass
class StepBatch:
    """One step's inputs on this process (b = the per-process batch)."""

    real: torch.Tensor  # (b, C, H, W) in [-1, 1]
    z: torch.Tensor  # (2, b, latent_dim): for the D step and for the G step
    g_turn: bool  # Algorithm 1: k D steps, then one G step
    fake_labels: torch.Tensor | None = None  # (2, b): G's second input (classes or codes), D step and G step
    d_labels: torch.Tensor | None = None  # (2b,): the classes of D's batch, real then fake (conditional)
    codes: torch.Tensor | None = None  # (2, b): the InfoGAN codes Q must read back

    @property
    def g_labels(self) -> torch.Tensor | None:
        """The classes of the G step's fakes (conditional runs; a codes run's D takes none)."""
        return None if self.d_labels is None else self.fake_labels[1]

    @property
    def real_labels(self) -> torch.Tensor | None:
        return None if self.d_labels is None else self.d_labels[: len(self.real)]


@dataclass
class Augmenter:
    """DiffAugment for one step on this process: the ops, their probability, and the step's
    random stream, drawn for the GLOBAL batch (this process keeps its `rows`), so N processes
    augment as one does."""

    ops: tuple[str, ...]
    p: float
    generator: torch.Generator
    rows: slice
    global_batch: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.ops, self.p, self.generator, rows=self.rows, batch=self.global_batch)


class StepStats(NamedTuple):
    """One step's detached statistics, summed per epoch by training/progress.py."""

    d_loss: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor
    g_loss: torch.Tensor | None
    r1: torch.Tensor  # the R1 term as applied this step (gamma x N on a lazy step, 0 between)
    r2: torch.Tensor
    signs: torch.Tensor | None  # (2,): ADA's sign sum and count, when p is adjusted (auto)


def draw_step(cfg, spec, rng, data, order: torch.Tensor, position, shard) -> StepBatch:
    """The inputs of the step at `position`: its real rows of the epoch's `order` (steps,
    per_process), and noise, classes or codes from the (seed, epoch, step) streams."""
    epoch, step = position.epoch, position.step
    z = rng.noise(epoch, step, cfg.batch_size, cfg.latent_dim)[:, shard.rows()]
    real, real_labels = data.batch(order[step])
    if cfg.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    batch = StepBatch(real, z, g_turn=(step + 1) % cfg.k_disc == 0)
    if spec.num_classes:
        batch.fake_labels = rng.fake_labels(epoch, step, cfg.batch_size, spec.num_classes)[:, shard.rows()]
        batch.d_labels = torch.cat([real_labels, batch.fake_labels[0]])
    elif spec.latent_codes:  # G's second input; D is unconditional and predicts them
        batch.fake_labels = batch.codes = rng.fake_labels(epoch, step, cfg.batch_size,
                                                          spec.latent_codes)[:, shard.rows()]
    return batch


def penalty_gammas(cfg, global_step: int) -> tuple[float, float]:
    """(R1, R2) gammas of the D step at `global_step`: every step, or gamma x N on every N-th
    (StyleGAN2's lazy regularisation: the same average pull, a fraction of the cost)."""
    if not (cfg.r1 or cfg.r2) or not penalty_due(global_step, cfg.reg_interval):
        return 0.0, 0.0
    return lazy_gamma(cfg.r1, cfg.reg_interval), lazy_gamma(cfg.r2, cfg.reg_interval)


def train_step(cfg, models, batch: StepBatch, accelerator, *, images_seen: int, gammas=(0.0, 0.0),
               augment: Augmenter | None = None, ada: bool = False) -> StepStats:
    """One D update and, on G's turn, one G update and the EMA's. `images_seen`: global images
    before this step (the EMA's ramp-up); `gammas`: this step's (R1, R2) (penalty_gammas);
    `augment`: this step's DiffAugment, if any; `ada`: also return ADA's signs."""
    labels = batch.fake_labels if batch.fake_labels is not None else (None, None)
    fake_for_d, fake_for_g = generator_forwards(models.G, models.G_plain, batch.z[0],
                                                batch.z[1] if batch.g_turn else None, accelerator, *labels)
    d = d_step(models.D, models.opt_d, batch.real, fake_for_d, accelerator, labels=batch.d_labels,
               codes=None if batch.codes is None else batch.codes[0], loss=cfg.loss, r1=gammas[0], r2=gammas[1],
               augment=augment, ada=ada)
    g_loss = None
    if batch.g_turn:
        g_loss = g_step(fake_for_g, models.D_plain, models.opt_g, cfg.loss, accelerator, labels=batch.g_labels,
                        codes=None if batch.codes is None else batch.codes[1], real=batch.real,
                        real_labels=batch.real_labels, augment=augment)
        if models.ema is not None:  # the same on every process: G is identical everywhere
            update_ema(models.ema, models.G_plain, ema_beta(cfg.batch_size, images_seen, cfg.ema_kimg))
    return StepStats(d.loss, d.d_real, d.d_fake, g_loss, d.r1, d.r2, d.signs)


def _call(net, x, labels, groups: int = 1):
    if groups > 1:
        return net(x, labels, groups=groups)
    return net(x) if labels is None else net(x, labels)


def _groups(D) -> int:
    """2 for a discriminator with BatchNorm (real and fake normalised apart), else 1."""
    return 2 if getattr(getattr(D, "module", D), "batch_groups", False) else 1


def generator_forwards(G, G_plain, z_for_d, z_for_g, accelerator, labels_for_d=None, labels_for_g=None):
    """G's two forwards of a step: G(z) for the D step (no graph) and, on G's turn, G(z)
    for the G step (with graph; its backward comes after the D update, which leaves G
    unchanged). One autocast region, so mixed precision casts G's weights once, not twice."""
    with accelerator.autocast():
        fake_for_g = _call(G, z_for_g, labels_for_g) if z_for_g is not None else None  # first: cached casts keep grad
        with torch.no_grad():
            fake_for_d = _call(G_plain, z_for_d, labels_for_d)
    return fake_for_d, fake_for_g


class DStep(NamedTuple):
    loss: torch.Tensor  # the adversarial loss (+ the InfoGAN code loss); penalties apart
    d_real: torch.Tensor  # mean sigmoid(D(x_r))
    d_fake: torch.Tensor  # mean sigmoid(D(G(z)))
    r1: torch.Tensor
    r2: torch.Tensor
    signs: torch.Tensor | None


def d_step(D, opt_d, real, fake, accelerator, labels=None, codes=None, *, loss: str = "nonsaturating",
           r1: float = 0.0, r2: float = 0.0, augment=None, ada: bool = False) -> DStep:
    """One discriminator update on a real batch and a (detached) fake one. Real and fake go
    through D in one batch: one DDP forward, one all-reduce. `labels`: the classes of
    torch.cat([real, fake]), or None. `r1`, `r2`: this step's gammas (0: no penalty), taken on
    the images before `augment`. With packing D returns one logit per pack, real packs first.

    A discriminator with BatchNorm normalises the real half and the fake half apart
    (groups=2), as DCGAN's separate D(real) and D(fake) passes do: calling a DDP module twice
    before one backward breaks its reducer ("Expected to mark a variable ready only once"),
    and statistics over the mixed batch made D win outright here (measured: D loss 0.007,
    G loss 6.9 after 4 epochs at 28 px), while the G step's fake-only batch matches the fake
    half's statistics.

    The penalties' input gradient is torch.autograd.grad(create_graph=True): out of place, so
    DDP's hooks do not fire for it; the one backward of loss + penalties reaches every weight
    and DDP all-reduces once (pytorch#63812)."""
    penalised = r1 > 0 or r2 > 0
    with accelerator.autocast():
        x = torch.cat([real, fake])
        if penalised:
            x = x.detach().requires_grad_(True)
        seen = x if augment is None else torch.cat([augment(x[: len(real)]), augment(x[len(real):])])
        logits = _call(D, seen, labels, _groups(D))
        if codes is not None:
            logits, code_logits = logits
        n = logits.shape[0] // 2  # real logits first (one per image, or per pack)
        real_logits, fake_logits = logits[:n], logits[n:]
        total = LOSSES[loss].d_loss(real_logits, fake_logits)
        if codes is not None:  # Q reads the fakes' codes (the real half's code logits are unused)
            total = total + CODE_LOSS_WEIGHT * code_loss(code_logits[n:], codes)
        if penalised:
            r1_term, r2_term = r1_r2_penalties(logits, x, len(real), r1, r2)
    opt_d.zero_grad(set_to_none=True)
    accelerator.backward(total + r1_term + r2_term if penalised else total)
    opt_d.step()
    with torch.no_grad():
        zero = total.new_zeros((), dtype=torch.float32)
        signs = None
        if ada:
            s = overfitting_signs(real_logits, fake_logits, loss)
            signs = torch.stack([s.sum(), torch.tensor(float(s.numel()), device=s.device)])
        return DStep(total.detach().float(), torch.sigmoid(real_logits.float()).mean(),
                     torch.sigmoid(fake_logits.float()).mean(), r1_term.detach() if penalised else zero,
                     r2_term.detach() if penalised else zero, signs)


def g_step(fake, D_plain, opt_g, loss_kind, accelerator, labels=None, codes=None, *, real=None, real_labels=None,
           augment=None):
    """One generator update from `fake` = G(z), made with its graph; returns the detached loss.
    (A discriminator with BatchNorm sees a fake-only batch, normalised as the D step's fake half.)
    The relativistic loss also reads D(x_r) on `real`, without a graph: it depends on D alone.

    D is used unwrapped, so DDP's reducer for D never sees this forward, and backward
    computes gradients for G's weights only (`inputs=`): D's weight gradients are neither
    computed nor all-reduced. No `requires_grad` toggling, which would also invalidate
    (or, pytorch#139476, silently reuse) compiled graphs."""
    kind = LOSSES[loss_kind]
    with accelerator.autocast():
        real_logits = None
        if kind.g_needs_real:
            with torch.no_grad():
                real_logits = _call(D_plain, real if augment is None else augment(real), real_labels)
                if codes is not None:
                    real_logits = real_logits[0]
        logits = _call(D_plain, fake if augment is None else augment(fake), labels)
        if codes is not None:
            logits, code_logits = logits
        loss = kind.g_loss(logits, real_logits)
        if codes is not None:  # G keeps its code readable to Q
            loss = loss + CODE_LOSS_WEIGHT * code_loss(code_logits, codes)
    opt_g.zero_grad(set_to_none=True)
    accelerator.backward(loss, inputs=list(opt_g.param_groups[0]["params"]))
    opt_g.step()
    return loss.detach().float()
