"""The packed cache: prepared uint8 images (N, C, H, W) and int64 labels, written once.

Layout: CACHE_DIR/<slug>-<key16>/{header.json, images.u8, labels.i64}. The key is a
fingerprint of the source (file names, sizes and mtimes; or the contents of an array dataset),
the preparation settings and FORMAT_VERSION, so a changed folder or setting makes a new cache.
header.json holds a CRC-32 per chunk of images and of the labels: a damaged or truncated cache
fails the check on load and is rebuilt (with a warning), never trained on.

Exactly one process packs: every process takes an exclusive flock on CACHE_DIR/<name>.lock
before packing, builds in a temporary folder and renames it into place, so the others (also on
other nodes sharing the file system) wait for the lock and then load the finished cache. A cache
location that cannot be written is not fatal: the set is prepared in memory with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_dist.datasets.base import ImageSet, warn
from gan_dist.errors import GanError
from gan_dist.progress_bar import progress_bar

FORMAT_VERSION = 1
HEADER, IMAGES, LABELS = "header.json", "images.u8", "labels.i64"
CHUNK_BYTES = 16 << 20  # one checksum per 16 MiB of images
SKIPPED_NAMED = 5        # unreadable files named in warnings and errors


@dataclass(frozen=True)
class Settings:
    size: int
    channels: int
    strict: bool = False

    def to_dict(self) -> dict:
        from gan_dist.datasets.prepare import FILTER

        return {"image_size": self.size, "channels": self.channels, "crop": "centre", "filter": FILTER}


@dataclass(frozen=True)
class Source:
    """What can be packed: a name, a fingerprint of its inputs, and a producer of prepared chunks.

    produce(settings, progress) yields (images (n, C, H, W) uint8, labels (n,) int64 or None,
    [(name, why) of unreadable inputs]) in a fixed order; progress(k) advances the bar by k inputs."""
    name: str
    fingerprint: dict
    count: int
    classes: tuple[str, ...] | None
    labelled: bool
    produce: Callable[[Settings, Callable[[int], None]], Iterator[tuple[np.ndarray, np.ndarray | None, list]]]


def cache_key(source: Source, settings: Settings) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, "source": source.fingerprint, "settings": settings.to_dict()},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_folder(cache_dir: Path, source: Source, settings: Settings) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source.name.split(":", 1)[-1]).name or source.name).strip("-.")
    return Path(cache_dir) / f"{slug or 'data'}-{settings.size}px-{settings.channels}ch-{cache_key(source, settings)[:16]}"


# --- reading and checking -----------------------------------------------------------------------
def read_header(folder: Path) -> dict:
    return json.loads((Path(folder) / HEADER).read_text())


def verify(folder: Path) -> str:
    """'' when the cache at `folder` is complete and intact, else what is wrong with it."""
    folder = Path(folder)
    try:
        header = read_header(folder)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as err:
        return f"unreadable header ({err})"
    try:
        if header.get("format") != FORMAT_VERSION:
            return f"format {header.get('format')} (this version writes {FORMAT_VERSION})"
        count, shape = int(header["count"]), tuple(header["shape"])
        per_image = int(np.prod(shape))
        size = (folder / IMAGES).stat().st_size
        if size != count * per_image:
            return f"{IMAGES} has {size} bytes, expected {count * per_image} (truncated?)"
        if header["labelled"] and (folder / LABELS).stat().st_size != 8 * count:
            return f"{LABELS} has the wrong size"
        chunk = int(header["chunk_images"])
        with open(folder / IMAGES, "rb") as fh:
            for i, expected in enumerate(header["images_crc32"]):
                if zlib.crc32(fh.read(chunk * per_image)) != expected:
                    return f"checksum mismatch in images chunk {i}"
        if header["labelled"] and zlib.crc32((folder / LABELS).read_bytes()) != header["labels_crc32"]:
            return "checksum mismatch in labels"
    except (OSError, KeyError, TypeError, ValueError) as err:
        return f"unreadable ({type(err).__name__}: {err})"
    return ""


def open_cache(folder: Path) -> ImageSet:
    """A verified cache as an ImageSet whose images are memory-mapped (loaded lazily, read-only)."""
    header = read_header(folder)
    count, shape = int(header["count"]), tuple(header["shape"])
    images = np.memmap(folder / IMAGES, dtype=np.uint8, mode="r", shape=(count, *shape)) if count else \
        np.zeros((0, *shape), np.uint8)
    labels = np.fromfile(folder / LABELS, dtype=np.int64) if header["labelled"] else None
    classes = tuple(header["classes"]) if header.get("classes") else None
    return ImageSet(images, labels, header["name"], classes,
                    info={"cache": str(folder), **{k: header[k] for k in ("skipped", "skipped_files", "settings")}})


# --- writing ---------------------------------------------------------------------------------
def build(source: Source, settings: Settings, *, show_progress: bool = True,
          warnings: bool = True) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Prepare every input in memory: (images, labels, skipped [(name, why)]); refuses per the rules."""
    images, labels, skipped = [], [], []
    with progress_bar(f"packing {source.name}", enabled=show_progress) as bar:
        task = bar.add_task("pack", total=source.count)
        for imgs, labs, bad in source.produce(settings, lambda k: bar.advance(task, k)):
            images.append(imgs)
            if labs is not None:
                labels.append(labs)
            skipped.extend(bad)
            if bad and settings.strict:
                raise GanError(f"{bad[0][0]} cannot be read ({bad[0][1]}); --strict refuses unreadable images: "
                               "remove or replace it, or drop --strict to skip such files with a warning")
    out = np.concatenate(images) if images else np.zeros((0, settings.channels, settings.size, settings.size), np.uint8)
    if len(out) == 0:
        first = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise GanError(f"no readable image in {source.name}{first}: replace the damaged files")
    if skipped:
        named = ", ".join(f"{n} ({why})" for n, why in skipped[:SKIPPED_NAMED])
        more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
        warn(f"skipped {len(skipped)} unreadable image(s) of {source.count}: {named}{more}; "
             "use --strict to refuse instead", show=warnings)
    lab = np.concatenate(labels).astype(np.int64) if source.labelled else None
    return out, lab, skipped


def _write(folder: Path, source: Source, settings: Settings, images: np.ndarray, labels, skipped, seconds: float) -> None:
    """Write into a temporary sibling folder, then rename it into place (atomic on one file system)."""
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per_image = int(np.prod(images.shape[1:]))
    chunk = max(1, CHUNK_BYTES // per_image)
    flat = np.ascontiguousarray(images)
    with open(tmp / IMAGES, "wb") as fh:
        crcs = []
        for i in range(0, len(flat), chunk):
            block = flat[i:i + chunk].tobytes()
            fh.write(block)
            crcs.append(zlib.crc32(block))
        fh.flush()
        os.fsync(fh.fileno())
    header = {"format": FORMAT_VERSION, "name": source.name, "key": cache_key(source, settings),
              "count": len(images), "shape": list(images.shape[1:]), "labelled": labels is not None,
              "classes": list(source.classes) if source.classes else None, "chunk_images": chunk,
              "images_crc32": crcs, "labels_crc32": None, "settings": settings.to_dict(),
              "source_count": source.count, "skipped": len(skipped),
              "skipped_files": [n for n, _ in skipped[:SKIPPED_NAMED]], "seconds": round(seconds, 3),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if labels is not None:
        raw = np.ascontiguousarray(labels, dtype=np.int64).tobytes()
        (tmp / LABELS).write_bytes(raw)
        header["labels_crc32"] = zlib.crc32(raw)
    (tmp / HEADER).write_text(json.dumps(header, indent=1) + "\n")  # written last: its presence means complete
    if folder.exists():  # a damaged cache being replaced: move it aside first, rename is not over a folder
        old = folder.parent / f".old-{folder.name}-{os.getpid()}"
        folder.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(folder)


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # blocks while another process (or node) packs
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _writable(cache_dir: Path) -> str:
    """'' when packs can be written under cache_dir, else why not."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return err.strerror or str(err)
    return "" if os.access(cache_dir, os.W_OK | os.X_OK) else "not writable"


def load_or_pack(source: Source, settings: Settings, cache_dir: Path, *, show_progress: bool = True,
                 warnings: bool = True) -> ImageSet:
    """The prepared set from its cache, packing it first when missing or damaged."""
    folder = cache_folder(cache_dir, source, settings)
    if verify(folder) == "":  # fast path: a finished cache is renamed into place whole
        return open_cache(folder)
    why_not = _writable(Path(cache_dir))
    if why_not:
        warn(f"cannot write the cache under {cache_dir} ({why_not}): preparing {source.name} in memory for this "
             "run only; pass --cache-dir DIR (writable) to pack it once", show=warnings)
        start = time.perf_counter()
        images, labels, skipped = build(source, settings, show_progress=show_progress, warnings=warnings)
        return ImageSet(images, labels, source.name, source.classes if labels is not None else None,
                        info={"cache": None, "skipped": len(skipped),
                              "skipped_files": [n for n, _ in skipped[:SKIPPED_NAMED]], "settings": settings.to_dict(),
                              "seconds": time.perf_counter() - start})
    with _locked(Path(cache_dir) / f"{folder.name}.lock"):
        problem = verify(folder)  # another process may have packed it while we waited
        if problem not in ("", "missing"):
            warn(f"the cache {folder} cannot be used ({problem}): rebuilding it", show=warnings)
        if problem:
            start = time.perf_counter()
            images, labels, skipped = build(source, settings, show_progress=show_progress, warnings=warnings)
            _write(folder, source, settings, images, labels, skipped, time.perf_counter() - start)
            problem = verify(folder)
            if problem:
                raise GanError(f"the cache just written at {folder} does not verify ({problem}): "
                               "check the disk, or pass --cache-dir elsewhere")
    return open_cache(folder)


def cache_size_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
