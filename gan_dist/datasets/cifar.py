"""CIFAR-10 in torchvision's layout: DIR/cifar-10-batches-py/{data_batch_1..5, test_batch,
batches.meta}, the pickled dicts the official tarball holds.

The batches are pickles, and a pickle may name any callable to run on load. They are read with
a restricted Unpickler that resolves only what these files need (numpy's array reconstruction
and dtype); anything else in the file is refused, so a planted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from gan_dist.datasets.base import ImageSet
from gan_dist.errors import GanError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# (module, name) a CIFAR batch may reference: numpy arrays as pickled by numpy 1.x (Python 2
# era files), numpy 2.x (numpy._core) and protocol 5 (_frombuffer). Nothing that executes code.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes from Python 3: a pure str -> bytes function
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def safe_load(path: Path) -> dict:
    """One pickled batch as a dict, through the restricted unpickler (latin1, as torchvision reads them)."""
    try:
        obj = _SafeUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise GanError(f"{path} is not a plain CIFAR-10 batch ({err}): it was refused unread; "
                       "replace it with the original file") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
        raise GanError(f"{path} is damaged or truncated ({type(err).__name__}): download CIFAR-10 again") from None
    if not isinstance(obj, dict):
        raise GanError(f"{path} is not a CIFAR-10 batch (a {type(obj).__name__}, not a dict): replace it")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_cifar10(data_dir: Path, train: bool = True, download: bool = True) -> ImageSet:
    """CIFAR-10's 50,000 training (or 10,000 test) images, (N, 3, 32, 32) uint8, with labels."""
    folder = Path(data_dir) / FOLDER
    names = TRAIN_FILES if train else TEST_FILES
    if download and not all((folder / n).is_file() for n in names):
        try:
            from torchvision.datasets import CIFAR10

            CIFAR10(str(data_dir), train=train, download=True)
        except Exception:  # noqa: BLE001, S110 -- offline or mirror down: the message below says what to do
            pass
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise GanError(f"CIFAR-10 files not found in {folder} ({', '.join(missing)}) and could not be downloaded: "
                       f"extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) into "
                       f"{Path(data_dir)} so that {folder}/data_batch_1 exists")
    images, labels = [], []
    for n in names:
        batch = safe_load(folder / n)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            lab = np.asarray(batch["labels"], dtype=np.int64).reshape(-1)
        except (KeyError, ValueError, TypeError) as err:
            raise GanError(f"{folder / n} is not a CIFAR-10 batch ({type(err).__name__}: {err}): replace it") from None
        if len(data) != len(lab):
            raise GanError(f"{folder / n} holds {len(data)} images but {len(lab)} labels: replace it")
        images.append(data)
        labels.append(lab)
    classes = CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        names_ = safe_load(meta).get("label_names")
        if isinstance(names_, list) and len(names_) >= 1:
            classes = tuple(x.decode() if isinstance(x, bytes) else str(x) for x in names_)
    labels_all = np.concatenate(labels)
    if len(labels_all) and (labels_all.min() < 0 or labels_all.max() >= len(classes)):
        raise GanError(f"{folder} has labels outside 0..{len(classes) - 1}: replace the files")
    return ImageSet(np.ascontiguousarray(np.concatenate(images)), labels_all,
                    "cifar10" if train else "cifar10-test", classes)
