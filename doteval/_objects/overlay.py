"""A store opened for reading: what its readers compute is kept in memory, never written.

A reader that finds a dead run's journal computes the run's objects and ref record
exactly as the seal does, into a ``MemoryObjectStore`` and ``MemoryRefs``
(``doteval._objects.memory``) laid over the store's files; the files are never
touched (no lock, no new file), so reads work on a read-only mount and leave the
store's bytes as they were. The next writer seals the journal for real.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from doteval._objects.base import RepackOptions, RepackStats, Snapshot
from doteval._objects.hashing import ObjectId
from doteval._objects.memory import MemoryObjectStore, MemoryRefs
from doteval._objects.refs import RefRecord, RefState, RefStore, _state
from doteval._objects.store import DiskObjectStore
from doteval.errors import StoreError


class ReadingObjects(DiskObjectStore):
    """The store's objects, plus those a reader made, kept in ``memory``."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        super().__init__(root, durable=durable)
        self.memory = MemoryObjectStore()

    def put_bytes(self, raw: bytes) -> ObjectId:
        return self.memory.put_bytes(raw)

    def write_pack(self, raws: Iterable[bytes], raw_ids: list[bytes] | None = None) -> list[ObjectId]:
        return self.memory.write_pack(raws, raw_ids)

    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes:
        if self.memory.has(object_id):
            return self.memory.get_bytes(object_id)
        return super().get_bytes(object_id, loose_first=loose_first)

    def has(self, object_id: str) -> bool:
        return self.memory.has(object_id) or super().has(object_id)

    def iter_ids(self) -> Iterator[ObjectId]:
        seen = set(self.memory.iter_ids())
        yield from seen
        yield from (object_id for object_id in super().iter_ids() if object_id not in seen)

    def repack(self, snapshot: Snapshot, keep: set[str], how: RepackOptions) -> RepackStats:
        raise StoreError("a store opened for reading is never repacked")

    def prune(self, *, grace_period: float, now: float) -> int:
        raise StoreError("a store opened for reading is never pruned")


class ReadingRefs(RefStore):
    """The store's ref records, plus those a reader made, kept in ``memory``."""

    def __init__(self, root: Path, objects: DiskObjectStore) -> None:
        super().__init__(root, objects)
        self.memory = MemoryRefs()

    def names(self) -> list[str]:
        return sorted(set(super().names()) | set(self.memory.names()))

    def read(self, name: str) -> RefState | None:
        state = super().read(name)
        extra = self.memory.records(name)
        if not extra:
            return state
        records = dict(state.records) if state is not None else {}
        records.update(extra)
        return _state(name, records, self.dir / name)

    def unwritten(self, name: str) -> set[ObjectId]:
        return set(self.memory.records(name))

    def adopt(self, name: str, records: list[RefRecord], source: str) -> None:
        self.memory.adopt(name, records, source)

    def _write_record(self, name: str, record_id: ObjectId, raw: bytes) -> None:
        self.memory._write_record(name, record_id, raw)
