"""The recipe's building blocks composed into one D update and one G update, as the training
step will call them (issue 26): resnet G and D with packing, the relativistic loss, R1/R2 on
the images before DiffAugment, lazy regularisation, ADA's signal, bf16 autocast on the CPU."""

from __future__ import annotations

import math

import torch

from gan_dist.nets import NetSpec, build_models
from gan_dist.training.augment import AdaController, augment
from gan_dist.training.losses import LOSSES, overfitting_signs
from gan_dist.training.penalties import lazy_gamma, penalty_due, r1_r2_penalties

OPS, P, PACK, BATCH = ("translation", "cutout", "color"), 0.5, 2, 8


def test_one_d_step_and_one_g_step_from_the_building_blocks():
    torch.manual_seed(0)
    G, D = build_models(NetSpec("resnet", 16, (1, 28, 28), width=8, blocks=1, pack=PACK))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.99))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.99))
    kind, ada, step, interval = "rpgan", AdaController(), 0, 4
    real = torch.rand(BATCH, 1, 28, 28) * 2 - 1
    z_d, z_g = torch.randn(2, BATCH, 16)
    stream = torch.Generator().manual_seed(7)  # the loop seeds it from (seed, epoch, step)

    # D step: one forward over real and fake (one DDP all-reduce), the penalties on the images
    # before augmentation, in the same backward
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            fake = G(z_d)
        x = torch.cat([real, fake.float()]).requires_grad_(True)
        logits = D(torch.cat([augment(x[:BATCH], OPS, P, stream), augment(x[BATCH:], OPS, P, stream)]))
        real_logits, fake_logits = logits[: BATCH // PACK], logits[BATCH // PACK:]
        adv = LOSSES[kind].d_loss(real_logits, fake_logits)
        due = penalty_due(step, interval)
        r1, r2 = r1_r2_penalties(logits, x, BATCH, lazy_gamma(0.05, interval) if due else 0.0,
                                 lazy_gamma(0.05, interval) if due else 0.0)
    opt_d.zero_grad(set_to_none=True)
    (adv + r1 + r2).backward()
    opt_d.step()
    assert math.isfinite(adv.item()) and r1.dtype == r2.dtype == torch.float32 and r1.item() > 0 and r2.item() > 0
    assert all(p.grad is not None for p in D.parameters())
    signs = overfitting_signs(real_logits, fake_logits, kind)  # all-reduce sum and count under DDP
    ada.observe(signs.sum().item(), signs.numel())
    assert 0.0 <= ada.step(BATCH) <= 1.0

    # G step: rpgan's G loss reads D(x_r) too (no graph needed: it depends on D alone); only
    # G's weights receive gradients
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(z_g)
        with torch.no_grad():
            real_logits = D(augment(real, OPS, P, stream))
        g_loss = LOSSES[kind].g_loss(D(augment(fake, OPS, P, stream)), real_logits)
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward(inputs=list(G.parameters()))
    before = [p.detach().clone() for p in G.parameters()]
    opt_g.step()
    assert math.isfinite(g_loss.item())
    assert all(p.grad is None for p in D.parameters())
    assert all(p.grad is not None for p in G.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, G.parameters()))
