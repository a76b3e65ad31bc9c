"""Repacking a store folder: the physical half of gc.

gc decides what is kept (what the refs, their histories and live runs reach); this
module rewrites the packs and loose objects of a ``DiskObjectStore`` to hold just
that, plus whatever is too young to judge. Packs under ``SMALL_PACK`` (one per run,
mostly), packs holding garbage, and every loose object but dictionaries go into one
new pack; ``aggressive`` rewrites every pack, compresses large objects at zstd's
strongest level and trains a new dictionary for small ones.

Order keeps the store valid if the process is killed at any instant: the new pack
is durable before any old pack or loose object is removed, and an index is removed
before its pack. Objects that appear after the snapshot are never touched.
Layouts and levels are in ``docs/reference/store-format.md``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import zstandard

from doteval._objects.base import Progress, RepackOptions, RepackStats, Snapshot, TrainingRows
from doteval._objects.encoding import decode
from doteval._objects.files import store_dir
from doteval._objects.hashing import ObjectId, hash_bytes, is_object_id
from doteval._objects.packs import (
    CODEC_RAW,
    CODEC_ZSTD,
    CODEC_ZSTD_DICT,
    COMPRESS_ABOVE,
    NO_DICTIONARY,
    PackIndex,
    write_pack,
)
from doteval._objects.walk import is_pack_name, is_temp_name, remove_store_file, rsync_temp_of, scan
from doteval.errors import CorruptObjectError, DotevalError

DAY = 86400.0
SMALL_PACK = 8 << 20  # bytes: smaller packs (one per run, mostly) are joined into one
DICTIONARY_SIZE = 112 * 1024
TRAINING_SAMPLES = 20_000
BIG_OBJECT = 64 * 1024  # sample tables and results; smaller objects get the dictionary

Dictionary = tuple[bytes, zstandard.ZstdCompressionDict]  # raw id of the object, and the dictionary


class PackedStore(Protocol):
    """What a repack uses of a ``DiskObjectStore`` (``doteval._objects.store``)."""

    root: Path
    objects_dir: Path
    packs_dir: Path

    def packs(self) -> list[PackIndex]: ...
    def loose_path(self, object_id: str) -> Path: ...
    def read_loose(self, path: Path) -> bytes: ...
    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes: ...
    def put(self, value: Any) -> ObjectId: ...
    def current_dictionary(self) -> Dictionary | None: ...
    def decompress(
        self, codec: int, raw_len: int, payload: bytes, *, where: str, dictionary: bytes = NO_DICTIONARY
    ) -> bytes: ...


@dataclass(frozen=True)
class DiskSnapshot(Snapshot):
    packs: list[PackIndex]
    loose: list[ObjectId]


def age_of(path: Path, now: float) -> float:
    """Seconds since ``path`` last changed: the newest of mtime and ctime (rsync keeps mtimes)."""
    st = os.lstat(path)
    return now - max(st.st_mtime, st.st_ctime)


# Where each kept object is now: a pack and its position, or (None, 0) for a loose file.
Moving = dict[str, tuple[PackIndex | None, int]]


def repack(store: PackedStore, snapshot: DiskSnapshot, keep: set[str], how: RepackOptions) -> RepackStats:
    """See ``BaseObjectStore.repack``."""
    report = how.progress or (lambda stage, done, total: None)
    now, grace_period, aggressive = how.now, how.grace_period, how.aggressive
    stats = RepackStats()
    keep_dicts = set()
    plan: list[PackIndex] = []
    for pack in snapshot.packs:
        garbage = any(raw_id.hex() not in keep for raw_id in pack.ids())
        old = age_of(pack.idx_path, now) > grace_period
        if aggressive or pack.pack_path.stat().st_size < SMALL_PACK or (garbage and old):
            plan.append(pack)
        else:
            pack_dict = pack.dictionary()
            if pack_dict != NO_DICTIONARY:
                keep_dicts.add(pack_dict.hex())
    current = store.current_dictionary()
    if current is not None:
        keep_dicts.add(current[0].hex())
    kept = keep | keep_dicts

    moving: Moving = {}
    for pack in plan:
        young = age_of(pack.idx_path, now) <= grace_period
        for pos, raw_id in enumerate(pack.ids()):
            oid = raw_id.hex()
            if oid in kept or young:
                stats.kept_young += oid not in kept
                moving.setdefault(oid, (pack, pos))
            else:
                stats.removed_packed += 1
    loose_garbage = []
    for oid in snapshot.loose:
        path = store.loose_path(oid)
        try:
            young = age_of(path, now) <= grace_period
        except FileNotFoundError:
            continue
        if oid in kept or young:
            stats.kept_young += oid not in kept
            if not _is_dictionary_object(store, oid):
                moving.setdefault(oid, (None, 0))
        else:
            loose_garbage.append(oid)
    stats.removed_loose = len(loose_garbage)
    stats.kept = len(kept)
    stats.repacked = len(moving)
    if how.dry_run:
        return stats

    # a store too small to train on keeps the dictionary it has
    dictionary = (_train(store, moving, how.training_rows, report) or current) if aggressive else current
    if dictionary is not None:
        stats.dictionary = ObjectId(dictionary[0].hex())
    new_pack = None
    if moving:
        new_pack = _write_repack(store, moving, dictionary, report, aggressive=aggressive)
        stats.new_packs = 1
    # The new pack is durable: now the old copies can go, indexes before packs.
    for pack in plan:
        if pack.idx_path.stem == new_pack:  # the repack came out identical to this pack: it is the new one
            continue
        pack.close()
        remove_store_file(store.root, pack.idx_path)
        remove_store_file(store.root, pack.pack_path)
        stats.removed_packs += 1
    for oid, (source, _pos) in moving.items():
        if source is None:  # packed now: the loose copy can go
            remove_store_file(store.root, store.loose_path(oid))
    for oid in loose_garbage:
        path = store.loose_path(oid)
        try:
            if age_of(path, now) <= grace_period:  # touched since: a writer wants it
                continue
        except FileNotFoundError:
            continue
        remove_store_file(store.root, path)
    store.packs()  # forget the packs removed
    return stats


def _is_dictionary_object(store: PackedStore, oid: str) -> bool:
    # Dictionaries stay loose: a pack names its dictionary and must not hold it.
    try:
        value = decode(store.read_loose(store.loose_path(oid)))
    except (DotevalError, OSError):
        return False
    return isinstance(value, dict) and value.get("type") == "zstd-dictionary"


def _read_raw(store: PackedStore, oid: str, source: PackIndex | None, pos: int) -> bytes:
    if source is None:
        return store.get_bytes(oid)
    entry = source.entry(pos)
    raw = store.decompress(
        entry.codec, entry.raw_len, entry.payload, where=str(source.pack_path), dictionary=entry.dictionary
    )
    if hash_bytes(raw) != oid:
        raise CorruptObjectError(oid, hash_bytes(raw), path=str(source.pack_path))
    return raw


def _train(
    store: PackedStore, moving: Moving, training_rows: TrainingRows | None, report: Progress
) -> Dictionary | None:
    """A dictionary for the small objects of later runs, trained on the small objects
    themselves and on the records ``training_rows`` finds inside large ones."""
    samples: list[bytes | bytearray | memoryview] = []
    ids = sorted(moving)
    for i, oid in enumerate(ids):
        source, pos = moving[oid]
        size = source.entry(pos).raw_len if source is not None else 0
        if source is not None and size < BIG_OBJECT and len(ids) > TRAINING_SAMPLES and i % 8:
            continue  # many small objects: a sample of them is enough
        raw = _read_raw(store, oid, source, pos)
        if len(raw) < BIG_OBJECT:
            samples.append(raw)
        elif training_rows is not None:
            samples.extend(training_rows(raw))
        if i % 1000 == 0:
            report("training", i, len(ids))
    if len(samples) > TRAINING_SAMPLES:
        samples = samples[:: len(samples) // TRAINING_SAMPLES + 1]
    if len(samples) < 200:
        return None
    try:
        trained = zstandard.train_dictionary(DICTIONARY_SIZE, samples, level=3, threads=-1)
    except zstandard.ZstdError:
        return None
    dict_id = store.put({"type": "zstd-dictionary", "v": 1, "data": trained.as_bytes()})
    return bytes.fromhex(dict_id), trained


def _write_repack(
    store: PackedStore,
    moving: Moving,
    dictionary: Dictionary | None,
    report: Progress,
    *,
    aggressive: bool = False,
) -> str:
    plain = zstandard.ZstdCompressor(level=9)
    # aggressive: large objects (sample tables, results) at zstd's strongest level
    strongest = zstandard.ZstdCompressor(level=19) if aggressive else plain
    with_dict = zstandard.ZstdCompressor(level=12, dict_data=dictionary[1]) if dictionary else None
    target = dictionary[0] if dictionary else NO_DICTIONARY
    entries = []
    total = len(moving)
    verified: dict[str, bool] = {}
    for n, (oid, (source, pos)) in enumerate(sorted(moving.items())):
        if source is not None and _whole_pack_ok(source, verified):
            entry = source.entry(pos)
            # Already compressed the way the new pack wants it: copy it as it is (the
            # source pack's checksum vouched for these bytes).
            recompress = aggressive and entry.raw_len >= BIG_OBJECT
            if not recompress and (
                (entry.codec in (CODEC_RAW, CODEC_ZSTD) and with_dict is None)
                or (entry.codec == CODEC_ZSTD_DICT and entry.dictionary == target)
            ):
                entries.append((bytes.fromhex(oid), entry.codec, entry.raw_len, entry.payload))
                continue
        raw = _read_raw(store, oid, source, pos)
        codec, payload = CODEC_RAW, raw
        if len(raw) >= BIG_OBJECT:
            packed = strongest.compress(raw)
            if len(packed) < len(payload):
                codec, payload = CODEC_ZSTD, packed
        elif len(raw) > COMPRESS_ABOVE:
            packed = plain.compress(raw)
            if len(packed) < len(payload):
                codec, payload = CODEC_ZSTD, packed
            if with_dict is not None:
                packed = with_dict.compress(raw)
                if len(packed) < len(payload):
                    codec, payload = CODEC_ZSTD_DICT, packed
        entries.append((bytes.fromhex(oid), codec, len(raw), payload))
        if n % 1000 == 0:
            report("repacking", n, total)
    store_dir(store.root, store.packs_dir)
    name = write_pack(store.packs_dir, entries, target)
    report("repacking", total, total)
    return name


def _whole_pack_ok(pack: PackIndex, verified: dict[str, bool]) -> bool:
    """Whether the pack's checksum holds (read once per pack per repack)."""
    name = pack.idx_path.name
    if name not in verified:
        try:
            pack.verify()
            pack.verify_pack()
            verified[name] = True
        except DotevalError:
            verified[name] = False  # read object by object: each is checked, the bad one refused
    return verified[name]


# -- prune ----------------------------------------------------------------------------------------


def prune(store: PackedStore, *, grace_period: float, now: float) -> int:
    """Remove what interrupted writes left: only names of the store's own shapes, only
    regular files, only in real folders of the store, only older than the grace period
    and a day."""
    removed = 0
    for directory, is_final in _temp_folders(store):
        files = scan(directory).files
        present = set(files)
        for name in files:
            path = directory / name
            # ours (.tmp-*), rsync's (.NAME.XXXXXX), or a pack whose index never came
            target = rsync_temp_of(name)
            orphan = is_pack_name(name) and name.endswith(".pack") and name[:-5] + ".idx" not in present
            if not (is_temp_name(name) or (target is not None and is_final(target)) or orphan):
                continue
            try:
                stale = age_of(path, now) > max(grace_period, DAY)
            except FileNotFoundError:  # a writer published (renamed) it since the listing
                continue
            if stale and remove_store_file(store.root, path):
                removed += 1
    return removed


def _is_object_in(sub: str, name: str) -> bool:
    return is_object_id(sub + name)


def _temp_folders(store: PackedStore) -> Iterator[tuple[Path, Callable[[str], bool]]]:
    """The folders prune cleans, each with the shape of the files published there."""
    yield store.packs_dir, is_pack_name
    for sub in scan(store.objects_dir).dirs:
        if len(sub) == 2:
            yield store.objects_dir / sub, functools.partial(_is_object_in, sub)
