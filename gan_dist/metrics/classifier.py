"""The digit classifier whose penultimate layer is the feature space of the quality metrics.

FID's idea (compare feature statistics of real and generated images) without Inception
weights, which cannot be downloaded here. The network is small, trained deterministically by
`scripts/train_classifier.py` on labelled real digits and shipped as package data
(`data/digit_classifier.safetensors`) with its measured test accuracy in
`data/digit_classifier.json`. Inputs are images in [-1, 1], the generator's Tanh range.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError

CLASSIFIER_FILE = Path(__file__).resolve().parents[1] / "data" / "digit_classifier.safetensors"
CLASSIFIER_INFO = CLASSIFIER_FILE.with_suffix(".json")
FEATURE_DIM = 512


class DigitClassifier(nn.Module):
    """(B, 1, 28, 28) in [-1, 1] -> logits (B, 10); `features` gives the (B, 512) penultimate layer.

    The penultimate layer is the flattened last conv block, not a narrow fully connected
    layer: a narrow layer trained only to separate classes maps pure noise confidently onto
    the digit manifold (we measured noise scoring precision ~1.0 there), while the spatial
    conv features keep what makes a digit look like one.
    """

    def __init__(self, *, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)   # 28 -> 24, pool -> 12
        self.conv2 = nn.Conv2d(16, 32, 5)  # 12 -> 8, pool -> 4
        self.head = nn.Linear(FEATURE_DIM, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)     # (B, 16, 12, 12)
        return F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)  # (B, 32 * 4 * 4 = 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _shift(batch: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to `max_shift` pixels (zero padding = background -1)."""
    b = batch.shape[0]
    padded = F.pad(batch, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None, :])  # (B, 28)
    cols = (dx[:, None] + torch.arange(28)[None, :])  # (B, 28)
    idx_b = torch.arange(b)[:, None, None]
    return padded[idx_b, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def train_classifier(images_u8: np.ndarray, labels: np.ndarray, *, epochs: int = 30, seed: int = 0,
                     batch_size: int = 100, lr: float = 2e-3, log=None) -> DigitClassifier:
    """Deterministic training on CPU: seeded init, seeded order and augmentation, one thread order."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.asarray(images_u8)).float().div_(127.5).sub_(1.0)  # (N, 1, 28, 28)
    y_all = torch.from_numpy(np.asarray(labels).astype(np.int64))
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    n = len(x_all)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = _shift(x_all[idx], gen)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images_u8: np.ndarray, labels: np.ndarray) -> float:
    x = torch.from_numpy(np.asarray(images_u8)).float().div_(127.5).sub_(1.0)
    preds = torch.cat([model(x[i:i + 2000]).argmax(1) for i in range(0, len(x), 2000)])
    return float((preds.numpy() == np.asarray(labels)).mean())


def save_classifier(model: DigitClassifier, path: Path, info: dict) -> None:
    """Weights as safetensors (no pickle) and a JSON sidecar; both written atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"feature_dim": str(FEATURE_DIM)}))
    info = dict(info, sha256=file_hash(path))
    write_atomic(path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=4)
def load_classifier(path: Path = CLASSIFIER_FILE) -> DigitClassifier:
    """The shipped classifier, loaded once per process, in eval mode on the CPU."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise GanError(f"digit classifier {path} is missing: reinstall gan_dist or run "
                       "scripts/train_classifier.py")
    try:
        model = DigitClassifier()
        model.load_state_dict(load_file(str(path), device="cpu"))
    except Exception as err:  # noqa: BLE001 -- damaged or foreign file, whatever the parser raises
        raise GanError(f"{path} is not a readable classifier ({err}): run scripts/train_classifier.py") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@lru_cache(maxsize=4)
def classifier_id(path: Path = CLASSIFIER_FILE) -> str:
    """Short content hash: real-data statistics are cached per (dataset, classifier)."""
    return file_hash(Path(path))[:16]
