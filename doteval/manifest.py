"""Manifests: the record of one run of an experiment, like a git commit.

A manifest names its parent manifest, and for each evaluation its code
fingerprint, params, counts, summary metrics and an *entries table*: a
separate object mapping sample key → result id, sorted by key. Listing and
showing experiments reads manifests only; the entries table is read when
samples are needed (resume, ``--full``, export), results only when shown.

An entries table row is ``sample key (32 bytes) | result id (32 bytes) |
flag (1 byte: 0 ok, 1 error)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from doteval.errors import CorruptStoreError
from doteval.objects import ObjectId, Store
from doteval.objects.hashing import check_object_id

MANIFEST_VERSION = 1
ROW = 65
FLAG_OK = 0
FLAG_ERROR = 1


@dataclass
class EvaluationRecord:
    node_id: str
    fingerprint: str
    params_digest: str
    params: dict[str, Any] = field(default_factory=dict)
    unfingerprintable: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    code: str | None = None  # object id of {"type": "code", "sources": {...}}
    entries: str | None = None  # object id of the entries table
    line: int = 1  # a new line of results starts with --rerun-changed
    total: int = 0
    done: int = 0
    errors: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, int] = field(default_factory=dict)  # evaluated / reused / errors in this run
    status: str = "interrupted"

    @property
    def missing(self) -> int:
        return max(self.total - self.done - self.errors, 0)

    def same_code_and_params(self, other: EvaluationRecord) -> bool:
        return self.fingerprint == other.fingerprint and self.params_digest == other.params_digest


@dataclass
class Manifest:
    experiment: str
    parent: str | None
    status: str
    started: float
    finished: float
    host: str = ""
    pid: int = 0
    git_commit: str | None = None
    command: list[str] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    note: str = ""

    @property
    def total(self) -> int:
        return sum(e.total for e in self.evaluations)

    @property
    def done(self) -> int:
        return sum(e.done for e in self.evaluations)

    @property
    def errors(self) -> int:
        return sum(e.errors for e in self.evaluations)

    def evaluation(self, node_id: str) -> EvaluationRecord | None:
        for e in self.evaluations:
            if e.node_id == node_id:
                return e
        return None

    def to_value(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = "manifest"
        data["v"] = MANIFEST_VERSION
        return data

    @classmethod
    def from_value(cls, data: Any, *, where: str = "") -> Manifest:
        try:
            if data.get("type") != "manifest":
                raise ValueError("not a manifest")
            if int(data.get("v", 0)) > MANIFEST_VERSION:
                raise ValueError(f"manifest version {data['v']} is newer than this doteval")
            evals = [EvaluationRecord(**e) for e in data["evaluations"]]
            for e in evals:
                for oid in (e.code, e.entries):
                    if oid is not None:
                        check_object_id(oid, where=where)
            fields = {k: v for k, v in data.items() if k not in ("type", "v", "evaluations")}
            if fields.get("parent"):
                check_object_id(fields["parent"], where=where)
            return cls(evaluations=evals, **fields)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise CorruptStoreError(f"malformed manifest: {e}", path=where) from None


def save_manifest(store: Store, manifest: Manifest) -> ObjectId:
    return store.objects.put(manifest.to_value())


def load_manifest(store: Store, manifest_id: str) -> Manifest:
    return Manifest.from_value(store.objects.get(manifest_id), where=f"manifest {manifest_id[:12]}")


# -- entries tables -------------------------------------------------------


def pack_rows(rows: dict[bytes, tuple[bytes, int]]) -> bytes:
    return b"".join(k + rid + bytes((flag,)) for k, (rid, flag) in sorted(rows.items()))


def save_entries(store: Store, rows: dict[bytes, tuple[bytes, int]]) -> ObjectId:
    return store.objects.put({"type": "entries", "v": 1, "rows": pack_rows(rows)})


def load_entries(store: Store, entries_id: str | None) -> bytes:
    if entries_id is None:
        return b""
    data = store.objects.get(entries_id)
    try:
        rows = data["rows"]
        if data["type"] != "entries" or not isinstance(rows, bytes) or len(rows) % ROW:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise CorruptStoreError(f"malformed entries table {entries_id[:12]}") from None
    return rows


def iter_rows(rows: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    for at in range(0, len(rows), ROW):
        yield rows[at : at + 32], rows[at + 32 : at + 64], rows[at + 64]


def rows_dict(rows: bytes) -> dict[bytes, tuple[bytes, int]]:
    return {rows[i : i + 32]: (rows[i + 32 : i + 64], rows[i + 64]) for i in range(0, len(rows), ROW)}


def ok_keys(rows: bytes) -> set[bytes]:
    return {rows[i : i + 32] for i in range(0, len(rows), ROW) if rows[i + 64] == FLAG_OK}
