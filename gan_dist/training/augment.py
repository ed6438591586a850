"""Differentiable augmentation of every image D sees: DiffAugment's ops (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training") gated per image with a
probability p as ADA does (Karras et al. 2020, "Training GANs with Limited Data"), and ADA's
controller of p. Owns the name -> op table (AUGMENTS) that validation, `--help` and errors read.

Randomness comes ONLY from the torch.Generator passed in (the loop seeds it from (seed, epoch,
step)); the draws are made for the whole global batch and each process takes its rows, so N
processes augment exactly as 1 does. The number of draws does not depend on p.

Which ops suit which data:
  translation  any images; digits too (a shifted digit is the same digit).
  cutout       natural images (CIFAR, photos); on 28-px digits its 14-px square can erase
               the stroke that tells a 7 from a 1: use a low p, or leave it out.
  color        RGB photos. Gray digits: brightness and contrast only act (saturation is the
               identity on one channel). Not for Stacked MNIST, whose channels are three
               different digits that saturation would blend.
Flips and rotations are not offered: a mirrored 2 or a 6 turned into a 9 is another digit,
and ADA's paper finds geometric ops leaking into G once p gets high (above about 0.8).

torch is imported inside the functions, so config validation reads AUGMENTS without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from torch import Generator, Tensor

TRANSLATION_RATIO = 1 / 8  # DiffAugment: shifts of up to 1/8 of the side, zero fill
CUTOUT_RATIO = 1 / 2  # DiffAugment: a square of half the side, zeroed


def translate(x: Tensor, u: Tensor) -> Tensor:
    """Shift every image by whole pixels, up to 1/8 of its side each way, filling with 0
    (mid-gray in [-1, 1]). u: (B, 2) uniforms in [0, 1) -> the (dy, dx) shifts."""
    _, _, height, width = x.shape
    max_y, max_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    dy = (u[:, 0] * (2 * max_y + 1)).floor().long() - max_y  # (B,) in [-max_y, max_y]
    dx = (u[:, 1] * (2 * max_x + 1)).floor().long() - max_x
    return _shift(_shift(x, dy, dim=2), dx, dim=3)


def _shift(x: Tensor, by: Tensor, dim: int) -> Tensor:
    """out[..., i, ...] = x[..., i - by, ...] along `dim` (2: rows, 3: columns), 0 where that
    falls outside. A gather, so the gradient flows back to the pixels that moved."""
    import torch

    size = x.shape[dim]
    source = torch.arange(size, device=x.device)[None, :] - by[:, None]  # (B, size)
    inside = (source >= 0) & (source < size)
    shape = [x.shape[0], 1, 1, 1]
    shape[dim] = size
    index = source.clamp(0, size - 1).view(shape).expand_as(x)
    return x.gather(dim, index) * inside.view(shape).to(x.dtype)


def cutout(x: Tensor, u: Tensor) -> Tensor:
    """Zero a square of half the side, centred anywhere in the image (clipped at the border).
    u: (B, 2) uniforms -> the square's centre row and column."""
    import torch

    _, _, height, width = x.shape
    side_y, side_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    top = (u[:, 0] * height).floor().long() - side_y // 2  # (B,)
    left = (u[:, 1] * width).floor().long() - side_x // 2
    rows = torch.arange(height, device=x.device)[None, :] - top[:, None]  # (B, H)
    cols = torch.arange(width, device=x.device)[None, :] - left[:, None]  # (B, W)
    inside = (((rows >= 0) & (rows < side_y))[:, :, None] & ((cols >= 0) & (cols < side_x))[:, None, :])
    return x * (~inside)[:, None].to(x.dtype)  # (B, 1, H, W) mask over every channel


def color(x: Tensor, u: Tensor) -> Tensor:
    """DiffAugment's colour: brightness + U(-0.5, 0.5), then saturation x U(0, 2) about the
    pixel's channel mean, then contrast x U(0.5, 1.5) about the image mean.
    u: (B, 3) uniforms."""
    b = u[:, 0, None, None, None]
    x = x + (b - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * u[:, 1, None, None, None]) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u[:, 2, None, None, None] + 0.5) + mean


@dataclass(frozen=True)
class AugmentOp:
    """One op: how many uniforms it draws per image and the function of (images, uniforms)."""

    draws: int
    apply: Callable[[Tensor, Tensor], Tensor]
    about: str


# The one table of augmentations: name -> op, applied in the order the user lists them.
AUGMENTS: dict[str, AugmentOp] = {
    "translation": AugmentOp(2, translate, "shifts of up to 1/8 of the side: any data"),
    "cutout": AugmentOp(2, cutout, "a zeroed square of half the side: natural images"),
    "color": AugmentOp(3, color, "brightness, saturation, contrast: RGB photos"),
}


def parse_augment(text: str) -> tuple[str, ...]:
    """'translation, cutout' -> ('translation', 'cutout'); '' -> (). Names unchecked."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def augment(x: Tensor, ops: Sequence[str], p: float, generator: Generator, *,
            rows: slice | Tensor | None = None, batch: int | None = None) -> Tensor:
    """Apply `ops` (AUGMENTS names, in order) to images x (B, C, H, W), each op to each image
    with probability p. Differentiable in x. The uniforms are drawn from `generator` (on x's
    device) for `batch` images (default B) and `rows` picks x's share of them, so a process
    holding rows 64:128 of a global batch of 128 augments them as one process would.
    p = 0 (or no ops) returns x itself and draws nothing."""
    import torch

    if p <= 0 or not ops:
        return x
    n = batch if batch is not None else x.shape[0]
    for name in ops:
        op = AUGMENTS[name]
        u = torch.rand(n, op.draws + 1, generator=generator, device=x.device)  # the op's draws + its gate
        if rows is not None:
            u = u[rows]
        if u.shape[0] != x.shape[0]:
            raise ValueError(f"{u.shape[0]} rows of draws for {x.shape[0]} images: pass the process's rows")
        gate = (u[:, -1] < p).view(-1, 1, 1, 1)
        x = torch.where(gate, op.apply(x, u[:, :-1].to(x.dtype)), x)
    return x


# ---- ADA's controller of p ----------------------------------------------------------------
ADA_TARGET = 0.6  # ADA's target of r_t = E[sign(D(x_r))]
ADA_KIMG = 500.0  # p can move from 0 to 1 in this many thousand images
ADA_INTERVAL = 4  # D steps between adjustments


class AdaController:
    """ADA's heuristic (StyleGAN2-ADA training_loop.py): every `interval` D steps,
    p += sign(r_t - target) * (images since the last move) / (ada_kimg * 1000), kept in [0, 1], with
    r_t the mean sign of D's outputs on (augmented) real images over those steps
    (training/losses.py overfitting_signs says which sign for each loss). D too sure of the
    reals (r_t above 0.6) means it is overfitting: more augmentation.

    ADA lets p drift above 1 (it only clamps at 0); here p stays a probability. A Stateful
    object: state_dict() is plain floats and ints (JSON), so a resumed run continues with
    the same p (StyleGAN2-ADA restarts it from 0) and the same partial sums.

    Data parallel: pass `observe` the sum and count of signs over ALL processes (one
    all-reduce), so every process moves p the same way."""

    def __init__(self, *, p: float = 0.0, target: float = ADA_TARGET, ada_kimg: float = ADA_KIMG,
                 interval: int = ADA_INTERVAL):
        self.p, self.target, self.ada_kimg, self.interval = float(p), float(target), float(ada_kimg), int(interval)
        self.sign_sum, self.count, self.steps, self.images = 0.0, 0, 0, 0  # since p last moved

    def observe(self, sign_sum: float, count: int) -> None:
        """Add one D step's signs: their sum and how many there were."""
        self.sign_sum += float(sign_sum)
        self.count += int(count)

    def step(self, images: int, d_steps: int = 1) -> float:
        """Call after the D steps whose signs were observed, with the global images they saw.
        Once `interval` D steps have been observed since p last moved, p moves by the images
        since then (ADA's batch * interval when called every step). The loop calls it at its
        sync points: every step on the CPU, every 10 on a GPU. Returns p."""
        self.steps += d_steps
        self.images += images
        if self.steps >= self.interval and self.count:
            r_t = self.sign_sum / self.count
            adjust = math.copysign(1.0, r_t - self.target) if r_t != self.target else 0.0
            self.p = min(1.0, max(0.0, self.p + adjust * self.images / (self.ada_kimg * 1000)))
            self.sign_sum, self.count, self.steps, self.images = 0.0, 0, 0, 0
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "target": self.target, "ada_kimg": self.ada_kimg, "interval": self.interval,
                "sign_sum": self.sign_sum, "count": self.count, "steps": self.steps, "images": self.images}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.target, self.ada_kimg = float(state["p"]), float(state["target"]), float(state["ada_kimg"])
        self.interval, self.steps, self.images = int(state["interval"]), int(state["steps"]), int(state["images"])
        self.sign_sum, self.count = float(state["sign_sum"]), int(state["count"])
