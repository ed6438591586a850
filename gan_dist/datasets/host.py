"""A training set too large for the device: uint8 images stay in host memory (memory-mapped from
the packed cache), each batch is gathered there and copied pinned and non-blocking.

Same interface as DeviceData (`batch(indices)` -> images in [-1, 1], labels), and the indices are
the same function of (seed, epoch, global batch), so results and exact resume do not depend on
where the images live.
"""

from __future__ import annotations

import numpy as np
import torch

from gan_dist.datasets.base import ImageSet, to_unit_range


class HostData:
    def __init__(self, data: ImageSet, device: torch.device):
        self.images = data.images  # np.memmap or array, (N, C, H, W) uint8; pages come in as batches ask
        self.labels = torch.from_numpy(data.labels.astype("int64")).to(device) if data.labels is not None else None
        self.device = device
        self.shape = data.shape
        self.pin = device.type == "cuda"

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = indices.cpu().numpy()
        host = torch.from_numpy(np.ascontiguousarray(self.images[rows]))  # gathered in index order
        if self.pin:
            host = host.pin_memory()
        images = host.to(self.device, non_blocking=True)
        labels = self.labels[indices] if self.labels is not None else None
        return to_unit_range(images), labels
