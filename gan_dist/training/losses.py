"""GAN losses on discriminator logits. Pure functions of tensors.

With D(x) = sigmoid(logit): BCE(D(x), 1) = softplus(-logit), BCE(D(x), 0) = softplus(logit).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D ascends log D(x) + log(1 - D(G(z))); as a loss: BCE(real, 1) + BCE(fake, 0)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """nonsaturating: BCE(D(G(z)), 1) = -log D(G(z)) (what the coursework code did).
    minimax: log(1 - D(G(z))) = -softplus(logit), descended exactly as Algorithm 1 writes it.
    """
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}")


# InfoGAN's lambda for a categorical code (Chen et al. 2016 use 1 for discrete codes).
CODE_LOSS_WEIGHT = 1.0


def code_loss(code_logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """InfoGAN's L_I for a categorical code, as a loss: the cross-entropy of Q's prediction
    of the code c from G(z, c). Minimising it over Q and G maximises a lower bound on the
    mutual information between c and the image (up to the constant entropy H(c))."""
    return F.cross_entropy(code_logits.float(), codes)
