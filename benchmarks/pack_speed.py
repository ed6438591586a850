"""Packing speed and cache load time: N JPEGs of 256×256 (smooth synthetic scenes, quality 90)
packed to 64×64 RGB with every core, then the cache loaded back (verified) as a later run would.

    .venv/bin/python benchmarks/pack_speed.py [--images 10000] [--folder /tmp/pack_bench]

Prints images/s for packing (decode + centre crop + bicubic resize + write + checksums) and the
seconds a later run needs to verify and load the cache, and to copy it into a torch tensor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _make(job):
    folder, start, count = job
    from PIL import Image

    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32) / 255
    for i in range(start, start + count):
        rng = np.random.default_rng(i)
        a, b, c = rng.uniform(0, 6, 3)
        img = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy) + a)], -1)
        img = ((img + 1) * 127.5 + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        sub = Path(folder) / f"class{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:05d}.jpg", quality=90)


def make_jpegs(folder: Path, n: int) -> None:
    per = 250
    jobs = [(str(folder), s, min(per, n - s)) for s in range(0, n, per)]
    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        list(pool.map(_make, jobs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/pack_bench"))
    args = parser.parse_args()
    from gan_dist.datasets import load_dataset
    from gan_dist.datasets.pack import open_cache, verify
    from gan_dist.datasets.sources import cores

    jpegs = args.folder / "jpegs"
    if len(list(jpegs.rglob("*.jpg"))) != args.images:
        shutil.rmtree(args.folder, ignore_errors=True)
        t = time.perf_counter()
        make_jpegs(jpegs, args.images)
        print(f"made {args.images} JPEGs of 256x256 in {time.perf_counter() - t:.1f} s")
    cache = args.folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.sync()
    t = time.perf_counter()
    data = load_dataset(f"folder:{jpegs}", "unused", image_size=64, channels=3, cache_dir=cache, show_progress=False)
    pack_s = time.perf_counter() - t
    print(f"packed {len(data)} images 256x256 -> 3x64x64 in {pack_s:.1f} s: {len(data) / pack_s:.0f} images/s "
          f"on {cores()} cores ({os.cpu_count()} CPUs in the machine)")
    folder = Path(data.info["cache"])
    t = time.perf_counter()
    again = load_dataset(f"folder:{jpegs}", "unused", image_size=64, channels=3, cache_dir=cache, show_progress=False)
    load_s = time.perf_counter() - t
    import torch

    t = time.perf_counter()
    tensor = torch.from_numpy(np.array(again.images))
    copy_s = time.perf_counter() - t
    t = time.perf_counter()
    assert verify(folder) == ""
    verify_s = time.perf_counter() - t
    open_cache(folder)
    print(f"cache load (fingerprint {len(again)} files + verify {again.images.nbytes / 2**20:.0f} MiB of checksums + "
          f"map): {load_s:.2f} s (verify alone {verify_s:.2f} s); copy into a tensor {tuple(tensor.shape)}: {copy_s:.2f} s")


if __name__ == "__main__":
    main()
