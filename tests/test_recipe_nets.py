"""Pure units of the residual networks and packing (issue 26): the zero-initialised block is
the identity, the resampling filters by hand, the variance-scaled init, shapes and parameter
counts at 28/32/64 px with 1 or 3 channels (conditional, InfoGAN codes, packed), layer tables,
PacGAN's packing order, and generator files that predate `pack` and `blocks`."""

from __future__ import annotations

import math

import pytest
import torch

from gan_dist.nets import NetSpec, build_models, parameter_count
from gan_dist.nets.describe import describe_models
from gan_dist.nets.layers import pack
from gan_dist.nets.resnet import (
    ACTIVATION_GAIN,
    CODE_HEAD_WIDTH,
    LABEL_EMBED_DIM,
    Resample,
    ResidualBlock,
    groups_for,
    stage_plan,
)


def block_count(c: int) -> int:
    hidden = 2 * c
    return c * hidden + hidden * (hidden // groups_for(hidden)) * 9 + hidden * c + 2 * hidden  # 3 convs + 2 biases


def expected_counts(size, channels, width, blocks, latent=100, classes=0, codes=0, packed=1) -> tuple[int, int]:
    """Parameter counts written out from the layer list (convs without bias, biased activations)."""
    s0, chans = stage_plan(size, width)
    values = classes or codes
    g = values * LABEL_EMBED_DIM + chans[0] * s0 * s0 + chans[0] * (latent + (LABEL_EMBED_DIM if values else 0))
    for i, c in enumerate(chans):
        g += (chans[i - 1] * c if i and chans[i - 1] != c else 0) + blocks * block_count(c)
    g += chans[-1] * channels
    inward = chans[::-1]
    d = channels * packed * inward[0]
    for i, c in enumerate(inward):
        d += blocks * block_count(c) + (c * inward[i + 1] if i + 1 < len(inward) and inward[i + 1] != c else 0)
    phi = inward[-1]
    d += phi * s0 * s0 + phi + 1 + classes * phi  # D's depthwise basis, psi, the projection embedding
    d += (phi * CODE_HEAD_WIDTH + CODE_HEAD_WIDTH + CODE_HEAD_WIDTH * codes + codes) if codes else 0
    return g, d


def test_zero_initialised_block_is_the_identity():
    torch.manual_seed(0)
    block = ResidualBlock(32, total_blocks=6)
    x = torch.randn(3, 32, 7, 7)
    assert torch.equal(block(x), x)  # the last conv is exactly zero
    assert block.conv3.weight.abs().sum() == 0 and block.conv1.weight.abs().sum() > 0
    with torch.no_grad():
        block.conv3.weight.normal_()
    assert not torch.equal(block(x), x)
    assert block.conv2.groups == 64 // 16  # grouped 3x3: 16 channels per group


def test_variance_scaled_init():
    torch.manual_seed(0)
    block = ResidualBlock(64, total_blocks=16)
    gain = ACTIVATION_GAIN * 16 ** (-1 / 4)  # R3GAN: L^(-1/(2m-2)) with m = 3
    assert block.conv1.weight.std().item() == pytest.approx(gain / math.sqrt(64), rel=0.05)
    assert block.conv2.weight.std().item() == pytest.approx(gain / math.sqrt(16 * 9), rel=0.05)


def test_resampling_filters_by_hand():
    x = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 1, 2, 2)
    up = Resample(1, up=True)(x)[0, 0]
    # linear interpolation on the even grid, zeros past the border (as R3GAN's upfirdn2d pads)
    assert up.tolist() == [[1.0, 2.0, 3.0, 1.5], [3.0, 4.0, 5.0, 2.5], [5.0, 6.0, 7.0, 3.5], [2.5, 3.0, 3.5, 1.75]]
    flat = torch.full((1, 2, 8, 8), 2.0)
    down = Resample(2, up=False)(flat)
    assert down.shape == (1, 2, 4, 4) and torch.allclose(down[:, :, 1:, 1:], torch.full((1, 2, 3, 3), 2.0))
    assert not Resample(2, up=False).state_dict()  # a constant: not in state dicts or generator files


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_shapes_and_parameter_counts(size, channels):
    G, D = build_models(NetSpec("resnet", 100, (channels, size, size), width=8, blocks=2))
    images = G(torch.randn(4, 100))
    assert images.shape == (4, channels, size, size)
    assert D(images).shape == (4,)
    assert (parameter_count(G), parameter_count(D)) == expected_counts(size, channels, 8, 2)


@pytest.mark.parametrize("classes, codes", [(10, 0), (0, 6)])
def test_resnet_conditional_and_latent_codes(classes, codes):
    G, D = build_models(NetSpec("resnet", 16, (1, 28, 28), width=8, blocks=1, num_classes=classes,
                                latent_codes=codes))
    y = torch.tensor([0, 3, 5])
    images = G(torch.randn(3, 16), y)
    assert images.shape == (3, 1, 28, 28)
    if classes:
        assert D(images, y).shape == (3,)
        assert not torch.allclose(D(images, y), D(images, torch.tensor([1, 1, 1])))  # the label matters
        with pytest.raises(ValueError, match="needs labels"):
            G(torch.randn(3, 16))
    else:
        logits, code_logits = D(images)
        assert logits.shape == (3,) and code_logits.shape == (3, codes)
    assert (parameter_count(G), parameter_count(D)) == expected_counts(28, 1, 8, 1, latent=16, classes=classes,
                                                                       codes=codes)


def test_width_64_counts_at_28_and_32_px():
    """The figures the docs quote: width 64, 2 blocks per stage, 1 channel."""
    for size in (28, 32):
        G, D = build_models(NetSpec("resnet", 100, (1, size, size), width=64))
        counts = (parameter_count(G), parameter_count(D))
        assert counts == expected_counts(size, 1, 64, 2)
        print(f"resnet width 64, 2 blocks, {size} px: G {counts[0]:,}, D {counts[1]:,}")


def test_pack_order_and_shapes():
    x = torch.arange(6 * 2 * 1 * 1.0).view(6, 2, 1, 1)  # 6 images of 2 channels
    packed = pack(x, 3)
    assert packed.shape == (2, 6, 1, 1)
    for j in range(2):
        for i in range(3):  # pack j's channels i*C..(i+1)*C-1 are image j*3 + i
            assert torch.equal(packed[j, 2 * i:2 * i + 2], x[j * 3 + i])
    assert pack(x, 1) is x
    with pytest.raises(ValueError, match="cannot pack 6 images in groups of 4"):
        pack(x, 4)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_packing_discriminators(arch):
    G, D = build_models(NetSpec(arch, 16, (3, 32, 32), width=8, blocks=1, pack=2))
    first = next(D.parameters()) if arch == "resnet" else D.features[0].weight
    assert first.shape[1] == 6  # 2 images x 3 channels
    images = torch.randn(8, 3, 32, 32)
    assert D(images).shape == (4,)
    if arch == "dcgan":  # real and fake packs normalised apart, as two forwards would
        assert torch.allclose(D(images, groups=2), torch.cat([D(images[:4]), D(images[4:])]), atol=1e-5)
    with pytest.raises(ValueError, match="takes no labels"):
        build_models(NetSpec(arch, 16, (3, 32, 32), width=8, num_classes=10, pack=2))
    tables = describe_models(G, D)  # a packing D is traced on 2 packs
    assert tables["discriminator"][0]["parameters"] == first.numel() + (8 if arch == "dcgan" else 0)  # + bias


def test_layer_tables_cover_every_parameter():
    G, D = build_models(NetSpec("resnet", 100, (1, 28, 28), width=8, blocks=2, num_classes=10))
    tables = describe_models(G, D)
    for net, rows in ((G, tables["generator"]), (D, tables["discriminator"])):
        assert sum(row["parameters"] for row in rows) == parameter_count(net)
    assert tables["generator"][0]["layer"].startswith("Embedding")
    assert tables["generator"][1] == {"layer": "GenerativeBasis(132 -> 32 x 7x7)", "output": "(B, 32, 7, 7)",
                                      "parameters": 32 * 49 + 32 * 132}
    assert tables["generator"][-1]["output"] == "(B, 1, 28, 28)"
    assert any(row["layer"].startswith("Resample(16, up") for row in tables["generator"])
    assert any(row["layer"].startswith("Resample(8, down") for row in tables["discriminator"])


def test_old_generator_specs_load_with_defaults(tmp_path):
    from gan_dist.nets.generator_io import load_generator, save_generator

    old = {"arch": "dcgan", "latent_dim": 8, "image_shape": [1, 28, 28], "width": 8}  # before pack and blocks
    spec = NetSpec.from_dict(old)
    assert (spec.pack, spec.blocks) == (1, 2)
    torch.manual_seed(0)
    G, _ = build_models(NetSpec("resnet", 8, (1, 28, 28), width=8, blocks=1))
    save_generator(G, tmp_path / "g.safetensors", spec=NetSpec("resnet", 8, (1, 28, 28), width=8, blocks=1), epoch=3)
    loaded, info = load_generator(tmp_path / "g.safetensors")
    z = torch.randn(2, 8)
    assert info["spec"].blocks == 1 and torch.equal(loaded(z), G.eval()(z))
