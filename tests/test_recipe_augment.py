"""Pure units of DiffAugment and ADA's controller (issue 26): each op by hand on tiny images,
shapes kept, gradients reach the input, p = 0 is the identity, p = 1 changes every image, the
draws come only from the generator passed in (and a process's rows of a global batch equal
those rows of one process's), and the controller's p by hand, through a JSON round trip."""

from __future__ import annotations

import json

import pytest
import torch

from gan_dist.training.augment import (
    AUGMENTS,
    AdaController,
    augment,
    color,
    cutout,
    parse_augment,
    translate,
)

ALL = tuple(AUGMENTS)


def images(n=6, c=3, size=16, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_translation_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1  # a 4-px image: shifts of up to round(4/8) = 1 px
    # u -> shift: floor(u * 3) - 1, so u = 0 is -1, u = 0.5 is 0, u = 0.9 is +1
    down_right = translate(x, torch.tensor([[0.9, 0.9]]))
    assert down_right[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 2, 3], [0, 5, 6, 7], [0, 9, 10, 11]]
    up = translate(x, torch.tensor([[0.0, 0.5]]))
    assert up[0, 0].tolist() == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [0, 0, 0, 0]]
    assert torch.equal(translate(x, torch.tensor([[0.5, 0.5]])), x)


def test_cutout_by_hand():
    x = torch.ones(1, 2, 4, 4)  # a square of side 2 centred at (row 0, col 3), clipped at the border
    out = cutout(x, torch.tensor([[0.0, 0.8]]))  # centre row floor(0) = 0 -> rows -1..0; col 3 -> cols 2..3
    expected = torch.ones(4, 4)
    expected[0, 2:] = 0
    assert torch.equal(out[0, 0], expected) and torch.equal(out[0, 1], expected)


def test_color_by_hand():
    x = torch.tensor([[0.2, -0.4]]).view(1, 2, 1, 1)  # two channels, one pixel
    same = color(x, torch.tensor([[0.5, 0.5, 0.5]]))  # brightness + 0, saturation x 1, contrast x 1
    assert torch.allclose(same, x)
    gray = color(x, torch.tensor([[0.5, 0.0, 0.5]]))  # saturation x 0: both channels at their mean
    assert torch.allclose(gray, torch.full_like(x, -0.1))
    brighter = color(x, torch.tensor([[1.0, 0.5, 0.5]]))  # brightness + 0.5
    assert torch.allclose(brighter, x + 0.5)
    # contrast x 1.5 about the image mean (-0.1): 0.2 -> 0.35, -0.4 -> -0.55
    assert torch.allclose(color(x, torch.tensor([[0.5, 0.5, 1.0]])).flatten(), torch.tensor([0.35, -0.55]))


@pytest.mark.parametrize("ops", [(name,) for name in ALL] + [ALL])
def test_shapes_kept_and_gradient_reaches_the_input(ops):
    x = images().requires_grad_(True)
    out = augment(x, ops, 1.0, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_p_zero_is_the_identity_and_p_one_changes_every_image():
    x = images()
    assert augment(x, ALL, 0.0, torch.Generator().manual_seed(1)) is x
    assert augment(x, (), 1.0, torch.Generator().manual_seed(1)) is x
    out = augment(x, ALL, 1.0, torch.Generator().manual_seed(1))
    assert all(not torch.equal(out[i], x[i]) for i in range(len(x)))
    half = augment(images(n=400, c=1, size=8), ("color",), 0.5, torch.Generator().manual_seed(2))
    changed = (half != images(n=400, c=1, size=8)).flatten(1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6  # each image's gate opens with probability 0.5


def test_randomness_only_from_the_generator_and_rows_of_a_global_batch():
    x = images(n=8)
    first = augment(x, ALL, 0.7, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG plays no part
    again = augment(x, ALL, 0.7, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(x, ALL, 0.7, torch.Generator().manual_seed(6)))
    # a process holding rows 4:8 of a global batch of 8 augments them as one process does
    share = augment(x[4:], ALL, 0.7, torch.Generator().manual_seed(5), rows=slice(4, 8), batch=8)
    assert torch.equal(share, first[4:])
    with pytest.raises(ValueError, match="rows of draws"):
        augment(x[4:], ALL, 0.7, torch.Generator().manual_seed(5), batch=8)  # the global batch, but no rows


def test_parse_augment():
    assert parse_augment("translation, cutout") == ("translation", "cutout")
    assert parse_augment("") == () and parse_augment(" , ") == ()


def test_ada_controller_by_hand():
    ada = AdaController(interval=2, ada_kimg=1.0)  # one step of 10 images moves p by 10 * 2 / 1000
    for _ in range(2):  # D sure of the reals: r_t = 0.8 > 0.6 -> p up
        ada.observe(sign_sum=8.0, count=10)
        p = ada.step(images=10)
    assert p == pytest.approx(0.02)
    ada.observe(2.0, 10)  # half an interval: nothing moves yet
    assert ada.step(10) == pytest.approx(0.02)
    ada.observe(2.0, 10)  # r_t = 0.2 < 0.6 -> p down
    assert ada.step(10) == pytest.approx(0.0)
    ada.observe(-10.0, 10)
    ada.step(10)
    ada.observe(-10.0, 10)
    assert ada.step(10) == 0.0  # kept at 0, never negative
    fast = AdaController(p=0.99, interval=1, ada_kimg=0.01)
    fast.observe(10.0, 10)
    assert fast.step(10) == 1.0  # kept at 1
    fresh = AdaController()  # the paper's: 500 kimg from 0 to 1, every 4 steps
    fresh.observe(64.0, 64)
    assert [fresh.step(64) for _ in range(4)][-1] == pytest.approx(64 * 4 / 500_000)
    coarse = AdaController()  # called every 10 steps (a GPU's sync points): moves once, by 10 steps' images
    coarse.observe(640.0, 640)
    assert coarse.step(640, d_steps=10) == pytest.approx(640 / 500_000)


def test_ada_state_survives_a_json_round_trip_mid_interval():
    ada = AdaController(p=0.25, interval=4)
    ada.observe(3.0, 5)
    ada.step(64)
    state = json.loads(json.dumps(ada.state_dict()))
    resumed = AdaController()
    resumed.load_state_dict(state)
    assert resumed.state_dict() == ada.state_dict()
    for controller in (ada, resumed):  # both finish the interval identically
        for _ in range(3):
            controller.observe(5.0, 5)
            controller.step(64)
    assert resumed.p == ada.p and resumed.p > 0.25
