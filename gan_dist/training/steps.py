"""One training step: its inputs (`draw_step`), and the two updates of Algorithm 1, a
discriminator step and a generator step (`train_step` runs them, then the EMA).

Labels are part of the interface from the start (StyleGAN2-ADA's loss takes `c`): `None` for
unconditional networks, else the class of every image the network sees. `codes`: the InfoGAN
latent codes the fakes were drawn with (a D with a code head), else `None`; both steps then
add code_loss, so Q (in the D step) and G (in the G step) learn to keep the code readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gan_dist.training.ema import ema_beta, update_ema
from gan_dist.training.losses import CODE_LOSS_WEIGHT, code_loss, discriminator_loss, generator_loss


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


def train_step(cfg, models, batch: StepBatch, accelerator, *, images_seen: int):
    """One D update and, on G's turn, one G update and the EMA's; returns the detached
    (d_loss, mean D(x), mean D(G(z)), g_loss or None). `images_seen`: global images before this
    step (the EMA's ramp-up)."""
    labels = batch.fake_labels if batch.fake_labels is not None else (None, None)
    fake_for_d, fake_for_g = generator_forwards(models.G, models.G_plain, batch.z[0],
                                                batch.z[1] if batch.g_turn else None, accelerator, *labels)
    d_loss, d_real, d_fake = d_step(models.D, models.opt_d, batch.real, fake_for_d, accelerator,
                                    labels=batch.d_labels, codes=None if batch.codes is None else batch.codes[0])
    g_loss = None
    if batch.g_turn:
        g_loss = g_step(fake_for_g, models.D_plain, models.opt_g, cfg.loss, accelerator, labels=batch.g_labels,
                        codes=None if batch.codes is None else batch.codes[1])
        if models.ema is not None:  # the same on every process: G is identical everywhere
            update_ema(models.ema, models.G_plain, ema_beta(cfg.batch_size, images_seen, cfg.ema_kimg))
    return d_loss, d_real, d_fake, g_loss


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


def d_step(D, opt_d, real, fake, accelerator, labels=None, codes=None):
    """One discriminator update on a real batch and a (detached) fake one; returns detached
    (loss, mean D(x), mean D(G(z))). Real and fake go through D in one batch: one DDP
    forward, one all-reduce. `labels`: the classes of torch.cat([real, fake]), or None.

    A discriminator with BatchNorm normalises the real half and the fake half apart
    (groups=2), as DCGAN's separate D(real) and D(fake) passes do: calling a DDP module twice
    before one backward breaks its reducer ("Expected to mark a variable ready only once"),
    and statistics over the mixed batch made D win outright here (measured: D loss 0.007,
    G loss 6.9 after 4 epochs at 28 px), while the G step's fake-only batch matches the fake
    half's statistics."""
    with accelerator.autocast():
        logits = _call(D, torch.cat([real, fake]), labels, _groups(D))
        if codes is not None:
            logits, code_logits = logits
        real_logits, fake_logits = logits[: len(real)], logits[len(real):]
        loss = discriminator_loss(real_logits, fake_logits)
        if codes is not None:  # Q reads the fakes' codes (the real half's code logits are unused)
            loss = loss + CODE_LOSS_WEIGHT * code_loss(code_logits[len(real):], codes)
    opt_d.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    opt_d.step()
    with torch.no_grad():
        return loss.detach().float(), torch.sigmoid(real_logits.float()).mean(), torch.sigmoid(fake_logits.float()).mean()


def g_step(fake, D_plain, opt_g, loss_kind, accelerator, labels=None, codes=None):
    """One generator update from `fake` = G(z), made with its graph; returns the detached loss.
    (A discriminator with BatchNorm sees a fake-only batch, normalised as the D step's fake half.)

    D is used unwrapped, so DDP's reducer for D never sees this forward, and backward
    computes gradients for G's weights only (`inputs=`): D's weight gradients are neither
    computed nor all-reduced. No `requires_grad` toggling, which would also invalidate
    (or, pytorch#139476, silently reuse) compiled graphs."""
    with accelerator.autocast():
        logits = _call(D_plain, fake, labels)
        if codes is not None:
            logits, code_logits = logits
        loss = generator_loss(logits, loss_kind)
        if codes is not None:  # G keeps its code readable to Q
            loss = loss + CODE_LOSS_WEIGHT * code_loss(code_logits, codes)
    opt_g.zero_grad(set_to_none=True)
    accelerator.backward(loss, inputs=list(opt_g.param_groups[0]["params"]))
    opt_g.step()
    return loss.detach().float()
