"""`gan data prepare` and `gan data info`: pack a dataset without training, and say what a cache holds."""

from __future__ import annotations

import time
from pathlib import Path

from gan_dist.datasets import PREFIX, STACKED, default_cache_dir, load_dataset
from gan_dist.errors import GanError


def _size_text(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def describe(data, seconds: float | None = None) -> list[str]:
    from gan_dist.datasets.pack import cache_size_bytes

    c, h, w = data.shape
    lines = [f"dataset   {data.name}", f"images    {len(data):,} of {c}×{h}×{w} uint8"]
    if data.labels is not None and data.classes:
        import numpy as np

        counts = np.bincount(data.labels, minlength=len(data.classes))
        shown = ", ".join(f"{i}={n} ({k})" for i, (n, k) in enumerate(zip(data.classes[:20], counts)))
        more = f", … ({len(data.classes) - 20} more; {counts.min()}-{counts.max()} each)" if len(data.classes) > 20 else ""
        lines.append(f"classes   {len(data.classes)}: {shown}{more}")
    else:
        lines.append("classes   none (unlabelled)")
    settings = data.info.get("settings")
    if settings and "pad" in settings:  # stacked-mnist
        lines.append(f"prepared  {settings['image_size']} px ({settings['pad']} px of padding per side), 3 digits as R, G, B")
    elif settings:
        lines.append(f"prepared  {settings['image_size']} px, {settings['channels']} channel(s), centre crop, "
                     f"{settings['filter']} resize")
    if data.info.get("skipped"):
        lines.append(f"skipped   {data.info['skipped']} unreadable: {', '.join(data.info['skipped_files'])}")
    cache = data.info.get("cache")
    stacked = data.info.get("stacked")
    if stacked:
        lines.append(f"composed  from {stacked['digit_images']:,} {stacked['digits']} digits, seed {stacked['seed']}, on the "
                     f"fly: {_size_text(stacked['memory_bytes'])} held (no cache)")
    elif cache:
        lines.append(f"cache     {cache} ({_size_text(cache_size_bytes(Path(cache)))} on disk)")
    elif "cache" in data.info:
        lines.append("cache     none: prepared in memory (the cache location is not writable)")
    else:
        lines.append("cache     none needed: read from the dataset's own files")
    if seconds is not None:
        lines.append(f"time      {seconds:.2f} s")
    return lines


def prepare(dataset: str, data_dir: str, *, image_size=None, channels=None, cache_dir=None, strict=False,
            preview: Path | None = None, echo=print) -> None:
    """Pack (or load) the dataset, print what it holds and write a preview grid of its first 64 images."""
    from gan_dist.config import check_data_settings

    check_data_settings(dataset, image_size, channels)
    start = time.perf_counter()
    data = load_dataset(dataset, data_dir, image_size=image_size, channels=channels, cache_dir=cache_dir,
                        strict=strict)
    seconds = time.perf_counter() - start
    for line in describe(data, seconds):
        echo(line)
    if preview is None:
        cache = data.info.get("cache")
        if cache:
            preview = Path(cache) / "preview.png"
        elif "cache" not in data.info:  # read from its own files: beside them, with the caches
            preview = Path(cache_dir or default_cache_dir(dataset, data_dir)) / f"preview-{_slug(dataset)}.png"
        else:  # the cache location is not writable
            preview = Path(f"preview-{_slug(dataset)}.png")
    write_preview(data, preview)
    echo(f"preview   {preview}")


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.split(":", 1)[-1]).name or name).strip("-.") or "data"


def write_preview(data, path: Path, n: int = 64) -> None:
    import numpy as np
    import torch
    from torchvision.utils import save_image

    images = torch.from_numpy(np.array(data.images[:n])).float().div_(255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, str(path), nrow=8, padding=2)


def info(dataset: str, data_dir: str, *, image_size=None, channels=None, cache_dir=None, echo=print) -> None:
    """What the caches for this dataset hold (without preparing anything)."""
    import json

    from gan_dist.datasets.pack import FORMAT_VERSION, read_header, verify

    cache = Path(cache_dir) if cache_dir else default_cache_dir(dataset, data_dir)
    if dataset == STACKED:
        echo("stacked-mnist is composed on the fly from MNIST digits and never packed: "
             "`gan data prepare --dataset stacked-mnist` shows what it holds")
        return
    if dataset.startswith(PREFIX):
        from gan_dist.datasets.folder import check_folder, folder_path

        check_folder(folder_path(dataset))
    folders = sorted(p for p in cache.glob("*") if p.is_dir() and (p / "header.json").is_file()) if cache.is_dir() else []
    found = []
    for folder in folders:
        try:
            header = read_header(folder)
        except (OSError, ValueError):
            continue
        if header.get("name") != dataset and not (dataset.startswith(PREFIX) and header.get("name", "").startswith(
                PREFIX) and Path(header["name"][len(PREFIX):]).resolve() == Path(dataset[len(PREFIX):]).resolve()):
            continue
        s = header.get("settings", {})
        if (image_size and s.get("image_size") != image_size) or (channels and s.get("channels") != channels):
            continue
        found.append((folder, header))
    if not found:
        raise GanError(f"no packed cache of {dataset} under {cache}"
                       + (" with these settings" if image_size or channels else "")
                       + f": run `gan data prepare --dataset {dataset}` first")
    for folder, header in found:
        problem = verify(folder)
        state = "ok" if not problem else f"DAMAGED ({problem}): it is rebuilt on next use"
        if header.get("format") != FORMAT_VERSION:
            state = f"written by format {header.get('format')}: a new cache is packed on next use"
        classes = header.get("classes")
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        c, h, w = header["shape"]
        echo(f"cache     {folder}")
        echo(f"  images  {header['count']:,} of {c}×{h}×{w} uint8 ({_size_text(size)} on disk), "
             f"packed {header.get('created')} in {header.get('seconds')} s")
        echo(f"  classes {len(classes)}: {', '.join(classes)}" if classes else "  classes none (unlabelled)")
        echo(f"  settings {json.dumps(header.get('settings'))}")
        if header.get("skipped"):
            echo(f"  skipped {header['skipped']} unreadable: {', '.join(header.get('skipped_files', []))}")
        echo(f"  state   {state}")
