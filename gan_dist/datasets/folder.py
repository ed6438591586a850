"""`--dataset folder:PATH`: every image under PATH, recursively; first-level subfolders are classes.

Labelled when two or more first-level subfolders hold images (class index = sorted folder name,
as torchvision's ImageFolder numbers them); otherwise unlabelled. One class folder alone carries
no label information, so it is treated as unlabelled data. Hidden files and folders (such as the
default cache PATH/.gan_cache) are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_dist.errors import GanError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PREFIX = "folder:"


@dataclass(frozen=True)
class FolderScan:
    root: Path
    files: tuple[Path, ...]          # sorted by path relative to root
    labels: np.ndarray | None        # (N,) int64, or None: unlabelled
    classes: tuple[str, ...] | None  # label index -> first-level folder name

    @property
    def name(self) -> str:
        return PREFIX + str(self.root)


def folder_path(name: str) -> Path:
    return Path(name[len(PREFIX):]).expanduser()


def check_folder(path: Path) -> None:
    """The cheap checks config validation runs before anything is launched or written."""
    if not path.exists():
        raise GanError(f"image folder {path} does not exist: check the path after 'folder:'")
    if not path.is_dir():
        raise GanError(f"{path} is not a folder: --dataset folder:PATH needs a folder of images")


def scan_folder(root: Path) -> FolderScan:
    root = Path(root)
    check_folder(root)
    files = []
    for current, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(current, n) for n in names if not n.startswith(".") and n.lower().endswith(EXTENSIONS))
    if not files:
        raise GanError(f"no images ({', '.join(e[1:] for e in EXTENSIONS)}) under {root}: "
                       "put the images there, in class subfolders if they have labels")
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    parts = [p.relative_to(root).parts for p in files]
    top = [p[0] for p in parts if len(p) > 1]
    class_names = sorted(set(top))
    if len(class_names) < 2:
        return FolderScan(root, tuple(files), None, None)
    loose = [p for p in parts if len(p) == 1]
    if loose:
        raise GanError(f"{len(loose)} image(s) lie directly in {root} (e.g. {loose[0][0]}) beside the class "
                       f"folders {', '.join(class_names[:5])}: move them into a class folder, or into one "
                       "folder of their own")
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[p[0]] for p in parts], dtype=np.int64)
    return FolderScan(root, tuple(files), labels, tuple(class_names))
