"""Stacked MNIST's yardsticks, PacGAN's way: each channel of an image is classified by the shipped
digit classifier, the triple (r, g, b) is its mode (of 1,000), and over 26,000 samples

- `modes`: the number of distinct triples produced (a mode counts once it has one sample);
- `kl_uniform`: KL(p_gen ‖ uniform over 1,000) = Σ p log(1000 p) over the non-empty modes,
  natural log (PacGAN's JSD.KLD skips p = 0).

The same two figures for 26,000 real stacked images show what the classifier's own errors cost
(a perfect classifier would find all 1,000 modes and a KL of sampling noise only, ~0.02).

Also the "auto" feature space of stacked runs: the digit classifier's 512 features of each
channel side by side (1,536), its class probabilities the product of the three channels'.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gan_dist.datasets.stacked import DIGIT_SIDE, MODES

MODE_SAMPLES = 26_000


def _crop(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) -> (N, 3, 28, 28): the centre, where --image-size 32 padded the digits."""
    off = (x.shape[-1] - DIGIT_SIDE) // 2
    return x[..., off:off + DIGIT_SIDE, off:off + DIGIT_SIDE] if off else x


class StackedDigitModel(nn.Module):
    """The digit classifier on each channel: (B, 3, S, S) in [-1, 1] -> features (B, 3·512);
    head -> (B, 1000) logits whose softmax is the product of the channels' class probabilities."""

    def __init__(self, digit: nn.Module):
        super().__init__()
        self.digit = digit

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        per_channel = _crop(x).reshape(b * 3, 1, DIGIT_SIDE, DIGIT_SIDE)  # (B·3, 1, 28, 28)
        return self.digit.features(per_channel).reshape(b, -1)             # (B, 1536)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        b = f.shape[0]
        logp = torch.log_softmax(self.digit.head(f.reshape(b * 3, -1)), dim=1).reshape(b, 3, 10)
        joint = logp[:, 0, :, None, None] + logp[:, 1, None, :, None] + logp[:, 2, None, None, :]
        return joint.reshape(b, MODES)  # index 100 r + 10 g + b


def stacked_space(side: int):
    from gan_dist.metrics.classifier import classifier_id, load_classifier
    from gan_dist.metrics.quality import FeatureSpace

    return FeatureSpace("stacked digit classifier", "stacked-digit-classifier", f"{classifier_id()}-stacked",
                        StackedDigitModel(load_classifier()), (3, side, side), MODES)


@torch.no_grad()
def triples(images_u8, batch: int = 2000) -> np.ndarray:
    """(N, 3) digits, R, G, B, of uint8 (N, 3, S, S) stacked images (array, tensor or lazy rows)."""
    from gan_dist.metrics.classifier import load_classifier

    model = load_classifier()
    out = []
    for i in range(0, len(images_u8), batch):
        chunk = images_u8[i:i + batch]
        x = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
        x = _crop(x.cpu()).float().div_(127.5).sub_(1.0)
        out.append(model(x.reshape(-1, 1, DIGIT_SIDE, DIGIT_SIDE)).argmax(1).reshape(-1, 3))
    return torch.cat(out).numpy() if out else np.zeros((0, 3), np.int64)


def mode_figures(digits: np.ndarray) -> dict:
    """PacGAN's modes and KL(p ‖ uniform over 1,000) of (N, 3) classified digits."""
    codes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = np.bincount(codes, minlength=MODES)
    p = counts[counts > 0] / len(codes)
    return {"modes": int((counts > 0).sum()), "kl_uniform": float((p * np.log(p * MODES)).sum())}


def generated_figures(generator, *, samples: int = MODE_SAMPLES, seed: int = 0, latent_dim: int | None = None) -> dict:
    """Modes and KL of `samples` images from seeded noise (the row's modes / kl_uniform)."""
    from gan_dist.metrics.quality import generate

    images = generate(generator, samples, seed, latent_dim=latent_dim)
    return {**mode_figures(triples(images)), "modes_of": MODES, "mode_samples": samples}


def real_figures(data) -> dict:
    """The same figures for real stacked images (all of `data`)."""
    figures = mode_figures(triples(data.images))
    return {"real_modes": figures["modes"], "real_kl_uniform": figures["kl_uniform"], "real_mode_samples": len(data)}
