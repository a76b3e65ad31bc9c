"""Small file primitives every store write goes through.

A file is published whole or not at all: it is written to a temporary file in
its destination directory (named ``.tmp-*`` so the documented rsync filter
skips it), flushed and fsynced, then renamed or linked into place. Nothing here
ever overwrites an existing immutable file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from doteval.errors import NoSpaceError

TMP_PREFIX = ".tmp-"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def no_space(path: Path, need: int) -> NoSpaceError:
    """The error for a full disk met writing ``path``, naming the store it belongs to
    (the nearest folder holding a ``VERSION`` file), and about how much room is needed."""
    store = path
    for folder in (path, *path.parents):
        try:
            if (folder / "VERSION").is_file():
                store = folder
                break
        except OSError:
            break
    return NoSpaceError(str(store), need)


def share_like_parent(path: Path) -> None:
    """Give ``path`` group write (and setgid for folders) when its folder has them.

    A store that several users share on one machine is a group-writable
    folder; files each user creates must stay writable by the others whatever
    their umask.
    """
    try:
        parent_mode = path.parent.stat().st_mode
        if not parent_mode & stat.S_IWGRP:
            return
        mode = path.stat().st_mode
        wanted = mode | stat.S_IRGRP | stat.S_IWGRP
        if stat.S_ISDIR(mode):
            wanted |= stat.S_IXGRP | (parent_mode & stat.S_ISGID)
        if wanted != mode:
            os.chmod(path, stat.S_IMODE(wanted))
    except OSError:
        pass


def ensure_dir(path: Path) -> None:
    """``mkdir -p`` that shares each new folder like its parent."""
    if path.is_dir():
        return
    ensure_dir(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    except OSError as e:
        if e.errno in DISK_FULL:
            raise no_space(path, 0) from None
        raise
    share_like_parent(path)


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


_WRITE_BUFFER = 1 << 20


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_temp(directory: Path, data: bytes | list[bytes], *, durable: bool = True) -> Path:
    """Write ``data`` to a fresh temporary file inside ``directory``."""
    ensure_dir(directory)
    chunks = [data] if isinstance(data, bytes) else data
    tmp = directory / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        if e.errno in DISK_FULL:
            raise no_space(directory, sum(len(c) for c in chunks)) from None
        raise
    share_like_parent(tmp)
    try:
        buffer = bytearray()
        for chunk in chunks:  # few large writes, not one per chunk
            buffer += chunk
            if len(buffer) >= _WRITE_BUFFER:
                _write_all(fd, buffer)
                buffer.clear()
        _write_all(fd, buffer)
        if durable:
            os.fsync(fd)
    except BaseException as e:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise no_space(directory, sum(len(c) for c in chunks)) from None
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
        os.utime(path, follow_symlinks=False)
    except OSError:
        pass


def write_new(dest: Path, data: bytes | list[bytes], *, durable: bool = True) -> bool:
    tmp = write_temp(dest.parent, data, durable=durable)
    published = publish_new(tmp, dest)
    if durable and published:
        fsync_dir(dest.parent)
    return published
