"""Generator and discriminator networks, per architecture. Nothing else lives here."""

from __future__ import annotations

import math

import torch
from torch import nn

LANE_LEVELS = 1 << 15  # a 15-bit uniform integer per element: p is kept to within 1/32768


def cpu_keep_mask(shape, p: float) -> tuple[torch.Tensor, float]:
    """Bernoulli(1 - p') keep-mask and its rescale 1 / (1 - p'), with p' = p rounded to
    1/32768. Four elements per 64-bit draw: the CPU generator (mt19937) makes 32 bits per
    call, and `rand() >= p` spends one call per element; this spends half a call. Measured
    here: about 1.9x faster, and mask drawing was the third-largest cost of a step."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # 63 random bits each
    lanes = words.view(torch.int16)[:n] & (LANE_LEVELS - 1)  # four 15-bit lanes per word
    keep_levels = max(1, round((1.0 - p) * LANE_LEVELS))
    return (lanes >= LANE_LEVELS - keep_levels).view(shape), LANE_LEVELS / keep_levels


class Dropout(nn.Dropout):
    """nn.Dropout's distribution (up to p' above on CPU), drawn faster than bernoulli_,
    which took 10-17% of a training step on the CPU: on CPU from 15-bit integer lanes, on
    other devices (counter-based generators, already fast) as `uniform >= p`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type == "cpu":
            keep, scale = cpu_keep_mask(x.shape, self.p)
        else:
            keep, scale = torch.rand(x.shape, device=x.device) >= self.p, 1.0 / (1.0 - self.p)
        return x * keep * scale


class MLPGenerator(nn.Module):
    """The coursework generator: z (B, latent) -> image (B, 1, 28, 28) in [-1, 1]."""

    def __init__(self, *, latent_dim: int = 100, image_shape=(1, 28, 28)):
        super().__init__()
        self.image_shape = tuple(image_shape)
        pixels = int(torch.tensor(self.image_shape).prod())
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, pixels), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """The coursework discriminator. Returns LOGITS (B,); sigmoid(logit) = D(x).

    The coursework ends in a sigmoid and uses BCE; BCE-with-logits on the logit is the same
    function computed without overflow, so the sigmoid lives in the loss, not here.
    """

    def __init__(self, *, image_shape=(1, 28, 28), dropout: float = 0.3):
        super().__init__()
        pixels = int(torch.tensor(tuple(image_shape)).prod())
        self.net = nn.Sequential(
            nn.Linear(pixels, 1024), nn.LeakyReLU(0.2), Dropout(dropout),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2), Dropout(dropout),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), Dropout(dropout),
            nn.Linear(256, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)  # (B,)


def build_models(arch: str, *, latent_dim: int, image_shape, d_dropout: float) -> tuple[nn.Module, nn.Module]:
    if arch == "mlp":
        return (MLPGenerator(latent_dim=latent_dim, image_shape=image_shape),
                MLPDiscriminator(image_shape=image_shape, dropout=d_dropout))
    raise ValueError(f"unknown arch {arch!r}")


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(module: nn.Module) -> list[str]:
    """One line per layer, for config.json and the report's architecture table."""
    return [repr(layer) for layer in module.net]
