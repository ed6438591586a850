"""The project's one atomic file writer.

A temp file in the same folder, fsync, rename: a reader (or a kill) sees the old file or the
new one, never half of one. Torch-free and dependency-free, so every module may use it
(rundir, generator files, caches, `gan sample`, the report). A write that fails for lack of
space or quota removes its temp file and raises DiskFull (diskspace.py): one line, not a
traceback, and the file it was replacing is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from gan_dist.diskspace import writing

TMP_SUFFIX = ".tmp"  # temp files are .NAME.<random>.tmp beside NAME: a kill leaves one behind


def write_atomic(path: Path, content: str | bytes | Callable[[Path], None]) -> Path:
    """Replace `path` atomically with text, bytes, or whatever `content(tmp_path)` writes."""
    path = Path(path)
    with writing(f"writing {path}", path.parent):
        _write_atomic(path, content)
    return path


def _write_atomic(path: Path, content: str | bytes | Callable[[Path], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
