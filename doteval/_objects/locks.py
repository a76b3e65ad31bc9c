"""Per-experiment locks held for as long as a process works on the experiment.

A lock is an ``flock`` on ``locks/NAME.lock``: the kernel drops it when its
process dies, even under ``kill -9``, so a dead holder never blocks anyone and
its run is recovered by the next process that takes the lock. The file also
says who holds it (pid, host, since), for the error the next writer sees.
Lock files are excluded from rsync by the documented filter.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

from doteval._objects.files import (
    DISK_FULL,
    no_space,
    open_regular,
    read_regular,
    share_like_parent,
    store_dir,
)
from doteval._objects.names import check_name
from doteval.errors import LockedError


class Lock(Protocol):
    """What holding an experiment's lock offers (a file's flock, or ``MemoryLock``)."""

    @property
    def held(self) -> bool: ...
    def acquire(self, *, purpose: str = "run") -> None: ...
    def release(self) -> None: ...
    def __enter__(self) -> Lock: ...
    def __exit__(self, *exc: object) -> None: ...


def _lock_path(root: Path, name: str) -> Path:
    return root / "locks" / f"{check_name(name)}.lock"


class FileLock:
    """An flock on one file, which also records who holds it."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, purpose: str = "run") -> None:
        store_dir(self.path.parent.parent, self.path.parent)  # root/locks/NAME.lock
        fd = _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        share_like_parent(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = _holder_soon(self.path)
            raise LockedError(
                self.what,
                int(info.get("pid", 0)),
                str(info.get("host", "?")),
                str(info.get("since", "?")),
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "purpose": purpose,
        }
        data = json.dumps(info).encode()
        try:
            os.pwrite(fd, data, 0)  # write, then cut: the file is never empty while held
            os.ftruncate(fd, len(data))
        except OSError as e:
            os.close(fd)
            if e.errno in DISK_FULL:
                raise no_space(self.path, len(data)) from None
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ExperimentLock(FileLock):
    def __init__(self, root: Path, name: str) -> None:
        super().__init__(_lock_path(root, name), f"experiment {name!r}")
        self.name = name


MAX_LOCK_FILE = 4096


def _open_lock_file(path: Path, flags: int) -> int:
    """Open a lock file, never through a symbolic link (this file is truncated and written)."""
    try:
        return open_regular(path, "lock file", flags=flags, hint="remove it")
    except OSError as e:
        if e.errno in DISK_FULL:  # no inode left for a new lock file
            raise no_space(path, 0) from None
        raise


def store_lock(root: Path, purpose: str) -> FileLock:
    """A store-wide lock (gc); its file name cannot clash with an experiment's."""
    return FileLock(root / "locks" / f".{purpose}.lock", f"doteval {purpose} of this store")


def _holder_soon(path: Path) -> dict[str, Any]:
    """The holder's details; a lock taken a moment ago may not have them written yet."""
    for _ in range(20):
        info = read_holder(path)
        if info and "pid" in info:
            return info
        time.sleep(0.01)
    return read_holder(path) or {}


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_regular(path, MAX_LOCK_FILE, "lock file") or b"{}")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_holder(root: Path, name: str) -> dict[str, Any] | None:
    """Who holds the experiment's lock right now, or None if nobody does."""
    path = _lock_path(root, name)
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {}
    finally:
        os.close(fd)
    return None
