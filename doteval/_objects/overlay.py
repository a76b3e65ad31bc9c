"""A store opened for reading: what its readers compute is kept in memory, never written.

A reader that finds a dead run's journal computes the run's objects and ref record
exactly as the seal does, into these in-memory layers over the store's files; the
files are never touched (no lock, no new file), so reads work on a read-only mount
and leave the store's bytes as they were. The next writer seals the journal for real.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from doteval._objects.encoding import decode
from doteval._objects.hashing import ObjectId, hash_bytes
from doteval._objects.refs import RefRecord, RefState, RefStore, _state, ref_record
from doteval._objects.store import ObjectStore


class MemoryObjects(ObjectStore):
    """The store's objects, plus those a reader made, kept in memory."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        super().__init__(root, durable=durable)
        self.memory: dict[str, bytes] = {}

    def put_bytes(self, raw: bytes) -> ObjectId:
        object_id = hash_bytes(raw)
        self.memory[object_id] = raw
        return object_id

    def write_pack(self, raws: Iterable[bytes], raw_ids: list[bytes] | None = None) -> list[ObjectId]:
        ids = []
        for n, raw in enumerate(raws):
            object_id = ObjectId(raw_ids[n].hex()) if raw_ids is not None else hash_bytes(raw)
            self.memory[object_id] = raw
            ids.append(object_id)
        return ids

    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes:
        raw = self.memory.get(object_id)
        return raw if raw is not None else super().get_bytes(object_id, loose_first=loose_first)

    def has(self, object_id: str) -> bool:
        return object_id in self.memory or super().has(object_id)


class MemoryRefs(RefStore):
    """The store's ref records, plus those a reader made, kept in memory."""

    def __init__(self, root: Path, objects: ObjectStore) -> None:
        super().__init__(root, objects)
        self.memory: dict[str, dict[ObjectId, RefRecord]] = {}

    def names(self) -> list[str]:
        return sorted(set(super().names()) | set(self.memory))

    def read(self, name: str) -> RefState | None:
        state = super().read(name)
        extra = self.memory.get(name)
        if not extra:
            return state
        records = dict(state.records) if state is not None else {}
        records.update(extra)
        return _state(name, records, self.dir / name)

    def unwritten(self, name: str) -> set[ObjectId]:
        return set(self.memory.get(name, {}))

    def _write_record(self, name: str, record_id: ObjectId, raw: bytes) -> None:
        where = f"{name} (in memory)"
        self.memory.setdefault(name, {})[record_id] = ref_record(record_id, decode(raw), where)
