"""Pure units of the modern recipe's losses and penalties (issue 26): every loss's value and
gradient by hand on known logits, the old losses unchanged, R1/R2 by hand on D(x) = w.x and on a
square, the penalty in float32 under bf16 autocast, and StyleGAN2's lazy-regularisation rules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_dist.training.losses import (
    LOSSES,
    discriminator_loss,
    generator_loss,
    overfitting_signs,
)
from gan_dist.training.penalties import (
    input_gradient,
    lazy_adam,
    lazy_gamma,
    penalty,
    penalty_due,
    r1_r2_penalties,
)

REAL = [2.0, -1.0, 0.5]
FAKE = [-3.0, 1.0, 0.0]


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logits(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_old_losses_give_the_same_numbers_as_before():
    """nonsaturating and minimax through the table are the formulas the coursework used, bit for bit."""
    torch.manual_seed(0)
    real, fake = torch.randn(64), torch.randn(64)
    old_d = F.softplus(-real).mean() + F.softplus(fake).mean()  # the code before issue 26
    for kind in ("nonsaturating", "minimax"):
        assert torch.equal(LOSSES[kind].d_loss(real, fake), old_d)
        assert torch.equal(discriminator_loss(real, fake), old_d)
    assert torch.equal(generator_loss(fake), F.softplus(-fake).mean())
    assert torch.equal(LOSSES["nonsaturating"].g_loss(fake, None), F.softplus(-fake).mean())
    assert torch.equal(generator_loss(fake, "minimax"), -F.softplus(fake).mean())
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        generator_loss(fake, "wgan")


def test_hinge_by_hand():
    r, f = logits(REAL), logits(FAKE)
    d = LOSSES["hinge"].d_loss(r, f)
    # relu(1 - r): 0, 2, 0.5 -> mean 5/6; relu(1 + f): 0, 2, 1 -> mean 1
    assert d.item() == pytest.approx(5 / 6 + 1)
    d.backward()
    # d/dr_i = -1/3 where 1 - r_i > 0 (i = 1, 2); d/df_i = +1/3 where 1 + f_i > 0 (i = 1, 2)
    assert r.grad.tolist() == pytest.approx([0, -1 / 3, -1 / 3])
    assert f.grad.tolist() == pytest.approx([0, 1 / 3, 1 / 3])
    f = logits(FAKE)
    g = LOSSES["hinge"].g_loss(f, None)
    assert g.item() == pytest.approx(2 / 3)  # -mean(-3, 1, 0)
    g.backward()
    assert f.grad.tolist() == pytest.approx([-1 / 3] * 3)


def test_rpgan_by_hand_pairs_real_and_fake_one_to_one():
    r, f = logits(REAL), logits(FAKE)
    d = LOSSES["rpgan"].d_loss(r, f)
    gaps = [a - b for a, b in zip(REAL, FAKE)]  # D(x_r) - D(G(z)): 5, -2, 0.5
    assert d.item() == pytest.approx(sum(sp(-g) for g in gaps) / 3)
    d.backward()
    # d softplus(-g)/dg = -sigmoid(-g); g = r - f
    assert r.grad.tolist() == pytest.approx([-sigmoid(-g) / 3 for g in gaps])
    assert f.grad.tolist() == pytest.approx([sigmoid(-g) / 3 for g in gaps])
    r, f = logits(REAL), logits(FAKE)
    g = LOSSES["rpgan"].g_loss(f, r.detach())
    assert g.item() == pytest.approx(sum(sp(x) for x in gaps) / 3)  # softplus(-(f - r)) = softplus(r - f)
    g.backward()
    assert f.grad.tolist() == pytest.approx([-sigmoid(x) / 3 for x in gaps])
    # shifting every logit by a constant changes nothing: the loss reads differences only
    assert LOSSES["rpgan"].d_loss(r + 7, f + 7).item() == pytest.approx(LOSSES["rpgan"].d_loss(r, f).item())
    assert LOSSES["rpgan"].g_needs_real and not LOSSES["hinge"].g_needs_real
    with pytest.raises(ValueError, match="needs D\\(x_r\\)"):
        LOSSES["rpgan"].g_loss(f, None)
    with pytest.raises(ValueError, match="as many real as fake"):
        LOSSES["rpgan"].d_loss(r, f[:2])


def test_ada_signal_is_relative_for_the_relativistic_loss():
    r, f = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([3.0, -2.0, 0.5])
    assert overfitting_signs(r, f, "nonsaturating").tolist() == [1, -1, 1]
    assert overfitting_signs(r, f, "rpgan").tolist() == [-1, 1, 0]  # sign(D(x_r) - D(G(z)))


class Linear(torch.nn.Module):
    """D(x) = <w, x> + b: grad_x D = w for every image, so ||grad||^2 = ||w||^2."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1) + self.b


def test_r1_r2_by_hand_on_a_linear_d():
    w = torch.tensor([[[1.0, -2.0], [0.5, 3.0]]])  # (1, 2, 2): ||w||^2 = 14.25
    D = Linear(w)
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    x = torch.cat([real, fake]).requires_grad_(True)
    r1, r2 = r1_r2_penalties(D(x), x, n_real=3, r1=2.0, r2=0.5)
    assert r1.item() == pytest.approx(2.0 / 2 * 14.25) and r2.item() == pytest.approx(0.5 / 2 * 14.25)
    (r1 + r2).backward()
    # d/dw (gamma/2)||w||^2 = gamma w, summed over both penalties; b gets no gradient from a penalty
    assert torch.allclose(D.w.grad, (2.0 + 0.5) * w)
    assert D.b.grad is None
    zero1, zero2 = r1_r2_penalties(D(x), x, n_real=3, r1=0.0, r2=0.0)
    assert zero1.item() == 0 and zero2.item() == 0 and zero1.dtype == torch.float32


def test_penalty_on_a_square_d_by_hand():
    """D(x) = sum(x^2): grad = 2x, per image ||2x||^2; the mean runs over images."""
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]]).view(2, 1, 1, 2).requires_grad_(True)
    out = (x ** 2).sum((1, 2, 3))
    grad = input_gradient(out, x)
    assert torch.equal(grad, 2 * x.detach())
    value = penalty(grad, gamma=1.0, outputs=2)
    assert value.item() == pytest.approx(0.5 * (4 * 5 + 4 * 1) / 2)  # (1/2) E||2x||^2 = 6
    value.backward()  # d/dx (1/2)(1/2) sum 4x^2 = 2x
    assert torch.allclose(x.grad, 2 * x.detach())


def test_packed_penalty_averages_over_logits_not_images():
    """With pack 2 a logit reads two images: its squared gradient sums over both."""
    w = torch.tensor([1.0, 2.0])  # one pixel per image, D(pack) = w . (x_a, x_b)
    x = torch.randn(4, 1, 1, 1, requires_grad=True)  # 2 real, 2 fake images -> 1 real, 1 fake logit
    out = (x.view(2, 2) * w).sum(1)
    r1, r2 = r1_r2_penalties(out, x, n_real=2, r1=1.0, r2=1.0)
    assert r1.item() == pytest.approx(0.5 * 5) and r2.item() == pytest.approx(0.5 * 5)
    with pytest.raises(ValueError, match="do not pack"):
        r1_r2_penalties(out, x, n_real=1, r1=1.0, r2=1.0)


def test_penalty_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 36, 1), torch.nn.Flatten(0))
    x = torch.randn(4, 1, 6, 6).requires_grad_(True)
    reference = r1_r2_penalties(D(x), x, 2, 1.0, 1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = D(x)
        assert out.dtype == torch.bfloat16
        r1, r2 = r1_r2_penalties(out, x, 2, 1.0, 1.0)
    assert r1.dtype == r2.dtype == torch.float32
    for got, want in zip((r1, r2), reference):  # bf16 forward and backward: about 2-3 digits
        assert got.item() == pytest.approx(want.item(), rel=5e-2)
    (r1 + r2).backward()  # the weights train through the penalty (biases do not reach grad_x here)
    assert all(D[i].weight.grad is not None and torch.isfinite(D[i].weight.grad).all() for i in (0, 3))


def test_penalty_with_a_gradient_scale_is_unscaled():
    D = Linear(torch.tensor([[[1.0, -2.0], [0.5, 3.0]]]))
    x = torch.randn(2, 1, 2, 2, requires_grad=True)
    plain = input_gradient(D(x), x)
    scaled = input_gradient(D(x), x, grad_scale=1024.0)
    assert torch.allclose(plain, scaled)


def test_lazy_regularisation_rules():
    assert [penalty_due(step, 4) for step in range(9)] == [True, False, False, False, True, False, False, False, True]
    assert all(penalty_due(step, 1) for step in range(5))
    assert lazy_gamma(0.05, 16) == pytest.approx(0.8)
    lr, (b1, b2) = lazy_adam(0.002, (0.0, 0.99), 16)  # StyleGAN2's D: mb_ratio 16/17
    assert lr == pytest.approx(0.002 * 16 / 17)
    assert b1 == 0.0 and b2 == pytest.approx(0.99 ** (16 / 17))
    assert lazy_adam(1e-3, (0.5, 0.999), 1)[0] == pytest.approx(5e-4)  # N = 1: two steps per batch
