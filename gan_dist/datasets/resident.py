"""The training set where the loop reads it: all of it on the training device as uint8.

The loop asks for batches by dataset index (`batch(indices)`), so where the images live
(device memory here; host memory for sets too large for it) is this module's business only.
"""

from __future__ import annotations

import torch

from gan_dist.datasets.base import ImageSet, to_unit_range


class DeviceData:
    """uint8 images (N, C, H, W) and int64 labels (N,) resident on `device`; batches are
    gathered and normalised to [-1, 1] there, in one op each (no DataLoader, no host sync)."""

    def __init__(self, data: ImageSet, device: torch.device):
        self.images = torch.from_numpy(data.images).to(device)
        self.labels = torch.from_numpy(data.labels.astype("int64")).to(device) if data.labels is not None else None
        self.device = device
        self.shape = data.shape

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images in [-1, 1], labels or None) of these dataset rows."""
        labels = self.labels[indices] if self.labels is not None else None
        return to_unit_range(self.images[indices]), labels
