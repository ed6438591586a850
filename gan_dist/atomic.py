"""The project's one atomic file writer.

A temp file in the same folder, fsync, rename: a reader (or a kill) sees the old file or the
new one, never half of one. Torch-free and dependency-free, so every module may use it
(rundir, generator files, caches, `gan sample`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path: Path, content: str | bytes | Callable[[Path], None]) -> Path:
    """Replace `path` atomically with text, bytes, or whatever `content(tmp_path)` writes."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    return path
