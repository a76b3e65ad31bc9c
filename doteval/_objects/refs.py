"""Refs: where each experiment stands, as append-only, hash-named records.

A ref is not one mutable file but a chain of immutable records in
``refs/NAME/``, each naming a manifest (or none, for a deletion) and its parent
record. The head is the record no other record names as parent. Because every
record is a new file named by its hash, two stores merged by plain rsync keep
both lines of an experiment that moved on both sides: the ref then has two
heads, which is reported, never silently resolved by a last writer. The chain
is also the experiment's reflog.

Records are written only under the experiment's lock, after the manifest they
name is durable (objects, then manifests, then refs).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doteval._objects import checks
from doteval._objects.encoding import decode, encode
from doteval._objects.files import TMP_PREFIX, write_new
from doteval._objects.hashing import ObjectId, check_object_id, hash_bytes, is_object_id
from doteval._objects.names import check_name
from doteval._objects.store import DiskObjectStore
from doteval._objects.walk import is_real_dir, scan
from doteval.errors import CorruptStoreError, DotevalError, StoreError


@dataclass(frozen=True)
class RefRecord:
    id: ObjectId
    experiment: str
    manifest: ObjectId | None
    parent: ObjectId | None
    time: float
    op: str
    host: str
    note: str
    merged: tuple[ObjectId, ...] = ()  # other heads a merge record joined

    @property
    def deleted(self) -> bool:
        return self.op == "delete"


@dataclass(frozen=True)
class RefState:
    """Every record of one experiment, and its head (the newest if there are two)."""

    name: str
    records: dict[ObjectId, RefRecord]
    heads: tuple[RefRecord, ...]

    @property
    def head(self) -> RefRecord:
        return self.heads[0]

    @property
    def diverged(self) -> bool:
        return len(self.heads) > 1

    def history(self, start: RefRecord | None = None) -> list[RefRecord]:
        """Records reachable from ``start`` (default: head), newest first.

        Follows parents and the lines a merge joined; a record whose parent is
        missing (a partial copy) ends its line.
        """
        out = []
        todo = [start or self.head]
        seen = set()
        while todo:
            rec = todo.pop()
            if rec.id in seen:
                continue
            seen.add(rec.id)
            out.append(rec)
            for parent in (rec.parent, *rec.merged):
                if parent and parent in self.records:
                    todo.append(self.records[parent])
        out.sort(key=lambda r: (r.time, r.id), reverse=True)
        return out


MAX_REF_RECORD = 1 << 20  # a record names a few objects: far less than this


def ref_record(record_id: ObjectId, data: Any, where: str) -> RefRecord:
    """A decoded ref record, every field checked for its type and range."""
    try:
        if checks.mapping(data, "record").get("type") != "ref":
            raise ValueError("not a ref record")
        manifest, parent, merged = data["manifest"], data["parent"], data.get("merged", [])
        if type(merged) is not list:
            raise ValueError("merged is not a list")
        return RefRecord(
            id=record_id,
            experiment=checks.text(data["experiment"], "experiment"),
            manifest=check_object_id(manifest, where=where) if manifest is not None else None,
            parent=check_object_id(parent, where=where) if parent is not None else None,
            time=checks.timestamp(data["time"], "time"),
            op=checks.text(data["op"], "op"),
            host=checks.text(data.get("host", ""), "host"),
            note=checks.text(data.get("note", ""), "note"),
            merged=tuple(check_object_id(m, where=where) for m in merged),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptStoreError(f"malformed ref record ({e})", path=where) from None


def _state(name: str, records: dict[ObjectId, RefRecord], directory: Path) -> RefState | None:
    """The ref state ``records`` make: its heads are the records no other names as parent."""
    if not records:
        return None
    named_as_parent = {r.parent for r in records.values() if r.parent}
    named_as_parent.update(m for r in records.values() for m in r.merged)
    heads = sorted(
        (r for r in records.values() if r.id not in named_as_parent),
        key=lambda r: (r.time, r.id),
        reverse=True,
    )
    if not heads:
        raise CorruptStoreError(f"ref records of {name!r} form a cycle", path=str(directory))
    return RefState(name, records, tuple(heads))


class RefStore:
    """The refs of a store folder: ``names``, ``read``, and ``append`` (compare-and-swap).
    ``MemoryRefs`` (``doteval._objects.memory``) keeps the same records in memory."""

    def __init__(self, root: Path, objects: DiskObjectStore) -> None:
        self.dir = root / "refs"
        self.objects = objects

    def names(self) -> list[str]:
        out = []
        for name in scan(self.dir).dirs:  # a link among them is never followed (fsck reports it)
            try:
                out.append(check_name(name))
            except DotevalError:
                continue
        return out

    def read(self, name: str) -> RefState | None:
        directory = self.dir / check_name(name)
        if directory.is_symlink():
            raise CorruptStoreError("ref folder is a symbolic link", path=str(directory))
        if os.path.lexists(self.dir) and not is_real_dir(self.dir):
            raise CorruptStoreError("refs is not a folder (a symbolic link?)", path=str(self.dir))
        if os.path.lexists(directory) and not is_real_dir(directory):
            return None  # a file where a ref folder would be: no such experiment (fsck reports it)
        listing = scan(directory)
        odd = listing.refused + listing.dirs
        if odd:
            raise CorruptStoreError("unexpected file among ref records", path=str(directory / odd[0]))
        files = [directory / n for n in listing.files if not n.startswith(TMP_PREFIX)]
        records: dict[ObjectId, RefRecord] = {}
        for path in files:
            if not is_object_id(path.name):
                raise CorruptStoreError("unexpected file among ref records", path=str(path))
            records[ObjectId(path.name)] = self._read_record(path)
        return _state(name, records, directory)

    def _read_record(self, path: Path) -> RefRecord:
        raw = self.objects.read_loose(path, what="ref record", limit=MAX_REF_RECORD)
        if hash_bytes(raw) != path.name:
            raise CorruptStoreError("ref record does not match its name", path=str(path))
        return ref_record(ObjectId(path.name), decode(raw), str(path))

    def adopt(self, name: str, records: list[RefRecord], source: str) -> None:
        """Copy ``source``'s record files under ``name`` (a rename keeps its history)."""
        directory = self.dir / check_name(name)
        for record in records:
            raw = self.objects.read_loose(self.dir / check_name(source) / record.id)
            write_new(
                directory / record.id,
                self.objects.file_chunks(raw),
                durable=self.objects.durable,
                root=self.dir.parent,
            )

    def append(
        self,
        name: str,
        manifest: str | None,
        *,
        expected: ObjectId | None,
        op: str,
        note: str = "",
        merged: tuple[ObjectId, ...] = (),
        branch: bool = False,
    ) -> RefRecord:
        """Add a record after ``expected`` (compare-and-swap; caller holds the lock).

        ``branch``: ``expected`` is where the caller's work started, whatever the head is now
        (a dead run's journal sealed after another store's line was copied in): the record
        continues that line, and the experiment has two heads until they are joined.
        """
        state = self.read(name)
        current = state.head.id if state else None
        heads = {h.id for h in state.heads} if state else set()
        if merged and expected in heads and heads <= {expected, *merged}:
            current = expected  # a record joining several heads: all must still be heads
        if branch and (expected is None or (state is not None and expected in state.records)):
            current = expected
        if current != expected:
            raise StoreError(
                f"experiment {name!r} moved while this command ran (expected "
                f"{(expected or 'nothing')[:12]}, found {(current or 'nothing')[:12]})",
                hint="run the command again",
            )
        record: dict[str, Any] = {
            "type": "ref",
            "v": 1,
            "experiment": name,
            "manifest": manifest,
            "parent": current,
            "time": time.time(),
            "op": op,
            "host": socket.gethostname(),
            "note": note,
        }
        if merged:
            record["merged"] = list(merged)
        raw = encode(record)
        record_id = hash_bytes(raw)
        self._write_record(name, record_id, raw)
        return RefRecord(
            record_id,
            name,
            ObjectId(manifest) if manifest else None,
            current,
            record["time"],
            op,
            record["host"],
            note,
            merged,
        )

    def unwritten(self, name: str) -> set[ObjectId]:
        """The records of ``name`` a reader made in memory (see ``doteval._objects.overlay``)."""
        return set()

    def _write_record(self, name: str, record_id: ObjectId, raw: bytes) -> None:
        write_new(
            self.dir / check_name(name) / record_id,
            self.objects.file_chunks(raw),
            durable=self.objects.durable,
            root=self.dir.parent,
        )
