"""Datasets on real files: folders of PNG/JPEG, Fashion-MNIST IDX, CIFAR-10 pickles; preparation,
the packed cache (hit, miss, damage, fingerprint), strict mode and bad input through the real CLI."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets_fixtures import cifar_files, fashion_files, image_folder
from helpers import gan
from PIL import Image

from gan_dist.datasets import load_dataset
from gan_dist.datasets.pack import verify
from gan_dist.errors import GanError


def caches(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / ".gan_cache").iterdir() if p.is_dir())


# --- folders ----------------------------------------------------------------------------------
def test_folder_classes_nested_and_corrupt_skipped(tmp_path, capfd):
    root = image_folder(tmp_path / "pets")
    data = load_dataset(f"folder:{root}", "unused", image_size=16)
    assert data.images.shape == (24, 3, 16, 16) and data.images.dtype == np.uint8
    assert data.classes == ("cat", "dog")
    assert list(np.bincount(data.labels)) == [12, 12]  # nested deep/ images counted in their class
    err = capfd.readouterr().err
    assert "skipped 1 unreadable image(s)" in err and "dog/broken.jpg" in err
    assert data.info["skipped"] == 1 and data.info["skipped_files"] == ["dog/broken.jpg"]


def test_folder_unlabelled_flat_and_single_class(tmp_path):
    flat = image_folder(tmp_path / "flat", classes=("",), per_class=5, corrupt=False)
    data = load_dataset(f"folder:{flat}", "unused", image_size=8, channels=1)
    assert data.labels is None and data.classes is None and data.images.shape == (5, 1, 8, 8)
    single = image_folder(tmp_path / "one", classes=("only",), per_class=5, corrupt=False)
    assert load_dataset(f"folder:{single}", "unused", image_size=8).labels is None  # one class: no label information


def test_folder_loose_images_beside_classes_refused(tmp_path):
    root = image_folder(tmp_path / "pets", corrupt=False)
    Image.new("RGB", (8, 8)).save(root / "loose.png")
    with pytest.raises(GanError, match="lie directly in"):
        load_dataset(f"folder:{root}", "unused")


def test_preparation_crop_resize_channels(tmp_path):
    root = tmp_path / "shapes"
    root.mkdir()
    arr = np.zeros((20, 60, 3), np.uint8)   # 60 wide, 20 high: black sides, white centre square
    arr[:, 20:40] = 255
    Image.fromarray(arr).save(root / "a.png")
    Image.fromarray(np.full((30, 30, 3), (200, 100, 50), np.uint8)).save(root / "b.png")
    data = load_dataset(f"folder:{root}", "unused", image_size=10)
    assert data.images.shape == (2, 3, 10, 10)
    assert (np.asarray(data.images[0]) == 255).all()  # centre crop kept only the white square
    assert (np.asarray(data.images[1])[:, 0, 0] == (200, 100, 50)).all()
    gray = load_dataset(f"folder:{root}", "unused", image_size=10, channels=1)
    assert gray.images.shape == (2, 1, 10, 10) and int(gray.images[1, 0, 0, 0]) == round(
        200 * 299 / 1000 + 100 * 587 / 1000 + 50 * 114 / 1000)  # Pillow's ITU-R 601-2 luma
    own = load_dataset(f"folder:{root}", "unused")  # default: the first image's shorter side and channels
    assert own.images.shape == (2, 3, 20, 20)


def test_strict_refuses_corrupt(tmp_path):
    root = image_folder(tmp_path / "pets")
    with pytest.raises(GanError, match="broken.jpg.*--strict"):
        load_dataset(f"folder:{root}", "unused", image_size=8, strict=True)
    assert not [p for p in (root / ".gan_cache").iterdir() if p.is_dir()]  # nothing packed


# --- the cache ----------------------------------------------------------------------------------
def test_cache_hit_miss_fingerprint_and_damage(tmp_path, capfd):
    root = image_folder(tmp_path / "pets", corrupt=False)
    first = load_dataset(f"folder:{root}", "unused", image_size=16)
    [folder] = caches(root)
    stamp = (folder / "header.json").stat().st_mtime_ns
    again = load_dataset(f"folder:{root}", "unused", image_size=16)
    assert isinstance(again.images, np.memmap) and (folder / "header.json").stat().st_mtime_ns == stamp  # hit
    assert np.array_equal(np.asarray(first.images), np.asarray(again.images))
    assert np.array_equal(first.labels, again.labels)
    load_dataset(f"folder:{root}", "unused", image_size=12)  # another setting: another cache
    assert len(caches(root)) == 2
    img = next(root.glob("cat/*.png"))
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10**9))  # a changed file
    load_dataset(f"folder:{root}", "unused", image_size=16)
    assert len(caches(root)) == 3
    capfd.readouterr()
    # damage the newest 16 px cache: truncated, then one flipped byte; both rebuilt with a warning
    newest = max(caches(root), key=lambda p: (p / "header.json").stat().st_mtime_ns)
    images = newest / "images.u8"
    images.write_bytes(images.read_bytes()[:-100])
    assert "truncated" in verify(newest)
    rebuilt = np.array(load_dataset(f"folder:{root}", "unused", image_size=16).images)  # a copy, not the mapped file
    assert "rebuilding" in capfd.readouterr().err and verify(newest) == ""
    raw = bytearray(images.read_bytes())
    raw[5] ^= 0xFF
    images.write_bytes(bytes(raw))
    assert "checksum" in verify(newest)
    again = load_dataset(f"folder:{root}", "unused", image_size=16)
    assert "rebuilding" in capfd.readouterr().err
    assert np.array_equal(np.asarray(again.images), rebuilt)


def test_unwritable_cache_location_packs_in_memory(tmp_path, capfd):
    root = image_folder(tmp_path / "pets", corrupt=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data = load_dataset(f"folder:{root}", "unused", image_size=8, cache_dir=blocker / "cache")
    assert data.images.shape == (24, 3, 8, 8) and data.info["cache"] is None
    assert "in memory" in capfd.readouterr().err


def test_array_dataset_resized_through_cache(tmp_path):
    data = load_dataset("mnist-sample", tmp_path, image_size=14, channels=3)
    assert data.images.shape == (5000, 3, 14, 14) and len(data.labels) == 5000
    assert caches(tmp_path)[0].name.startswith("mnist-sample-14px-3ch-")
    assert load_dataset("mnist-sample", tmp_path).images.shape == (5000, 1, 28, 28)  # own files, no cache


# --- Fashion-MNIST and CIFAR-10 -----------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path, gz):
    images, labels = fashion_files(tmp_path, gz=gz)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.images.shape == (100, 1, 28, 28) and np.array_equal(data.images[:, 0], images)
    assert np.array_equal(data.labels, labels) and data.classes[9] == "Ankle boot"


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_batches(tmp_path, protocol):
    images, labels = cifar_files(tmp_path, protocol=protocol)
    data = load_dataset("cifar10", tmp_path)
    assert data.images.shape == (100, 3, 32, 32) and np.array_equal(data.images, images)
    assert np.array_equal(data.labels, labels) and data.classes[0] == "airplane"


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_malicious_pickle_refused(tmp_path):
    cifar_files(tmp_path)
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": evil, "labels": []}))
    with pytest.raises(GanError, match="refused"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_offline_missing_files_say_where(tmp_path):
    for name, where in (("cifar10", "cifar-10-batches-py"), ("fashion-mnist", "FashionMNIST/raw")):
        with pytest.raises(GanError, match=where):
            load_dataset(name, tmp_path / "empty")


# --- host memory gives the same batches as device memory ----------------------------------------
def test_host_and_device_placement_same_batches(tmp_path):
    from gan_dist.datasets.host import HostData
    from gan_dist.datasets.resident import DeviceData

    root = image_folder(tmp_path / "pets", corrupt=False)
    data = load_dataset(f"folder:{root}", "unused", image_size=8)
    assert isinstance(load_dataset(f"folder:{root}", "unused", image_size=8).images, np.memmap)
    data = load_dataset(f"folder:{root}", "unused", image_size=8)
    idx = torch.tensor([5, 0, 23, 5, 11])
    a, la = DeviceData(data, torch.device("cpu")).batch(idx)
    b, lb = HostData(data, torch.device("cpu")).batch(idx)
    assert torch.equal(a, b) and torch.equal(la, lb) and a.min() >= -1 and a.max() <= 1


# --- the CLI: data prepare / info, bad input ----------------------------------------------------
def test_data_prepare_and_info(tmp_path):
    root = image_folder(tmp_path / "pets")
    out = gan("data", "prepare", "--dataset", f"folder:{root}", "--image-size", "16",
              "--preview", tmp_path / "grid.png")
    assert "24 of 3×16×16" in out.stdout and "0=cat (12)" in out.stdout and "broken.jpg" in out.stderr
    assert Image.open(tmp_path / "grid.png").size == (8 * 18 + 2, 3 * 18 + 2)  # 24 images, 8 per row
    info = gan("data", "info", "--dataset", f"folder:{root}")
    assert "24 of 3×16×16" in info.stdout and "cat, dog" in info.stdout and "state   ok" in info.stdout


def bad(tmp_path, *args) -> str:
    proc = gan("train", "--cpu", "--out", tmp_path / "runs", "--name", "r", "--epochs", "1", *args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not (tmp_path / "runs" / "r").exists()
    return lines[0]


def test_bad_input_one_line_exit_2_nothing_written(tmp_path):
    assert "does not exist" in bad(tmp_path, "--dataset", f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    assert "no images" in bad(tmp_path, "--dataset", f"folder:{tmp_path / 'empty'}")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"\x89PNG not really")
    (junk / "b.jpg").write_bytes(b"\xff\xd8 nope")
    assert "can be read" in bad(tmp_path, "--dataset", f"folder:{junk}")
    assert "--channels" in bad(tmp_path, "--dataset", "mnist-sample", "--channels", "2")
    assert "--image-size" in bad(tmp_path, "--dataset", "mnist-sample", "--image-size", "4")
    assert "cifar-10-batches-py" in bad(tmp_path, "--dataset", "cifar10", "--data-dir", tmp_path / "nothing")
    root = image_folder(tmp_path / "pets")
    assert "--strict" in bad(tmp_path, "--dataset", f"folder:{root}", "--image-size", "8", "--strict")


def test_cache_of_another_format_version_is_replaced(tmp_path, capfd):
    import json

    root = image_folder(tmp_path / "pets", corrupt=False)
    load_dataset(f"folder:{root}", "unused", image_size=8)
    [folder] = caches(root)
    header = json.loads((folder / "header.json").read_text())
    (folder / "header.json").write_text(json.dumps({**header, "format": 0}))
    assert "format 0" in verify(folder)
    load_dataset(f"folder:{root}", "unused", image_size=8)
    assert "rebuilding" in capfd.readouterr().err and verify(folder) == ""


def test_memory_rule_places_large_sets_in_host_memory():
    from gan_dist.datasets.base import ImageSet
    from gan_dist.datasets.host import HostData
    from gan_dist.datasets.resident import DeviceData, fits_on_device, place

    assert fits_on_device(10 << 20, torch.device("cpu")) and not fits_on_device(1 << 60, torch.device("cpu"))
    small = ImageSet(np.zeros((4, 1, 8, 8), np.uint8), None, "zeros")
    assert isinstance(place(small, torch.device("cpu")), DeviceData)
    assert isinstance(place(small, torch.device("cpu"), "host"), HostData)
