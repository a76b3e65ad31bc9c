"""Manifests: the record of one run of an experiment, like a git commit.

A manifest names its parent manifest, and for each evaluation its code
fingerprint, params, counts, summary metrics and an *entries table*: a
separate object mapping sample key → result id, sorted by key. Listing and
showing experiments reads manifests only; the entries table is read when
samples are needed (resume, ``--full``, export), results only when shown.

An entries table holds, per sample, its key, result id, flag (ok or error),
item digest and score values, column by column (see ``EntriesTable``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from blake3 import blake3

from doteval.errors import CorruptStoreError
from doteval.objects import ObjectId, Store
from doteval.objects.hashing import check_object_id

MANIFEST_VERSION = 1
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
    shard: str = ""  # "I/N" when the run evaluated one shard of the samples

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
    return Manifest.from_value(
        store.objects.get(manifest_id, loose_first=True), where=f"manifest {manifest_id[:12]}"
    )


# -- entries tables -------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One sample of an entries table."""

    result: bytes  # raw result id, 32 bytes
    flag: int  # FLAG_OK or FLAG_ERROR
    item: bytes  # item digest, 16 bytes: pairs samples across code versions
    scores: dict[str, Any]  # score name -> value


class EntriesTable:
    """Sample key → result of one evaluation, stored column by column.

    Columns keep the table compact and quick to read: resuming needs only the
    keys and flags, ``diff`` the item digests and scores, never the results.
    Rows are sorted by sample key.
    """

    def __init__(
        self,
        keys: bytes = b"",
        results: bytes = b"",
        flags: bytes = b"",
        items: bytes = b"",
        scores: dict[str, list[Any]] | None = None,
        metrics: dict[str, list[str]] | None = None,
    ) -> None:
        n = len(flags)
        if len(keys) != 32 * n or len(results) != 32 * n or len(items) != ITEM_DIGEST * n:
            raise ValueError("columns of different lengths")
        self.keys, self.results, self.flags, self.items = keys, results, flags, items
        self.scores = scores or {}
        self.metrics = metrics or {}
        # A delta: these rows over the view of ``base``, minus the ``removed`` keys.
        self.base: str | None = None
        self.removed = b""
        self.depth = 0
        if any(len(col) != n for col in self.scores.values()):
            raise ValueError("score column of the wrong length")

    def __len__(self) -> int:
        return len(self.flags)

    def key(self, i: int) -> bytes:
        return self.keys[32 * i : 32 * i + 32]

    def row(self, i: int) -> Row:
        return Row(
            self.results[32 * i : 32 * i + 32],
            self.flags[i],
            self.items[ITEM_DIGEST * i : ITEM_DIGEST * (i + 1)],
            {name: col[i] for name, col in self.scores.items() if col[i] is not None},
        )

    def rows(self) -> dict[bytes, Row]:
        return {self.key(i): self.row(i) for i in range(len(self))}

    def index(self) -> dict[bytes, int]:
        keys = self.keys
        return {keys[i : i + 32]: n for n, i in enumerate(range(0, len(keys), 32))}

    def ok_keys(self) -> set[bytes]:
        keys, flags = self.keys, self.flags
        return {keys[32 * i : 32 * i + 32] for i in range(len(flags)) if flags[i] == FLAG_OK}

    @property
    def done(self) -> int:
        return self.flags.count(FLAG_OK)

    @property
    def errors(self) -> int:
        return len(self.flags) - self.done

    @classmethod
    def build(cls, rows: dict[bytes, Row], metrics: dict[str, list[str]]) -> EntriesTable:
        ordered = sorted(rows.items())
        names = sorted({name for _, r in ordered for name in r.scores})
        return cls(
            keys=b"".join(k for k, _ in ordered),
            results=b"".join(r.result for _, r in ordered),
            flags=bytes(r.flag for _, r in ordered),
            items=b"".join(r.item for _, r in ordered),
            scores={name: [r.scores.get(name) for _, r in ordered] for name in names},
            metrics={name: list(metrics.get(name, [])) for name in names if metrics.get(name)},
        )

    def to_value(self) -> dict[str, Any]:
        value = {
            "type": "entries",
            "v": 1,
            "keys": self.keys,
            "results": self.results,
            "flags": self.flags,
            "items": self.items,
            "scores": self.scores,
            "metrics": self.metrics,
        }
        if self.base is not None:
            value.update(base=self.base, removed=self.removed, depth=self.depth)
        return value

    def summary(self) -> list[dict[str, Any]]:
        """One value per (score, metric), over the samples without error."""
        from doteval.summary import summarize_columns

        ok = [f == FLAG_OK for f in self.flags]
        columns = {
            name: [v for v, good in zip(col, ok) if good and v is not None]
            for name, col in self.scores.items()
        }
        return summarize_columns(columns, self.metrics)


ITEM_DIGEST = 16


def item_digest(item_bytes: bytes, occurrence: int) -> bytes:
    """16 bytes of blake3(encode((item, occurrence))): the same item in any experiment."""
    return blake3(b"t2:" + item_bytes + b"i%d;" % occurrence).digest()[:ITEM_DIGEST]


def save_entries(store: Store, table: EntriesTable) -> ObjectId:
    return store.objects.put(table.to_value())


MAX_DELTA_DEPTH = 8


def delta_table(
    base_id: str, base_depth: int, rows: dict[bytes, Row], removed: set[bytes], metrics: dict[str, list[str]]
) -> EntriesTable:
    """The table of a run that changed ``rows`` and dropped ``removed`` from its parent's view."""
    table = EntriesTable.build(rows, metrics)
    table.base = base_id
    table.removed = b"".join(sorted(removed))
    table.depth = base_depth + 1
    return table


def load_table(store: Store, entries_id: str) -> EntriesTable:
    """One stored table as it is (a delta stays a delta)."""
    data = store.objects.get(entries_id, loose_first=True)
    try:
        if data["type"] != "entries":
            raise ValueError("not an entries table")
        table = EntriesTable(
            data["keys"],
            data["results"],
            data["flags"],
            data["items"],
            dict(data["scores"]),
            dict(data["metrics"]),
        )
        base = data.get("base")
        if base is not None:
            table.base = check_object_id(base, where=f"entries table {entries_id[:12]}")
            table.removed = data["removed"]
            table.depth = int(data["depth"])
            if not isinstance(table.removed, bytes) or len(table.removed) % 32 or table.depth > 64:
                raise ValueError("bad delta fields")
        return table
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptStoreError(f"malformed entries table {entries_id[:12]}: {e}") from None


def table_chain(store: Store, entries_id: str | None) -> list[tuple[str, EntriesTable]]:
    """The stored tables a view is made of, newest first, ending with a full table."""
    chain: list[tuple[str, EntriesTable]] = []
    current = entries_id
    while current is not None:
        if len(chain) > 64:
            raise CorruptStoreError(
                f"entries table {entries_id and entries_id[:12]} has a base chain too long"
            )
        table = load_table(store, current)
        chain.append((current, table))
        current = table.base
    return chain


def load_entries(store: Store, entries_id: str | None) -> EntriesTable:
    """The full view (sample key -> result) of an evaluation, deltas applied."""
    if entries_id is None:
        return EntriesTable()
    chain = table_chain(store, entries_id)
    if len(chain) == 1:
        return chain[0][1]
    rows: dict[bytes, Row] = chain[-1][1].rows()
    metrics: dict[str, list[str]] = dict(chain[-1][1].metrics)
    for _id, delta in reversed(chain[:-1]):
        removed = delta.removed
        for at in range(0, len(removed), 32):
            rows.pop(removed[at : at + 32], None)
        rows.update(delta.rows())
        for name, names in delta.metrics.items():
            metrics.setdefault(name, names)
    view = EntriesTable.build(rows, metrics)
    view.depth = chain[0][1].depth
    return view


def load_key_sets(store: Store, entries_id: str | None) -> tuple[set[bytes], set[bytes]]:
    """Every key of the view and those with an ok result, without building rows (resume)."""
    if entries_id is None:
        return set(), set()
    chain = table_chain(store, entries_id)
    full = chain[-1][1]
    keys = full.keys
    every = {keys[i : i + 32] for i in range(0, len(keys), 32)}
    ok = full.ok_keys()
    for _id, delta in reversed(chain[:-1]):
        removed = delta.removed
        gone = {removed[i : i + 32] for i in range(0, len(removed), 32)}
        dk = delta.keys
        changed = {dk[i : i + 32] for i in range(0, len(dk), 32)}
        every -= gone
        ok -= gone
        ok -= changed
        every |= changed
        ok |= delta.ok_keys()
    return every, ok
