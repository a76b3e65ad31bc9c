"""Packs: many objects in one immutable file, found through a sorted index.

A pack holds each object compressed on its own (so one can be read without the
others); its index holds a fan-out table on the first byte of the id, the
sorted ids and the offsets, so a reader maps the index and binary-searches it
without reading the pack. Layouts are in ``docs/reference/store-format.md``.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from doteval._objects.files import fsync_dir, open_regular, publish_new, write_temp
from doteval.errors import CorruptStoreError, StoreError

PACK_MAGIC = b"DVPACK\x00\x01"
IDX_MAGIC = b"DVIDX\x00\x00\x01"
_ENTRY_HEAD = struct.Struct(">BII")  # codec, uncompressed length, stored length
_U32 = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")
_FANOUT = struct.Struct(">256I")
ID_LEN = 32
NO_DICTIONARY = bytes(32)
PACK_HEADER = len(PACK_MAGIC) + 32
# How an object's bytes are kept, in a pack and in a loose file alike.
CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_ZSTD_DICT = 2  # zstd with the dictionary the pack names
COMPRESS_ABOVE = 64  # bytes: an object this small or smaller is kept raw


@dataclass(frozen=True)
class PackEntry:
    codec: int
    raw_len: int
    payload: bytes
    dictionary: bytes = NO_DICTIONARY


def write_pack(
    directory: Path, entries: list[tuple[bytes, int, int, bytes]], dictionary: bytes = NO_DICTIONARY
) -> str:
    """Write a pack and its index; ``entries`` are (raw id, codec, raw length, payload).

    ``dictionary`` is the raw id of the zstd dictionary object that entries of
    codec 2 were compressed with (zeros: none). Returns the pack name. The pack
    is published before its index, so a reader that sees an index always finds
    its pack.
    """
    entries = sorted({e[0]: e for e in entries}.values(), key=lambda e: e[0])
    chunks = [PACK_MAGIC, dictionary]
    offsets = []
    pos = PACK_HEADER
    for _, codec, raw_len, payload in entries:
        offsets.append(pos)
        head = _ENTRY_HEAD.pack(codec, raw_len, len(payload))
        chunks.append(head)
        chunks.append(payload)
        pos += len(head) + len(payload)
    hasher = blake3()
    for c in chunks:
        hasher.update(c)
    pack_sum = hasher.digest()
    chunks.append(pack_sum)
    name = "pack-" + pack_sum.hex()

    fanout = [0] * 256
    for raw_id, *_ in entries:
        fanout[raw_id[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    idx = [IDX_MAGIC, _U32.pack(len(entries)), _FANOUT.pack(*fanout)]
    idx.extend(e[0] for e in entries)
    idx.extend(_OFFSET.pack(o) for o in offsets)
    idx.append(pack_sum)
    idx_body = b"".join(idx)
    idx_bytes = idx_body + blake3(idx_body).digest()

    pack_path = directory / f"{name}.pack"
    idx_path = directory / f"{name}.idx"
    if not idx_path.exists():
        publish_new(write_temp(directory, chunks), pack_path)
        fsync_dir(directory)
        publish_new(write_temp(directory, idx_bytes), idx_path)
        fsync_dir(directory)
    return name


class PackIndex:
    """A mapped index and its pack; ``find`` is a binary search on the ids."""

    def __init__(self, idx_path: Path) -> None:
        self.idx_path = idx_path
        self.pack_path = idx_path.with_suffix(".pack")
        with open(open_regular(idx_path, "pack index"), "rb") as f:
            try:
                self._idx = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                raise CorruptStoreError("empty pack index", path=str(idx_path)) from None
        idx = self._idx
        header = len(IDX_MAGIC) + 4 + 256 * 4
        if len(idx) < header + 64 or idx[: len(IDX_MAGIC)] != IDX_MAGIC:
            raise CorruptStoreError("not a pack index", path=str(idx_path))
        (self.count,) = _U32.unpack_from(idx, len(IDX_MAGIC))
        self._fanout = _FANOUT.unpack_from(idx, len(IDX_MAGIC) + 4)
        self._ids_at = header
        self._offsets_at = header + self.count * ID_LEN
        expected = self._offsets_at + self.count * 8 + 64
        if len(idx) != expected or self._fanout[255] != self.count:
            raise CorruptStoreError("pack index has the wrong size", path=str(idx_path))
        self.pack_sum = bytes(idx[self._offsets_at + self.count * 8 : self._offsets_at + self.count * 8 + 32])
        self._pack: mmap.mmap | None = None

    def verify(self) -> None:
        body = self._idx[:-32]
        if blake3(body).digest() != self._idx[-32:]:
            raise CorruptStoreError("pack index checksum mismatch", path=str(self.idx_path))

    def ids(self) -> list[bytes]:
        start = self._ids_at
        return [self._idx[start + i * ID_LEN : start + (i + 1) * ID_LEN] for i in range(self.count)]

    def find(self, raw_id: bytes) -> int:
        """Position of ``raw_id`` in the index, or -1."""
        first = raw_id[0]
        lo = self._fanout[first - 1] if first else 0
        hi = self._fanout[first]
        idx = self._idx
        base = self._ids_at
        while lo < hi:
            mid = (lo + hi) // 2
            at = base + mid * ID_LEN
            probe = idx[at : at + ID_LEN]
            if probe < raw_id:
                lo = mid + 1
            elif probe > raw_id:
                hi = mid
            else:
                return mid
        return -1

    def offset(self, position: int) -> int:
        return int(_OFFSET.unpack_from(self._idx, self._offsets_at + position * 8)[0])

    def _pack_map(self) -> mmap.mmap:
        if self._pack is None:
            try:
                with open(open_regular(self.pack_path, "pack"), "rb") as f:
                    self._pack = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except StoreError:
                raise
            except (OSError, ValueError) as e:
                raise CorruptStoreError(f"cannot read pack: {e}", path=str(self.pack_path)) from None
        return self._pack

    def entry(self, position: int) -> PackEntry:
        pack = self._pack_map()
        at = self.offset(position)
        end_of_entries = len(pack) - 32
        if at < PACK_HEADER or at + _ENTRY_HEAD.size > end_of_entries:
            raise CorruptStoreError("pack entry out of range", path=str(self.pack_path))
        codec, raw_len, stored = _ENTRY_HEAD.unpack_from(pack, at)
        start = at + _ENTRY_HEAD.size
        if start + stored > end_of_entries:
            raise CorruptStoreError("pack entry runs past the end", path=str(self.pack_path))
        dictionary = self.dictionary() if codec == CODEC_ZSTD_DICT else NO_DICTIONARY
        return PackEntry(codec, raw_len, bytes(pack[start : start + stored]), dictionary)

    def dictionary(self) -> bytes:
        """Raw id of the zstd dictionary of this pack's codec-2 entries (zeros: none)."""
        pack = self._pack_map()
        if len(pack) < PACK_HEADER + 32 or pack[: len(PACK_MAGIC)] != PACK_MAGIC:
            raise CorruptStoreError("not a pack", path=str(self.pack_path))
        return bytes(pack[len(PACK_MAGIC) : PACK_HEADER])

    def verify_pack(self) -> None:
        pack = self._pack_map()
        if len(pack) < PACK_HEADER + 32 or pack[: len(PACK_MAGIC)] != PACK_MAGIC:
            raise CorruptStoreError("not a pack", path=str(self.pack_path))
        if blake3(pack[:-32]).digest() != pack[-32:] or pack[-32:] != self.pack_sum:
            raise CorruptStoreError("pack checksum mismatch", path=str(self.pack_path))

    def close(self) -> None:
        self._idx.close()
        if self._pack is not None:
            self._pack.close()
