"""Stacked MNIST (`--dataset stacked-mnist`): each image stacks three MNIST digits, drawn
independently and uniformly, as its R, G and B channels, so the data has 1,000 modes (the digit
triples). The protocol of VEEGAN (Srivastava et al. 2017) as PacGAN (Lin et al. 2018) ran it:
28×28 images, 128,000 of them by default; PacGAN drew from all 70,000 MNIST digits.

Digits: MNIST's training split from --data-dir (DATA_DIR/MNIST/raw, torchvision's layout) when
it is there, else the 5,000 digits shipped in the package (mnist-sample). The composition is
deterministic in the run's --seed (numpy's PCG64: the same triples on every machine). The label
of an image is its triple, 100·r + 10·g + b, so conditional runs have 1,000 classes.

Nothing is composed ahead of time: the set is one digit table (M, S, S) and N index triples,
and images are composed when asked for (`StackedImages[rows]` on the host, `StackedData.batch`
on the training device, one gather per batch). Memory: the table (60,000 digits padded to
32×32: 61 MB; the shipped 5,000: 5 MB) plus 24 bytes per image for its triple and label
(128,000 images: 3 MB), against 393 MB for the 128,000 composed 32×32 images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_dist.datasets.base import ImageSet, to_unit_range
from gan_dist.datasets.idx import load_mnist, mnist_present
from gan_dist.datasets.sample import SAMPLE_FILE, load_sample
from gan_dist.errors import GanError

NAME = "stacked-mnist"
TITLE = "Stacked MNIST (three digits as R, G, B; 1,000 modes)"
DEFAULT_IMAGES = 128_000
DIGIT_SIDE = 28
SIZES = (28, 32)  # 32: two pixels of background on every side (the 32 px conv networks)
MODES = 1000
CLASSES = tuple(f"{i:03d}" for i in range(MODES))  # "rgb": class 372 is R=3, G=7, B=2


@dataclass(frozen=True)
class DigitTable:
    """The MNIST digits the stacked images are composed from."""
    digits: np.ndarray  # (M, 28, 28) uint8
    labels: np.ndarray  # (M,) int64
    source: str         # "mnist" (the training split under --data-dir) or "mnist-sample"


def digit_table(data_dir: Path, sample_file: Path = SAMPLE_FILE) -> DigitTable:
    """MNIST's training digits from data_dir when both IDX files are there (a damaged file is an
    error, not a reason to fall back), else the shipped sample."""
    if mnist_present(Path(data_dir), train=True):
        mnist = load_mnist(Path(data_dir), train=True, download=False)
        return DigitTable(mnist.images[:, 0], mnist.labels.astype(np.int64), "mnist")
    try:
        sample = load_sample(sample_file)
    except (OSError, ValueError, KeyError) as err:
        raise GanError(f"--dataset stacked-mnist needs MNIST digits: there are none under {data_dir}/MNIST/raw and "
                       f"the shipped sample {sample_file} cannot be read ({type(err).__name__}): put MNIST's IDX files "
                       "there (--data-dir), or reinstall gan_dist") from None
    return DigitTable(sample.images[:, 0], sample.labels.astype(np.int64), "mnist-sample")


def check_settings(image_size: int | None, channels: int | None) -> None:
    if image_size is not None and image_size not in SIZES:
        raise GanError(f"--dataset stacked-mnist is {DIGIT_SIDE}×{DIGIT_SIDE} (PacGAN's protocol), padded to 32 with "
                       f"--image-size 32; --image-size {image_size} is not offered: use 28 or 32")
    if channels is not None and channels != 3:
        raise GanError(f"--dataset stacked-mnist has 3 channels (one digit each), not --channels {channels}: "
                       "drop --channels")


class StackedImages:
    """A read-only, lazily composed uint8 array of shape (N, 3, S, S): row i is the three
    table digits triples[i]. Indexing by rows (an int, a slice, an index array) composes just
    those rows; np.asarray composes all of them."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, table: np.ndarray, triples: np.ndarray):
        self.table = table      # (M, S, S) uint8, already padded to S
        self.triples = triples  # (N, 3) int32 rows of the table

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.triples), 3, *self.table.shape[1:])

    @property
    def nbytes(self) -> int:  # what the composed images would take
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, tuple):
            raise TypeError("StackedImages is indexed by rows only")
        return self.table[self.triples[rows]]  # (k, 3, S, S) or (3, S, S)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def compose(table: DigitTable, *, count: int = DEFAULT_IMAGES, seed: int = 0, image_size: int | None = None,
            channels: int | None = None) -> ImageSet:
    """The stacked set: `count` triples of table rows drawn uniformly (with replacement, as
    PacGAN's np.random.randint did) from a generator seeded by `seed`."""
    check_settings(image_size, channels)
    if count < 1:
        raise GanError(f"--stacked-images must be at least 1, got {count}")
    side = image_size or DIGIT_SIDE
    pad = (side - DIGIT_SIDE) // 2
    padded = np.pad(table.digits, ((0, 0), (pad, pad), (pad, pad))) if pad else table.digits
    triples = np.random.default_rng(seed).integers(0, len(table.digits), size=(count, 3)).astype(np.int32)
    digits = table.labels[triples]  # (N, 3): R, G, B digit
    labels = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    info = {"title": TITLE, "settings": {"image_size": side, "channels": 3, "pad": pad},
            "stacked": {"digits": table.source, "digit_images": len(table.digits), "images": count, "seed": seed,
                        "memory_bytes": int(padded.nbytes + triples.nbytes + labels.nbytes)}}
    return ImageSet(StackedImages(np.ascontiguousarray(padded), triples), labels.astype(np.int64), NAME, CLASSES,
                    info=info)


def is_stacked(data) -> bool:
    return isinstance(getattr(data, "images", None), StackedImages)


class StackedData:
    """The training loop's view (DeviceData's interface): the digit table, the triples and the
    labels on the device; `batch(indices)` composes the batch there in one gather. Small enough
    for any device, so --data-memory does not apply."""

    def __init__(self, data: ImageSet, device):
        import torch  # here: the dataset table (and so config.py and the report) stays torch-free

        images: StackedImages = data.images  # type: ignore[assignment]
        self.table = torch.from_numpy(images.table).to(device)                       # (M, S, S) uint8
        self.triples = torch.from_numpy(images.triples.astype(np.int64)).to(device)  # (N, 3)
        self.labels = torch.from_numpy(data.labels).to(device)                       # (N,)
        self.device = device
        self.shape = data.shape

    def __len__(self) -> int:
        return len(self.triples)

    def batch(self, indices):
        """(images in [-1, 1] (B, 3, S, S), labels (B,)) of these dataset rows."""
        rows = self.triples[indices].reshape(-1)  # (B·3,): index_select gathers ~9x faster than table[rows]
        images = self.table.index_select(0, rows).view(len(indices), 3, *self.table.shape[1:])
        return to_unit_range(images), self.labels[indices]
