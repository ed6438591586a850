"""An exponential moving average (EMA) of the generator's weights, StyleGAN2-ADA's rule
(Karras et al. 2020, training_loop.py): after a generator update that saw `cur_nimg` images
before it,

    ema_nimg = min(H * 1000, cur_nimg * rampup)      # the half-life, capped early in training
    beta     = 0.5 ** (batch / max(ema_nimg, 1e-8))  # so weights halve their say every ema_nimg images
    ema      = lerp(G, ema, beta)                     # ema <- beta * ema + (1 - beta) * G

with H = --ema-kimg and rampup 0.05. Buffers (BatchNorm running statistics) are copied, not
averaged. Every process holds identical G weights after each step, so every process updates
its own copy identically with no communication.

The EMA module's own state_dict() is saved in every checkpoint as `ema.safetensors` by
training/checkpoint.py (no pickle; never through Accelerate's register_for_checkpointing, whose
loader unpickles with weights_only=False).
"""

from __future__ import annotations

import copy

import torch

EMA_FILE = "ema.safetensors"
RAMPUP = 0.05


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: float | None = RAMPUP) -> float:
    """The decay for one update of `batch` images after `cur_nimg` images seen before it."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


def make_ema(generator: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `generator` (call before compiling or wrapping it), in eval mode."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: torch.nn.Module, generator: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(ema.parameters(), generator.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), generator.buffers()):
        b_ema.copy_(b)
