"""End to end on brought data: 2 epochs of the mlp on an image folder and on CIFAR-10 files,
exact resume, host-memory batches equal to device batches, 2 processes packing once, and
`gan eval` in the dataset's own classifier feature space."""

from __future__ import annotations

import json

import pytest
from datasets_fixtures import cifar_files, fashion_files, image_folder
from helpers import gan, generator_tensors, max_abs_diff, metrics

pytestmark = pytest.mark.slow
SETTINGS = ["--cpu", "--arch", "mlp", "--batch-size", "32", "--d-dropout", "0", "--seed", "3", "--sample-epochs", "1,2"]
TINY = [*SETTINGS, "--epochs", "2"]


def test_folder_two_epochs_resume_exact_and_host_memory(tmp_path):
    root = image_folder(tmp_path / "pets", per_class=40)  # 80 PNG/JPEG in 2 classes + 1 corrupt
    data = ["--dataset", f"folder:{root}", "--image-size", "16", "--out", tmp_path / "runs"]
    gan("train", *TINY, *data, "--name", "straight")
    run = tmp_path / "runs" / "straight"
    assert [r["epoch"] for r in metrics(run)] == [1, 2]
    config = json.loads((run / "config.json").read_text())
    info = config["dataset_info"]
    assert info["classes"] == ["cat", "dog"] and info["size"] == 80 and info["image_shape"] == [3, 16, 16]
    assert info["skipped_files"] == ["dog/broken.jpg"] and info["memory"] == "device"
    # stop after epoch 1, resume to 2: the same weights as the uninterrupted run
    gan("train", *SETTINGS, "--epochs", "1", *data, "--name", "resumed")
    gan("train", *TINY, *data, "--name", "resumed", "--resume", "auto")
    straight = generator_tensors(run / "generator.safetensors")
    assert max_abs_diff(straight, generator_tensors(tmp_path / "runs" / "resumed" / "generator.safetensors")) == 0
    # images from the memory-mapped cache in host memory: the very same batches
    gan("train", *TINY, *data, "--name", "host", "--data-memory", "host")
    assert json.loads((tmp_path / "runs" / "host" / "config.json").read_text())["dataset_info"]["memory"] == "host"
    assert max_abs_diff(straight, generator_tensors(tmp_path / "runs" / "host" / "generator.safetensors")) == 0


def test_cifar10_two_epochs_and_eval_with_its_classifier(tmp_path):
    cifar_files(tmp_path / "data", per_batch=40)  # 200 training images
    gan("train", *TINY, "--dataset", "cifar10", "--data-dir", tmp_path / "data", "--out", tmp_path / "runs",
        "--name", "c")
    run = tmp_path / "runs" / "c"
    assert json.loads((run / "config.json").read_text())["dataset_info"]["classes"][0] == "airplane"
    out = gan("eval", run, "--samples", "200", "--epochs", "2")
    assert "held-out accuracy" in out.stderr and "epoch 2: fd" in out.stdout
    rows = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
    assert rows[0]["features"] == "cifar10-classifier" and 0 <= rows[0]["classifier_accuracy"] <= 1
    assert 0 <= rows[0]["modes"] <= 10 and rows[0]["fd"] >= 0
    again = gan("eval", run, "--samples", "200", "--epochs", "2")  # the classifier is cached: no training
    assert "training a classifier" not in again.stderr


@pytest.mark.multiproc
def test_two_processes_pack_once_on_fashion_mnist(tmp_path):
    fashion_files(tmp_path / "data", n=128)
    gan("train", *TINY, "--processes", "2", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "data",
        "--image-size", "16", "--out", tmp_path / "runs", "--name", "two")
    rows = metrics(tmp_path / "runs" / "two")
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["world_size"] == 2 for r in rows)
    caches = [p for p in (tmp_path / "data" / ".gan_cache").iterdir() if p.is_dir()]
    assert len(caches) == 1 and not [p for p in (tmp_path / "data" / ".gan_cache").iterdir()
                                     if p.name.startswith((".tmp-", ".old-"))]


def test_unlabelled_folder_eval_says_no_feature_space(tmp_path):
    root = image_folder(tmp_path / "flat", classes=("",), per_class=16, corrupt=False)
    gan("train", *SETTINGS, "--epochs", "1", "--batch-size", "8", "--dataset", f"folder:{root}", "--image-size", "8",
        "--out", tmp_path / "runs", "--name", "u")
    proc = gan("eval", tmp_path / "runs" / "u", "--samples", "50", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "no classifier feature space" in lines[0] and "--features inception" in lines[0]
    assert not (tmp_path / "runs" / "u" / "quality.jsonl").exists()  # (inception without its wheel: test_inception.py)


def test_conditional_dcgan_on_a_class_folder_and_refused_on_an_unlabelled_one(tmp_path):
    root = image_folder(tmp_path / "pets", per_class=40)  # 2 classes: cat, dog
    dcgan = ["--cpu", "--arch", "dcgan", "--width", "8", "--batch-size", "32", "--epochs", "2", "--sample-epochs", "2",
             "--image-size", "32", "--out", tmp_path / "runs"]
    gan("train", *dcgan, "--conditional", "--dataset", f"folder:{root}", "--name", "pets")
    run = tmp_path / "runs" / "pets"
    config = json.loads((run / "config.json").read_text())
    assert config["num_classes"] == 2 and config["dataset_info"]["image_shape"] == [3, 32, 32]
    assert [r["epoch"] for r in metrics(run)] == [1, 2] and (run / "generator.safetensors").is_file()
    gan("sample", run, "-o", tmp_path / "dogs.png", "--label", "1", "-n", "8")
    assert (tmp_path / "dogs.png").stat().st_size > 0
    flat = image_folder(tmp_path / "flat", classes=("",), per_class=40, corrupt=False)
    proc = gan("train", *dcgan, "--conditional", "--dataset", f"folder:{flat}", "--name", "flat", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "labelled data" in lines[0], proc.stderr
    assert not (tmp_path / "runs" / "flat").exists()
