"""Residual networks without normalisation, in the spirit of R3GAN (Huang, Gokaslan, Kuleshov &
Tompkin, NeurIPS 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"), written
here from the paper's description; 28, 32 or 64 px, 1 or 3 channels, optionally
class-conditional, with InfoGAN codes, or packing (PacGAN) in D.

Block (R3GAN's modernised ResNeXt block): x + conv1x1(act(conv3x3(act(conv1x1(x))))), widths
C -> 2C -> 2C -> C, the 3x3 conv grouped in 16 channels per group, act = leaky ReLU(0.2) after
a learned per-channel bias. No normalisation anywhere: nothing couples the images of a batch,
so N processes compute what 1 does and a gradient penalty is per image.

Init (R3GAN's variance scaling, after Fixup): every conv and linear weight N(0, g^2 / fan_in)
with g = 1, except in a block: the first two convs g = sqrt(2 / (1 + 0.2^2)) * L^(-1/4) with L
the number of blocks in the network (the exponent -1 / (2m - 2) for m = 3 layers per block),
and the last conv ZERO, so every block starts as the identity and the network's output
variance does not grow with depth.

G: z [+ label embedding] -> basis (B, C0, s0, s0): a learned s0 x s0 map per channel, scaled
   per channel by a linear function of z; then stages of `blocks` blocks, between stages a 1x1
   conv to the next width and upsampling x2 by the fixed low-pass filter [1, 2, 1] (linear
   interpolation); a 1x1 conv to the image's channels. No Tanh (R3GAN has none): images are
   clamped to [-1, 1] when turned into pixels.
D: the mirror: a 1x1 conv from the image's channels (x pack) to the first width; stages of
   blocks, between them a [1, 2, 1] blur with stride 2 and a 1x1 conv; then a depthwise
   s0 x s0 conv (D's basis) -> phi (B, C), and the projection head (nets/projection.py):
   logit = psi(phi) [+ <embed(y), phi>].

Sizes: s0 = 4 at 32 and 64 px (R3GAN's 4x4 basis); at 28 px a 7x7 basis (7 -> 14 -> 28),
rather than 32 px cropped to 28, so no computation goes to a border nobody sees and D never
judges a border G did not draw. Widths: the stage nearest the image has `width` channels, each
stage further in twice as many, at most 8 x width (28 px: w, 2w, 4w at 28, 14, 7).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_dist.nets.layers import LABEL_EMBED_DIM, describe_inputs, label_embedding, with_label
from gan_dist.nets.layers import pack as pack_images
from gan_dist.nets.projection import ProjectionHead

SIZES = (28, 32, 64)
EXPANSION = 2  # a block's inner width / its width (R3GAN: 2)
GROUP_CHANNELS = 16  # channels per group of the 3x3 conv (R3GAN: 1536 inner channels / 96 groups)
SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2 / (1 + SLOPE ** 2))  # He's gain for leaky ReLU(0.2)
FILTER = (1.0, 2.0, 1.0)  # R3GAN's resampling filter: binomial, a fixed low-pass
MAX_WIDTH_FACTOR = 8
CODE_HEAD_WIDTH = 128  # InfoGAN's Q: FC 128, then the code logits, as dcgan


def stage_plan(size: int, width: int) -> tuple[int, list[int]]:
    """(s0, channels of each stage from the smallest map to the largest), e.g. 28 px: (7, [4w, 2w, w])."""
    if size not in SIZES:
        raise ValueError(f"the resnet supports {SIZES} px, not {size}")
    s0 = 7 if size == 28 else 4
    stages = int(math.log2(size // s0)) + 1  # 28: 3, 32: 4, 64: 5
    return s0, [width * min(2 ** (stages - 1 - i), MAX_WIDTH_FACTOR) for i in range(stages)]


def groups_for(channels: int) -> int:
    return channels // GROUP_CHANNELS if channels % GROUP_CHANNELS == 0 else 1


def scaled_init_(weight: torch.Tensor, gain: float) -> torch.Tensor:
    """N(0, gain^2 / fan_in) (He init with a gain; fan_in = inputs per output); gain 0: zeros."""
    with torch.no_grad():
        return weight.zero_() if gain == 0 else weight.normal_(0.0, gain / math.sqrt(weight[0].numel()))


def conv(c_in: int, c_out: int, kernel: int = 1, *, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    layer = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)
    scaled_init_(layer.weight, gain)
    return layer


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b) with a learned bias per channel: the networks' only biases."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), SLOPE)

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}, slope={SLOPE}"


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))): C -> 2C -> 2C -> C; the identity at init."""

    def __init__(self, channels: int, total_blocks: int):
        super().__init__()
        hidden = channels * EXPANSION
        gain = ACTIVATION_GAIN * total_blocks ** (-1 / 4)  # R3GAN: L^(-1/(2m-2)), m = 3 layers
        self.conv1 = conv(channels, hidden, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(hidden)
        self.conv2 = conv(hidden, hidden, 3, groups=groups_for(hidden), gain=gain)
        self.act2 = BiasedLeakyReLU(hidden)
        self.conv3 = conv(hidden, channels, 1, gain=0.0)  # zero: the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x))  # (B, 2C, H, W)
        y = self.act2(self.conv2(y))  # (B, 2C, H, W)
        return x + self.conv3(y)  # (B, C, H, W)


class Resample(nn.Module):
    """x2 up or down per channel with the fixed filter [1, 2, 1] x [1, 2, 1]: up is linear
    interpolation (zeros outside the image), down a blur sampled at stride 2."""

    def __init__(self, channels: int, *, up: bool):
        super().__init__()
        taps = torch.tensor(FILTER)
        kernel = torch.outer(taps, taps) / taps.sum() ** 2 * (4 if up else 1)  # up: gain 4 keeps the mean
        self.up, self.channels = up, channels
        # a constant, not a weight: kept out of state dicts and generator files
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel.to(x.dtype)
        if self.up:
            return F.conv_transpose2d(x, kernel, stride=2, padding=1, output_padding=1, groups=self.channels)
        return F.conv2d(x, kernel, stride=2, padding=1, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, {'up' if self.up else 'down'}, filter={list(FILTER)}"


class GenerativeBasis(nn.Module):
    """z (B, F) -> (B, C, s, s): a learned s x s map per channel, times a linear function of z
    (R3GAN's generative basis: G's learned 4x4 bottom, 7x7 at 28 px)."""

    def __init__(self, in_features: int, channels: int, size: int):
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, size, size))
        self.weight = nn.Parameter(scaled_init_(torch.empty(channels, in_features), 1.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        scale = F.linear(z, self.weight.to(z.dtype))  # (B, C)
        return self.basis.to(scale.dtype)[None] * scale[:, :, None, None]  # (B, C, s, s)

    def extra_repr(self) -> str:
        c, s, _ = self.basis.shape
        return f"{self.weight.shape[1]} -> {c} x {s}x{s}"


class ResNetGenerator(nn.Module):
    """z (B, latent) [, labels or latent codes (B,)] -> images (B, C, H, W), about [-1, 1]."""

    def __init__(self, *, latent_dim: int = 100, image_shape=(1, 28, 28), width: int = 64, blocks: int = 2,
                 num_classes: int = 0, latent_codes: int = 0):
        super().__init__()
        values = describe_inputs(self, latent_dim=latent_dim, image_shape=image_shape, num_classes=num_classes,
                                 latent_codes=latent_codes)  # what the second input takes: classes or code values
        channels_out, size = self.image_shape[0], self.image_shape[1]
        s0, chans = stage_plan(size, width)
        total = blocks * len(chans)
        self.embed = label_embedding(values)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 1.0)
        self.basis = GenerativeBasis(latent_dim + (LABEL_EMBED_DIM if values else 0), chans[0], s0)
        layers: list[nn.Module] = []
        for i, c in enumerate(chans):
            if i:  # to the next width at the low resolution (cheaper), then up
                layers += [conv(chans[i - 1], c)] if chans[i - 1] != c else []
                layers += [Resample(c, up=True)]
            layers += [ResidualBlock(c, total) for _ in range(blocks)]
        layers.append(conv(chans[-1], channels_out))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_label(z, self.embed, labels)  # (B, latent [+ 32])
        x = self.basis(z)  # (B, 4w, 7, 7) at 28 px
        return self.net(x)  # (B, C, H, W)


class ResNetDiscriminator(nn.Module):
    """images (B, C, H, W) [, labels (B,)] -> logits (B,). With latent codes: (logits (B,),
    code logits (B, K)) from one forward. With pack N: logits (B/N,), one per N consecutive
    images (nets/layers.py pack), unconditional only."""

    def __init__(self, *, image_shape=(1, 28, 28), width: int = 64, blocks: int = 2, num_classes: int = 0,
                 latent_codes: int = 0, pack: int = 1):
        super().__init__()
        if pack > 1 and (num_classes or latent_codes):
            raise ValueError("a packing discriminator takes no labels or latent codes")
        channels_in, size, _ = tuple(image_shape)
        self.pack = pack
        s0, chans = stage_plan(size, width)
        chans = chans[::-1]  # from the image inwards: w, 2w, ...
        total = blocks * len(chans)
        layers: list[nn.Module] = [conv(channels_in * pack, chans[0])]
        for i, c in enumerate(chans):
            layers += [ResidualBlock(c, total) for _ in range(blocks)]
            if i + 1 < len(chans):  # down at this width (cheaper), then to the next width
                layers += [Resample(c, up=False)]
                layers += [conv(c, chans[i + 1])] if chans[i + 1] != c else []
        basis = nn.Conv2d(chans[-1], chans[-1], s0, groups=chans[-1], bias=False)  # D's basis: s0 x s0 -> 1 x 1
        scaled_init_(basis.weight, 1.0)
        self.features = nn.Sequential(*layers, basis, nn.Flatten())  # phi(x): (B, C)
        self.head = ProjectionHead(chans[-1], num_classes)
        scaled_init_(self.head.psi.weight, 1.0)
        nn.init.zeros_(self.head.psi.bias)
        if self.head.embed is not None:  # <embed(y), phi> of unit scale: N(0, 1 / C)
            scaled_init_(self.head.embed.weight, 1.0)
        self.code_head = None
        if latent_codes:
            self.code_head = nn.Sequential(nn.Linear(chans[-1], CODE_HEAD_WIDTH), nn.LeakyReLU(SLOPE),
                                           nn.Linear(CODE_HEAD_WIDTH, latent_codes))
            for layer in (self.code_head[0], self.code_head[2]):
                scaled_init_(layer.weight, ACTIVATION_GAIN if layer is self.code_head[2] else 1.0)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        x = pack_images(x, self.pack)  # (B/N, N*C, H, W)
        phi = self.features(x)  # (B/N, 4w) at 28 px
        if self.code_head is None:
            return self.head(phi, labels)  # (B/N,)
        return self.head(phi, labels), self.code_head(phi)  # (B,), (B, K)
