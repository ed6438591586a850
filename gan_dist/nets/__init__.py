"""Generator and discriminator networks, one module per architecture family, behind one
name -> builder table (ARCHS) that config validation, help text and errors all read."""

from __future__ import annotations

from torch import nn

from gan_dist.nets.layers import Dropout, cpu_keep_mask  # noqa: F401  (re-exported)
from gan_dist.nets.mlp import MLPDiscriminator, MLPGenerator  # noqa: F401


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
