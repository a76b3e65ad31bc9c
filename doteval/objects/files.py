"""Small file primitives every store write goes through.

A file is published whole or not at all: it is written to a temporary file in
its destination directory (named ``.tmp-*`` so the documented rsync filter
skips it), flushed and fsynced, then renamed or linked into place. Nothing here
ever overwrites an existing immutable file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temp(directory: Path, data: bytes | list[bytes], *, durable: bool = True) -> Path:
    """Write ``data`` to a fresh temporary file inside ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        chunks = [data] if isinstance(data, bytes) else data
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def publish_new(tmp: Path, dest: Path) -> bool:
    """Move ``tmp`` to ``dest`` unless ``dest`` exists; return True if published.

    A hard link fails if the destination exists, so two writers of the same
    object never replace each other's file. Where links are not supported the
    rename of an identical content-addressed file is harmless.
    """
    try:
        os.link(tmp, dest)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        touch(dest)
        return False
    except OSError:
        if dest.exists():
            tmp.unlink(missing_ok=True)
            touch(dest)
            return False
        os.replace(tmp, dest)
        return True
    tmp.unlink(missing_ok=True)
    return True


def touch(path: Path) -> None:
    """Refresh the mtime of an existing object so a concurrent gc keeps it."""
    try:
        os.utime(path)
    except OSError:
        pass


def write_new(dest: Path, data: bytes | list[bytes], *, durable: bool = True) -> bool:
    tmp = write_temp(dest.parent, data, durable=durable)
    published = publish_new(tmp, dest)
    if durable and published:
        fsync_dir(dest.parent)
    return published
