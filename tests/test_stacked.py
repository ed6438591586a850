"""Stacked MNIST: composition on the fly (seeded, labelled by the triple, padded to 32), the
training loop's batches, PacGAN's modes and KL by hand, a real run evaluated, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets_fixtures import write_idx
from helpers import gan, pdf_text

from gan_dist.datasets import load_dataset, load_sample
from gan_dist.datasets.resident import dataset_info, place
from gan_dist.datasets.stacked import DEFAULT_IMAGES, StackedData, StackedImages, digit_table
from gan_dist.errors import GanError
from gan_dist.metrics.stacked import mode_figures, triples


def mnist_train_files(data_dir: Path, n: int = 40, *, damaged: bool = False) -> np.ndarray:
    """DATA_DIR/MNIST/raw/train-*-ubyte.gz: n real digits from the shipped sample, relabelled by
    nothing (their own labels), in torchvision's layout."""
    sample = load_sample()
    raw = data_dir / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", sample.images[:n, 0], gz=True)
    write_idx(raw / "train-labels-idx1-ubyte", sample.labels[:n], gz=True)
    if damaged:
        path = raw / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:50])
    return sample.labels[:n]


# --- composition ---------------------------------------------------------------------------------
def test_composition_is_seeded_labelled_by_the_triple_and_lazy(tmp_path):
    data = load_dataset("stacked-mnist", tmp_path, seed=3, stacked_images=5000)
    assert (len(data), data.shape, data.name) == (5000, (3, 28, 28), "stacked-mnist")
    assert isinstance(data.images, StackedImages) and len(data.classes) == 1000
    table = digit_table(tmp_path)  # no MNIST under tmp_path: the shipped 5,000 digits
    assert table.source == "mnist-sample" and len(table.digits) == 5000
    rows = data.images.triples
    assert rows.shape == (5000, 3) and rows.min() >= 0 and rows.max() < 5000
    for i in (0, 17, 4999):  # each channel is a table digit; the label spells the three digits
        r, g, b = rows[i]
        assert np.array_equal(data.images[i], np.stack([table.digits[r], table.digits[g], table.digits[b]]))
        assert data.labels[i] == 100 * table.labels[r] + 10 * table.labels[g] + table.labels[b]
    again = load_dataset("stacked-mnist", tmp_path, seed=3, stacked_images=5000)
    other = load_dataset("stacked-mnist", tmp_path, seed=4, stacked_images=5000)
    assert np.array_equal(again.images.triples, rows) and not np.array_equal(other.images.triples, rows)
    # independent, uniform digits: every channel covers all ten, every triple value appears
    assert all(len(np.unique(table.labels[rows[:, c]])) == 10 for c in range(3))
    big = load_dataset("stacked-mnist", tmp_path)
    assert len(big) == DEFAULT_IMAGES == 128_000
    held = big.images.table.nbytes + big.images.triples.nbytes + big.labels.nbytes
    assert held < 0.05 * big.images.nbytes  # 8 MB held for 301 MB of images


def test_image_size_32_pads_and_batches_compose_on_the_device(tmp_path):
    small = load_dataset("stacked-mnist", tmp_path, seed=1, stacked_images=300)
    padded = load_dataset("stacked-mnist", tmp_path, seed=1, stacked_images=300, image_size=32)
    assert padded.shape == (3, 32, 32)
    x = padded.images[:300]
    assert np.array_equal(x[:, :, 2:30, 2:30], small.images[:300])
    assert not x[:, :, :2].any() and not x[:, :, 30:].any() and not x[:, :, :, :2].any() and not x[:, :, :, 30:].any()
    placed = place(padded, torch.device("cpu"), "host")  # --data-memory does not apply: the table is small
    assert isinstance(placed, StackedData)
    idx = torch.tensor([299, 0, 5, 5])
    images, labels = placed.batch(idx)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    expected = torch.from_numpy(padded.images[idx.numpy()]).float() / 127.5 - 1
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert labels.tolist() == padded.labels[idx.numpy()].tolist()
    info = dataset_info(padded, placed)
    assert info["stacked"]["digits"] == "mnist-sample" and info["stacked"]["seed"] == 1 and info["memory"] == "device"


def test_digits_from_data_dir_mnist_when_present(tmp_path):
    labels = mnist_train_files(tmp_path, n=40)
    data = load_dataset("stacked-mnist", tmp_path, stacked_images=200)
    assert data.info["stacked"]["digits"] == "mnist" and data.info["stacked"]["digit_images"] == 40
    assert data.images.triples.max() < 40
    assert set(np.unique(data.labels // 100)) <= set(labels.tolist())


def test_no_digits_at_all_and_damaged_mnist_refused(tmp_path):
    with pytest.raises(GanError) as err:
        digit_table(tmp_path, sample_file=tmp_path / "no_sample.npz")
    assert "needs MNIST digits" in str(err.value) and "\n" not in str(err.value)
    mnist_train_files(tmp_path / "d", damaged=True)
    with pytest.raises(GanError, match="cannot be read"):  # present but damaged: an error, not the sample
        digit_table(tmp_path / "d")


# --- PacGAN's modes and KL, by hand ---------------------------------------------------------------
def test_modes_and_kl_on_a_made_up_histogram():
    digits = np.array([[1, 2, 3]] * 3 + [[0, 0, 0]])  # modes 123 (3 samples) and 000 (1)
    figures = mode_figures(digits)
    assert figures["modes"] == 2
    # KL(p || uniform over 1,000) = sum over non-empty modes of p ln(1000 p), natural log
    assert figures["kl_uniform"] == pytest.approx(0.75 * math.log(750) + 0.25 * math.log(250))
    every = np.stack([np.arange(1000) // 100, np.arange(1000) // 10 % 10, np.arange(1000) % 10], 1)
    assert mode_figures(every) == {"modes": 1000, "kl_uniform": pytest.approx(0.0, abs=1e-12)}
    assert mode_figures(np.repeat(every[:1], 26, 0))["kl_uniform"] == pytest.approx(math.log(1000))


def test_real_stacked_digits_classified_per_channel():
    data = load_dataset("stacked-mnist", "unused", seed=0, stacked_images=2000, image_size=32)
    found = triples(data.images)
    codes = found[:, 0] * 100 + found[:, 1] * 10 + found[:, 2]
    assert (codes == data.labels).mean() > 0.95  # the classifier's own digits, three at a time


# --- a run, its evaluation, and bad input ----------------------------------------------------------
STACKED_RUN = ["--cpu", "--dataset", "stacked-mnist", "--stacked-images", "1000", "--arch", "dcgan", "--width", "8",
               "--image-size", "32", "--batch-size", "100", "--epochs", "1"]


@pytest.mark.slow
def test_stacked_run_trains_and_eval_counts_modes(tmp_path):
    gan("train", *STACKED_RUN, "--out", tmp_path, "--name", "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["dataset_info"]["stacked"]["images"] == 1000 and config["image_shape"] == [3, 32, 32]
    out = gan("eval", tmp_path / "s", "--samples", "200", "--mode-samples", "3000").stdout
    row = json.loads((tmp_path / "s" / "quality.jsonl").read_text().splitlines()[-1])
    assert row["features"] == "stacked-digit-classifier" and row["modes_of"] == 1000
    assert row["mode_samples"] == 3000 and row["real_mode_samples"] == 3000 and row["samples"] == 200
    assert 0 < row["modes"] <= 1000 and row["kl_uniform"] >= 0
    # 3,000 real images over 1,000 modes: most found, KL near its sampling floor
    assert row["real_modes"] > 900 and row["real_kl_uniform"] < 0.4
    assert "class_histogram" not in row and f"modes {row['modes']}/1000" in out
    pdf = tmp_path / "s.pdf"
    gan("report", tmp_path / "s", "-o", pdf)
    text = pdf_text(pdf)
    assert "Stacked MNIST" in text and "PacGAN's protocol" in text and "the real columns" in text
    assert f"{row['real_kl_uniform']:.4f}" in text  # the table's KL (real) cell


@pytest.mark.slow
def test_stacked_bad_input_one_line_exit_2_nothing_written(tmp_path):
    mnist_train_files(tmp_path / "data", damaged=True)
    cases = [(["--data-dir", tmp_path / "data"], "cannot be read"),
             (["--image-size", "64"], "--image-size 64 is not offered"),
             (["--channels", "1"], "3 channels"),
             (["--stacked-images", "0"], "--stacked-images must be at least 1")]
    for extra, message in cases:
        proc = gan("train", *STACKED_RUN, *extra, "--out", tmp_path / "runs", "--name", "bad", check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (extra, proc.stderr)
        assert not (tmp_path / "runs" / "bad").exists()
