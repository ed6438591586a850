"""Preparation with Pillow: channels, centre crop to a square, resize with antialiasing.

The filter is Pillow's BICUBIC (with Pillow's resize it antialiases: its support widens with the
downscale factor), as StyleGAN2-ADA's dataset_tool uses for its centre-crop mode. FID and the
other metrics depend on it, so it is named in every cache header and in docs/data.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FILTER = "bicubic"
_RESAMPLE = Image.BICUBIC
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P;L")


def prepare_image(img: Image.Image, size: int, channels: int) -> np.ndarray:
    """(C, size, size) uint8 from any Pillow image."""
    if channels == 1:
        img = img.convert("L") if img.mode != "L" else img
    else:
        if img.mode in ("RGBA", "LA", "P", "PA"):  # transparent pixels: composite over white, not black
            rgba = img.convert("RGBA")
            img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img.alpha_composite(rgba)
        img = img.convert("RGB") if img.mode != "RGB" else img
    w, h = img.size
    side = min(w, h)
    if (w, h) != (side, side):
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), _RESAMPLE)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image(path: Path, size: int, channels: int) -> tuple[np.ndarray | None, str]:
    """(prepared image, "") or (None, why it cannot be read): a damaged file never raises."""
    try:
        with Image.open(path) as img:
            img.load()  # decode everything now: a truncated file fails here, not later
            return prepare_image(img, size, channels), ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError) as err:
        return None, f"{type(err).__name__}: {err}"


def probe(paths, limit: int = 50) -> tuple[int, int] | None:
    """(shorter side, channels) of the first readable image: a folder's own size and channels."""
    for path in list(paths)[:limit]:
        try:
            with Image.open(path) as img:
                img.load()
                return min(img.size), 1 if img.mode in GRAY_MODES else 3
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
    return None


def prepare_files(paths, size: int, channels: int) -> tuple[np.ndarray, list[int], list[str]]:
    """One worker's share: stacked prepared images, the positions that failed, and why."""
    good, failed, why = [], [], []
    for i, path in enumerate(paths):
        arr, err = read_image(path, size, channels)
        if arr is None:
            failed.append(i)
            why.append(err)
        else:
            good.append(arr)
    out = np.stack(good) if good else np.zeros((0, channels, size, size), np.uint8)
    return out, failed, why


def prepare_arrays(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Re-prepare already square uint8 (N, C, H, W) images (e.g. CIFAR-10 at 64 px, or in gray)."""
    out = np.empty((len(images), channels, size, size), np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[0]) if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0))
        out[i] = prepare_image(pil, size, channels)
    return out
