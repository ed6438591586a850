"""Real dataset files in the formats users and torchvision's downloaders leave on disk."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def image_folder(root: Path, *, classes=("cat", "dog"), per_class: int = 12, size=(40, 30), corrupt: bool = True,
                 seed: int = 0) -> Path:
    """PNG and JPEG images in nested class folders (class/x.png, class/deep/y.jpg), one corrupt JPEG."""
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            folder = root / c / ("deep" if i % 2 else "") if c else root
            folder.mkdir(parents=True, exist_ok=True)
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"{c or 'img'}_{i:03d}.{'png' if i % 3 else 'jpg'}")
    if corrupt:
        good = (root / (classes[-1] or "") / f"{classes[-1] or 'img'}_000.jpg").read_bytes()
        (root / (classes[-1] or "") / "broken.jpg").write_bytes(good[: len(good) // 3])  # a truncated JPEG
    return root


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    raw = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        Path(str(path) + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def fashion_files(data_dir: Path, n: int = 100, gz: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DATA_DIR/FashionMNIST/raw/train-images-idx3-ubyte(.gz) + labels, as torchvision leaves them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = (rng.integers(0, 60, (n, 28, 28)) + labels[:, None, None] * 20).astype(np.uint8)
    raw = data_dir / "FashionMNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images, gz)
    write_idx(raw / "train-labels-idx1-ubyte", labels, gz)
    return images, labels


def cifar_files(data_dir: Path, per_batch: int = 20, protocol: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: pickled plain dicts
    of a (n, 3072) uint8 array and a list of int labels, the layout of the official tarball."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    all_images, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(x) for x in rng.integers(0, 10, per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {"batch_label": name, "labels": labels, "data": data,
                 "filenames": [f"img_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        if name != "test_batch":
            all_images.append(data.reshape(-1, 3, 32, 32))
            all_labels += labels
    meta = {"num_cases_per_batch": per_batch, "num_vis": 3072,
            "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return np.concatenate(all_images), np.array(all_labels)
