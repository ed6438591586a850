"""Pure units: networks, losses, Algorithm 1's k, data parsing, checkpoint discovery."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from gan_dist.datasets import load_dataset, load_mnist, read_idx, to_unit_range
from gan_dist.errors import GanError
from gan_dist.nets import parameter_count
from gan_dist.nets.mlp import MLPDiscriminator, MLPGenerator
from gan_dist.training.checkpoint import complete_checkpoints, newest_checkpoint
from gan_dist.training.losses import discriminator_loss, generator_loss


def test_network_shapes_and_parameter_counts():
    G, D = MLPGenerator(latent_dim=100), MLPDiscriminator(dropout=0.3)
    z = torch.randn(7, 100)
    images = G(z)
    assert images.shape == (7, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1  # Tanh range
    assert D(images).shape == (7,)
    # 100->256->512->1024->784 and 784->1024->512->256->1, weights + biases
    assert parameter_count(G) == 100 * 256 + 256 + 256 * 512 + 512 + 512 * 1024 + 1024 + 1024 * 784 + 784 == 1_486_352
    assert parameter_count(D) == 784 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 256 + 256 + 256 + 1 == 1_460_225
    dropouts = [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.3, 0.3, 0.3]
    slopes = {m.negative_slope for m in list(G.modules()) + list(D.modules()) if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_losses_match_hand_computed_values():
    # D(x) = sigmoid(logit): logit 0 -> 1/2, logit ln 3 -> 3/4
    real, fake = torch.tensor([0.0, math.log(3)]), torch.tensor([0.0, 0.0])
    expected_d = -(math.log(0.5) + math.log(0.75)) / 2 - math.log(0.5)
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    # at D = 1/2 everywhere: D loss 2 ln 2, non-saturating G loss ln 2, minimax G value -ln 2
    half = torch.zeros(5)
    assert discriminator_loss(half, half).item() == pytest.approx(2 * math.log(2))
    assert generator_loss(half, "nonsaturating").item() == pytest.approx(math.log(2))
    assert generator_loss(half, "minimax").item() == pytest.approx(-math.log(2))
    fake = torch.tensor([math.log(3)])  # D(G(z)) = 3/4
    assert generator_loss(fake, "nonsaturating").item() == pytest.approx(-math.log(0.75), rel=1e-6)
    assert generator_loss(fake, "minimax").item() == pytest.approx(math.log(0.25), rel=1e-6)
    big = torch.tensor([200.0, -200.0])  # stable where sigmoid would saturate
    assert torch.isfinite(discriminator_loss(big, big))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_algorithm_1_takes_k_discriminator_steps_per_generator_step(k):
    from accelerate import Accelerator

    from gan_dist.config import TrainConfig
    from gan_dist.datasets import ImageSet
    from gan_dist.datasets.resident import DeviceData
    from gan_dist.nets import NetSpec, build_models
    from gan_dist.training.models import Models
    from gan_dist.training.position import Position
    from gan_dist.training.randomness import Shard, StepRandomness
    from gan_dist.training.steps import draw_step, train_step

    cfg = TrainConfig(dataset="mnist-sample", batch_size=50, k_disc=k, name="t", cpu=True)
    acc = Accelerator(cpu=True)
    spec = NetSpec("mlp", latent_dim=100, image_shape=(1, 28, 28))
    G, D = build_models(spec)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    counts = {"g": 0, "d": 0}
    opt_g.register_step_post_hook(lambda *a: counts.__setitem__("g", counts["g"] + 1))
    opt_d.register_step_post_hook(lambda *a: counts.__setitem__("d", counts["d"] + 1))
    G, D, opt_g, opt_d = acc.prepare(G, D, opt_g, opt_d)
    images = DeviceData(ImageSet(np.zeros((300, 1, 28, 28), np.uint8), np.zeros(300, np.uint8), "zeros"),
                        torch.device("cpu"))  # 6 steps of 50
    models = Models(G, D, acc.unwrap_model(G), acc.unwrap_model(D), opt_g, opt_d, spec)
    rng, shard, position = StepRandomness(0, torch.device("cpu")), Shard(0, 1, 50), Position(0, 0, 6)
    order = rng.order(1, len(images), 6, 50)
    while not position.at_epoch_end:  # one epoch, as the loop runs it
        train_step(cfg, models, draw_step(cfg, spec, rng, images, order, position, shard), acc, images_seen=0)
        position = position.advanced()
    assert counts == {"d": 6, "g": 6 // k}


def test_generator_step_leaves_discriminator_gradients_alone():
    from accelerate import Accelerator

    from gan_dist.training.steps import g_step

    acc = Accelerator(cpu=True)
    G, D = MLPGenerator(), MLPDiscriminator(dropout=0.0)
    opt_g = torch.optim.Adam(G.parameters())
    g_step(G(torch.randn(4, 100)), D, opt_g, "nonsaturating", acc)
    assert all(p.grad is None for p in D.parameters())
    assert all(p.grad is not None for p in G.parameters())


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_is_read_from_idx_files(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 9])
    suffix = ".gz" if gz else ""
    _write_idx(raw / f"train-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(raw / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    data = load_mnist(tmp_path, train=True, download=False)
    assert data.images.shape == (3, 1, 28, 28) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[:, 0], images.astype(np.uint8))
    assert data.labels.tolist() == [7, 0, 9]


def test_missing_and_broken_mnist_give_clear_errors(tmp_path):
    with pytest.raises(GanError, match="mnist-sample"):
        load_mnist(tmp_path, download=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"not an idx file")
    with pytest.raises(GanError, match="not a uint8 IDX file"):
        read_idx(bad)


def test_shipped_sample_is_5000_real_labelled_digits():
    data = load_dataset("mnist-sample", "unused")
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [500] * 10
    assert 0.1 < (data.images > 0).mean() < 0.3  # digits: mostly black background, strokes
    x = to_unit_range(torch.from_numpy(data.images[:10]))
    assert x.min() == -1 and x.max() == 1


def test_only_complete_checkpoints_count(tmp_path):
    for name, complete in [("epoch_0001", True), ("epoch_0002", True), (".tmp-epoch_0003", True), ("epoch_0004", False),
                           ("epoch_0002_step_000010", True), ("epoch_0003_step_000005", True), ("epoch_3", True)]:
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "trainer_state.json").write_text('{"epoch": 1, "history": []}')
    # (whole epochs done, steps into the next): a mid-epoch checkpoint sorts after its epoch's start
    assert [e for e, _ in complete_checkpoints(tmp_path)] == [(1, 0), (1, 10), (2, 0), (2, 5)]
    assert newest_checkpoint(tmp_path).name == "epoch_0003_step_000005"


def test_cpu_dropout_keeps_each_unit_with_probability_one_minus_p():
    from gan_dist.nets.layers import LaneDropout as Dropout
    from gan_dist.nets.layers import cpu_keep_mask

    torch.manual_seed(0)
    keep, scale = cpu_keep_mask((1000, 1003), 0.3)  # odd width: lanes straddle rows
    assert keep.shape == (1000, 1003) and keep.dtype == torch.bool
    per_lane = keep.flatten()[: 1000 * 1000].view(-1, 4).float().mean(0)  # each of the 4 lanes
    assert torch.allclose(per_lane, torch.full((4,), 0.7), atol=3e-3)
    assert scale == pytest.approx(1 / 0.7, rel=1e-4)
    # neighbouring units are independent: P(both kept) = 0.49
    pairs = keep.flatten()[:-1] & keep.flatten()[1:]
    assert pairs.float().mean().item() == pytest.approx(0.49, abs=3e-3)
    layer = Dropout(0.3)
    x = torch.ones(2000, 500)
    y = layer(x)
    assert y.unique().tolist() == [0.0, pytest.approx(scale)]
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # expectation preserved
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    assert torch.equal(a, layer(x))  # a function of the generator's state: resumes repeat it
    assert torch.equal(layer.eval()(x), x)


def test_leftovers_of_a_killed_save_or_prune_are_removed_and_complete_checkpoints_kept(tmp_path):
    """A kill mid-write leaves .tmp-*, a kill mid-delete used to leave a checkpoint folder
    without its state file (never pruned again); the next start removes both."""
    from accelerate import Accelerator

    from gan_dist.rundir import RunDir
    from gan_dist.training.checkpoint import Checkpointer

    run = RunDir(tmp_path / "r", is_main=True)
    run.checkpoints.mkdir(parents=True)
    for name, state in [("epoch_0001", True), ("epoch_0002_step_000004", False), (".tmp-epoch_0002", False),
                        (".old-epoch_0001_step_000003", False), ("notes", False)]:
        (run.checkpoints / name).mkdir()
        (run.checkpoints / name / "model.safetensors").write_bytes(b"x")
        if state:
            (run.checkpoints / name / "trainer_state.json").write_text('{"epoch": 1, "history": []}')
    Checkpointer(run, Accelerator(cpu=True), keep=2, every_minutes=0)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch_0001", "notes"]
