"""Garbage collection: keep what is reachable, repack, reclaim the rest.

Reachable: every ref record (the experiments' histories) and what their
manifests name (code, views, sample tables and their results), the code objects of live and
dead-but-unsealed runs (their journals), and the dictionary of every pack that
stays. Deleted experiments are kept until their deletion is older than
``expire_deleted``. Nothing younger than the grace period is removed; age is
the newest of mtime and ctime, because rsync keeps mtimes.

Order keeps the store valid if gc is killed at any instant: the new pack is
durable before any old pack or loose object is removed, and an index is
removed before its pack. Objects that appear while gc runs are never touched.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from doteval._objects import Store
from doteval._objects.checks import MAX_TIME
from doteval._objects.encoding import decode, encode
from doteval._objects.files import store_dir
from doteval._objects.hashing import hash_bytes, is_object_id
from doteval._objects.journal import read_journal
from doteval._objects.locks import store_lock
from doteval._objects.packs import CODEC_ZSTD_DICT, NO_DICTIONARY, PackIndex, write_pack
from doteval._objects.store import CODEC_RAW, CODEC_ZSTD
from doteval._objects.walk import (
    check_store_folders,
    is_pack_name,
    is_temp_name,
    refused_entries,
    remove_store_file,
    rsync_temp_of,
    scan,
)
from doteval._repository.manifest import load_manifest
from doteval._repository.repository import Repository
from doteval._repository.sample_tables import DETAILS_HEAD, load_parts, object_ids
from doteval.errors import CorruptObjectError, DotevalError, StoreError, UsageError

DAY = 86400.0
DEFAULT_PRUNE = 14 * DAY
DEFAULT_EXPIRE_DELETED = 30 * DAY
SMALL_PACK = 8 << 20  # bytes: smaller packs (one per run, mostly) are joined into one
DICTIONARY_SIZE = 112 * 1024
TRAINING_SAMPLES = 20_000
BIG_OBJECT = 64 * 1024  # sample tables and results; smaller objects get the dictionary
JOURNAL_MARGIN = 60.0  # clock skew between a run's host and this one (a store shared over NFS)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}

Progress = Callable[[str, int, int], None]


def parse_age(text: str) -> float:
    """``now``, ``90s``, ``30m``, ``12h``, ``14d``, ``2w`` (also ``2.weeks.ago``) → seconds."""
    t = text.strip().lower().replace(".ago", "").replace(".", "")
    if t == "now":
        return 0.0
    for word, unit in (
        ("weeks", "w"),
        ("week", "w"),
        ("days", "d"),
        ("day", "d"),
        ("hours", "h"),
        ("hour", "h"),
        ("minutes", "m"),
        ("minute", "m"),
        ("seconds", "s"),
        ("second", "s"),
    ):
        if t.endswith(word):
            t = t[: -len(word)] + unit
            break
    if len(t) >= 2 and t[-1] in _UNITS and t[:-1].isdigit():
        return int(t[:-1]) * _UNITS[t[-1]]
    raise UsageError(f"cannot read age {text!r}: use now, or a number with s, m, h, d or w (e.g. 2w)")


def age_of(path: Path, now: float) -> float:
    st = os.lstat(path)
    return now - max(st.st_mtime, st.st_ctime)


def allocated_bytes(root: Path) -> int:
    """Disk used by the store's files (never following a link out of it)."""
    total = 0
    todo = [root]
    while todo:
        folder = todo.pop()
        try:
            listing = scan(folder, root=folder == root)
        except DotevalError:
            continue
        todo.extend(folder / d for d in listing.dirs)
        for f in listing.files:
            try:
                total += os.lstat(folder / f).st_blocks * 512
            except OSError:
                pass
    return total


def _refused(store: Store) -> list[Path]:
    """Entries gc does not walk: links, FIFOs, devices among the store's folders.

    A store folder itself that is not a plain folder stops gc (StoreError): what
    is reachable, or what may be removed, cannot be known without it.
    """
    bad = check_store_folders(store.root)
    if bad:
        raise StoreError(
            f"{bad[0].name} in the store is not a plain folder (a symbolic link?): gc does not follow it",
            path=str(bad[0]),
            hint="move it out of the store; `doteval fsck` lists what is wrong",
        )
    return refused_entries(store.root)


@dataclass
class GcStats:
    dry_run: bool
    reachable: int = 0
    kept_young: int = 0
    removed_loose: int = 0
    removed_packed: int = 0
    removed_packs: int = 0
    new_packs: int = 0
    repacked: int = 0
    expired_experiments: list[str] = field(default_factory=list)
    removed_temp: int = 0
    refused: list[str] = field(default_factory=list)  # entries not walked (links, FIFOs...)
    dictionary: str | None = None
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def bytes_reclaimed(self) -> int:
        return max(self.bytes_before - self.bytes_after, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "reachable": self.reachable,
            "kept_young": self.kept_young,
            "removed_loose": self.removed_loose,
            "removed_packed": self.removed_packed,
            "removed_packs": self.removed_packs,
            "new_packs": self.new_packs,
            "repacked": self.repacked,
            "expired_experiments": self.expired_experiments,
            "removed_temp": self.removed_temp,
            "refused": self.refused,
            "dictionary": self.dictionary,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_reclaimed": self.bytes_reclaimed,
        }


def reachable_objects(
    store: Store, *, expire_deleted: float, now: float
) -> tuple[set[str], list[str], float | None]:
    """Ids reachable from refs and journals, the deleted experiments that expired, and
    when the oldest run that still has a journal started (None: no journal).

    Journals are read before refs: a run being sealed has written objects that no
    ref names yet, all newer than its journal, and its journal is deleted only
    after its ref record exists.
    """
    seen_manifests: set[str] = set()
    reachable: set[str] = set()
    expired: list[str] = []
    oldest_run: float | None = None
    for journal in _journal_paths(store):
        try:
            records, _valid = read_journal(journal)
        except (DotevalError, OSError):
            continue
        for rec in records:  # read as a best guess: a record of the wrong shape names nothing
            if not isinstance(rec, tuple) or len(rec) < 2:
                continue
            if rec[0] == "start" and isinstance(rec[1], dict):
                started = rec[1].get("started")
                if isinstance(started, (int, float)) and 0 <= started <= MAX_TIME:
                    oldest_run = float(started) if oldest_run is None else min(oldest_run, float(started))
            if rec[0] == "eval" and len(rec) > 2 and isinstance(rec[2], dict):
                code = rec[2].get("code")
                if isinstance(code, str):
                    reachable.add(code)
    for name in store.refs.names():
        state = store.refs.read(name)
        if state is None:
            continue
        if state.head.deleted and now - state.head.time > expire_deleted:
            expired.append(name)
            continue
        for record in state.records.values():
            if record.manifest and record.manifest not in seen_manifests:
                seen_manifests.add(record.manifest)
                _mark_manifest(store, record.manifest, reachable)
    return reachable, expired, oldest_run


def _journal_paths(store: Store) -> list[Path]:
    paths = []
    for folder in scan(store.journals_dir).dirs:
        try:
            paths.extend(store.journals(folder))
        except DotevalError:  # not an experiment name
            continue
    return paths


def _mark_manifest(store: Store, manifest_id: str, reachable: set[str]) -> None:
    reachable.add(manifest_id)
    manifest = load_manifest(store, manifest_id)
    for ev in manifest.evaluations:
        if ev.code:
            reachable.add(ev.code)
        if ev.entries and ev.entries not in reachable:
            reachable.add(ev.entries)
            reachable.update(object_ids(load_parts(store, ev.entries)))


def collect_garbage(
    store: Store,
    *,
    prune: float = DEFAULT_PRUNE,
    expire_deleted: float = DEFAULT_EXPIRE_DELETED,
    aggressive: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> GcStats:
    report = progress or (lambda stage, done, total: None)
    stats = GcStats(dry_run=dry_run)
    if not store.exists:
        return stats
    lock = store_lock(store.root, "gc")
    lock.acquire(purpose="gc")
    try:
        return _collect(store, stats, prune, expire_deleted, aggressive, dry_run, report)
    finally:
        lock.release()


def _collect(
    store: Store,
    stats: GcStats,
    prune: float,
    expire_deleted: float,
    aggressive: bool,
    dry_run: bool,
    report: Progress,
) -> GcStats:
    now = time.time()
    stats.refused = [str(p) for p in _refused(store)]
    stats.bytes_before = allocated_bytes(store.root)
    # Snapshot first: whatever appears after this is never touched.
    packs = store.objects.packs()
    loose = list(store.objects.iter_loose_ids())
    report("reachability", 0, 1)
    reachable, expired, oldest_run = reachable_objects(store, expire_deleted=expire_deleted, now=now)
    if oldest_run is not None:
        # A run with a journal may be sealing right now: what it wrote is named by
        # no ref yet, so nothing written since it started is removed (--prune now too).
        prune = max(prune, now - oldest_run + JOURNAL_MARGIN)
    stats.expired_experiments = expired
    report("reachability", 1, 1)

    keep_dicts = set()
    plan: list[PackIndex] = []
    for pack in packs:
        ids = [i.hex() for i in pack.ids()]
        garbage = [i for i in ids if i not in reachable]
        old = age_of(pack.idx_path, now) > prune
        if aggressive or pack.pack_path.stat().st_size < SMALL_PACK or (garbage and old):
            plan.append(pack)
        else:
            pack_dict = pack.dictionary()
            if pack_dict != NO_DICTIONARY:
                keep_dicts.add(pack_dict.hex())
    current = store.objects.current_dictionary()
    if current is not None:
        keep_dicts.add(current[0].hex())
    reachable |= keep_dicts

    moving: dict[str, tuple[PackIndex | None, int]] = {}
    for pack in plan:
        young = age_of(pack.idx_path, now) <= prune
        for pos, raw_id in enumerate(pack.ids()):
            oid = raw_id.hex()
            if oid in reachable or young:
                stats.kept_young += oid not in reachable
                moving.setdefault(oid, (pack, pos))
            else:
                stats.removed_packed += 1
    loose_garbage = []
    for oid in loose:
        path = store.objects.loose_path(oid)
        try:
            young = age_of(path, now) <= prune
        except FileNotFoundError:
            continue
        if oid in reachable or young:
            stats.kept_young += oid not in reachable
            if not _is_dictionary_object(store, oid):
                moving.setdefault(oid, (None, 0))
        else:
            loose_garbage.append(oid)
    stats.removed_loose = len(loose_garbage)
    stats.reachable = len(reachable)
    stats.repacked = len(moving)

    if dry_run:
        stats.bytes_after = stats.bytes_before
        return stats

    repo = Repository(store)
    for name in expired:
        repo.drop_expired(name, deleted_before=now - expire_deleted)

    # a store too small to train on keeps the dictionary it has
    dictionary = (_train(store, moving, report) or current) if aggressive else current
    if dictionary is not None:
        stats.dictionary = dictionary[0].hex()
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
            remove_store_file(store.root, store.objects.loose_path(oid))
    for oid in loose_garbage:
        path = store.objects.loose_path(oid)
        try:
            if age_of(path, now) <= prune:  # touched since: a writer wants it
                continue
        except FileNotFoundError:
            continue
        remove_store_file(store.root, path)
    stats.removed_temp = _remove_stale_temp(store, now, prune)
    store.objects.packs()
    stats.bytes_after = allocated_bytes(store.root)
    return stats


def _is_dictionary_object(store: Store, oid: str) -> bool:
    # Dictionaries stay loose: a pack names its dictionary and must not hold it.
    try:
        value = decode(store.objects.read_loose(store.objects.loose_path(oid)))
    except (DotevalError, OSError):
        return False
    return isinstance(value, dict) and value.get("type") == "zstd-dictionary"


def _read_raw(store: Store, oid: str, source: PackIndex | None, pos: int) -> bytes:
    if source is None:
        return store.objects.get_bytes(oid)
    entry = source.entry(pos)
    raw = store.objects.decompress(
        entry.codec, entry.raw_len, entry.payload, where=str(source.pack_path), dictionary=entry.dictionary
    )
    if hash_bytes(raw) != oid:
        raise CorruptObjectError(oid, hash_bytes(raw), path=str(source.pack_path))
    return raw


def _train(
    store: Store, moving: dict[str, tuple[PackIndex | None, int]], report: Progress
) -> tuple[bytes, zstandard.ZstdCompressionDict] | None:
    """A dictionary for the small objects of later runs, trained on the stored results
    (rows of the details objects) and on the small objects themselves."""
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
        elif raw.startswith(DETAILS_HEAD):
            rows = decode(raw)["rows"]
            step = max(1, len(rows) // 2000)
            samples.extend(encode(r) for r in rows[::step])
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
    dict_id = store.objects.put({"type": "zstd-dictionary", "v": 1, "data": trained.as_bytes()})
    return bytes.fromhex(dict_id), trained


def _write_repack(
    store: Store,
    moving: dict[str, tuple[PackIndex | None, int]],
    dictionary: tuple[bytes, zstandard.ZstdCompressionDict] | None,
    report: Progress,
    *,
    aggressive: bool = False,
) -> str:
    plain = zstandard.ZstdCompressor(level=9)
    # --aggressive: sample tables and results (large objects) at zstd's strongest level
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
        elif len(raw) > 64:
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
    store_dir(store.root, store.objects.packs_dir)
    name = write_pack(store.objects.packs_dir, entries, dictionary[0] if dictionary else NO_DICTIONARY)
    report("repacking", total, total)
    return name


def _whole_pack_ok(pack: PackIndex, verified: dict[str, bool]) -> bool:
    """Whether the pack's checksum holds (read once per pack per gc)."""
    name = pack.idx_path.name
    if name not in verified:
        try:
            pack.verify()
            pack.verify_pack()
            verified[name] = True
        except DotevalError:
            verified[name] = False  # read object by object: each is checked, the bad one refused
    return verified[name]


def _remove_stale_temp(store: Store, now: float, prune: float) -> int:
    """Remove what interrupted writes left: only names of the store's own shapes, only
    regular files, only in real folders of the store."""
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
                stale = age_of(path, now) > max(prune, DAY)
            except FileNotFoundError:  # a writer published (renamed) it since the listing
                continue
            if stale and remove_store_file(store.root, path):
                removed += 1
    return removed


def _is_object_in(sub: str, name: str) -> bool:
    return is_object_id(sub + name)


def _temp_folders(store: Store) -> list[tuple[Path, Callable[[str], bool]]]:
    """The folders gc cleans, each with the shape of the files published there."""
    objects = store.objects.objects_dir
    out: list[tuple[Path, Callable[[str], bool]]] = [(store.objects.packs_dir, is_pack_name)]
    for sub in scan(objects).dirs:
        if len(sub) == 2:
            out.append((objects / sub, functools.partial(_is_object_in, sub)))
    return out
