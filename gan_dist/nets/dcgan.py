"""DCGAN (Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
Convolutional GANs"), at 28, 32 or 64 px with 1 or 3 channels, optionally class-conditional.

G: z -> Linear -> reshape to (c0, s0, s0) -> ConvTranspose2d(4, 2, 1) stages doubling the size,
   BatchNorm + ReLU after every stage but the last, Tanh out. s0 = 7 for 28 px (7 -> 14 -> 28),
   4 for 32 and 64 px (4 -> 8 -> 16 -> 32 [-> 64]).
D: the mirror: Conv2d(4, 2, 1) stages halving the size, LeakyReLU(0.2), BatchNorm on every stage
   but the first, no pooling, then one Linear to one logit. Its BatchNorm normalises real and
   fake images apart, as DCGAN's separate real and fake batches do, inside one forward
   (nets/layers.py GroupSyncBatchNorm; why in training/steps.py).

Widths: the stage nearest the image has `width` channels, each stage further in twice as many
(64 px, width 64: 512 -> 256 -> 128 -> 64, the paper's G). Init as the paper: every conv and
linear weight N(0, 0.02), BatchNorm weight N(1, 0.02), biases 0.

Conditional (num_classes > 0): G concatenates a learned label embedding to z; D is a
projection discriminator (Miyato & Koyama 2018): logit = psi(phi(x)) + <embed(y), phi(x)>,
with phi(x) D's flattened last feature map (nets/projection.py).

Latent codes (latent_codes = K > 0; InfoGAN, Chen et al. 2016, unsupervised): G takes a
categorical code c in 0..K-1 exactly as the conditional G takes a label; D stays
unconditional and gains InfoGAN's Q head, which predicts c from phi(x)
(training/losses.py code_loss). A continuous G must pass through in-between shapes to get
from one digit to another; a discrete code lets it jump.

Packing (pack = N > 1; PacGAN, Lin et al. 2018): D's first conv reads N images stacked on
channels and gives one logit for the N (nets/layers.py pack); unconditional only.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from gan_dist.nets.layers import LABEL_EMBED_DIM, describe_inputs, label_embedding, with_label
from gan_dist.nets.layers import GroupSyncBatchNorm as BatchNorm
from gan_dist.nets.layers import pack as pack_images
from gan_dist.nets.projection import ProjectionHead

SIZES = (28, 32, 64)
CODE_HEAD_WIDTH = 128  # Q's hidden layer (InfoGAN's MNIST Q: FC 128, then the code logits)


def stage_plan(size: int, width: int) -> tuple[int, list[int]]:
    """(s0, channels from the smallest map to the largest), e.g. 28 px: (7, [2w, w])."""
    if size not in SIZES:
        raise ValueError(f"DCGAN supports {SIZES} px, not {size}")
    s0 = 7 if size == 28 else 4
    stages = int(math.log2(size // s0))  # 28: 2, 32: 3, 64: 4
    return s0, [width * 2 ** (stages - 1 - i) for i in range(stages)]


def init_dcgan(module: nn.Module) -> None:
    """The paper's init: N(0, 0.02) weights, BN weight N(1, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):  # the projection's embed(y): as small as the weights
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (B, latent) [, labels or latent codes (B,)] -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, *, latent_dim: int = 100, image_shape=(1, 28, 28), width: int = 64, num_classes: int = 0,
                 latent_codes: int = 0):
        super().__init__()
        values = describe_inputs(self, latent_dim=latent_dim, image_shape=image_shape, num_classes=num_classes,
                                 latent_codes=latent_codes)  # what the second input takes: classes or code values
        channels_out, size = self.image_shape[0], self.image_shape[1]
        s0, chans = stage_plan(size, width)
        self.s0, self.c0 = s0, chans[0]
        self.embed = label_embedding(values)
        in_dim = latent_dim + (LABEL_EMBED_DIM if values else 0)
        # no biases before BatchNorm: its shift makes them redundant
        self.project = nn.Linear(in_dim, chans[0] * s0 * s0, bias=False)
        layers: list[nn.Module] = [BatchNorm(chans[0]), nn.ReLU()]
        for c_in, c_out in pairwise(chans):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), BatchNorm(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], channels_out, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_label(z, self.embed, labels)  # (B, latent [+ 32])
        x = self.project(z).view(z.shape[0], self.c0, self.s0, self.s0)  # (B, c0, s0, s0)
        return self.net(x)  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """images (B, C, H, W) [, labels (B,)] -> logits (B,); sigmoid(logit) = D(x). With latent
    codes: (logits (B,), code logits (B, K)), both from one forward (one DDP reduction). With
    pack N (PacGAN): logits (B/N,), one per N consecutive images, unconditional only."""

    batch_groups = True  # forward(..., groups=2): real and fake normalised apart (training/steps.py)

    def __init__(self, *, image_shape=(1, 28, 28), width: int = 64, num_classes: int = 0, latent_codes: int = 0,
                 pack: int = 1):
        super().__init__()
        if pack > 1 and (num_classes or latent_codes):
            raise ValueError("a packing discriminator takes no labels or latent codes")
        channels_in, size, _ = tuple(image_shape)
        self.pack = pack
        s0, chans = stage_plan(size, width)
        chans = chans[::-1]  # from the image inwards: w, 2w, ...
        # PacGAN: `pack` images side by side on channels, one logit for the pack
        layers: list[nn.Module] = [nn.Conv2d(channels_in * pack, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]  # no BN
        for c_in, c_out in pairwise(chans):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), BatchNorm(c_out), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())  # phi(x): (B, c_last * s0 * s0)
        self.head = ProjectionHead(chans[-1] * s0 * s0, num_classes)
        self.code_head = (nn.Sequential(nn.Linear(chans[-1] * s0 * s0, CODE_HEAD_WIDTH), nn.LeakyReLU(0.2),
                                        nn.Linear(CODE_HEAD_WIDTH, latent_codes)) if latent_codes else None)
        init_dcgan(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, groups: int = 1):
        """groups: x is that many equal blocks (real, fake), each BatchNorm-ed on its own.
        With pack N: x (B, C, H, W) -> B/N logits, one per N consecutive images."""
        x = pack_images(x, self.pack)  # (B/N, N*C, H, W)
        for layer in self.features:
            x = layer(x, groups) if isinstance(layer, BatchNorm) else layer(x)
        if self.code_head is None:
            return self.head(x, labels)  # (B,)
        return self.head(x, labels), self.code_head(x)  # (B,), (B, K)
