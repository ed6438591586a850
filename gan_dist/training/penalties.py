"""Zero-centred gradient penalties on D's inputs (R1 on real images, R2 on generated ones),
and StyleGAN2's lazy-regularisation arithmetic. Pure functions of tensors and numbers.

    R(gamma) = (gamma / 2) * E ||grad_x D(x)||^2

R1 (Mescheder et al. 2018) on real images, R2 on generated ones; R3GAN (Huang et al. 2024)
pairs both with the relativistic loss. The expectation runs over D's outputs: with packing
(one logit per N images) the squared gradient of a logit sums over its N images.

How the D step uses them (one D forward, one backward, one DDP all-reduce):

    x = torch.cat([real, fake]).detach().requires_grad_(True)   # before augmentation
    logits = D(augment(x), labels)                                # the DDP-wrapped D
    adv = LOSSES[kind].d_loss(logits[:n_real_logits], logits[n_real_logits:])
    r1, r2 = r1_r2_penalties(logits, x, len(real), gamma_r1, gamma_r2)
    accelerator.backward(adv + r1 + r2)

The input gradient comes from torch.autograd.grad(create_graph=True): out of place, so DDP's
reducer hooks do not fire for it; the one ordinary backward afterwards reaches every weight
(the adversarial term uses all of them) and DDP all-reduces once (pytorch#63812).
"""

from __future__ import annotations

import torch


def input_gradient(logits: torch.Tensor, inputs: torch.Tensor, grad_scale: float | None = None) -> torch.Tensor:
    """d(sum of logits)/d inputs, with its graph (so the penalty trains D), in float32.

    Each logit depends on its own images only when D has no batch statistics, so this is the
    per-image gradient of D (DCGAN's BatchNorm couples the images of a batch: then it is the
    gradient of the sum, as StyleGAN2-ADA takes it too). Under autocast the backward runs in
    the dtypes autocast chose for the forward; the gradient arrives in the inputs' dtype
    (float32 images) and the caller squares and sums it in float32 (`penalty`). grad_scale: an
    fp16 GradScaler's current scale -- the logits are scaled before and the gradient
    unscaled after, as PyTorch's AMP notes do for gradient penalties."""
    outputs = logits.float().sum()
    if grad_scale is not None:
        outputs = outputs * grad_scale
    (grad,) = torch.autograd.grad(outputs, inputs, create_graph=True)
    grad = grad.float()
    return grad / grad_scale if grad_scale is not None else grad


def penalty(grad: torch.Tensor, gamma: float, outputs: int) -> torch.Tensor:
    """(gamma / 2) * E ||grad||^2 with the mean over D's `outputs` logits, in float32 even
    inside an autocast region."""
    with torch.autocast(device_type=grad.device.type, enabled=False):
        return 0.5 * gamma * grad.float().square().sum() / outputs


def r1_r2_penalties(logits: torch.Tensor, inputs: torch.Tensor, n_real: int, r1: float, r2: float,
                    grad_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(R1 term, R2 term) from one D forward over `inputs` = cat([real, fake]) (the first
    `n_real` images real; requires_grad; taken before augmentation) whose outputs are `logits`.
    A zero gamma gives an exact 0 term (still a tensor, so logging needs no branch)."""
    zero = logits.new_zeros((), dtype=torch.float32)
    if r1 == 0 and r2 == 0:
        return zero, zero
    per_output = inputs.shape[0] // logits.shape[0]  # images per logit: the packing factor
    if per_output * logits.shape[0] != inputs.shape[0] or n_real % per_output:
        raise ValueError(f"{logits.shape[0]} logits do not pack {inputs.shape[0]} images with {n_real} real ones")
    grad = input_gradient(logits, inputs, grad_scale)
    real_outputs, fake_outputs = n_real // per_output, logits.shape[0] - n_real // per_output
    r1_term = penalty(grad[:n_real], r1, real_outputs) if r1 else zero
    r2_term = penalty(grad[n_real:], r2, fake_outputs) if r2 else zero
    return r1_term, r2_term


# ---- lazy regularisation (Karras et al. 2020, StyleGAN2 section 3.1) ------------------------
def penalty_due(d_step: int, interval: int) -> bool:
    """Whether D step `d_step` (counted from 0 over the whole run, so a resume agrees) carries
    the penalty: every `interval`-th step, the first one included."""
    return d_step % interval == 0


def lazy_gamma(gamma: float, interval: int) -> float:
    """The gamma used on a step that carries the penalty: gamma * interval, so its average
    pull per step is what gamma asks for."""
    return gamma * interval


def lazy_adam(lr: float, betas: tuple[float, float], interval: int) -> tuple[float, tuple[float, float]]:
    """StyleGAN2-ADA's optimiser correction (training_loop.py: mb_ratio = N / (N + 1);
    lr * mb_ratio, beta ** mb_ratio), for a loop that runs the penalty as a SEPARATE phase
    with an optimiser step of its own every N steps (N + 1 steps per N batches). A loop that
    adds the penalty to the ordinary D loss on every N-th step takes no extra optimiser step
    and needs no correction."""
    mb_ratio = interval / (interval + 1)
    return lr * mb_ratio, (betas[0] ** mb_ratio, betas[1] ** mb_ratio)
