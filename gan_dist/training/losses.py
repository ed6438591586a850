"""GAN losses on discriminator logits: pure functions of tensors, and the one name -> loss
table (LOSSES) that config validation, `--help`, errors and the training step all read.

With D(x) = sigmoid(logit): BCE(D(x), 1) = softplus(-logit), BCE(D(x), 0) = softplus(logit).

torch is imported inside the functions, so config validation can read LOSSES without
importing torch (the CLI's help stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D ascends log D(x) + log(1 - D(G(z))); as a loss: BCE(real, 1) + BCE(fake, 0)."""
    import torch.nn.functional as F

    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "nonsaturating", real_logits: Tensor | None = None) -> Tensor:
    """G's loss of the named kind (LOSSES); `real_logits` only for the relativistic one.
    nonsaturating: BCE(D(G(z)), 1) = -log D(G(z)) (what the coursework code did).
    minimax: log(1 - D(G(z))) = -softplus(logit), descended exactly as Algorithm 1 writes it."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}")
    return LOSSES[kind].g_loss(fake_logits, real_logits)


def nonsaturating_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    import torch.nn.functional as F

    return F.softplus(-fake_logits).mean()


def minimax_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    import torch.nn.functional as F

    return -F.softplus(fake_logits).mean()


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Geometric GAN / SAGAN hinge: relu(1 - D(x_r)) + relu(1 + D(G(z))), each averaged."""
    return (1 - real_logits).relu().mean() + (1 + fake_logits).relu().mean()


def hinge_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    return -fake_logits.mean()


def rpgan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic pairing (Jolicoeur-Martineau 2018; R3GAN's RpGAN): softplus(-(D(x_r) - D(G(z)))),
    real i paired with fake i, so both need the same number of logits."""
    import torch.nn.functional as F

    _check_paired(real_logits, fake_logits)
    return F.softplus(-(real_logits - fake_logits)).mean()


def rpgan_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """softplus(-(D(G(z)) - D(x_r))). D(x_r) enters as a constant for G (it depends on D's
    weights only): the G step may compute it under torch.no_grad()."""
    import torch.nn.functional as F

    if real_logits is None:
        raise ValueError("the rpgan generator loss needs D(x_r): the G step must compute the real logits")
    _check_paired(real_logits, fake_logits)
    return F.softplus(-(fake_logits - real_logits)).mean()


def _check_paired(real_logits: Tensor, fake_logits: Tensor) -> None:
    if real_logits.shape != fake_logits.shape:
        raise ValueError(f"relativistic pairing needs as many real as fake logits, got {tuple(real_logits.shape)} "
                         f"and {tuple(fake_logits.shape)}")


@dataclass(frozen=True)
class GanLoss:
    """One adversarial loss: D's loss of (real_logits, fake_logits), G's of (fake_logits,
    real_logits or None), whether G's needs D(x_r) (the G step must then run D on a real
    batch too), and what the logged D and G losses hold."""

    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor, Optional[Tensor]], Tensor]
    g_needs_real: bool
    d_terms: str
    g_terms: str
    about: str


# The one table of losses: name -> GanLoss. nonsaturating and minimax share D's loss (Algorithm 1).
LOSSES: dict[str, GanLoss] = {
    "nonsaturating": GanLoss(discriminator_loss, nonsaturating_g_loss, False,
                             "softplus(-D(x_r)) + softplus(D(G(z)))", "softplus(-D(G(z)))",
                             "the coursework's: G maximises log D(G(z)), Goodfellow et al. 2014"),
    "minimax": GanLoss(discriminator_loss, minimax_g_loss, False,
                       "softplus(-D(x_r)) + softplus(D(G(z)))", "-softplus(D(G(z)))",
                       "G minimises log(1 - D(G(z))) as Algorithm 1 writes it"),
    "hinge": GanLoss(hinge_d_loss, hinge_g_loss, False,
                     "relu(1 - D(x_r)) + relu(1 + D(G(z)))", "-D(G(z))",
                     "Lim & Ye 2017, as SAGAN and BigGAN"),
    "rpgan": GanLoss(rpgan_d_loss, rpgan_g_loss, True,
                     "softplus(-(D(x_r) - D(G(z))))", "softplus(-(D(G(z)) - D(x_r)))",
                     "relativistic pairing, Jolicoeur-Martineau 2018, as R3GAN"),
}


def overfitting_signs(real_logits: Tensor, fake_logits: Tensor | None, kind: str) -> Tensor:
    """What ADA's r_t = E[sign(.)] averages for loss `kind` (training/augment.py AdaController):
    sign(D(x_r)) for the absolute losses; for rpgan, whose logits are defined only up to a
    constant (the loss reads differences), sign(D(x_r) - D(G(z))) of each real/fake pair, as
    R3GAN reports it."""
    if LOSSES[kind].g_needs_real:
        if fake_logits is None:
            raise ValueError("the relativistic loss's overfitting signal needs the paired fake logits")
        return (real_logits - fake_logits).detach().float().sign()
    return real_logits.detach().float().sign()


# InfoGAN's lambda for a categorical code (Chen et al. 2016 use 1 for discrete codes).
CODE_LOSS_WEIGHT = 1.0


def code_loss(code_logits: Tensor, codes: Tensor) -> Tensor:
    """InfoGAN's L_I for a categorical code, as a loss: the cross-entropy of Q's prediction
    of the code c from G(z, c). Minimising it over Q and G maximises a lower bound on the
    mutual information between c and the image (up to the constant entropy H(c))."""
    import torch.nn.functional as F

    return F.cross_entropy(code_logits.float(), codes)
