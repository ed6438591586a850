"""A full disk (ENOSPC) or an exhausted quota (EDQUOT) as one error, not a traceback.

Writers fail in three dialects when space runs out: an OSError with errno 28 or 122 (open,
write, mkdir), a message that quotes the OS error (safetensors: "No space left on device (os
error 28)"), or a message that says nothing about it (torch.save: "unexpected pos 576 vs
534"). `disk_full_errno` recognises the first two; at a write site, where the failure surely
came from writing, it also probes the folder with a small write, which tells the third apart.

`DiskFull` is a GanError (one line, exit 2) and an OSError, so code that already treats an
unwritable place as "fall back" (the dataset cache) keeps doing so. Torch-free.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from gan_dist.errors import GanError

# errno -> (what it means to a user, how Rust and C libraries quote it in messages)
_FULL = {
    errno.ENOSPC: ("no space left on device", ("No space left on device", "os error 28")),
    errno.EDQUOT: ("disk quota exceeded", ("Disk quota exceeded", f"os error {errno.EDQUOT}")),
}
PROBE_BYTES = 1 << 20  # a write of this size failing for lack of space means the disk is full


class DiskFull(GanError, OSError):
    """A write of `what` (e.g. "writing config.json") failed for lack of space or quota."""

    def __init__(self, what: str, path: Path, code: int = errno.ENOSPC):
        self.what, self.path = what, Path(path)
        self.errno = code
        free = free_bytes(self.path)
        where = f" on the file system of {nearest_folder(self.path)}"
        super().__init__(f"{what} failed: {_FULL.get(code, _FULL[errno.ENOSPC])[0]}{where} "
                         f"({human_bytes(free)} free)")

    @property
    def reason(self) -> str:
        return _FULL.get(self.errno, _FULL[errno.ENOSPC])[0]


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def disk_full_errno(err: BaseException, folder: Path | None = None) -> int | None:
    """ENOSPC or EDQUOT when `err` (or what caused it) says the disk or quota is full, else None.
    `folder`: where the failed write went; given, an error that names no cause is checked by
    writing there (only pass it at a write site)."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and cause.errno in _FULL:
            return cause.errno
        text = str(cause)
        for code, (_, phrases) in _FULL.items():
            if any(phrase in text for phrase in phrases):
                return code
    if folder is not None and isinstance(err, Exception):
        return probe(folder)
    return None


def probe(folder: Path) -> int | None:
    """Write PROBE_BYTES next to `folder` and remove them: ENOSPC/EDQUOT if that fails for lack
    of space, else None (quotas do not show in statvfs; a write does)."""
    try:
        with tempfile.TemporaryFile(dir=nearest_folder(folder)) as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        return err.errno if err.errno in _FULL else None
    return None


@contextlib.contextmanager
def writing(what: str, path: Path):
    """Inside: a failure for lack of space becomes DiskFull(what, path); others pass unchanged."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        code = disk_full_errno(err, Path(path))
        if code is None:
            raise
        raise DiskFull(what, path, code) from err


def nearest_folder(path: Path) -> Path:
    """`path` if it is an existing folder, else its nearest existing ancestor."""
    path = Path(path).absolute()
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on the file system holding `path`."""
    try:
        stat = os.statvfs(nearest_folder(path))
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def human_bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
