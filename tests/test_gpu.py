"""Every CUDA path, for scripts/gpu_check.sh: skipped without a CUDA GPU (see conftest.py).

`gan train --gpus 1` for every architecture, kill -9 mid-epoch and resume, bf16 and fp16,
--compile, and `gan sample` / `gan eval` of a GPU-trained run. Tiny runs on the shipped sample.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import gan, generator_tensors, kill_9_once, max_abs_diff, metrics

from gan_dist.config import OPTIONS
from gan_dist.nets import ARCHS

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
GPU = ["--gpus", "1", "--dataset", "mnist-sample", "--batch-size", "500"]
# tolerance of a GPU resume: stated, and printed with the measured value
RESUME_TOLERANCE = 1e-4

VARIANTS = [[f"--arch={a}"] for a in ARCHS]
if "conditional" in OPTIONS and "dcgan" in ARCHS:
    VARIANTS.append(["--arch=dcgan", "--conditional"])


def finite_rows(run) -> list[dict]:
    rows = metrics(run)
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("g_loss", "d_loss", "d_real", "d_fake")), row
    return rows


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(a.strip("-") for a in v))
def test_train_every_architecture_on_one_gpu(tmp_path, variant):
    gan("train", *GPU, *variant, "--epochs", "2", "--out", tmp_path, "--name", "g")
    run = tmp_path / "g"
    config = json.loads((run / "config.json").read_text())
    assert config["env"]["device"] == "cuda" and config["world_size"] == 1
    assert [r["epoch"] for r in finite_rows(run)] == [1, 2]
    print(f"{variant}: {config['env']['device_name']}, "
          f"{metrics(run)[-1]['images_per_second']:,.0f} images/s in epoch 2")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_the_gpu(tmp_path, precision):
    gan("train", *GPU, "--precision", precision, "--epochs", "2", "--out", tmp_path, "--name", "p")
    assert len(finite_rows(tmp_path / "p")) == 2


def test_compile_on_the_gpu(tmp_path):
    gan("train", *GPU, "--compile", "--epochs", "2", "--out", tmp_path, "--name", "c", timeout=900)
    assert len(finite_rows(tmp_path / "c")) == 2


def test_kill_9_mid_epoch_and_resume_on_the_gpu(tmp_path):
    common = [*GPU, "--epochs", "3", "--seed", "3", "--out", str(tmp_path)]
    gan("train", *common, "--name", "whole")
    kill_9_once(["train", *common, "--name", "k", "--checkpoint-minutes", "0.0001", "--keep-checkpoints", "3"],
                "epoch_0002_step_*/trainer_state.json", tmp_path / "k" / "checkpoints")
    gan("train", *common, "--name", "k", "--resume", "auto")
    diff = max_abs_diff(generator_tensors(tmp_path / "whole" / "generator.safetensors"),
                        generator_tensors(tmp_path / "k" / "generator.safetensors"))
    loss_diff = max(abs(a[k] - b[k]) for a, b in zip(metrics(tmp_path / "whole"), metrics(tmp_path / "k"))
                    for k in ("g_loss", "d_loss"))
    print(f"GPU kill -9 + resume vs uninterrupted: max |dG| = {diff:.3g}, max |d loss| = {loss_diff:.3g} "
          f"(tolerance {RESUME_TOLERANCE})")
    assert diff <= RESUME_TOLERANCE


def test_sample_and_eval_of_a_gpu_trained_run(tmp_path):
    gan("train", *GPU, "--epochs", "1", "--out", tmp_path, "--name", "s")
    run = tmp_path / "s"
    gan("sample", run, "-n", "64", "-o", tmp_path / "grid.png")
    gan("sample", run, "-n", "100", "-o", tmp_path / "fakes.npz")
    import numpy as np

    with np.load(tmp_path / "fakes.npz") as f:
        assert f["images"].shape == (100, 1, 28, 28) and f["images"].dtype == np.uint8
    gan("eval", run, "--samples", "500")
    quality = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
    assert quality and quality[-1]["fd"] > 0
