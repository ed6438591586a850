"""The speed benchmark runs end to end and its JSON says what it measured.

Speed itself is not asserted here (that is the benchmark's job, on a quiet machine): only
that both loops really trained, for each precision, and that the ratios are computed from
the measured figures. The data is a 256-digit IDX test split (from the shipped sample), so
that `gan train`'s epochs are short: bf16 on a CPU without native bf16 runs about 17x slower."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datasets_fixtures import write_idx

from gan_dist.datasets import load_sample

REPO = Path(__file__).resolve().parents[1]


def tiny_test_split(folder: Path, n: int = 256) -> Path:
    """FOLDER/t10k-{images-idx3,labels-idx1}-ubyte.gz: n real digits, as MNIST ships its test split."""
    sample = load_sample()
    write_idx(folder / "t10k-images-idx3-ubyte", sample.images[:n, 0], gz=True)
    write_idx(folder / "t10k-labels-idx1-ubyte", sample.labels[:n], gz=True)
    return folder


@pytest.mark.slow
def test_benchmark_runs_both_loops_per_precision_and_writes_json(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_benchmark.py"), "--images", "300", "--warmup", "2",
         "--repeats", "1", "--skip-peak", "--wait-idle", "0", "--data-dir", str(tiny_test_split(tmp_path / "mnist")),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["data"] == "mnist-test" and result["batch_size"] == 100
    assert result["flop_per_image"]["total"] == 31_942_656
    rows = {(r["loop"], r["precision"]): r for r in result["results"]}
    assert set(rows) == {("tutorial", "no"), ("gan_dist", "no"), ("tutorial", "bf16"), ("gan_dist", "bf16")}
    for (loop, precision), r in rows.items():
        assert r["images_per_second"] > 0 and r["images"] >= 300
        assert "256 images" in r["data"] if loop == "tutorial" else r["epochs"] == 3  # 2 timed epochs of 200
        assert 0 < r["d_loss"] < 10 and 0 < r["g_loss"] < 20  # a real GAN loss, not a placeholder
        base = rows[("tutorial", precision)]["images_per_second"]
        assert r["ratio_vs_tutorial"] == pytest.approx(r["images_per_second"] / base, abs=0.01)
    assert rows[("gan_dist", "bf16")]["command"].count("--precision bf16") == 1
    assert "images/s" in proc.stdout and "vs fp32" in proc.stdout


@pytest.mark.slow
def test_dcgan_benchmark_has_a_channels_last_row(tmp_path):
    out = tmp_path / "dcgan.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_benchmark.py"), "--arch", "dcgan", "--precisions", "no",
         "--channels-last", "--images", "256", "--warmup", "2", "--repeats", "1", "--wait-idle", "0",
         "--data-dir", str(tiny_test_split(tmp_path / "mnist")), "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["arch"], result["batch_size"], result["data"]) == ("dcgan", 128, "mnist-test")
    rows = {r["loop"]: r for r in result["results"]}
    assert set(rows) == {"tutorial-dcgan", "gan_dist", "gan_dist+channels_last"}
    assert "--channels-last" in rows["gan_dist+channels_last"]["command"]
    assert "--channels-last" not in rows["gan_dist"]["command"]
    for r in rows.values():
        assert r["images_per_second"] > 0 and 0 < r["d_loss"] < 10
        assert "256 images" in r["data"] if r["loop"] == "tutorial-dcgan" else r["epochs"] == 2  # 256 per epoch
