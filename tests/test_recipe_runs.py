"""The modern recipe through the real loop (issue 26): the relativistic loss with R1/R2, the
residual network, packing and DiffAugment with ADA's p, trained by `gan train` on tiny data.
A kill -9 after a mid-epoch checkpoint resumes bit for bit, ADA's p included; 2 processes
train like 1 with the penalties, packing and augmentation on."""

from __future__ import annotations

import json

import pytest
from datasets_fixtures import fashion_files
from helpers import gan, generator_tensors, kill_9_once, max_abs_diff, metrics

pytestmark = pytest.mark.slow

# 160 images of 28 px, batch 32: 5 steps per epoch; the smallest resnet
TINY = ["--cpu", "--dataset", "fashion-mnist", "--batch-size", "32", "--arch", "resnet", "--width", "8",
        "--blocks", "1", "--latent-dim", "16", "--sample-epochs", "1"]
# ADA tuned to act within 15 steps: a low target and a fast controller (p moves by 32 x 4 / 500)
RECIPE = [*TINY, "--loss", "rpgan", "--r1", "0.05", "--r2", "0.05", "--augment", "translation,cutout",
          "--augment-p", "auto", "--ada-kimg", "0.5", "--ada-target", "0.05", "--lr", "2e-3", "--epochs", "3",
          "--seed", "4"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    fashion_files(folder, n=160)
    return folder


def same_run(a, b) -> None:
    keys = ("epoch", "g_loss", "d_loss", "d_real", "d_fake", "r1_penalty", "r2_penalty", "augment_p")
    assert [[r[k] for k in keys] for r in metrics(a)] == [[r[k] for k in keys] for r in metrics(b)]
    for name in ("generator.safetensors", "generator_raw.safetensors"):
        assert max_abs_diff(generator_tensors(a / name), generator_tensors(b / name)) == 0.0


def test_recipe_kill_9_after_a_mid_epoch_checkpoint_resumes_bit_for_bit(tmp_path, data_dir):
    common = [*RECIPE, "--data-dir", data_dir, "--out", tmp_path]
    gan("train", *common, "--name", "whole")
    whole = tmp_path / "whole"
    rows = metrics(whole)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["r1_penalty"] > 0 and r["r2_penalty"] > 0 for r in rows)  # logged on their own
    assert rows[-1]["augment_p"] > 0  # ADA raised p: D was sure of the reals, augmentation acted
    config = json.loads((whole / "config.json").read_text())
    assert (config["arch"], config["loss"], config["sample_source"]) == ("resnet", "rpgan", "ema")
    assert "softplus(-(D(x_r) - D(G(z))))" in config["loss_terms"]["d_loss"]

    checkpoints = tmp_path / "k" / "checkpoints"
    kill_9_once(["train", *common, "--name", "k", "--checkpoint-minutes", "0.0001"],
                "epoch_0003_step_00000[2-4]/trainer_state.json", checkpoints)
    newest = max(checkpoints.glob("epoch_0003_step_*/trainer_state.json"))
    assert 0 < json.loads(newest.read_text())["augment"]["p"] <= 1  # ADA's controller travels in the checkpoint
    gan("train", *common, "--name", "k", "--resume", "auto", "--checkpoint-minutes", "0.0001")
    same_run(whole, tmp_path / "k")


@pytest.mark.multiproc
def test_two_processes_train_like_one_with_penalties_packing_and_augmentation(tmp_path, data_dir):
    common = [*TINY, "--data-dir", data_dir, "--out", tmp_path, "--epochs", "2", "--seed", "2", "--loss", "rpgan",
              "--r1", "0.5", "--r2", "0.5", "--pack", "2", "--augment", "translation,cutout,color",
              "--augment-p", "0.5"]
    gan("train", *common, "--name", "one")
    gan("train", *common, "--processes", "2", "--name", "two")
    one, two = tmp_path / "one", tmp_path / "two"
    for a, b in zip(metrics(one), metrics(two)):
        for key in ("g_loss", "d_loss", "r1_penalty", "r2_penalty"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key
    diff = max_abs_diff(generator_tensors(one / "generator_raw.safetensors"),
                        generator_tensors(two / "generator_raw.safetensors"))
    print(f"max |G(1 process) - G(2 processes)| = {diff:.3g}")
    assert diff < 1e-3  # summation order only


def test_hinge_lazy_penalty_and_packing_on_the_dcgan(tmp_path, data_dir):
    gan("train", "--cpu", "--dataset", "fashion-mnist", "--data-dir", data_dir, "--batch-size", "32", "--arch",
        "dcgan", "--width", "8", "--epochs", "1", "--loss", "hinge", "--r1", "1", "--reg-interval", "2",
        "--pack", "2", "--out", tmp_path, "--name", "h")
    row = metrics(tmp_path / "h")[0]
    assert row["steps"] == 5 and row["r1_penalty"] > 0 and "r2_penalty" not in row
    config = json.loads((tmp_path / "h" / "config.json").read_text())
    assert config["pack"] == 2 and config["loss_terms"]["g_loss"] == "-D(G(z))"
    # the layer table shows D reading 2 images stacked on channels
    assert config["architecture"]["discriminator"][0]["layer"].startswith("Conv2d(2, ")
