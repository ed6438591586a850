"""Real training runs on the shipped sample: every file of the run directory, and exact
resume after `kill -9` compared with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, gan, generator_tensors, max_abs_diff, metrics
from PIL import Image

pytestmark = pytest.mark.slow
KEYS = {"epoch", "g_loss", "d_loss", "d_real", "d_fake", "seconds", "images_per_second", "world_size"}


def test_train_writes_the_complete_run_directory(tmp_path):
    proc = gan("train", "--cpu", "--dataset", "mnist-sample", "--epochs", "3", "--sample-epochs", "1,2",
               "--out", tmp_path, "--name", "run")
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 3 and config["batch_size"] == 100 and config["world_size"] == 1
    assert config["dataset_size"] == 5000 and config["steps_per_epoch"] == 50
    assert config["parameters"] == {"generator": 1_486_352, "discriminator": 1_460_225}
    assert config["env"]["torch"] and config["env"]["device"] == "cpu"
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert KEYS <= row.keys() and row["world_size"] == 1 and row["steps"] == 50
        assert 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1 and row["g_loss"] > 0 and row["d_loss"] > 0
        assert row["images_per_second"] == pytest.approx(5000 / row["seconds"], rel=1e-6)
    assert rows[-1]["d_real"] > rows[-1]["d_fake"]  # D has learnt something
    for epoch in (1, 2, 3):
        grid = Image.open(run / "samples" / f"epoch_{epoch:04d}.png")
        assert grid.size == (8 * 28 + 9 * 2, 8 * 28 + 9 * 2)  # make_grid: 8x8, padding 2
        assert (run / "generators" / f"epoch_{epoch:04d}.safetensors").is_file()
    final = generator_tensors(run / "generator.safetensors")
    assert final["net.6.weight"].shape == (784, 1024)
    assert max_abs_diff(final, generator_tensors(run / "generators" / "epoch_0003.safetensors")) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002", "epoch_0003"]  # keep 2
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert "Traceback" not in proc.stderr


def _wait_for_epoch(run: Path, epoch: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()}"
        if (run / "metrics.jsonl").is_file() and sum(1 for _ in open(run / "metrics.jsonl")) >= epoch:
            return
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} never appeared")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    common = [*FAST, "--epochs", "5", "--seed", "3", "--out", tmp_path]  # dropout stays on (0.3)
    gan("train", *common, "--name", "whole")
    cmd = [sys.executable, "-m", "gan_dist", "train", *map(str, common), "--name", "killed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = tmp_path / "killed"
    _wait_for_epoch(killed, 2, proc)
    time.sleep(0.3)  # somewhere inside epoch 3 or its checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(metrics(killed))
    assert 2 <= done_before < 5
    with open(killed / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 9, "g_lo')  # a half-written line, as a kill mid-write leaves
    gan("train", *common, "--name", "killed", "--resume", "auto")
    whole, resumed = metrics(tmp_path / "whole"), metrics(killed)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4, 5]
    for a, b in zip(whole, resumed):
        assert (a["g_loss"], a["d_loss"], a["d_real"], a["d_fake"]) == (b["g_loss"], b["d_loss"], b["d_real"], b["d_fake"])
    diff = max_abs_diff(generator_tensors(tmp_path / "whole" / "generator.safetensors"),
                        generator_tensors(killed / "generator.safetensors"))
    print(f"max |generator difference| after kill -9 at epoch {done_before + 1} and resume: {diff}")
    assert diff == 0.0


def test_resume_extends_a_finished_run_and_refuses_changed_settings(tmp_path):
    common = [*FAST, "--out", tmp_path, "--name", "r"]
    gan("train", *common, "--epochs", "2")
    refused = gan("train", *common, "--epochs", "2", "--resume", "auto", check=False)
    assert refused.returncode == 2 and "already trained 2 of 2 epochs" in refused.stderr
    refused = gan("train", *common, "--epochs", "3", "--lr", "0.1", "--resume", "auto", check=False)
    assert refused.returncode == 2 and "--lr is 0.0002 in the run being resumed" in refused.stderr
    gan("train", *common, "--epochs", "3", "--resume", str(tmp_path / "r"))
    assert [r["epoch"] for r in metrics(tmp_path / "r")] == [1, 2, 3]
    assert json.loads((tmp_path / "r" / "config.json").read_text())["epochs"] == 3


def test_damaged_checkpoint_is_refused_without_touching_the_run(tmp_path):
    gan("train", *FAST, "--epochs", "1", "--out", tmp_path, "--name", "d")
    ckpt = tmp_path / "d" / "checkpoints" / "epoch_0001"
    (ckpt / "model.safetensors").write_bytes(b"garbage")
    before = (tmp_path / "d" / "metrics.jsonl").read_text()
    proc = gan("train", *FAST, "--epochs", "2", "--out", tmp_path, "--name", "d", "--resume", "auto", check=False)
    assert proc.returncode == 2 and "cannot be read" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "d" / "metrics.jsonl").read_text() == before


def test_report_of_a_real_run_shows_its_own_figures(tmp_path):
    """A 6-epoch run saved its grids at 2, 4 and 6 (not the default 10/20/50/100): the report
    shows those three, captioned with the run's own numbers, with no --epochs needed."""
    gan("train", *FAST, "--epochs", "6", "--sample-epochs", "2,4", "--out", tmp_path, "--name", "rep")
    run = tmp_path / "rep"
    gan("report", run, "--author", "Test Student")
    text = subprocess.run(["pdftotext", str(run / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    for row in metrics(run):
        caption = (f"Epoch {row['epoch']} of 6 with {row['seconds']:.2f} s — Generator loss: "
                   f"{row['g_loss']:.4f}, Discriminator loss: {row['d_loss']:.4f}")
        assert (caption in flat) == (row["epoch"] in (2, 4, 6)), caption
    assert "nearest saved" not in flat
    assert "MLP networks" in flat and "Linear(100, 256) (B, 256) 25,856" in flat  # layer table
    assert "1,486,352" in flat and "1,460,225" in flat  # parameter totals
    assert "Test Student" in flat
    assert flat.startswith("Generative Adversarial Networks on MNIST (5,000-image sample)")
    images = subprocess.run(["pdfimages", "-list", str(run / "report.pdf")], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert sum(line.split()[3:5] == ["242", "242"] for line in images) == 3  # grids of epochs 2, 4, 6


def test_eval_during_training_writes_quality_and_changes_nothing(tmp_path):
    common = [*FAST, "--epochs", "2", "--seed", "4", "--out", tmp_path]
    gan("train", *common, "--name", "plain")
    gan("train", *common, "--name", "evaluated", "--eval-epochs", "1,2")
    quality = [json.loads(line) for line in (tmp_path / "evaluated" / "quality.jsonl").read_text().splitlines()]
    assert [q["epoch"] for q in quality] == [1, 2]
    for row in quality:
        assert {"fd", "kid", "modes", "kl_uniform", "confident", "precision", "recall", "samples"} <= row.keys()
        assert row["fd"] > 0 and 0 <= row["modes"] <= 10
    plain, evaluated = metrics(tmp_path / "plain"), metrics(tmp_path / "evaluated")
    assert [(r["g_loss"], r["d_loss"]) for r in plain] == [(r["g_loss"], r["d_loss"]) for r in evaluated]
    assert max_abs_diff(generator_tensors(tmp_path / "plain" / "generator.safetensors"),
                        generator_tensors(tmp_path / "evaluated" / "generator.safetensors")) == 0
