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

from doteval.errors import CorruptStoreError, NoSpaceError, StoreError

TMP_PREFIX = ".tmp-"
NOT_A_FOLDER_HINT = (
    "a store folder is a file: move it out of the store (`doteval fsck` lists what else is damaged)"
)
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


def permission_error(error: PermissionError) -> StoreError:
    """A store file this user may not write: one line, and what to check."""
    return StoreError(
        f"permission denied: {error.filename or error}",
        path=str(error.filename or ""),
        hint="a store shared by several users wants a group-writable folder (chmod -R g+w, chmod g+s on folders)",
    )


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
        if not path.is_dir():  # a file (or a dangling link) where a store folder belongs
            raise CorruptStoreError("not a folder", path=str(path), hint=NOT_A_FOLDER_HINT) from None
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


def temp_name() -> str:
    """A fresh temporary file name: ``.tmp-<pid>-<12 hex>`` (the shape gc may remove)."""
    return f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"


def open_new(path: Path, flags: int = 0) -> int:
    """Create ``path`` for writing (``flags``: more, such as ``O_APPEND``); never through a
    symbolic link, never an existing file. With ``open_regular``, the only way a file is opened."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | flags, 0o666)


def store_dir(root: Path, directory: Path) -> None:
    """``mkdir -p`` of ``directory`` inside the store ``root``, refusing to pass through a link.

    Every folder between ``root`` (trusted: it may be a link the user made) and
    ``directory`` must be a real folder, so that nothing is ever written outside
    the store through a folder of a copied store that is a symbolic link.
    """
    ensure_dir(root)
    path = root
    for part in directory.relative_to(root).parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            try:
                path.mkdir()
            except FileExistsError:
                pass
            except OSError as e:
                if e.errno in DISK_FULL:
                    raise no_space(path, 0) from None
                raise
            else:
                share_like_parent(path)
            mode = os.lstat(path).st_mode
        _check_folder(root, path, mode)


def _check_folder(root: Path, path: Path, mode: int) -> None:
    """Refuse ``path`` (of the store ``root``, with ``lstat`` mode ``mode``) unless a real folder."""
    if not stat.S_ISDIR(mode):
        what = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
        raise CorruptStoreError(
            f"{path.relative_to(root)} is {what}, not a folder of the store",
            path=str(path),
            hint="move it out of the store (`doteval fsck` lists what is wrong)",
        )


def write_temp(
    directory: Path, data: bytes | list[bytes], *, durable: bool = True, root: Path | None = None
) -> Path:
    """Write ``data`` to a fresh temporary file inside ``directory`` (of the store ``root``, if given)."""
    if root is not None:
        store_dir(root, directory)
    else:
        ensure_dir(directory)
    chunks = [data] if isinstance(data, bytes) else data
    tmp = directory / temp_name()
    try:
        fd = open_new(tmp)
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


def write_new(
    dest: Path, data: bytes | list[bytes], *, durable: bool = True, root: Path | None = None
) -> bool:
    tmp = write_temp(dest.parent, data, durable=durable, root=root)
    published = publish_new(tmp, dest)
    if durable and published:
        fsync_dir(dest.parent)
    return published


# -- reading ----------------------------------------------------------------------------------

_SAFE_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def open_regular(
    path: Path, what: str = "store file", *, flags: int = os.O_RDONLY, hint: str | None = None
) -> int:
    """A descriptor on the regular file ``path``, the only way a store file is read.

    Never through a symbolic link (``O_NOFOLLOW``), never blocking on a FIFO
    (``O_NONBLOCK``), and never anything but a regular file (a FIFO, device,
    socket or folder is refused after ``fstat``): a shared store is untrusted input.
    A missing file raises ``FileNotFoundError`` and an unreadable one
    ``PermissionError``, as ``open`` does; anything else is a ``CorruptStoreError``
    (``what`` names the kind of file, ``hint`` what to do) or a ``StoreError``.
    ``flags`` other than read-only (a lock file, opened to be written) keep these checks.
    """
    try:
        fd = os.open(path, flags | _SAFE_FLAGS, 0o666)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:
        if e.errno == errno.ENOTDIR:  # a folder on the way is a file: there is no such file
            raise FileNotFoundError(errno.ENOENT, "a folder on its path is not a folder", str(path)) from None
        if e.errno == errno.ELOOP:
            raise CorruptStoreError(f"{what} is a symbolic link", path=str(path), hint=hint) from None
        if e.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # a socket, a device
            raise CorruptStoreError(f"{what} is not a regular file", path=str(path), hint=hint) from None
        raise StoreError(f"cannot open {what} {path}: {e.strerror}", path=str(path), hint=hint) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CorruptStoreError(f"{what} is not a regular file", path=str(path), hint=hint)
    return fd


def read_fd(fd: int, limit: int, path: Path, what: str = "store file") -> bytes:
    """The whole of the regular file open on ``fd``, refused when over ``limit`` bytes.

    Reads what ``fstat`` says is there and no more (a file growing meanwhile is
    not followed), and never asks for more than that at once.
    """
    size = os.fstat(fd).st_size
    if size > limit:
        raise CorruptStoreError(
            f"{what} is {size} bytes, more than such a file may hold ({limit})", path=str(path)
        )
    chunks = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_real_folders(root: Path, path: Path) -> None:
    """Refuse to read ``path`` through a folder of the store ``root`` that is a link.

    ``O_NOFOLLOW`` guards only a path's last part: a copied store whose
    ``objects/ab`` is a link to a folder elsewhere would be read through it.
    A missing folder raises ``FileNotFoundError``, as the open would.
    """
    folder = root
    for part in path.parent.relative_to(root).parts:
        folder = folder / part
        _check_folder(root, folder, os.lstat(folder).st_mode)


def read_regular(path: Path, limit: int, what: str = "store file") -> bytes:
    """The bytes of the regular file ``path`` (see ``open_regular``), at most ``limit`` of them."""
    fd = open_regular(path, what)
    try:
        return read_fd(fd, limit, path, what)
    finally:
        os.close(fd)
