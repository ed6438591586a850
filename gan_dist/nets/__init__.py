"""Generator and discriminator networks: one module per architecture family, behind one
name -> builder table (ARCHS) that config validation, `--help` and errors all read.

Importing this package does not import torch (the CLI's help and the config stay fast); a
builder imports its family's module when called. Every generator carries `latent_dim`,
`image_shape` and `num_classes`, so nothing outside nets/ needs to know how it is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class NetSpec:
    """Everything a builder needs; saved with generator weights so they can be rebuilt."""

    arch: str
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    d_dropout: float = 0.0
    fast_dropout: bool = False  # D's dropout from 15-bit lanes on the CPU (nets/layers.py)
    num_classes: int = 0  # > 0: class-conditional networks

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "image_shape": list(self.image_shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "image_shape": tuple(known["image_shape"])})


def build_mlp(spec: NetSpec):
    from gan_dist.nets.mlp import MLPDiscriminator, MLPGenerator

    return (MLPGenerator(latent_dim=spec.latent_dim, image_shape=spec.image_shape),
            MLPDiscriminator(image_shape=spec.image_shape, dropout=spec.d_dropout,
                             fast_dropout=spec.fast_dropout))


# The one table of architectures: name -> builder(spec) -> (generator, discriminator).
ARCHS: dict[str, Callable[[NetSpec], tuple[Any, Any]]] = {"mlp": build_mlp}


def build_models(spec: NetSpec):
    """(generator, discriminator) for `spec`, freshly initialised from torch's global RNG."""
    return ARCHS[spec.arch](spec)


def build_generator(spec: NetSpec):
    return build_models(spec)[0]


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
