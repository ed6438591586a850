"""Datasets as uint8 arrays, by name: one name -> loader table (DATASETS) that config
validation, `--help` and errors all read. `folder:PATH` is its one prefix entry.

Training keeps the whole dataset on its device as uint8 (N, C, H, W) and normalises each
batch in one op (airbench-style), so there is no per-image Python work and no DataLoader
(resident.py; host.py when it does not fit there).

Array datasets (MNIST, Fashion-MNIST, CIFAR-10, the shipped sample) are read straight from their
own compact files; they are packed (pack.py) only when --image-size or --channels asks for
another preparation. Folders are always prepared once and packed. Stacked MNIST is composed on
the fly from one digit table (stacked.py) and never packed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gan_dist.datasets.base import ImageSet, to_unit_range  # noqa: F401  (re-exported)
from gan_dist.datasets.cifar import load_cifar10
from gan_dist.datasets.folder import PREFIX, FolderScan, folder_path, scan_folder
from gan_dist.datasets.idx import load_fashion, load_mnist, read_idx  # noqa: F401
from gan_dist.datasets.sample import load_sample
from gan_dist.datasets.stacked import NAME as STACKED
from gan_dist.datasets.stacked import DigitTable, digit_table
from gan_dist.errors import GanError

FOLDER_ENTRY = PREFIX + "PATH"

# name -> loader(name, data_dir) -> ImageSet (arrays), FolderScan (files still to prepare) or
# DigitTable (digits to stack)
DATASETS: dict[str, Callable[[str, Path], ImageSet | FolderScan | DigitTable]] = {
    "mnist": lambda name, data_dir: load_mnist(data_dir, train=True),
    "mnist-sample": lambda name, data_dir: load_sample(),
    "fashion-mnist": lambda name, data_dir: load_fashion(data_dir, train=True),
    "cifar10": lambda name, data_dir: load_cifar10(data_dir, train=True),
    STACKED: lambda name, data_dir: digit_table(data_dir),
    FOLDER_ENTRY: lambda name, data_dir: scan_folder(folder_path(name)),
}


def table_key(name: str) -> str:
    return FOLDER_ENTRY if name.startswith(PREFIX) else name


def is_known_dataset(name: str) -> bool:
    return table_key(name) in DATASETS and (not name.startswith(PREFIX) or len(name) > len(PREFIX))


def default_cache_dir(name: str, data_dir: str | Path) -> Path:
    """Beside the data: PATH/.gan_cache for a folder (hidden, so never scanned), else DATA_DIR/.gan_cache."""
    return (folder_path(name) if name.startswith(PREFIX) else Path(data_dir)) / ".gan_cache"


def load_dataset(name: str, data_dir: str | Path, *, image_size: int | None = None, channels: int | None = None,
                 cache_dir: str | Path | None = None, strict: bool = False, show_progress: bool = True,
                 warnings: bool = True, seed: int = 0, stacked_images: int | None = None) -> ImageSet:
    """The training set prepared as asked (None: the data's own size / channels). seed and
    stacked_images: how stacked-mnist is composed (ignored by the other datasets)."""
    from gan_dist.datasets.pack import Settings, load_or_pack
    from gan_dist.datasets.prepare import probe
    from gan_dist.datasets.sources import array_source, folder_source

    if not is_known_dataset(name):
        raise GanError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    raw = DATASETS[table_key(name)](name, Path(data_dir))
    cache = Path(cache_dir) if cache_dir else default_cache_dir(name, data_dir)
    if isinstance(raw, DigitTable):
        from gan_dist.datasets.stacked import DEFAULT_IMAGES, compose

        return compose(raw, count=stacked_images or DEFAULT_IMAGES, seed=seed, image_size=image_size,
                       channels=channels)
    if isinstance(raw, ImageSet):
        own_channels, own_size = raw.images.shape[1], raw.images.shape[2]
        settings = Settings(image_size or own_size, channels or own_channels, strict)
        if (settings.size, settings.channels) == (own_size, own_channels):
            return raw  # already prepared: its own files are the cache
        return load_or_pack(array_source(raw), settings, cache, show_progress=show_progress, warnings=warnings)
    found = probe(raw.files)
    if found is None and (image_size is None or channels is None):
        raise GanError(f"none of the first images under {raw.root} can be read (e.g. {raw.files[0]}): "
                       "replace the damaged files")
    settings = Settings(image_size or found[0], channels or found[1], strict)
    return load_or_pack(folder_source(raw), settings, cache, show_progress=show_progress, warnings=warnings)
