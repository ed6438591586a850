"""What every dataset loader returns: uint8 images (N, C, H, W) with labels (or None for an
unlabelled folder) and class names, and the batched uint8 -> [-1, 1] conversion used on the
training device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gan_dist import errors


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, C, H, W) uint8 (an np.memmap for a packed cache)
    labels: np.ndarray | None  # (N,) integers, or None: unlabelled
    name: str
    classes: tuple[str, ...] | None = None  # label index -> class name
    info: dict = field(default_factory=dict, compare=False)  # where it came from (cache, skipped files)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.images)


def to_unit_range(batch_u8, dtype=None):
    """uint8 images -> floats in [-1, 1], the generator's Tanh range; one batched op."""
    x = batch_u8.to(dtype) if dtype is not None else batch_u8.float()
    return x.mul_(1 / 127.5).sub_(1.0)


def warn(message: str, *, show: bool = True) -> None:
    """A warning users must see (skipped images, in-memory cache): one line on stderr. Every
    process of a run loads the data; training passes `warnings=` down so that only the first
    process of each machine speaks."""
    if show:
        errors.warn(message)
