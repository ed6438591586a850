"""The projection discriminator's head (Miyato & Koyama 2018, "cGANs with Projection
Discriminator"): logit = psi(phi) + <embed(y), phi>, one logit per image."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """features phi (B, F) [, labels y (B,)] -> logits (B,). Unconditional (num_classes 0):
    psi(phi) alone, the plain one-logit linear head."""

    def __init__(self, features: int, num_classes: int = 0):
        super().__init__()
        self.psi = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None

    def forward(self, phi: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        logit = self.psi(phi).squeeze(1)  # (B,)
        if self.embed is None:
            return logit
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        return logit + (self.embed(labels).to(phi.dtype) * phi).sum(1)  # + <embed(y), phi(x)>
