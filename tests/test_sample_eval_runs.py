"""`gan sample`, `gan eval`, `gan runs` through the real CLI, on hand-made run directories."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gan_dist.cli import app
from gan_dist.metrics.quality import evaluate_generator_into_run, read_quality
from gan_dist.nets import NetSpec
from gan_dist.nets.generator_io import load_generator, save_generator
from gan_dist.nets.mlp import MLPGenerator
from gan_dist.rundir import RunDir

runner = CliRunner()
KEYS = {"epoch", "fd", "kid", "modes", "kl_uniform", "confident", "precision", "recall", "samples"}

SPEC = NetSpec("mlp", latent_dim=100, image_shape=(1, 28, 28))


def make_run(root, name, *, epochs_total, epochs_done, state, pid=None, kept=(1, 2)):
    run = root / name
    (run / "generators").mkdir(parents=True)
    (run / "samples").mkdir()
    config = {"dataset": "mnist-sample", "data_dir": "data", "epochs": epochs_total, "seed": 0,
              "latent_dim": 100, "arch": "mlp", "sample_epochs": list(kept), "world_size": 2}
    (run / "config.json").write_text(json.dumps(config))
    rows = [{"epoch": e, "g_loss": 2.0 - 0.1 * e, "d_loss": 0.7 + 0.05 * e, "d_real": 0.7, "d_fake": 0.3,
             "seconds": 1.0, "images_per_second": 5000.0, "world_size": 2} for e in range(1, epochs_done + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for epoch in kept:
        torch.manual_seed(epoch)
        save_generator(MLPGenerator(), run / "generators" / f"epoch_{epoch:04d}.safetensors",
                       spec=SPEC, epoch=epoch)
    if state == "finished":
        torch.manual_seed(kept[-1])
        save_generator(MLPGenerator(), run / "generator.safetensors", spec=SPEC, epoch=epochs_done)
    status = {"state": state, "pid": pid or 1, "hostname": socket.gethostname(), "updated": time.time()}
    (run / "status.json").write_text(json.dumps(status))
    return run


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def runs(tmp_path):
    root = tmp_path / "runs"
    good = make_run(root, "good", epochs_total=2, epochs_done=2, state="finished")
    killed = make_run(root, "crashed", epochs_total=5, epochs_done=1, state="running", pid=dead_pid(), kept=(1,))
    return root, good, killed


def one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# --- sample ----------------------------------------------------------------------------------
def test_sample_npz_is_raw_uint8_and_reproducible(runs, tmp_path):
    _, good, _ = runs
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    assert runner.invoke(app, ["sample", str(good), "-n", "10", "-o", str(a), "--seed", "3"]).exit_code == 0
    assert runner.invoke(app, ["sample", str(good), "-n", "10", "-o", str(b), "--seed", "3"]).exit_code == 0
    result = runner.invoke(app, ["sample", str(good), "-n", "10", "-o", str(c), "--seed", "3", "--epoch", "1"])
    assert result.exit_code == 0, result.output
    images = np.load(a)["images"]
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.uint8
    # [-1, 1] maps onto [0, 255]: recompute from the final weights and the seeded noise
    generator, _ = load_generator(good / "generator.safetensors")
    with torch.no_grad():
        z = torch.randn(10, 100, generator=torch.Generator().manual_seed(3))
        expected = ((generator(z) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(images, expected)
    assert 100 < images.mean() < 155  # an untrained Tanh output sits near 0 -> mid-grey
    np.testing.assert_array_equal(images, np.load(b)["images"])
    assert not np.array_equal(images, np.load(c)["images"])  # epoch 1's weights differ


def test_sample_png_grid(runs, tmp_path):
    _, good, _ = runs
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(good), "-n", "16", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)  # 4x4 grid, 2 px padding
        pixels = np.asarray(img.convert("L"))
    npz = tmp_path / "same.npz"
    runner.invoke(app, ["sample", str(good), "-n", "16", "-o", str(npz)])
    first = np.load(npz)["images"][0, 0]
    # the grid's first cell holds the first image (PNG stores the same uint8 values)
    np.testing.assert_allclose(pixels[2:30, 2:30].astype(int), first.astype(int), atol=1)


def test_sample_refuses_bad_input_without_touching_files(runs, tmp_path):
    root, good, killed = runs
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"precious")
    msg = one_line_error(runner.invoke(app, ["sample", str(good), "-o", str(existing)]))
    assert "--force" in msg
    assert existing.read_bytes() == b"precious"
    assert runner.invoke(app, ["sample", str(good), "-n", "4", "-o", str(existing), "--force"]).exit_code == 0
    assert existing.read_bytes().startswith(b"\x89PNG")

    assert ".png" in one_line_error(runner.invoke(app, ["sample", str(good), "-o", str(tmp_path / "x.jpg")]))
    assert "not found" in one_line_error(runner.invoke(app, ["sample", str(root / "nope"), "-o", str(tmp_path / "y.png")]))
    assert "kept epochs are 1, 2" in one_line_error(
        runner.invoke(app, ["sample", str(good), "--epoch", "7", "-o", str(tmp_path / "z.png")]))
    assert "--epoch" in one_line_error(runner.invoke(app, ["sample", str(killed), "-o", str(tmp_path / "w.png")]))
    assert not any(p.name in ("x.jpg", "y.png", "z.png", "w.png") for p in tmp_path.iterdir())


# --- eval ------------------------------------------------------------------------------------
def test_eval_writes_one_row_per_epoch_and_replaces_on_rerun(runs):
    _, good, _ = runs
    result = runner.invoke(app, ["eval", str(good), "--samples", "500"])
    assert result.exit_code == 0, result.output
    rows = read_quality(good)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert KEYS <= set(row)
        assert row["samples"] == 500
        assert row["fd"] > 100 and row["precision"] < 0.2  # untrained generators: poor quality
    first = rows[1]
    result = runner.invoke(app, ["eval", str(good), "--epochs", "2", "--samples", "500"])
    assert result.exit_code == 0, result.output
    again = read_quality(good)
    assert [r["epoch"] for r in again] == [1, 2]  # replaced, not duplicated
    assert again[1] == first  # same seed, same numbers
    assert not list(good.glob(".*.tmp"))


def test_eval_bad_input(runs, tmp_path):
    root, good, _ = runs
    assert "not found" in one_line_error(runner.invoke(app, ["eval", str(root / "missing")]))
    assert "available epochs are 1, 2" in one_line_error(runner.invoke(app, ["eval", str(good), "--epochs", "5"]))
    assert "10,50,100" in one_line_error(runner.invoke(app, ["eval", str(good), "--epochs", "ten"]))
    assert not (good / "quality.jsonl").exists()


def test_evaluate_generator_into_run_appends_a_row(runs):
    _, _, killed = runs
    torch.manual_seed(0)
    row = evaluate_generator_into_run(RunDir(killed, is_main=True), MLPGenerator(), 1, samples=300, seed=0)
    assert KEYS <= set(row)
    assert read_quality(killed) == [json.loads(json.dumps(row))]


# --- runs ------------------------------------------------------------------------------------
def test_runs_lists_finished_and_killed(runs, monkeypatch):
    root, good, _ = runs
    (good / "quality.jsonl").write_text(json.dumps({"epoch": 2, "fd": 123.456}) + "\n")
    monkeypatch.setenv("COLUMNS", "160")
    result = runner.invoke(app, ["runs", str(root)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") > 3 and ("good" in line or "crashed" in line)}
    assert set(lines) == {"good", "crashed"}
    assert "finished" in lines["good"] and "2/2" in lines["good"] and "123.46 (2)" in lines["good"]
    assert "1.8000" in lines["good"] and "0.8000" in lines["good"]  # last G and D loss
    assert "killed" in lines["crashed"] and "1/5" in lines["crashed"]
    assert lines["good"].rstrip("│ ").endswith("2")  # world size


def test_runs_missing_folder(tmp_path):
    assert "not found" in one_line_error(runner.invoke(app, ["runs", str(tmp_path / "none")]))
