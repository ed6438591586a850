"""The coursework MLPs (Goodfellow et al. 2014's vanilla GAN on MNIST): G 100->256->512->1024->784,
D 784->1024->512->256->1."""

from __future__ import annotations

import torch
from torch import nn

from gan_dist.nets.layers import LaneDropout


class MLPGenerator(nn.Module):
    """The coursework generator: z (B, latent) -> image (B, 1, 28, 28) in [-1, 1]."""

    num_classes = 0  # unconditional
    latent_codes = 0  # no InfoGAN code

    def __init__(self, *, latent_dim: int = 100, image_shape=(1, 28, 28)):
        super().__init__()
        self.latent_dim = latent_dim
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

    def __init__(self, *, image_shape=(1, 28, 28), dropout: float = 0.3, fast_dropout: bool = False):
        super().__init__()
        pixels = int(torch.tensor(tuple(image_shape)).prod())
        drop = (lambda: LaneDropout(dropout)) if fast_dropout else (lambda: nn.Dropout(dropout))
        self.net = nn.Sequential(
            nn.Linear(pixels, 1024), nn.LeakyReLU(0.2), drop(),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2), drop(),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), drop(),
            nn.Linear(256, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)  # (B,)
