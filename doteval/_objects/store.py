"""The object store: immutable objects named by the blake3 of their canonical bytes.

Objects live loose (one file each, for small and rare objects such as
manifests) or in packs (results, written when a run is sealed). Every read
re-hashes what it decompressed and refuses a mismatch; decompression is bounded
by the length the object declares and by ``MAX_OBJECT_SIZE``, because a shared
store is untrusted input. Nothing read from a store is ever unpickled or run.

This module knows bytes and ids only; what an object means is up to its reader.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

from doteval._objects import repacking
from doteval._objects.base import BaseObjectStore, RepackOptions, RepackStats, Snapshot
from doteval._objects.files import (
    DISK_FULL,
    NOT_A_FOLDER_HINT,
    check_real_folders,
    no_space,
    open_regular,
    read_fd,
    read_regular,
    store_dir,
    write_new,
    write_temp,
)
from doteval._objects.hashing import ObjectId, check_object_id, hash_bytes
from doteval._objects.packs import (
    CODEC_RAW,
    CODEC_ZSTD,
    CODEC_ZSTD_DICT,
    COMPRESS_ABOVE,
    NO_DICTIONARY,
    PackIndex,
    write_pack,
)
from doteval._objects.walk import RSYNC_FILTER, scan
from doteval.errors import (
    CorruptObjectError,
    CorruptStoreError,
    DotevalError,
    ObjectNotFoundError,
    StoreError,
    StoreVersionError,
)

FORMAT_VERSION = 2  # 2: results in sample tables (doteval._repository.sample_tables)
STORE_MARKER = "doteval-store"
LOOSE_MAGIC = b"DVOBJ\x01"
_LOOSE_HEAD = struct.Struct(">BQ")  # codec, uncompressed length
MAX_OBJECT_SIZE = 1 << 30


class _Codecs(threading.local):
    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=3)
        self.fast_compressor = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()
        self.dict_decompressors: dict[bytes, zstandard.ZstdDecompressor] = {}


STORE_DIR = ".doteval"


def find_store(start: Path | None = None) -> Path | None:
    """The nearest ``.doteval`` folder in ``start`` (default: the current directory) or a
    parent, as git finds ``.git``.

    The search stops at ``/`` and where a mount point changes the filesystem (git's
    default without ``GIT_DISCOVERY_ACROSS_FILESYSTEM``): a store on another disk is
    named with ``--store`` or ``DOTEVAL_STORE``, never found by accident.
    """
    here = Path(os.path.abspath(start or Path.cwd()))
    try:
        device = here.stat().st_dev
    except OSError:
        return None
    for folder in (here, *here.parents):
        try:
            if folder.stat().st_dev != device:
                return None
        except OSError:
            return None
        if (folder / STORE_DIR).is_dir():
            return folder / STORE_DIR
    return None


def default_store_path() -> Path:
    """``$DOTEVAL_STORE``, else the nearest ``.doteval`` (``find_store``), else ``./.doteval``,
    where a run that writes creates one."""
    env = os.environ.get("DOTEVAL_STORE")
    if env:
        return Path(env)
    return find_store() or Path.cwd() / STORE_DIR


class DiskObjectStore(BaseObjectStore):
    """Loose objects and packs under one store directory (the interface: ``BaseObjectStore``)."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.objects_dir = root / "objects"
        self.packs_dir = root / "packs"
        self.durable = durable
        self._codecs = _Codecs()
        self._packs: dict[str, PackIndex] = {}
        self._packs_lock = threading.Lock()
        self._packs_mtime = -2
        self._dictionaries: dict[bytes, zstandard.ZstdCompressionDict] = {}

    # -- encoding ---------------------------------------------------------

    def compress(self, raw: bytes) -> tuple[int, bytes]:
        if len(raw) <= COMPRESS_ABOVE:
            return CODEC_RAW, raw
        packed = self._codecs.compressor.compress(raw)
        if len(packed) >= len(raw):
            return CODEC_RAW, raw
        return CODEC_ZSTD, packed

    def decompress(
        self, codec: int, raw_len: int, payload: bytes, *, where: str, dictionary: bytes = NO_DICTIONARY
    ) -> bytes:
        if raw_len > MAX_OBJECT_SIZE:
            raise CorruptStoreError(f"object claims {raw_len} bytes, over the limit", path=where)
        if codec == CODEC_RAW:
            data = payload
        elif codec in (CODEC_ZSTD, CODEC_ZSTD_DICT):
            try:
                # zstandard allocates what the frame header claims, whatever
                # max_output_size says: check the claim first.
                declared = zstandard.frame_content_size(payload)
                if declared != raw_len:
                    raise CorruptStoreError(
                        f"compressed frame declares {declared} bytes, expected {raw_len}", path=where
                    )
                decompressor = (
                    self._codecs.decompressor
                    if codec == CODEC_ZSTD
                    else self._dict_decompressor(dictionary, where)
                )
                data = decompressor.decompress(payload, max_output_size=raw_len)
            except zstandard.ZstdError as e:
                raise CorruptStoreError(f"cannot decompress object: {e}", path=where) from None
        else:
            raise CorruptStoreError(f"unknown codec {codec}", path=where)
        if len(data) != raw_len:
            raise CorruptStoreError(
                f"object decompressed to {len(data)} bytes, expected {raw_len}", path=where
            )
        return data

    def dictionary(self, raw_id: bytes) -> zstandard.ZstdCompressionDict:
        """A zstd dictionary stored as an object ({"type": "zstd-dictionary", "data": bytes})."""
        cached = self._dictionaries.get(raw_id)
        if cached is None:
            value = self.get(raw_id.hex())
            try:
                if value["type"] != "zstd-dictionary":
                    raise TypeError
                cached = zstandard.ZstdCompressionDict(value["data"])
            except (KeyError, TypeError, zstandard.ZstdError):
                raise CorruptStoreError(f"object {raw_id.hex()[:12]} is not a zstd dictionary") from None
            self._dictionaries[raw_id] = cached
        return cached

    def _dict_decompressor(self, raw_id: bytes, where: str) -> zstandard.ZstdDecompressor:
        decompressors = self._codecs.dict_decompressors
        if raw_id not in decompressors:
            decompressors[raw_id] = zstandard.ZstdDecompressor(dict_data=self.dictionary(raw_id))
        return decompressors[raw_id]

    # -- loose objects ----------------------------------------------------

    def loose_path(self, object_id: str) -> Path:
        check_object_id(object_id)
        return self.objects_dir / object_id[:2] / object_id[2:]

    def put_bytes(self, raw: bytes) -> ObjectId:
        object_id = hash_bytes(raw)
        path = self.loose_path(object_id)
        if path.exists():
            store_dir(self.root, path.parent)  # never touch a file through a linked folder
            try:
                os.utime(path, follow_symlinks=False)  # touched: a concurrent gc keeps it
                return object_id
            except FileNotFoundError:
                pass  # a gc packed it and removed the file just now: write it again
        write_new(path, self.file_chunks(raw), durable=self.durable, root=self.root)
        return object_id

    def file_chunks(self, raw: bytes) -> list[bytes]:
        """The bytes of a loose object file holding ``raw``."""
        codec, payload = self.compress(raw)
        return [LOOSE_MAGIC, _LOOSE_HEAD.pack(codec, len(raw)), payload]

    def read_loose(self, path: Path, *, what: str = "object file", limit: int = MAX_OBJECT_SIZE) -> bytes:
        """The decompressed bytes of a loose file (an object, or a ref record: ``what``) holding
        at most ``limit`` bytes; read only if it is a regular file (see ``open_regular``)."""
        head_len = len(LOOSE_MAGIC) + _LOOSE_HEAD.size
        check_real_folders(self.root, path)
        fd = open_regular(path, what)
        try:
            # a zstd payload is only kept when smaller than the raw bytes
            data = read_fd(fd, head_len + limit, path, what)
        finally:
            os.close(fd)
        if len(data) < head_len or data[: len(LOOSE_MAGIC)] != LOOSE_MAGIC:
            raise CorruptStoreError("not an object file (bad header)", path=str(path))
        codec, raw_len = _LOOSE_HEAD.unpack_from(data, len(LOOSE_MAGIC))
        if raw_len > limit:
            raise CorruptStoreError(f"object claims {raw_len} bytes, over the limit", path=str(path))
        return self.decompress(codec, raw_len, data[head_len:], where=str(path))

    # -- packs ------------------------------------------------------------

    def packs(self) -> list[PackIndex]:
        """Every pack index, opened once and kept; new packs are picked up.

        The folder is listed again only when its mtime moved (a pack was added
        or removed), so a miss costs a stat, not a listing.
        """
        with self._packs_lock:
            try:
                mtime = os.lstat(self.packs_dir).st_mtime_ns  # a link's own time: scan refuses it below
            except FileNotFoundError:
                mtime = -1
            if mtime == self._packs_mtime and mtime != -1:
                return list(self._packs.values())
            names = [name for name in scan(self.packs_dir).files if name.endswith(".idx")]
            self._packs_mtime = mtime
            for name in names:
                if name not in self._packs and not name.startswith("."):
                    try:
                        self._packs[name] = PackIndex(self.packs_dir / name)
                    except FileNotFoundError:  # removed by a gc since the listing: its objects are elsewhere
                        continue
            for gone in set(self._packs) - set(names):
                self._packs.pop(gone).close()
            return list(self._packs.values())

    def current_dictionary(self) -> tuple[bytes, zstandard.ZstdCompressionDict] | None:
        """The dictionary of the newest pack that has one (trained by ``gc --aggressive``)."""
        newest: tuple[float, bytes] | None = None
        for pack in self.packs():
            try:
                dictionary = pack.dictionary()
                mtime = pack.idx_path.stat().st_mtime
            except (DotevalError, OSError):
                continue
            if dictionary != NO_DICTIONARY and (newest is None or mtime > newest[0]):
                newest = (mtime, dictionary)
        if newest is None:
            return None
        try:
            return newest[1], self.dictionary(newest[1])
        except DotevalError:
            return None

    def write_pack(self, raws: Iterable[bytes], raw_ids: list[bytes] | None = None) -> list[ObjectId]:
        """Pack ``raws`` (whose raw ids the caller may know already), compressed with the
        store's current dictionary if it has one."""
        current = self.current_dictionary()
        # Level 1: sealing is on the path of every run; gc recompresses harder later.
        compressor = (
            zstandard.ZstdCompressor(level=1, dict_data=current[1])
            if current is not None
            else self._codecs.fast_compressor
        )
        entries = []
        ids = []
        for n, raw in enumerate(raws):
            object_id = ObjectId(raw_ids[n].hex()) if raw_ids is not None else hash_bytes(raw)
            ids.append(object_id)
            codec, payload = CODEC_RAW, raw
            if len(raw) > COMPRESS_ABOVE:
                packed = compressor.compress(raw)
                if len(packed) < len(raw):
                    codec, payload = (CODEC_ZSTD_DICT if current is not None else CODEC_ZSTD), packed
            entries.append((bytes.fromhex(object_id), codec, len(raw), payload))
        if entries:
            store_dir(self.root, self.packs_dir)
            dictionary = current[0] if current is not None else NO_DICTIONARY
            write_pack(self.packs_dir, entries, dictionary)
            self._packs_mtime = -2  # list the folder again: its mtime may not have moved
        return ids

    # -- reading ----------------------------------------------------------

    def _find_packed(self, raw_id: bytes) -> tuple[PackIndex, int] | None:
        """Search the packs already open, then (on a miss) any new ones."""
        known = list(self._packs.values())
        for pack in known:
            pos = pack.find(raw_id)
            if pos >= 0:
                return pack, pos
        for pack in self.packs():
            if pack not in known:
                pos = pack.find(raw_id)
                if pos >= 0:
                    return pack, pos
        return None

    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes:
        """The verified bytes of an object.

        Results live in packs, manifests and tables mostly loose (until a gc
        packs them): ``loose_first`` says which to try first, to spare a
        search of every pack index for an object that is a file.
        """
        check_object_id(object_id)
        if loose_first:
            path = self.loose_path(object_id)
            try:
                loose = self.read_loose(path)
            except FileNotFoundError:
                pass
            else:
                actual = hash_bytes(loose)
                if actual != object_id:
                    raise CorruptObjectError(object_id, actual, path=str(path))
                return loose
        found = self._find_packed(bytes.fromhex(object_id))
        if found is None:
            path = self.loose_path(object_id)
            try:
                raw, where = self.read_loose(path), str(path)
            except FileNotFoundError:
                # Found nowhere: list the packs folder again whatever its mtime says (a copy
                # that keeps folder times, or a coarse clock, can hide a new pack from it).
                with self._packs_lock:
                    self._packs_mtime = -2
                found = self._find_packed(bytes.fromhex(object_id))
                if found is None:
                    raise ObjectNotFoundError(object_id) from None
        if found is not None:
            pack, pos = found
            entry = pack.entry(pos)
            where = str(pack.pack_path)
            raw = self.decompress(
                entry.codec, entry.raw_len, entry.payload, where=where, dictionary=entry.dictionary
            )
        actual = hash_bytes(raw)
        if actual != object_id:
            raise CorruptObjectError(object_id, actual, path=where)
        return raw

    def has(self, object_id: str) -> bool:
        path = self.loose_path(object_id)
        if self._find_packed(bytes.fromhex(object_id)) is not None or path.exists():
            return True
        with self._packs_lock:  # found nowhere: list the packs folder again (see get_bytes)
            self._packs_mtime = -2
        return self._find_packed(bytes.fromhex(object_id)) is not None

    def iter_loose_ids(self) -> Iterator[ObjectId]:
        """The ids of the loose objects (a link among their folders is never followed)."""
        for sub in scan(self.objects_dir).dirs:
            if len(sub) != 2:
                continue
            for f in scan(self.objects_dir / sub).files:
                name = sub + f
                if len(name) == 64:
                    try:
                        yield check_object_id(name)
                    except StoreError:
                        continue

    def iter_ids(self) -> Iterator[ObjectId]:
        """Every object's id, packed or loose, once each."""
        seen: set[bytes] = set()
        for pack in self.packs():
            for raw_id in pack.ids():
                if raw_id not in seen:
                    seen.add(raw_id)
                    yield ObjectId(raw_id.hex())
        for object_id in self.iter_loose_ids():
            if bytes.fromhex(object_id) not in seen:
                yield object_id

    # -- repack and prune (doteval._objects.repacking) ----------------------

    def snapshot(self) -> repacking.DiskSnapshot:
        return repacking.DiskSnapshot(self.packs(), list(self.iter_loose_ids()))

    def repack(self, snapshot: Snapshot, keep: set[str], how: RepackOptions) -> RepackStats:
        assert isinstance(snapshot, repacking.DiskSnapshot)
        return repacking.repack(self, snapshot, keep, how)

    def prune(self, *, grace_period: float, now: float) -> int:
        return repacking.prune(self, grace_period=grace_period, now=now)


MAX_VERSION_FILE = 256


def check_store_version(root: Path) -> None:
    marker = root / "VERSION"
    try:
        text = read_regular(marker, MAX_VERSION_FILE, "store VERSION file").decode()
    except FileNotFoundError:
        return
    except UnicodeDecodeError:
        raise CorruptStoreError("unreadable store VERSION file", path=str(marker)) from None
    except DotevalError:
        raise
    except OSError as e:
        raise StoreError(f"cannot read store version: {e}", path=str(marker)) from None
    parts = text.split()
    if len(parts) != 2 or parts[0] != STORE_MARKER or not parts[1].isdigit():
        raise CorruptStoreError("unreadable store VERSION file", path=str(marker))
    if int(parts[1]) > FORMAT_VERSION:
        raise StoreVersionError(int(parts[1]), FORMAT_VERSION, path=str(marker))
    if int(parts[1]) < FORMAT_VERSION:
        raise StoreError(
            f"store format {parts[1]} was written by a pre-release doteval; this one reads format {FORMAT_VERSION}",
            path=str(marker),
            hint="export its experiments with the doteval that wrote it, or start a new store",
        )


STORE_FOLDERS = ("objects", "packs", "refs", "journals", "locks")


def check_store_layout(root: Path) -> None:
    """Refuse a store where one of its folders is a file (or a FIFO, a device): every
    command would meet it somewhere, and say so in a traceback."""
    for name in STORE_FOLDERS:
        try:
            mode = (root / name).stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise StoreError(
                f"cannot read store folder {name!r}: {e.strerror}", path=str(root / name)
            ) from None
        if not stat.S_ISDIR(mode):
            raise CorruptStoreError(
                f"store folder {name!r} is not a folder", path=str(root / name), hint=NOT_A_FOLDER_HINT
            )


def check_writable(root: Path) -> None:
    """Refuse a store that cannot be written (a read-only mount, a folder not ours) in one
    line, before a run evaluates anything; a store not created yet is checked where it will be."""
    where = root
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        return  # the run's own writes say what is wrong
    if read_only or not os.access(where, os.W_OK):
        raise StoreError(
            f"the store {root} is {'on a read-only file system' if read_only else 'not writable'}: "
            "a run cannot record its results there",
            path=str(root),
            hint="run into a store you can write (--store PATH); reading this one works as it is",
        )


def init_store(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise StoreError(f"store path {root} is not a directory", path=str(root))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno in DISK_FULL:
            raise no_space(root, 0) from None
        raise
    marker = root / "VERSION"
    if not marker.exists():
        write_new(marker, f"{STORE_MARKER} {FORMAT_VERSION}\n".encode(), root=root)
    check_store_version(root)
    _write_filter(root)


def _write_filter(root: Path) -> None:
    """The rsync filter, kept in the store (by its writers) for people who copy it with rsync alone."""
    path = root / "rsync-filter"
    wanted = RSYNC_FILTER.encode()
    try:
        current: bytes | None = read_regular(path, len(wanted), "rsync filter")
    except FileNotFoundError:
        current = None
    except OSError:  # a link, a FIFO, too long: replaced by the real filter below (never written through)
        current = b""
    if current == wanted:
        return
    tmp = None
    try:
        tmp = write_temp(root, wanted, root=root)
        os.replace(tmp, path)  # replaces a link, never follows it
    except OSError:  # a store on a read-only mount: the filter is a convenience
        if tmp is not None:
            tmp.unlink(missing_ok=True)
