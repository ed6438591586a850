"""What every dataset loader returns: uint8 images (N, C, H, W) with labels, and the batched
uint8 -> [-1, 1] conversion used on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) uint8
    name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def to_unit_range(batch_u8, dtype=None):
    """uint8 images -> floats in [-1, 1], the generator's Tanh range; one batched op."""
    x = batch_u8.to(dtype) if dtype is not None else batch_u8.float()
    return x.mul_(1 / 127.5).sub_(1.0)
