"""Packable sources: a folder of image files, or an array dataset re-prepared to other settings.

Preparation runs on every core (a process pool over chunks of files, in order), since decoding
and resizing is per-image Python/Pillow work; small sets are done in this process, where
starting workers would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from gan_dist.datasets.base import ImageSet
from gan_dist.datasets.folder import FolderScan
from gan_dist.datasets.pack import Settings, Source
from gan_dist.datasets.prepare import prepare_arrays, prepare_files

CHUNK_FILES = 64
POOL_MIN = 256  # below this many inputs, prepare in this process


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _ordered_map(fn, jobs: list, parallel: bool):
    """fn over jobs in order: in a spawn pool (no fork of a torch process) when worth it."""
    if not parallel or cores() == 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=min(cores(), len(jobs)), mp_context=get_context("spawn")) as pool:
        yield from pool.map(fn, jobs)


def _prepare_chunk(job):
    paths, size, channels = job
    return prepare_files(paths, size, channels)


def _prepare_array_chunk(job):
    images, size, channels = job
    return prepare_arrays(images, size, channels)


def folder_source(scan: FolderScan) -> Source:
    stats = []
    for p in scan.files:
        st = p.stat()
        stats.append([p.relative_to(scan.root).as_posix(), st.st_size, st.st_mtime_ns])

    def produce(settings: Settings, progress):
        files = list(scan.files)
        chunks = [files[i:i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
        jobs = [(c, settings.size, settings.channels) for c in chunks]
        for start, (images, failed, why) in zip(range(0, len(files), CHUNK_FILES),
                                                _ordered_map(_prepare_chunk, jobs, len(files) >= POOL_MIN)):
            n = min(CHUNK_FILES, len(files) - start)
            keep = np.setdiff1d(np.arange(n), failed)
            labels = scan.labels[start + keep] if scan.labels is not None else None
            bad = [(files[start + i].relative_to(scan.root).as_posix(), w) for i, w in zip(failed, why)]
            progress(n)
            yield images, labels, bad

    return Source(scan.name, {"kind": "folder", "files": stats}, len(scan.files), scan.classes,
                  scan.labels is not None, produce)


def array_source(data: ImageSet) -> Source:
    """An already loaded array dataset (MNIST, CIFAR-10, ...) to be resized or re-channelled."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).data).hexdigest()
    if data.labels is not None:
        digest += hashlib.sha256(np.ascontiguousarray(data.labels).data).hexdigest()[:16]
    step = 512

    def produce(settings: Settings, progress):
        jobs = [(data.images[i:i + step], settings.size, settings.channels) for i in range(0, len(data), step)]
        for start, images in zip(range(0, len(data), step),
                                 _ordered_map(_prepare_array_chunk, jobs, len(data) >= 4 * step)):
            labels = data.labels[start:start + len(images)] if data.labels is not None else None
            progress(len(images))
            yield images, labels, []

    return Source(data.name, {"kind": "arrays", "sha256": digest, "shape": list(data.images.shape)}, len(data),
                  data.classes, data.labels is not None, produce)
