"""Quality metrics: hand-checkable formulas, and sanity on real digits vs noise vs bad generators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_dist.datasets import load_mnist, load_sample
from gan_dist.errors import GanError
from gan_dist.metrics import quality
from gan_dist.metrics.classifier import CLASSIFIER_INFO, load_classifier
from gan_dist.nets.mlp import MLPGenerator

MNIST_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
N = 1500


@pytest.fixture(scope="module")
def real_and_heldout():
    """Reference statistics and held-out real digits: the MNIST test split when it is here."""
    sample = load_sample()
    rng = np.random.default_rng(0)
    try:
        test = load_mnist(MNIST_TEST, train=False, download=False)
        reference = quality.real_reference("mnist-sample")
        heldout = test.images[rng.choice(len(test.images), N, replace=False)]
        return reference, heldout, test
    except GanError:  # no test split: half of the sample against the other half
        order = rng.permutation(len(sample.images))
        reference = quality.real_stats(sample.images[order[:2500]], "sample-half-a")
        return reference, sample.images[order[2500:2500 + N]], sample


class OneDigit(torch.nn.Module):
    """A collapsed 'generator': every z maps to the same real digit."""

    latent_dim = 100

    def __init__(self, image_u8: np.ndarray):
        super().__init__()
        self.register_buffer("image", torch.from_numpy(image_u8).float().div(127.5).sub(1.0))

    def forward(self, z):
        return self.image.expand(z.shape[0], *self.image.shape)


# --- formulas --------------------------------------------------------------------------------
def test_frechet_distance_identical_stats_is_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    mu, sigma = quality.gaussian_stats(a)
    assert quality.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_hand_checked_cases():
    # 1-D: (0 - 3)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 9 + 5 - 4 = 10
    assert quality.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0)
    # diagonal 2-D: sum over axes of (dmu^2 + (s1 - s2)^2) with s = std
    d = quality.frechet_distance([0, 0], np.diag([1.0, 9.0]), [1, 2], np.diag([4.0, 1.0]))
    assert d == pytest.approx((1 + 4) + (1 - 2) ** 2 + (3 - 1) ** 2)


def test_kid_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(800, 16)), rng.normal(size=(800, 16))
    same = quality.kernel_inception_distance(a, b)
    shifted = quality.kernel_inception_distance(a, b + 1.0)
    assert abs(same) < 0.01
    assert shifted > 0.5
    # unbiased: the estimate is centred on zero, so it can be slightly negative
    values = [quality.kernel_inception_distance(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)))
              for _ in range(10)]
    assert min(values) < 0 < max(values) or abs(np.mean(values)) < 0.01


def test_precision_recall_extremes():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(300, 5))
    assert quality.precision_recall(a, a.copy()) == (1.0, 1.0)
    assert quality.precision_recall(a, a + 100.0) == (0.0, 0.0)
    # fakes covering only part of the real set: high precision, low recall
    half = a[a[:, 0] > 0.5]
    p, r = quality.precision_recall(a, half[rng.choice(len(half), 300)])
    assert p > 0.9 and r < 0.6


def test_label_metrics_by_hand():
    uniform = np.eye(10)[np.arange(1000) % 10]
    m = quality.label_metrics(uniform)
    assert m["modes"] == 10 and m["kl_uniform"] == pytest.approx(0.0) and m["confident"] == 1.0
    one = np.full((100, 10), 0.05)
    one[:, 3] = 0.55
    m = quality.label_metrics(one)
    assert m["modes"] == 1 and m["kl_uniform"] == pytest.approx(np.log(10)) and m["confident"] == 0.0
    # 4% of samples is below half a fair share (5%): not a mode
    labels = np.r_[np.zeros(96, int), np.ones(4, int)]
    assert quality.label_metrics(np.eye(10)[labels])["modes"] == 1


# --- the classifier ----------------------------------------------------------------------------
def test_shipped_classifier_is_small_and_accurate(real_and_heldout):
    info = json.loads(CLASSIFIER_INFO.read_text())
    assert info["test_accuracy"] >= 0.97
    assert CLASSIFIER_INFO.with_suffix(".safetensors").stat().st_size < 1_000_000
    _, _, data = real_and_heldout
    x = torch.from_numpy(data.images[:2000]).float().div(127.5).sub(1.0)
    with torch.no_grad():
        acc = (load_classifier()(x).argmax(1).numpy() == data.labels[:2000]).mean()
    assert acc >= 0.97


# --- sanity of the metrics on real data -----------------------------------------------------------
@pytest.fixture(scope="module")
def scores(real_and_heldout):
    reference, heldout, data = real_and_heldout
    noise = np.random.default_rng(4).integers(0, 256, size=(N, 1, 28, 28), dtype=np.uint8)
    torch.manual_seed(0)
    untrained = MLPGenerator()
    one = data.images[np.flatnonzero(data.labels == 1)[0]]
    return {
        "real": quality.evaluate_images(heldout, reference, seed=0),
        "noise": quality.evaluate_images(noise, reference, seed=0),
        "untrained": quality.evaluate_generator(untrained, samples=N, seed=0, real=reference),
        "one_digit": quality.evaluate_generator(OneDigit(one), samples=N, seed=0, real=reference),
    }


def test_real_digits_score_far_better_than_noise_and_untrained_generator(scores):
    real = scores["real"]
    for bad in ("noise", "untrained", "one_digit"):
        assert real["fd"] * 20 < scores[bad]["fd"], (bad, real, scores[bad])
        assert real["kid"] * 20 < scores[bad]["kid"], (bad, real, scores[bad])
        assert real["recall"] > scores[bad]["recall"] + 0.5
    for bad in ("noise", "untrained"):
        assert real["precision"] > scores[bad]["precision"] + 0.3
    assert real["precision"] > 0.7 and real["recall"] > 0.7
    assert real["modes"] == 10 and real["kl_uniform"] < 0.05 and real["confident"] > 0.9
    assert real["samples"] == N


def test_one_digit_generator_is_caught_by_modes_and_kl(scores):
    one = scores["one_digit"]
    assert one["modes"] == 1
    assert one["kl_uniform"] > 2.0  # log(10) = 2.30 for a single class
    assert one["class_histogram"][1] == 1.0
    assert one["recall"] < 0.05  # it covers none of the real variety
    assert one["precision"] > 0.9  # ...though what it makes is a real digit


def test_numbers_are_reproducible_for_a_seed(real_and_heldout):
    reference, _, _ = real_and_heldout
    torch.manual_seed(5)
    gen = MLPGenerator()
    a = quality.evaluate_generator(gen, samples=500, seed=7, real=reference)
    b = quality.evaluate_generator(gen, samples=500, seed=7, real=reference)
    c = quality.evaluate_generator(gen, samples=500, seed=8, real=reference)
    assert a == b
    assert a["fd"] != c["fd"]


def test_evaluation_leaves_global_rng_and_mode_alone(real_and_heldout):
    reference, _, _ = real_and_heldout
    gen = MLPGenerator().train()
    state = torch.get_rng_state()
    quality.evaluate_generator(gen, samples=200, seed=0, real=reference)
    assert torch.equal(state, torch.get_rng_state())
    assert gen.training


def test_real_stats_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "_CACHE", tmp_path)  # as `gan eval` sets it from GAN_DIST_CACHE
    images = load_sample().images[:300]
    first = quality.real_stats(images, "tiny")
    files = list(tmp_path.glob("real-tiny-*.npz"))
    assert len(files) == 1
    quality._MEMORY.clear()
    again = quality.real_stats(images, "tiny")  # read back from disk
    np.testing.assert_array_equal(first.mu, again.mu)
    np.testing.assert_array_equal(first.features, again.features)
    assert first.count == 300
