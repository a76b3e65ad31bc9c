"""The append-only journal a live run writes every result to.

One record per append: ``u32 length | u32 crc32 | canonical encoding``. Each
append is one ``write`` to an unbuffered descriptor (so a killed process loses
only what it had not yet handed to the kernel) and an fsync runs at most a
second later (so a power loss loses at most the last second). A reader keeps
the longest valid prefix: a torn or corrupt tail ends the journal, it is never
read as data.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from doteval._objects.encoding import decode, encode
from doteval._objects.files import (
    DISK_FULL,
    ensure_dir,
    no_space,
    open_new,
    open_regular,
    read_fd,
    share_like_parent,
    store_dir,
)
from doteval.errors import CorruptStoreError

JOURNAL_MAGIC = b"DVJOURNAL\x00\x01\n"
_FRAME = struct.Struct(">II")
# A result record, the one written per sample, skips the canonical encoding of
# its wrapper: "R" | u32 evaluation index | flag (1) | i64 slot | u32 occurrence |
# u32 item length | item (canonical encoding) | result details (canonical encoding).
_RESULT = struct.Struct(">cIBqII")
MAX_RECORD = 1 << 30
MAX_JOURNAL = 1 << 36  # read whole into memory: a run of this size is sealed long before


class JournalWriter:
    """Appends records; a disk that fills up is a ``NoSpaceError``, and the journal is cut
    back to its last whole record, so every record appended before stays readable."""

    def __init__(self, path: Path, *, fsync_interval: float = 1.0, root: Path | None = None) -> None:
        self.path = path
        if root is not None:  # the store's root: no folder between it and the journal may be a link
            store_dir(root, path.parent)
        else:
            ensure_dir(path.parent)
        try:
            self._fd = open_new(path, os.O_APPEND)
        except OSError as e:
            raise _full(e, path, len(JOURNAL_MAGIC)) from None
        share_like_parent(path)
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        try:
            os.write(self._fd, JOURNAL_MAGIC)
            os.fsync(self._fd)
        except OSError as e:
            os.close(self._fd)
            path.unlink(missing_ok=True)
            raise _full(e, path, len(JOURNAL_MAGIC)) from None
        self._size = len(JOURNAL_MAGIC)
        self._interval = fsync_interval
        self._syncer = threading.Thread(target=self._sync_loop, name="doteval-fsync", daemon=True)
        self._syncer.start()

    def append(self, record: Any) -> None:
        self.append_encoded(encode(record))

    def append_encoded(self, body: bytes) -> None:
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        with self._lock:
            if self._fd < 0:
                raise ValueError("journal is closed")
            view = memoryview(frame)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as e:
                if view.nbytes < len(frame):  # a torn record would hide every later one
                    os.ftruncate(self._fd, self._size)
                raise _full(e, self.path, len(frame)) from None
            self._size += len(frame)
            self._dirty = True

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0 and self._dirty:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    raise _full(e, self.path, 0) from None
                self._dirty = False

    def _sync_loop(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self.sync()
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    if self._dirty:
                        os.fsync(fd)
                except OSError as e:
                    raise _full(e, self.path, 0) from None
                finally:
                    os.close(fd)


def _full(error: OSError, path: Path, need: int) -> OSError:
    """``error``, or a ``NoSpaceError`` when it says the disk is full."""
    return no_space(path, need) if error.errno in DISK_FULL else error


def read_journal(path: Path) -> tuple[list[Any], bool]:
    """Records of the longest valid prefix, and whether the whole file was valid.

    Only a regular file is read (never a link, a FIFO or a device), and only as much
    of it as it held when opened.
    """
    fd = open_regular(path, "journal")
    try:
        data = read_fd(fd, MAX_JOURNAL, path, "journal")
    finally:
        os.close(fd)
    if data[: len(JOURNAL_MAGIC)] != JOURNAL_MAGIC:
        if JOURNAL_MAGIC.startswith(data):
            return [], False  # died before the header was complete
        raise CorruptStoreError("not a journal file", path=str(path))
    records: list[Any] = []
    pos = len(JOURNAL_MAGIC)
    end = len(data)
    while pos < end:
        if pos + _FRAME.size > end:
            return records, False
        length, crc = _FRAME.unpack_from(data, pos)
        body_at = pos + _FRAME.size
        if length > MAX_RECORD or body_at + length > end:
            return records, False
        body = data[body_at : body_at + length]
        if zlib.crc32(body) != crc:
            return records, False
        try:
            records.append(_result_record(body) if body[:1] == b"R" else decode(body))
        except (CorruptStoreError, struct.error):
            return records, False
        pos = body_at + length
    return records, True


def result_frame(index: int, flag: int, slot: int, occurrence: int, item: bytes, details: bytes) -> bytes:
    """The body of a result record (see ``_RESULT``); ``slot`` is the view position it
    replaces, or -1."""
    return _RESULT.pack(b"R", index, flag, slot, occurrence, len(item)) + item + details


def _result_record(body: bytes) -> tuple[str, int, int, int, int, bytes, bytes]:
    _tag, index, flag, slot, occurrence, item_len = _RESULT.unpack_from(body)
    end = _RESULT.size + item_len
    if end > len(body):
        raise CorruptStoreError("result record shorter than its item")
    return ("r", index, flag, slot, occurrence, body[_RESULT.size : end], body[end:])
