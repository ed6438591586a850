"""Our FID / KID estimators (metrics/quality.py) against torchmetrics' on the same features:
the measurement behind keeping our own (docs/metrics.md, "Estimators").

    pip install torchmetrics            # for this script only; not a gan_dist dependency
    PYTHONPATH=. python benchmarks/fid_estimators.py [--n 1000] [--dim 2048]

Features are synthetic but shaped like Inception pool3 features (non-negative, 2048-d, low
intrinsic dimension), at the CPU default sample count, where the covariances are singular
(n < 2048). Prints: FID from both (and their relative difference), seconds per FID compute,
KID from both, and whether each left torch's global RNG untouched (evaluation during training
must not change the training run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def inception_like(n: int, dim: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(0).normal(size=(96, dim)) / np.sqrt(96)  # shared: one "network"
    latent = rng.normal(size=(n, 96)) + shift
    return np.maximum(latent @ basis + 0.3, 0.0)  # ReLU'd, as pool3 after the last block


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=2048)
    args = parser.parse_args()
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import KernelInceptionDistance

    from gan_dist.metrics.quality import frechet_distance, gaussian_stats, kid_subsets

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; n = {args.n}, dim = {args.dim}")
    real = inception_like(args.n, args.dim, 0.0, 1)
    for shift in (0.0, 0.05, 0.5):
        fake = inception_like(args.n, args.dim, shift, 2)
        (mu1, s1), (mu2, s2) = gaussian_stats(real), gaussian_stats(fake)
        t = time.perf_counter()
        ours = frechet_distance(mu1, s1, mu2, s2)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        theirs = float(_compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))))
        t_theirs = time.perf_counter() - t
        print(f"shift {shift:<4}: FID ours {ours:.6f} ({t_ours:.2f} s)  torchmetrics {theirs:.6f} ({t_theirs:.2f} s)  "
              f"relative difference {abs(ours - theirs) / max(abs(ours), 1e-12):.2e}")

    fake = inception_like(args.n, args.dim, 0.5, 2)
    state = torch.get_rng_state()
    t = time.perf_counter()
    kid, kid_std = kid_subsets(real, fake, seed=0)[:2]
    t_ours = time.perf_counter() - t
    ours_rng = torch.equal(state, torch.get_rng_state())
    size = min(1000, args.n // 2)
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subset_size=size)
    metric.real_features, metric.fake_features = [torch.from_numpy(real)], [torch.from_numpy(fake)]
    state = torch.get_rng_state()
    t = time.perf_counter()
    tm_kid, tm_std = (float(v) for v in metric.compute())
    t_theirs = time.perf_counter() - t
    theirs_rng = torch.equal(state, torch.get_rng_state())
    print(f"KID (100 subsets of {size}): ours {kid:.5f} ± {kid_std:.5f} ({t_ours:.2f} s, global RNG untouched: "
          f"{ours_rng})  torchmetrics {tm_kid:.5f} ± {tm_std:.5f} ({t_theirs:.2f} s, global RNG untouched: {theirs_rng})")


if __name__ == "__main__":
    main()
