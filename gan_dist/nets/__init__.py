"""Generator and discriminator networks: one module per architecture family, behind one
name -> builder table (ARCHS) that config validation, `--help` and errors all read.

Importing this package does not import torch (the CLI's help and the config stay fast); a
builder imports its family's module when called. Every generator carries `latent_dim`,
`image_shape`, `num_classes` and `latent_codes`, so nothing outside nets/ needs to know how it
is built.
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
    latent_codes: int = 0  # > 0: InfoGAN's categorical latent code with this many values (dcgan)
    width: int = 64  # the conv networks' base width (channels of the stage nearest the image)
    blocks: int = 2  # resnet: residual blocks per stage
    pack: int = 1  # PacGAN: images D judges together (conv Ds); files written before it lack it: 1

    @property
    def label_values(self) -> int:
        """How many values G's second input takes: classes or latent code values (0: none)."""
        return self.num_classes or self.latent_codes

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


def build_dcgan(spec: NetSpec):
    from gan_dist.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    return (DCGANGenerator(latent_dim=spec.latent_dim, image_shape=spec.image_shape, width=spec.width,
                           num_classes=spec.num_classes, latent_codes=spec.latent_codes),
            DCGANDiscriminator(image_shape=spec.image_shape, width=spec.width, num_classes=spec.num_classes,
                               latent_codes=spec.latent_codes, pack=spec.pack))


def build_resnet(spec: NetSpec):
    from gan_dist.nets.resnet import ResNetDiscriminator, ResNetGenerator

    return (ResNetGenerator(latent_dim=spec.latent_dim, image_shape=spec.image_shape, width=spec.width,
                            blocks=spec.blocks, num_classes=spec.num_classes, latent_codes=spec.latent_codes),
            ResNetDiscriminator(image_shape=spec.image_shape, width=spec.width, blocks=spec.blocks,
                                num_classes=spec.num_classes, latent_codes=spec.latent_codes, pack=spec.pack))


# The one table of architectures: name -> builder(spec) -> (generator, discriminator).
ARCHS: dict[str, Callable[[NetSpec], tuple[Any, Any]]] = {"mlp": build_mlp, "dcgan": build_dcgan,
                                                          "resnet": build_resnet}

# What each architecture can do, torch-free, for validation and errors: the square image sizes
# it builds (None: any shape), whether it has a class-conditional form (and InfoGAN codes), and
# its --ema-kimg default (the coursework MLP stays exactly as it was: no EMA).
IMAGE_SIZES: dict[str, tuple[int, ...] | None] = {"mlp": None, "dcgan": (28, 32, 64), "resnet": (28, 32, 64)}
CONDITIONAL: frozenset[str] = frozenset({"dcgan", "resnet"})
EMA_KIMG_DEFAULT: dict[str, float] = {"mlp": 0.0, "dcgan": 10.0, "resnet": 10.0}
CONV_ARCHS: tuple[str, ...] = ("dcgan", "resnet")  # convolutional: --width, --channels-last and --pack act on them
BATCHNORM_ARCHS: tuple[str, ...] = ("dcgan",)  # with BatchNorm: --sync-bn acts on them


def check_image_shape(arch: str, shape: tuple[int, int, int]) -> None:
    """One line naming the sizes `arch` builds, when the data's (C, H, W) is not one of them."""
    from gan_dist.errors import GanError

    sizes = IMAGE_SIZES.get(arch)
    if sizes is None:
        return
    channels, height, width = shape
    if channels not in (1, 3):
        raise GanError(f"--arch {arch} needs 1 or 3 channels, the data has {channels}")
    if height != width or height not in sizes:
        raise GanError(f"--arch {arch} builds {', '.join(f'{s}x{s}' for s in sizes)} px images, "
                       f"the data is {height}x{width}: prepare the data at one of those sizes (--image-size)")


def label_values(generator) -> int:
    """How many values a generator's second input takes: its classes (conditional) or its
    latent code's values (InfoGAN); 0 when it takes z alone."""
    generator = getattr(generator, "module", generator)  # DDP wrapper
    return getattr(generator, "num_classes", 0) or getattr(generator, "latent_codes", 0)


def build_models(spec: NetSpec):
    """(generator, discriminator) for `spec`, freshly initialised from torch's global RNG."""
    return ARCHS[spec.arch](spec)


def build_generator(spec: NetSpec):
    return build_models(spec)[0]


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
