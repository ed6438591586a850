"""The training set where the loop reads it: on the training device as uint8 when it fits.

The loop asks for batches by dataset index (`batch(indices)`), so where the images live
(device memory here; host memory for sets too large for it, host.py) is this module's business only.

The rule (`--data-memory auto`): on a GPU the set stays on the device when its uint8 images
take at most a quarter of the device's memory (the rest is for networks, activations and
optimiser state); otherwise it stays in host memory. On the CPU the "device" is host memory:
the set is copied into RAM when it takes at most half of the memory available now, and is
otherwise read from the memory-mapped cache, the operating system paging it in as batches ask.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from gan_dist.datasets.base import ImageSet, to_unit_range
from gan_dist.errors import GanError

DEVICE_SHARE = 0.25  # of GPU memory
HOST_SHARE = 0.5     # of available RAM, for CPU runs


class DeviceData:
    """uint8 images (N, C, H, W) and int64 labels (N,) resident on `device`; batches are
    gathered and normalised to [-1, 1] there, in one op each (no DataLoader, no host sync)."""

    def __init__(self, data: ImageSet, device: torch.device):
        images = data.images if data.images.flags.writeable else np.array(data.images)  # memmap -> RAM
        self.images = torch.from_numpy(images).to(device)
        self.labels = torch.from_numpy(data.labels.astype("int64")).to(device) if data.labels is not None else None
        self.device = device
        self.shape = data.shape

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images in [-1, 1], labels or None) of these dataset rows."""
        labels = self.labels[indices] if self.labels is not None else None
        return to_unit_range(self.images[indices]), labels


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type == "cuda":
        return nbytes <= DEVICE_SHARE * torch.cuda.get_device_properties(device).total_memory
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return nbytes <= HOST_SHARE * available


def place(data: ImageSet, device: torch.device, memory: str = "auto"):
    """DeviceData or HostData per --data-memory (auto: the rule in this module's docstring);
    Stacked MNIST's digit table and triples always go to the device (stacked.py)."""
    from gan_dist.datasets.host import HostData
    from gan_dist.datasets.stacked import StackedData, is_stacked

    if is_stacked(data):
        return StackedData(data, device)
    on_device = memory == "device" or (memory == "auto" and fits_on_device(data.images.nbytes, device))
    return DeviceData(data, device) if on_device else HostData(data, device)


def dataset_info(data: ImageSet, where) -> dict:
    """What config.json records about the data (the report's dataset table reads it)."""
    from gan_dist.datasets.stacked import StackedData

    memory = "device" if isinstance(where, (DeviceData, StackedData)) else "host"
    info = {"name": data.name, "size": len(data), "image_shape": list(data.shape),
            "classes": list(data.classes) if data.classes and data.labels is not None else None,
            "labelled": data.labels is not None, "memory": memory}
    for key in ("cache", "skipped", "skipped_files", "settings", "title", "stacked"):
        if key in data.info:
            info[key] = data.info[key]
    return info


def training_set(cfg, accelerator):
    """The run's training set, prepared (packed once, by one process) and placed for training."""
    from gan_dist.datasets import load_dataset

    data = load_dataset(cfg.dataset, cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                        cache_dir=cfg.cache_dir, strict=cfg.strict,
                        show_progress=accelerator.is_local_main_process, seed=cfg.seed,
                        stacked_images=cfg.stacked_images,
                        warnings=accelerator.is_local_main_process)  # every process loads; one per machine speaks
    if len(data) < cfg.batch_size:
        raise GanError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(data)} images): "
                       f"use --batch-size {max(1, len(data))} or less")
    placed = place(data, accelerator.device, cfg.data_memory)
    placed.info = dataset_info(data, placed)
    return placed
