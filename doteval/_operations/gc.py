"""Garbage collection: decide what is reachable, then let the object store repack and prune.

Reachable: every ref record (the experiments' histories) and what their
manifests name (code, views, sample tables and their results), and the code
objects of live and dead-but-unsealed runs (their journals). Deleted experiments
are kept until their deletion is older than ``expire_deleted``. The physical work
is the object store's (``BaseObjectStore.repack`` and ``prune``, in
``doteval._objects.repacking``): it keeps what is reachable, the dictionaries its
packs need and anything younger than the grace period (age is the newest of
mtime and ctime, because rsync keeps mtimes), and stays valid if gc is killed at
any instant. Objects that appear while gc runs are never touched: the store's
snapshot is taken before reachability is computed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doteval._objects import Store
from doteval._objects.base import Progress, RepackOptions
from doteval._objects.checks import MAX_TIME
from doteval._objects.encoding import decode, encode
from doteval._objects.journal import read_journal
from doteval._objects.locks import store_lock
from doteval._objects.walk import check_store_folders, refused_entries, scan
from doteval._repository.call_entries import load_calls
from doteval._repository.journal_records import all_journals
from doteval._repository.manifest import load_manifest
from doteval._repository.repository import Repository
from doteval._repository.sample_tables import DETAILS_HEAD, load_parts, object_ids
from doteval.errors import DotevalError, StoreError, UsageError

DAY = 86400.0
DEFAULT_PRUNE = 14 * DAY
DEFAULT_EXPIRE_DELETED = 30 * DAY
JOURNAL_MARGIN = 60.0  # clock skew between a run's host and this one (a store shared over NFS)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}


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
    cache_kept: int = 0  # call cache entries a reachable manifest names (or a live run)
    cache_removed: int = 0  # call cache entries no one names, older than --prune (gone)
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
            "cache_entries": {"kept": self.cache_kept, "removed": self.cache_removed},
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_reclaimed": self.bytes_reclaimed,
        }


def reachable_objects(
    store: Store, *, expire_deleted: float, now: float, cache_entries: set[str] | None = None
) -> tuple[set[str], list[str], float | None]:
    """Ids reachable from refs and journals, the deleted experiments that expired, and
    when the oldest run that still has a journal started (None: no journal).
    ``cache_entries``, when given, gets the reachable call cache entries.

    Journals are read before refs: a run being sealed has written objects that no
    ref names yet, all newer than its journal, and its journal is deleted only
    after its ref record exists.
    """
    seen_manifests: set[str] = set()
    reachable: set[str] = set()
    expired: list[str] = []
    oldest_run: float | None = None
    for journal in all_journals(store):
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
            if rec[0] == "call" and len(rec) > 2 and isinstance(rec[2], str):
                reachable.add(rec[2])  # a call cache entry the live run made or used
                if cache_entries is not None:
                    cache_entries.add(rec[2])
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
                _mark_manifest(store, record.manifest, reachable, cache_entries)
    return reachable, expired, oldest_run


def _mark_manifest(
    store: Store, manifest_id: str, reachable: set[str], cache_entries: set[str] | None = None
) -> None:
    reachable.add(manifest_id)
    manifest = load_manifest(store, manifest_id)
    if manifest.calls and manifest.calls not in reachable:
        reachable.add(manifest.calls)
        entries = load_calls(store, manifest.calls).values()
        reachable.update(entries)
        if cache_entries is not None:
            cache_entries.update(entries)
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
    snapshot = store.objects.snapshot()
    report("reachability", 0, 1)
    cache_entries: set[str] = set()
    reachable, expired, oldest_run = reachable_objects(
        store, expire_deleted=expire_deleted, now=now, cache_entries=cache_entries
    )
    stats.cache_kept = len(cache_entries)
    unused = _unused_cache_entries(store, reachable)
    if oldest_run is not None:
        # A run with a journal may be sealing right now: what it wrote is named by
        # no ref yet, so nothing written since it started is removed (--prune now too).
        prune = max(prune, now - oldest_run + JOURNAL_MARGIN)
    stats.expired_experiments = expired
    report("reachability", 1, 1)

    if not dry_run:
        repo = Repository(store)
        for name in expired:
            repo.drop_expired(name, deleted_before=now - expire_deleted)
    how = RepackOptions(prune, now, aggressive, dry_run, details_rows_to_train_on, report)
    repacked = store.objects.repack(snapshot, reachable, how)
    stats.reachable = repacked.kept
    stats.kept_young = repacked.kept_young
    stats.removed_loose = repacked.removed_loose
    stats.removed_packed = repacked.removed_packed
    stats.removed_packs = repacked.removed_packs
    stats.new_packs = repacked.new_packs
    stats.repacked = repacked.repacked
    stats.dictionary = repacked.dictionary
    if dry_run:
        stats.bytes_after = stats.bytes_before
        return stats
    stats.removed_temp = store.objects.prune(grace_period=prune, now=now)
    stats.cache_removed = sum(1 for oid in unused if not store.objects.has(oid))
    stats.cache_kept += len(unused) - stats.cache_removed  # younger than --prune
    stats.bytes_after = allocated_bytes(store.root)
    return stats


def _unused_cache_entries(store: Store, reachable: set[str]) -> list[str]:
    """The call cache entries no reachable manifest names (read before the repack removes them)."""
    unused: list[str] = []
    for oid in store.objects.iter_ids():
        if oid in reachable:
            continue
        try:
            value = store.objects.get(oid)
        except DotevalError:
            continue  # fsck's to report
        if isinstance(value, dict) and value.get("type") == "call":
            unused.append(oid)
    return unused


def details_rows_to_train_on(raw: bytes) -> list[bytes]:
    """The rows of a details object (the stored results), a sample of them: what a
    compression dictionary for later results is trained on (see ``BaseObjectStore.repack``)."""
    if not raw.startswith(DETAILS_HEAD):
        return []
    rows = decode(raw)["rows"]
    step = max(1, len(rows) // 2000)
    return [encode(r) for r in rows[::step]]
