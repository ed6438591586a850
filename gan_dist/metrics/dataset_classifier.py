"""A small classifier per labelled dataset: the feature space of the quality metrics beyond MNIST.

The shipped digit classifier (classifier.py) serves MNIST at 28×28. Any other labelled dataset
(Fashion-MNIST, CIFAR-10, a folder with class subfolders, MNIST prepared to another size) gets a
classifier trained on first use, deterministically (seeded init, order and split; the global RNG
is left untouched), on that dataset's own training labels with a seeded held-out split, and
cached as safetensors + JSON (no pickle) under $GAN_DIST_CACHE/classifiers, keyed by the data's
contents. Its held-out accuracy is stored with it and printed, so a reader knows how much the
feature space can tell apart. The budget is small (about 60,000 image passes at 32×32) so that
it trains in about a minute on a laptop CPU; its accuracy is that of a quick classifier, not the
state of the art.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gan_dist.atomic import write_atomic
from gan_dist.errors import GanError

VERSION = 1
SIDE = 32          # inputs are resized to 32×32: one network for every image size
FEATURE_DIM = 32 * 4 * 4
PASSES = 60_000    # image passes of training (epochs = PASSES / training images, 2..15)
HELD_OUT = 0.1


class SmallClassifier(nn.Module):
    """(B, C, H, W) in [-1, 1] -> logits (B, classes); `features` is the (B, 512) last conv block,
    kept spatial for the reason given in classifier.DigitClassifier's docstring."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)  # 32 -> pool 16
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)        # 16 -> pool 8
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)        # 8 -> pool 4
        self.head = nn.Linear(FEATURE_DIM, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (SIDE, SIDE):
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 16, 16, 16)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 32, 8, 8)
        return F.max_pool2d(F.relu(self.conv3(x)), 2).flatten(1)  # (B, 32 * 4 * 4 = 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _unit(images_u8) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images_u8)).float().div_(127.5).sub_(1.0)


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): a seeded 10% held out (at least 1, at most 5,000)."""
    order = np.random.default_rng(seed).permutation(n)
    held = min(5000, max(1, round(n * HELD_OUT)))
    return np.sort(order[held:]), np.sort(order[:held])


def train_small_classifier(images_u8: np.ndarray, labels: np.ndarray, classes: int, *, seed: int = 0,
                           batch_size: int = 128, lr: float = 2e-3) -> tuple[SmallClassifier, dict]:
    labels = np.asarray(labels, np.int64)
    train_rows, held_rows = split(len(labels), seed)
    epochs = int(min(15, max(2, math.ceil(PASSES / max(1, len(train_rows))))))
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stays as it was
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = SmallClassifier(images_u8.shape[1], classes)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        y_all = torch.from_numpy(labels)
        for _ in range(epochs):
            model.train()
            order = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=gen)]
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size].numpy()
                x = _unit(images_u8[np.sort(idx)])
                y = y_all[np.sort(idx)]
                if torch.rand((), generator=gen) < 0.5:  # horizontal flips: seeded, per batch
                    x = x.flip(-1)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    model.eval()
    acc = accuracy(model, images_u8[held_rows], labels[held_rows])
    return model, {"held_out_accuracy": round(acc, 4), "held_out": len(held_rows),
                   "trained_on": len(train_rows), "epochs": epochs, "seed": seed}


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: np.ndarray, labels: np.ndarray) -> float:
    preds = torch.cat([model(_unit(images_u8[i:i + 1000])).argmax(1) for i in range(0, len(images_u8), 1000)])
    return float((preds.numpy() == np.asarray(labels)).mean())


def data_key(images_u8: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(f"v{VERSION}".encode())
    h.update(np.ascontiguousarray(images_u8).data)
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    h.update(str(images_u8.shape).encode())
    return h.hexdigest()[:16]


def dataset_classifier(images_u8: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], name: str,
                       cache: Path, log=None) -> tuple[SmallClassifier, dict]:
    """The dataset's classifier from the cache, or trained now and cached; (model, info)."""
    from safetensors.torch import load_file, save_file

    if labels is None or len(set(np.asarray(labels).tolist())) < 2:
        raise GanError(f"{name} has no class labels, so there is no classifier feature space for its quality "
                       "metrics: give the images class subfolders, or use --features inception")
    key = data_key(images_u8, labels)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.split(":", 1)[-1]).name or name).strip("-.") or "data"
    path = Path(cache) / "classifiers" / f"{slug}-{key}.safetensors"
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
            model = SmallClassifier(images_u8.shape[1], len(classes))
            model.load_state_dict(load_file(str(path)))
            return _frozen(model), info
        except Exception:  # noqa: BLE001, S110 -- damaged cache entry, whatever the parser raises: train again
            pass
    if log is not None:
        log(f"training a classifier on {name}'s labels for the quality metrics (once; cached)")
    model, info = train_small_classifier(images_u8, labels, len(classes))
    info = {"dataset": name, "classes": list(classes), "shape": list(images_u8.shape[1:]), "key": key,
            "version": VERSION, **info}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        write_atomic(path, lambda tmp: save_file(tensors, str(tmp)))
        write_atomic(info_path, json.dumps(info, indent=2) + "\n")
    except OSError:  # read-only cache: this process keeps it in memory
        pass
    if log is not None:
        log(f"{name} classifier: held-out accuracy {info['held_out_accuracy']:.3f} on {info['held_out']} images "
            f"(trained on {info['trained_on']}, {info['epochs']} epochs)")
    return _frozen(model), info


def _frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
