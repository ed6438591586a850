"""`--features inception`: the reference statistics of a run's real images and the quality row of
generated images against them, with the protocol written into every row.

The reference is a fixed (seed 0) subset of the training set, prepared as the run trained on it:
its mean and covariance (float64) and up to 10,000 of its features (float32, for KID and
precision/recall). They are cached beside the dataset's pack (the run's --cache-dir, by default
DATA_DIR/.gan_cache or PATH/.gan_cache) as a plain .npz (read with allow_pickle=False), named
and checked by the data's fingerprint (sha256 of the reference images), the image count, the
preprocessing version and the network's sha256: changed data makes a new file. A damaged file
is recomputed with a warning (never used), as a damaged pack is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_dist.errors import GanError
from gan_dist.metrics import inception
from gan_dist.rundir import write_atomic

FORMAT = 1
KEPT = 10_000           # reference features stored for KID and precision/recall
REFERENCE_SEED = 0      # the subset of real images: fixed, so every evaluation reuses one cache
PR_MAX = 5_000          # precision/recall on at most this many per side (its k-NN is quadratic)
SPLIT = "train"


@dataclass(frozen=True)
class InceptionReference:
    name: str              # the dataset, as the run names it
    count: int             # real images behind mu and sigma
    mu: np.ndarray         # (2048,) float64
    sigma: np.ndarray      # (2048, 2048) float64
    features: np.ndarray   # (<= KEPT, 2048) float32
    fingerprint: str       # sha256 of the reference images (shape and bytes)
    path: Path | None      # its cache file; None when the cache location is not writable
    split: str = SPLIT


_MEMORY: dict[str, InceptionReference] = {}


def reference_rows(total: int, count: int) -> np.ndarray:
    """Which training images form a reference of `count`: a seeded subset, in dataset order."""
    return np.sort(np.random.default_rng(REFERENCE_SEED).permutation(total)[:count])


def fingerprint(images_u8: np.ndarray) -> str:
    h = hashlib.sha256(str(tuple(images_u8.shape)).encode())
    h.update(np.ascontiguousarray(images_u8).data)
    return h.hexdigest()


def cache_file(cache_dir: Path, name: str, count: int, print_: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.split(":", 1)[-1]).name or name).strip("-.") or "data"
    return (Path(cache_dir) / "inception"
            / f"{slug}-{SPLIT}-n{count}-{print_[:16]}-p{inception.PREPROCESSING_VERSION}-"
              f"{inception.WEIGHTS_SHA256[:8]}.npz")


def _meta(name: str, count: int, print_: str) -> dict:
    return {"format": FORMAT, "dataset": name, "split": SPLIT, "count": count, "fingerprint": print_,
            "preprocessing": inception.PREPROCESSING_VERSION, "network_sha256": inception.WEIGHTS_SHA256}


def _read(path: Path, meta: dict) -> tuple[InceptionReference | None, str]:
    """(reference, '') from a cache file that matches `meta`, else (None, what is wrong)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = json.loads(str(f["meta"]))
            mu, sigma, feats = f["mu"], f["sigma"], f["features"]
    except FileNotFoundError:
        return None, "missing"
    except Exception as err:  # noqa: BLE001 -- a damaged zip or array raises many types
        return None, f"unreadable ({type(err).__name__}: {err})"
    if stored != meta:
        return None, "written for other data or another protocol"
    d = inception.FEATURE_DIM
    if mu.shape != (d,) or sigma.shape != (d, d) or feats.ndim != 2 or feats.shape[1] != d:
        return None, "arrays of the wrong shape"
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        return None, "non-finite statistics"
    return InceptionReference(meta["dataset"], meta["count"], mu, sigma, feats, meta["fingerprint"], path), ""


def _write(path: Path, ref: InceptionReference, meta: dict) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, mu=ref.mu, sigma=ref.sigma, features=ref.features, meta=np.array(json.dumps(meta)))

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save)


def reference_stats(images_u8: np.ndarray, name: str, cache_dir: Path | None, *,
                    device: torch.device | str | None = None, log=None) -> InceptionReference:
    """Statistics of these real images: from the cache when it holds them, else computed (with a
    progress bar) and cached. A damaged or mismatched cache file is recomputed with a warning."""
    count = len(images_u8)
    print_ = fingerprint(images_u8)
    meta = _meta(name, count, print_)
    path = cache_file(cache_dir, name, count, print_) if cache_dir is not None else None
    if path is not None and str(path) in _MEMORY:
        return _MEMORY[str(path)]
    if path is not None:
        ref, problem = _read(path, meta)
        if ref is not None:
            _MEMORY[str(path)] = ref
            return ref
        if problem != "missing":
            from gan_dist.errors import warn

            warn(f"the inception statistics cache {path} cannot be used ({problem}): recomputing it")
    if log is not None:
        log(f"inception reference: {count:,} real {name} images, once (cached)")
    feats = inception.inception_features(images_u8, device=device, label=f"inception: real {name}")
    keep = np.sort(np.random.default_rng(REFERENCE_SEED).permutation(count)[:KEPT])
    ref = InceptionReference(name, count, feats.mean(0), np.cov(feats, rowvar=False), feats[keep].astype(np.float32),
                             print_, path)
    if path is not None:
        try:
            _write(path, ref, meta)
            _MEMORY[str(path)] = ref
        except OSError as err:  # read-only data directory: this process keeps it
            from gan_dist.errors import warn

            warn(f"cannot write the inception statistics under {path.parent} ({err.strerror or err}): they are "
                 "kept for this process only; pass --cache-dir DIR (writable) at training to cache them")
    return ref


def run_reference(cfg: dict, *, count: int | None = None, device=None, log=None) -> InceptionReference:
    """The reference of a run (its config.json as a dict): its training set, prepared as it
    trained, `count` images of it (default per device), cached beside its pack."""
    from gan_dist.datasets import default_cache_dir, load_dataset

    inception.check_weights(inception.weights_path())  # now, in one line: the extra missing or the file wrong
    dataset, data_dir = cfg.get("dataset", "mnist"), cfg.get("data_dir") or "data"
    try:
        data = load_dataset(dataset, data_dir, image_size=cfg.get("image_size"), channels=cfg.get("channels"),
                            cache_dir=cfg.get("cache_dir"), show_progress=False, seed=cfg.get("seed", 0),
                            stacked_images=cfg.get("stacked_images"))
    except GanError as err:
        raise GanError(f"the real images for the inception reference cannot be loaded ({err}); "
                       "run from where training ran") from None
    device = torch.device(device) if device is not None else inception.default_device()
    count = min(count or inception.default_counts(device)[1], len(data))
    images = np.asarray(data.images[reference_rows(len(data), count)])
    cache = Path(cfg["cache_dir"]) if cfg.get("cache_dir") else default_cache_dir(dataset, data_dir)
    return reference_stats(images, dataset, cache, device=device, log=log)


def protocol(ref: InceptionReference, fakes: int, device) -> dict:
    """The row's protocol: network and its sha256, preprocessing, fakes, reference split and count."""
    return {"features": inception.NAME, **inception.network_facts(), "fakes": fakes, "real": ref.name,
            "reference_split": ref.split, "reference_count": ref.count, "device": torch.device(device).type}


def protocol_text(fakes: int, ref: InceptionReference, device) -> str:
    return (f"inception protocol: {fakes:,} generated vs {ref.count:,} real {ref.name} ({ref.split}) images, "
            f"{inception.RESIZE}, network sha256 {inception.WEIGHTS_SHA256[:12]}…, on {torch.device(device).type}")


def score_images(fake_u8, ref: InceptionReference, *, seed: int = 0, device=None) -> dict:
    """FID, KID (mean ± std over subsets), precision and recall of generated uint8 images."""
    from gan_dist.metrics.quality import (
        frechet_distance,
        gaussian_stats,
        kid_subsets,
        precision_recall,
        rounded,
        unit_rows,
    )

    device = torch.device(device) if device is not None else inception.default_device()
    feats = inception.inception_features(fake_u8, device=device, label="inception: generated")
    n = len(feats)
    mu, sigma = gaussian_stats(feats)
    kid, kid_std, subsets, size = kid_subsets(ref.features, feats, seed=seed)
    rng = np.random.default_rng(seed)
    m = min(n, len(ref.features), PR_MAX)
    pr_real = ref.features[rng.choice(len(ref.features), m, replace=False)].astype(np.float64)
    pr_fake = feats[rng.choice(n, m, replace=False)] if m < n else feats
    precision, recall = precision_recall(unit_rows(pr_real), unit_rows(pr_fake))
    return {"fd": rounded(frechet_distance(mu, sigma, ref.mu, ref.sigma)), "kid": rounded(kid),
            "kid_std": rounded(kid_std), "kid_subsets": subsets, "kid_subset_size": size,
            "precision": rounded(precision), "recall": rounded(recall), "samples": n,
            **protocol(ref, n, device)}
