"""One writer per run directory: an exclusive kernel lock on RUN_DIR/.lock.

The process that owns a run (the launcher on node 0, or rank 0 under torchrun) takes the lock
before anything of the run is written, and before the "run directory already exists" check,
so two fresh starts with one --name cannot both pass it. flock(LOCK_EX | LOCK_NB): the kernel
releases it when the holder dies in any way (kill -9 included), so there is never a stale
lock to clean up and a Slurm requeue or `--resume auto` after a crash takes it at once.

The lock file holds who took it (host, pid, since when) for the refusal's one line. It exists
while the lock is held and is removed on release; a file left by a killed holder is not a
lock (the kernel's lock is gone with the process) and the next holder reuses it. The lock
is taken on the file's inode and checked against the path afterwards, so removing the file
on release cannot let two processes hold locks on two different files.

Where the kernel cannot lock (an NFS mount whose lock service is unreachable: ENOLCK; a file
system without flock: EOPNOTSUPP) the run goes on with a warning: see docs/accidents.md.
Torch-free.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from gan_dist.diskspace import writing
from gan_dist.errors import GanError, warn

LOCK_FILE = ".lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # the file system cannot lock


class RunInUse(GanError):
    """Another process holds the run's lock."""


def holder_text(info: dict) -> str:
    """"pid 123 on host h, since 2025-01-02 10:11:12", or what is known of it."""
    if not info:
        return "a process that is just starting"
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {when}"


def read_holder(path: Path, wait_seconds: float = 1.0) -> dict:
    """The holder's record; it writes it right after locking, so wait a moment for it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            info = json.loads(Path(path).read_text())
            if isinstance(info, dict):
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.05)


class RunLock:
    """`with RunLock(run_dir):` holds the lock inside, or raises RunInUse (one line, exit 2).

    Folders it had to create (the run directory, a missing --out) are removed again on release
    when nothing else was written into them, so a run refused after the lock leaves nothing."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None
        self.created: list[Path] = []
        self.locked = False

    def __enter__(self) -> "RunLock":
        self.created = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()][::-1]
        with writing(f"creating the run directory {self.run_dir}", self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._acquire()
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _acquire(self) -> None:
        while True:
            with writing(f"creating the run lock {self.path}", self.run_dir):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunInUse(
                        f"run directory {self.run_dir} is being written by another gan train "
                        f"({holder_text(read_holder(self.path))}); one writer per run: wait for it to end "
                        f"or stop it (SIGTERM checkpoints and stops), then continue with --resume auto") from None
                if err.errno in _NO_LOCKS:
                    warn(f"cannot lock {self.path} ({os.strerror(err.errno)}): this file system gives no "
                         "locks, so nothing stops a second gan train on this run; start each run once "
                         "(see docs/accidents.md, 'NFS')")
                    return
                raise
            # Locked; but a holder releasing just now may have removed the file we opened: then
            # our lock is on a dead inode and a newcomer would lock a new file. Retry on the path.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd, self.locked = fd, True
                self._record()
                return
            os.close(fd)

    def _record(self) -> None:
        info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        data = (json.dumps(info) + "\n").encode()
        with writing(f"writing the run lock {self.path}", self.run_dir):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
            os.fsync(self.fd)

    def release(self) -> None:
        """Remove the lock file while still holding it, then let go; remove empty folders made."""
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self.fd)  # closing the last descriptor releases the lock
            self.fd, self.locked = None, False
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only when empty: a run that wrote anything keeps its folder
            except OSError:
                break
        self.created = []
