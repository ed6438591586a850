"""Pure units of issue 11: DCGAN shapes, parameter counts and init; the projection head on
hand-made inputs; the EMA rule by hand; the CPU SyncBatchNorm; the arch/size/option checks."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from gan_dist.config import resolve_config
from gan_dist.errors import GanError
from gan_dist.nets import (
    ARCHS,
    EMA_KIMG_DEFAULT,
    IMAGE_SIZES,
    NetSpec,
    build_models,
    check_image_shape,
    label_values,
    parameter_count,
)
from gan_dist.nets.dcgan import LABEL_EMBED_DIM, stage_plan
from gan_dist.nets.projection import ProjectionHead
from gan_dist.training.ema import ema_beta, make_ema, update_ema
from gan_dist.training.losses import code_loss, discriminator_loss, generator_loss


def expected_counts(size: int, channels: int, width: int, latent: int = 100, classes: int = 0) -> tuple[int, int]:
    """Parameter counts written out from the layer list (no biases before BatchNorm)."""
    s0, chans = stage_plan(size, width)
    g = (latent + (LABEL_EMBED_DIM if classes else 0)) * chans[0] * s0 * s0 + 2 * chans[0]  # project + BN
    g += classes * LABEL_EMBED_DIM
    for c_in, c_out in pairwise(chans):
        g += c_in * c_out * 16 + 2 * c_out  # ConvT 4x4 + BN
    g += chans[-1] * channels * 16 + channels  # last ConvT with bias
    d_chans = chans[::-1]
    d = channels * d_chans[0] * 16 + d_chans[0]  # first conv, bias, no BN
    for c_in, c_out in pairwise(d_chans):
        d += c_in * c_out * 16 + 2 * c_out
    features = d_chans[-1] * s0 * s0
    d += features + 1 + classes * features  # psi and the projection embedding
    return g, d


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classes", [0, 10])
def test_dcgan_shapes_and_parameter_counts(size, channels, classes):
    G, D = build_models(NetSpec("dcgan", 100, (channels, size, size), num_classes=classes, width=16))
    z, y = torch.randn(3, 100), torch.tensor([0, 4, 9])
    images = G(z, y) if classes else G(z)
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1  # Tanh
    assert (D(images, y) if classes else D(images)).shape == (3,)
    assert (parameter_count(G), parameter_count(D)) == expected_counts(size, channels, 16, classes=classes)


def test_dcgan_stages_and_paper_sized_counts():
    assert stage_plan(28, 64) == (7, [128, 64])  # 7 -> 14 -> 28
    assert stage_plan(32, 64) == (4, [256, 128, 64])
    assert stage_plan(64, 64) == (4, [512, 256, 128, 64])  # the paper's G
    G, D = build_models(NetSpec("dcgan", 100, (1, 28, 28)))
    assert (parameter_count(G), parameter_count(D)) == (759_681, 138_689)
    bns = [i for i, m in enumerate(D.features) if isinstance(m, nn.BatchNorm2d)]
    convs = [i for i, m in enumerate(D.features) if isinstance(m, nn.Conv2d)]
    assert convs[0] == 0 and bns and bns[0] > convs[1]  # no BN after the first conv
    assert {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    assert isinstance(G.net[-1], nn.Tanh) and not any(isinstance(m, nn.MaxPool2d) for m in D.modules())


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G, D = build_models(NetSpec("dcgan", 100, (3, 64, 64)))
    weights = torch.cat([m.weight.flatten() for net in (G, D) for m in net.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.02)
    bn_w = torch.cat([m.weight for net in (G, D) for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn_w.mean().item() == pytest.approx(1.0, abs=0.01) and bn_w.std().item() == pytest.approx(0.02, rel=0.2)
    biases = [m.bias for net in (G, D) for m in net.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None]
    assert biases and all((b == 0).all() for b in biases)


def test_projection_head_on_hand_made_inputs():
    head = ProjectionHead(3, num_classes=2)
    with torch.no_grad():
        head.psi.weight.copy_(torch.tensor([[1.0, 0.0, -1.0]]))
        head.psi.bias.fill_(0.5)
        head.embed.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.0]]))
    zero = torch.zeros(2, 3)
    assert head(zero, torch.tensor([0, 1])).tolist() == [0.5, 0.5]  # phi = 0: only psi's bias
    phi = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    # psi: 1 - 1 + 0.5 = 0.5 and 2 - 1 + 0.5 = 1.5; <embed(y), phi>: class 0: 6 and 5; class 1: -1 and 0
    assert head(phi, torch.tensor([0, 0])).tolist() == [6.5, 6.5]
    assert head(phi, torch.tensor([1, 1])).tolist() == [-0.5, 1.5]
    plain = ProjectionHead(3)
    assert plain(phi).shape == (2,) and plain.embed is None


def test_latent_codes_steer_g_and_q_reads_them_back_through_both_losses():
    from accelerate import Accelerator

    from gan_dist.training.steps import d_step, g_step

    torch.manual_seed(0)
    G, D = build_models(NetSpec("dcgan", 16, (1, 28, 28), width=8, latent_codes=4))
    assert (label_values(G), G.num_classes, G.embed.num_embeddings) == (4, 0, 4)
    G.eval()
    with torch.no_grad():
        images = G(torch.randn(1, 16).expand(4, 16), torch.arange(4))  # one z, every code value
    assert all((images[i] - images[j]).abs().max() > 1e-3 for i in range(4) for j in range(i))
    G.train()
    # code_loss is the cross-entropy of Q's logits: uniform logits ln 4; p(right) = 3/6 ln 2
    assert code_loss(torch.zeros(3, 4), torch.tensor([0, 1, 2])).item() == pytest.approx(math.log(4))
    assert code_loss(torch.tensor([[math.log(3), 0.0, 0.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(math.log(2))
    acc = Accelerator(cpu=True)
    real, fake, codes = torch.rand(3, 1, 28, 28) * 2 - 1, torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0, 3, 1])
    with torch.no_grad():
        logits, code_logits = D(torch.cat([real, fake]), None, groups=2)
    assert logits.shape == (6,) and code_logits.shape == (6, 4)
    # the D step adds Q's loss on the fake half only
    expected = discriminator_loss(logits[:3], logits[3:]) + code_loss(code_logits[3:], codes)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)  # lr 0: D unchanged for the G step below
    loss = d_step(D, opt_d, real, fake, acc, codes=codes).loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert D.code_head[0].weight.grad.abs().sum() > 0  # Q learns in the D step
    z = torch.randn(3, 16)
    with torch.no_grad():
        logits, code_logits = D(G(z, codes), None)
    expected = generator_loss(logits) + code_loss(code_logits, codes)
    D.zero_grad(set_to_none=True)
    loss = g_step(G(z, codes), D, torch.optim.SGD(G.parameters(), lr=0.0), "nonsaturating", acc, codes=codes)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert G.embed.weight.grad.abs().sum() > 0 and all(p.grad is None for p in D.parameters())


def test_ema_rule_by_hand():
    # at the start the ramp-up caps the half-life at 5% of the images seen: beta 0 copies G
    assert ema_beta(128, 0, 10.0) == 0.0
    # 100k images seen: half-life min(10k, 5k) = 5k images, so one batch of 5k halves the old say
    assert ema_beta(5000, 100_000, 10.0) == pytest.approx(0.5)
    # after the ramp-up: 10k images per halving; 78.125 batches of 128 make one half-life
    beta = ema_beta(128, 10**7, 10.0)
    assert beta == pytest.approx(0.5 ** (128 / 10_000)) and beta ** (10_000 / 128) == pytest.approx(0.5)
    assert ema_beta(128, 10**7, 10.0, rampup=None) == beta
    g = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = make_ema(g)
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
        g[1].running_mean.fill_(7.0)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, g, 0.25)
    for b, p_ema, p in zip(before, ema.parameters(), g.parameters()):
        assert torch.allclose(p_ema, 0.25 * b + 0.75 * p)
    assert (ema[1].running_mean == 7.0).all()  # buffers copied, not averaged


def test_archs_table_sizes_and_option_checks():
    assert set(ARCHS) == set(IMAGE_SIZES) == set(EMA_KIMG_DEFAULT) == {"mlp", "dcgan", "resnet"}
    check_image_shape("dcgan", (1, 28, 28))
    check_image_shape("mlp", (1, 20, 17))  # the MLP takes any shape
    with pytest.raises(GanError, match=r"--arch dcgan builds 28x28, 32x32, 64x64 px images, the data is 48x48"):
        check_image_shape("dcgan", (3, 48, 48))
    cfg = resolve_config(overrides={"arch": "dcgan", "name": "x"})
    assert (cfg.ema_kimg, cfg.sync_bn, cfg.width) == (10.0, True, 64)  # the arch's defaults, resolved
    cfg = resolve_config(overrides={"name": "x"})
    assert (cfg.ema_kimg, cfg.sync_bn, cfg.conditional) == (0.0, False, False)  # the coursework MLP as before
    with pytest.raises(GanError, match="--ema-kimg must be 0"):
        resolve_config(overrides={"arch": "dcgan", "ema_kimg": -1.0, "name": "x"})
    with pytest.raises(GanError, match="--conditional needs --arch dcgan or resnet"):
        resolve_config(overrides={"conditional": True, "name": "x"})


def test_conditional_needs_labels():
    import numpy as np
    import torch

    from gan_dist.datasets import ImageSet
    from gan_dist.datasets.resident import dataset_info, place
    from gan_dist.training.models import data_classes

    def placed(data):
        where = place(data, torch.device("cpu"))
        where.info = dataset_info(data, where)
        return where

    images = np.zeros((4, 1, 28, 28), np.uint8)
    assert data_classes(placed(ImageSet(images, np.array([0, 3, 1, 2], np.uint8), "x"))) == 4
    named = ImageSet(images, np.array([0, 1, 1, 0], np.uint8), "pets", classes=("cat", "dog", "eel"))
    assert data_classes(placed(named)) == 3  # the class table, not the highest label seen
    with pytest.raises(GanError, match="--conditional needs labelled data, and folderset has no labels"):
        data_classes(placed(ImageSet(images, None, "folderset")))


def test_group_batchnorm_is_batchnorm_per_block():
    from gan_dist.nets.layers import GroupSyncBatchNorm, set_sync_batchnorm

    torch.manual_seed(0)
    plain, grouped = nn.BatchNorm2d(3), GroupSyncBatchNorm(3)
    with torch.no_grad():
        plain.weight.normal_(1, 0.3)
        plain.bias.normal_()
    grouped.load_state_dict(plain.state_dict())
    set_sync_batchnorm(grouped)  # no process group here: nothing to synchronise
    real, fake = torch.randn(4, 3, 5, 5) * 2 + 1, torch.randn(4, 3, 5, 5)
    both = grouped(torch.cat([real, fake]), groups=2)
    assert torch.allclose(both[:4], plain(real), atol=1e-5) and torch.allclose(both[4:], plain(fake), atol=1e-5)
    one = GroupSyncBatchNorm(3)
    one.load_state_dict(nn.BatchNorm2d(3).state_dict())
    ref = nn.BatchNorm2d(3)
    assert torch.allclose(one(real), ref(real), atol=1e-5)
    assert torch.allclose(one.running_var, ref.running_var) and torch.allclose(one.running_mean, ref.running_mean)
    # The sums-and-squares path (what --sync-bn all-reduces) equals the fused one, gradients too.
    x = (torch.randn(8, 3, 5, 5) * 2 + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    fused, by_sums = grouped(x, groups=2), grouped.normalise_by_sums(x2, 2)
    assert torch.allclose(fused, by_sums, atol=1e-5)
    (fused * torch.arange(fused.numel()).view_as(fused)).sum().backward()
    (by_sums * torch.arange(by_sums.numel()).view_as(by_sums)).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-3, rtol=1e-4)
    D = build_models(NetSpec("dcgan", 8, (1, 28, 28), width=4))[1]
    x = torch.randn(6, 1, 28, 28)
    assert torch.allclose(D(x, groups=2), torch.cat([D(x[:3]), D(x[3:])]), atol=1e-5)  # as two forwards
    assert math.isfinite(D(x).sum().item())


def test_report_settings_show_only_options_that_act_on_the_network():
    from gan_dist.config import TrainConfig
    from gan_dist.report.describe import config_rows

    def labels(arch):
        return {label for label, _ in config_rows(TrainConfig(arch=arch).to_dict())}

    mlp, dcgan = labels("mlp"), labels("dcgan")
    assert {"Discriminator dropout", "Fast dropout (15-bit lanes)"} <= mlp - dcgan
    assert {"Base width", "Class-conditional", "Synchronised BatchNorm"} <= dcgan - mlp
    assert {"Adam learning rate", "Global batch", "Architecture"} <= mlp & dcgan
