"""A store kept in memory: objects, ref records and experiment locks in dicts.

``MemoryObjectStore`` implements the object store's interface
(``doteval._objects.base``) with a dict, as dulwich's ``MemoryObjectStore`` does;
``MemoryRefs`` keeps ref records with the same compare-and-swap as the files of
``RefStore``; ``MemoryStore`` (``doteval._objects``) composes them. They serve two
purposes: tests that need no disk, and a reader's work (a dead run sealed for it to
see, ``doteval._objects.overlay``), which must never reach the disk.

Nothing here touches a file.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doteval._objects.base import BaseObjectStore, RepackOptions, RepackStats, Snapshot
from doteval._objects.encoding import decode
from doteval._objects.hashing import ObjectId, check_object_id, hash_bytes
from doteval._objects.names import check_name
from doteval._objects.refs import RefRecord, RefState, RefStore, _state, ref_record
from doteval.errors import LockedError, ObjectNotFoundError

# A memory store's ``root``, named in messages only. Nothing can be created under
# /dev/null, so code that still reaches for a file (a journal, a store-wide lock) fails
# at once instead of writing a folder into the working directory.
MEMORY_ROOT = Path("/dev/null/doteval-store-in-memory")


@dataclass(frozen=True)
class MemorySnapshot(Snapshot):
    ids: frozenset[ObjectId]


class MemoryObjectStore(BaseObjectStore):
    """Objects in a dict, each with the time it was last stored (for the grace period)."""

    def __init__(self) -> None:
        self._objects: dict[ObjectId, bytes] = {}
        self._times: dict[ObjectId, float] = {}

    def put_bytes(self, raw: bytes) -> ObjectId:
        object_id = hash_bytes(raw)
        self._objects[object_id] = bytes(raw)
        self._times[object_id] = time.time()  # stored again: young again, as a touched file
        return object_id

    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes:
        raw = self._objects.get(check_object_id(object_id))
        if raw is None:
            raise ObjectNotFoundError(object_id)
        return raw

    def has(self, object_id: str) -> bool:
        return check_object_id(object_id) in self._objects

    def write_pack(self, raws: Iterable[bytes], raw_ids: list[bytes] | None = None) -> list[ObjectId]:
        ids = []
        now = time.time()
        for n, raw in enumerate(raws):
            object_id = ObjectId(raw_ids[n].hex()) if raw_ids is not None else hash_bytes(raw)
            self._objects[object_id] = bytes(raw)
            self._times[object_id] = now
            ids.append(object_id)
        return ids

    def iter_ids(self) -> Iterator[ObjectId]:
        return iter(list(self._objects))

    def snapshot(self) -> MemorySnapshot:
        return MemorySnapshot(frozenset(self._objects))

    def repack(self, snapshot: Snapshot, keep: set[str], how: RepackOptions) -> RepackStats:
        """Drop what ``snapshot`` held that nobody keeps and is older than the grace period
        (memory has no packs and no compression: nothing else to do)."""
        assert isinstance(snapshot, MemorySnapshot)
        stats = RepackStats(kept=len(keep))
        garbage = []
        for object_id in sorted(snapshot.ids):
            stored = self._times.get(object_id)
            if stored is None:
                continue  # dropped since the snapshot
            if object_id in keep:
                stats.repacked += 1
            elif how.now - stored <= how.grace_period:
                stats.kept_young += 1
                stats.repacked += 1
            else:
                garbage.append(object_id)
        stats.removed_loose = len(garbage)
        if not how.dry_run:
            for object_id in garbage:
                del self._objects[object_id]
                del self._times[object_id]
        return stats

    def prune(self, *, grace_period: float, now: float) -> int:
        return 0  # no write is ever left half done in memory


class MemoryRefs(RefStore):
    """Ref records in a dict: the same records, heads and compare-and-swap ``append``
    (inherited) as ``RefStore``'s files."""

    def __init__(self) -> None:  # no files, so neither a folder nor the object store's file codec
        self.dir = MEMORY_ROOT / "refs"
        self._records: dict[str, dict[ObjectId, RefRecord]] = {}

    def names(self) -> list[str]:
        return sorted(name for name, records in self._records.items() if records)

    def records(self, name: str) -> dict[ObjectId, RefRecord]:
        return dict(self._records.get(check_name(name), {}))

    def read(self, name: str) -> RefState | None:
        return _state(name, self.records(name), self.dir / name)

    def adopt(self, name: str, records: list[RefRecord], source: str) -> None:
        self._records.setdefault(check_name(name), {}).update((r.id, r) for r in records)

    def _write_record(self, name: str, record_id: ObjectId, raw: bytes) -> None:
        record = ref_record(record_id, decode(raw), f"{name} (in memory)")
        self._records.setdefault(check_name(name), {})[record_id] = record


class MemoryLock:
    """An experiment's lock in a store in memory: one holder at a time, as an flock."""

    def __init__(self, holders: dict[str, dict[str, Any]], name: str, what: str) -> None:
        self._holders = holders
        self.name = name
        self.what = what
        self.held = False

    def acquire(self, *, purpose: str = "run") -> None:
        with _HOLDERS_LOCK:
            holder = self._holders.get(self.name)
            if holder is not None:
                raise LockedError(self.what, holder["pid"], holder["host"], holder["since"])
            self._holders[self.name] = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "purpose": purpose,
            }
            self.held = True

    def release(self) -> None:
        if self.held:
            with _HOLDERS_LOCK:
                self._holders.pop(self.name, None)
                self.held = False

    def __enter__(self) -> MemoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HOLDERS_LOCK = threading.Lock()
