"""MNIST and Fashion-MNIST in torchvision's layout: the IDX files (optionally gzipped) under
DIR/MNIST/raw and DIR/FashionMNIST/raw (same file names, same format)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gan_dist.datasets.base import ImageSet
from gan_dist.errors import GanError

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): magic, dims, then big-endian uint8 data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise GanError(f"{path} cannot be read ({type(err).__name__}: {err}): download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise GanError(f"{path} is not a uint8 IDX file: replace it with the original file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise GanError(f"{path} is truncated ({data.size} of {int(np.prod(dims))} bytes): download it again")
    return data.reshape(dims)


DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def _find(data_dir: Path, stem: str, folder_name: str = "MNIST") -> Path | None:
    for folder in (data_dir / folder_name / "raw", data_dir):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def mnist_present(data_dir: Path, train: bool = True) -> bool:
    """Whether both IDX files of the split are under data_dir (torchvision's layout or flat)."""
    return all(_find(Path(data_dir), stem) is not None for stem in MNIST_FILES[train])


def load_mnist(data_dir: Path, train: bool = True, download: bool = True) -> ImageSet:
    """MNIST from torchvision's layout (DIR/MNIST/raw/*-ubyte[.gz]), downloading if missing."""
    data_dir = Path(data_dir)
    image_stem, label_stem = MNIST_FILES[train]
    if (_find(data_dir, image_stem) is None or _find(data_dir, label_stem) is None) and download:
        _download_mnist(data_dir, train)
    image_path, label_path = _find(data_dir, image_stem), _find(data_dir, label_stem)
    if image_path is None or label_path is None:
        raise GanError(
            f"MNIST files not found under {data_dir}/MNIST/raw and could not be downloaded: "
            "copy the four IDX files there, or use --dataset mnist-sample (shipped, no download)")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GanError(f"{image_path} and {label_path} do not match (images {images.shape}, "
                       f"labels {labels.shape}): replace them with the original MNIST files")
    return ImageSet(images[:, None].copy(), labels.copy(), "mnist" if train else "mnist-test", DIGIT_CLASSES)


def _download_mnist(data_dir: Path, train: bool, kind: str = "MNIST") -> None:
    """Try torchvision's downloader; offline it fails and the caller explains what to do."""
    try:
        import torchvision.datasets as tvd

        getattr(tvd, kind)(str(data_dir), train=train, download=True)
    except Exception:  # noqa: BLE001, S110 -- offline, mirror down, disk full: the caller says what to do
        pass


def load_fashion(data_dir: Path, train: bool = True, download: bool = True) -> ImageSet:
    """Fashion-MNIST from DIR/FashionMNIST/raw/*-ubyte[.gz] (torchvision's layout), downloading if missing."""
    data_dir = Path(data_dir)
    stems = MNIST_FILES[train]
    if download and any(_find(data_dir, s, "FashionMNIST") is None for s in stems):
        _download_mnist(data_dir, train, "FashionMNIST")
    paths = [_find(data_dir, s, "FashionMNIST") for s in stems]
    if None in paths:
        raise GanError(f"Fashion-MNIST files not found under {data_dir}/FashionMNIST/raw and could not be "
                       f"downloaded: copy {', '.join(s + '[.gz]' for s in stems)} there (from "
                       "https://github.com/zalandoresearch/fashion-mnist) or run once where the internet is reachable")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GanError(f"{paths[0]} and {paths[1]} do not match (images {images.shape}, labels {labels.shape}): "
                       "replace them with the original Fashion-MNIST files")
    return ImageSet(images[:, None].copy(), labels.astype(np.int64), "fashion-mnist" if train else "fashion-mnist-test",
                    FASHION_CLASSES)
