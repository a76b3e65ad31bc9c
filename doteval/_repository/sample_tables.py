"""Sample tables and views: how the samples of an evaluation are stored.

A run seals the results it evaluated into *sample tables*, a few large
objects instead of one object per result:

- a **sample table** holds, column by column, each sample's item (its
  canonical encoding), the occurrence index of identical items, an ok/error
  flag and its score values; resume, ``diff`` and the summary read only these;
- its **details** object holds the rest of each result (prompt, response,
  error, metadata, duration, the scores with their metrics) as a list, row
  for row; only the commands that show or export results read it.

Both are compressed whole, so what repeats from sample to sample (the
question template, the field names) costs almost nothing, and no sample
carries an incompressible name of its own: a sample key is derived from the
item when it is needed (``View.keys``), and a result is addressed by its
table and row.

A **view** (the ``entries`` object an evaluation record names) is the current
set of samples of an evaluation: a list of (table, details, rows, live
bitmap). A resumed run adds the tables it sealed and clears the bits of the
rows it replaced (a retried error) or that left the dataset; the tables
themselves never change, so older manifests keep their samples.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from doteval._objects import ObjectId, Store
from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import check_object_id, digest
from doteval._repository.scores import summarize_columns
from doteval.errors import CorruptStoreError, ObjectNotFoundError, StoreError

if TYPE_CHECKING:
    from doteval._repository.manifest import EvaluationRecord

FLAG_OK = 0
FLAG_ERROR = 1
TABLE_VERSION = 1
VIEW_VERSION = 2

# A table is read whole: keep each one well under the decompression bound.
TABLE_ROWS = 65_536
DETAILS_BYTES = 32 << 20

# The key tuple's head: ("doteval-sample", key-format version, ...
KEY_VERSION = 1
_KEY_PREFIX = b"t6:" + encode("doteval-sample") + encode(KEY_VERSION)


def key_prefix(fingerprint: str, params_digest: str) -> Any:
    """A blake3 hasher fed the key tuple up to the item; ``.copy()`` it per item."""
    h = blake3(_KEY_PREFIX)
    h.update(encode(fingerprint))
    h.update(encode(params_digest))
    return h


def sample_key(fingerprint: str, params_digest: str, item_bytes: bytes, occurrence: int) -> bytes:
    """blake3 of the canonical encoding of the key tuple (see store-format.md)."""
    h = key_prefix(fingerprint, params_digest)
    h.update(item_bytes)
    h.update(b"i%d;" % occurrence)
    return h.digest()


def token(item_bytes: bytes, occurrence: int) -> bytes:
    """An item and its occurrence as one byte string: what a key is derived from.

    Within one evaluation (one code fingerprint and params) equal tokens are
    equal keys, so resume and pairing compare tokens and hash nothing.
    """
    return item_bytes + b"i%d;" % occurrence if occurrence else item_bytes


# -- sealing ------------------------------------------------------------------


@dataclass
class NewRow:
    """One evaluated sample, as the seal receives it."""

    flag: int
    item: bytes  # canonical encoding of the item
    occurrence: int
    details: bytes  # canonical encoding of the result record, without its item
    scores: dict[str, Any]
    metrics: dict[str, list[str]] = field(default_factory=dict)


def _u32(values: Iterable[int]) -> bytes:
    a = array("I", values)
    if a.itemsize != 4:  # pragma: no cover - every platform we run on has 4-byte unsigned ints
        a = array("L", values)
    if sys.byteorder == "big":  # pragma: no cover
        a.byteswap()
    return a.tobytes()


def _from_u32(data: bytes) -> list[int]:
    a = array("I")
    a.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        a.byteswap()
    return a.tolist()


# The canonical encoding of a details object, {"rows": [...], "type": "details", "v": 1},
# around its rows (keys in encoded order: v, rows, type).
DETAILS_HEAD = b"d3:s1:vi1;s4:rowsl"
_DETAILS_TAIL = b"s4:types7:details"


def _details_head(count: int) -> bytes:
    return DETAILS_HEAD + b"%d:" % count


def details_bytes(rows: list[bytes]) -> bytes:
    """The canonical encoding of a details object from rows already encoded (a test holds
    it to ``encode``)."""
    return _details_head(len(rows)) + b"".join(rows) + _DETAILS_TAIL


def score_columns(rows: list[NewRow]) -> dict[str, list[Any]]:
    """Score name -> one value per row (None where a row has no such score)."""
    names = sorted({name for r in rows for name in r.scores})
    return {name: [r.scores.get(name) for r in rows] for name in names}


def table_value(rows: list[NewRow], scores: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """The stored value of a sample table; ``scores`` are ``score_columns(rows)`` when the
    caller has them already."""
    scores = score_columns(rows) if scores is None else scores
    metrics: dict[str, list[str]] = {}
    for r in rows:
        for name, listed in r.metrics.items():
            metrics.setdefault(name, list(listed))
    occurrences: list[int] = []
    for n, r in enumerate(rows):
        if r.occurrence:
            occurrences += (n, r.occurrence)
    return {
        "type": "samples",
        "v": TABLE_VERSION,
        "items": b"".join(r.item for r in rows),
        "sizes": _u32(len(r.item) for r in rows),
        # where each row's result starts in the details object: one result is read alone
        "details_sizes": _u32(len(r.details) for r in rows),
        "occurrences": occurrences,
        "flags": bytes(r.flag for r in rows),
        # encoded apart, so that reading the items (resume) never decodes the scores
        "scores": encode(scores),
        "metrics": {name: metrics[name] for name in scores if name in metrics},
    }


def chunks(rows: list[NewRow]) -> Iterator[list[NewRow]]:
    """``rows`` cut into tables of at most ``TABLE_ROWS`` rows and ``DETAILS_BYTES``."""
    start, size = 0, 0
    for n, r in enumerate(rows):
        if n > start and (n - start >= TABLE_ROWS or size + len(r.details) + len(r.item) > DETAILS_BYTES):
            yield rows[start:n]
            start, size = n, 0
        size += len(r.details) + len(r.item)
    if start < len(rows):
        yield rows[start:]


def table_objects(rows: list[NewRow], raws: list[bytes], ids: list[bytes]) -> list[tuple[Part, SampleTable]]:
    """Encode ``rows`` as sample tables and their details, appended to ``raws`` (and their
    raw ids to ``ids``) for one pack; each table as a part of a view that holds all its rows,
    and as read back (so the seal reads nothing it just wrote)."""
    out = []
    for chunk in chunks(rows):
        scores = score_columns(chunk)
        value = table_value(chunk, scores)
        details = details_bytes([r.details for r in chunk])
        table = encode(value)
        details_id, table_id = digest(details), digest(table)
        raws += (details, table)
        ids += (details_id, table_id)
        part = Part(table_id.hex(), details_id.hex(), len(chunk), list(range(len(chunk))))
        out.append((part, SampleTable.of(chunk, value, scores)))
    return out


# -- reading ------------------------------------------------------------------


class SampleTable:
    """One stored table: items, occurrences, flags; scores decoded on first use."""

    def __init__(
        self,
        items: list[bytes],
        occurrences: dict[int, int],
        flags: bytes,
        scores_raw: bytes,
        metrics: dict[str, list[str]],
        details_sizes: bytes = b"",
    ) -> None:
        self.items = items
        self._details_sizes = details_sizes
        self._detail_ends: list[int] | None = None
        self.occurrences = occurrences
        self.flags = flags
        self._scores_raw = scores_raw
        self._scores: dict[str, list[Any]] | None = None
        self.metrics = metrics

    def __len__(self) -> int:
        return len(self.flags)

    @property
    def detail_ends(self) -> list[int]:
        """Where each row's record ends in the details rows (built on first use: resume
        never needs it)."""
        if self._detail_ends is None:
            self._detail_ends = list(accumulate(_from_u32(self._details_sizes)))
        return self._detail_ends

    @classmethod
    def of(cls, rows: list[NewRow], value: dict[str, Any], scores: dict[str, list[Any]]) -> SampleTable:
        """The table ``value`` (``table_value(rows, scores)``) stores, as ``load`` reads it,
        built from what the writer has in memory."""
        table = cls(
            [r.item for r in rows],
            {n: r.occurrence for n, r in enumerate(rows) if r.occurrence},
            value["flags"],
            value["scores"],
            value["metrics"],
            value["details_sizes"],
        )
        table._scores = scores
        return table

    @property
    def scores(self) -> dict[str, list[Any]]:
        if self._scores is None:
            scores = decode(self._scores_raw)
            if not isinstance(scores, dict) or any(
                not isinstance(col, list) or len(col) != len(self) for col in scores.values()
            ):
                raise CorruptStoreError("malformed sample table: bad score columns")
            self._scores = scores
        return self._scores

    @classmethod
    def load(cls, store: Store, table_id: str) -> SampleTable:
        data = store.objects.get(table_id)
        try:
            if data["type"] != "samples" or data["v"] != TABLE_VERSION:
                raise ValueError("not a sample table")
            blob, flags = data["items"], data["flags"]
            sizes = _from_u32(data["sizes"])
            if not isinstance(blob, bytes) or not isinstance(flags, bytes) or len(sizes) != len(flags):
                raise ValueError("columns of different lengths")
            if flags.translate(None, bytes((FLAG_OK, FLAG_ERROR))):
                raise ValueError("a flag is neither ok nor error")
            ends = list(accumulate(sizes))
            if (ends[-1] if ends else 0) != len(blob):
                raise ValueError("item sizes do not add up")
            items = [blob[a:b] for a, b in zip([0, *ends], ends)]
            pairs = data["occurrences"]
            occurrences = dict(zip(pairs[0::2], pairs[1::2]))
            if len(pairs) % 2 or any(
                type(n) is not int or type(o) is not int or not 0 <= n < len(flags) or o < 1
                for n, o in occurrences.items()
            ):
                raise ValueError("bad occurrences")
            scores_raw, metrics = data["scores"], dict(data["metrics"])
            if not isinstance(scores_raw, bytes):
                raise ValueError("bad scores")
            details_sizes = data["details_sizes"]
            if not isinstance(details_sizes, bytes) or len(details_sizes) != 4 * len(flags):
                raise ValueError("details sizes of the wrong length")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorruptStoreError(f"malformed sample table {table_id[:12]}: {e}") from None
        return cls(items, occurrences, flags, scores_raw, metrics, details_sizes)


def details_rows(raw: bytes, ends: list[int], where: str) -> list[bytes]:
    """The encoded rows of a details object, cut by the sizes its table holds (no decoding)."""
    head, tail = _details_head(len(ends)), _DETAILS_TAIL
    total = ends[-1] if ends else 0
    if not raw.startswith(head) or len(raw) != len(head) + total + len(tail) or not raw.endswith(tail):
        raise CorruptStoreError(f"details {where} do not match the sizes of their sample table")
    body = raw[len(head) : len(head) + total]
    return [body[a:b] for a, b in zip([0, *ends], ends)]


def load_details(store: Store, details_id: str, table: SampleTable) -> list[dict[str, Any]]:
    """Every result of a details object, each row checked to be a record (fsck)."""
    rows = details_rows(store.objects.get_bytes(details_id), table.detail_ends, details_id[:12])
    records = [decode(row) for row in rows]
    if any(not isinstance(r, dict) for r in records):
        raise CorruptStoreError(f"malformed details {details_id[:12]}: a row is not a record")
    return records


@dataclass
class Part:
    """One table of a view and which of its rows the view holds (ascending)."""

    table_id: str
    details_id: str
    length: int
    rows: list[int]

    def bitmap(self) -> bytes:
        if len(self.rows) == self.length:
            return b""  # every row
        bits = bytearray((self.length + 7) // 8)
        for r in self.rows:
            bits[r >> 3] |= 1 << (r & 7)
        return bytes(bits)


def view_value(parts: list[Part]) -> dict[str, Any]:
    return {
        "type": "entries",
        "v": VIEW_VERSION,
        "parts": [[p.table_id, p.details_id, p.length, p.bitmap()] for p in parts if p.rows],
    }


def save_view(store: Store, parts: list[Part]) -> ObjectId | None:
    """Store a view; None when it holds no sample."""
    if not any(p.rows for p in parts):
        return None
    return store.objects.put(view_value(parts))


def load_parts(store: Store, view_id: str | None) -> list[Part]:
    """The parts of a stored view, without reading its tables."""
    if view_id is None:
        return []
    data = store.objects.get(view_id, loose_first=True)
    where = f"entries {view_id[:12]}"
    try:
        if data["type"] != "entries":
            raise ValueError("not an entries object")
        if data["v"] != VIEW_VERSION:
            raise ValueError(f"format {data['v']} is not read by this doteval")
        parts = []
        for table_id, details_id, length, bits in data["parts"]:
            check_object_id(table_id, where=where)
            check_object_id(details_id, where=where)
            if not isinstance(length, int) or not 0 < length <= 1 << 24 or not isinstance(bits, bytes):
                raise ValueError("bad part")
            if bits:
                if len(bits) != (length + 7) // 8:
                    raise ValueError("bitmap of the wrong length")
                rows = [r for r in range(length) if bits[r >> 3] >> (r & 7) & 1]
            else:
                rows = list(range(length))
            parts.append(Part(table_id, details_id, length, rows))
        return parts
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptStoreError(f"malformed {where}: {e}") from None


class View:
    """The samples of one evaluation, in view order (part by part, row by row).

    Columns are lists indexed by view position: ``items`` (canonical item
    encodings), ``occurrences``, ``flags``; ``scores`` and ``keys`` are built on
    first use, results (``result(i)``) read their details object on demand.
    """

    def __init__(self, store: Store, parts: list[Part], tables: list[SampleTable], prefix: tuple[str, str]):
        self.store = store
        self.parts = parts
        self.tables = tables
        self.prefix = prefix
        self.where: list[tuple[int, int]] = [(p, r) for p, part in enumerate(parts) for r in part.rows]
        self.items: list[bytes] = [tables[p].items[r] for p, r in self.where]
        self.occurrences: list[int] = [tables[p].occurrences.get(r, 0) for p, r in self.where]
        self.flags = bytes(tables[p].flags[r] for p, r in self.where)
        self._keys: list[bytes] | None = None
        self._scores: dict[str, list[Any]] | None = None
        self._details: dict[int, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self.where)

    @property
    def metrics(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in self.tables:
            for name, names in t.metrics.items():
                out.setdefault(name, names)
        return out

    @property
    def scores(self) -> dict[str, list[Any]]:
        if self._scores is None:
            names = sorted({name for t in self.tables for name in t.scores})
            self._scores = {
                name: [self.tables[p].scores.get(name, _NONE)[r] for p, r in self.where] for name in names
            }
        return self._scores

    def tokens(self) -> list[bytes]:
        return [token(i, o) for i, o in zip(self.items, self.occurrences)]

    @property
    def keys(self) -> list[bytes]:
        if self._keys is None:
            prefix = key_prefix(*self.prefix)
            keys = []
            for item, occ in zip(self.items, self.occurrences):
                h = prefix.copy()
                h.update(item)
                h.update(b"i%d;" % occ)
                keys.append(h.digest())
            self._keys = keys
        return self._keys

    def key(self, i: int) -> bytes:
        if self._keys is not None:
            return self._keys[i]
        return sample_key(*self.prefix, self.items[i], self.occurrences[i])

    def item(self, i: int) -> Any:
        value = decode(self.items[i])
        if type(value) is not tuple:  # an item is the tuple of its column values
            table_id = self.parts[self.where[i][0]].table_id
            raise CorruptStoreError(f"sample table {table_id[:12]}: an item is not a tuple of column values")
        return value

    def result(self, i: int) -> dict[str, Any]:
        """The stored result of sample ``i`` (its details and its item).

        The details object is read (decompressed and hashed) once per table, and only
        the row asked for is decoded.
        """
        p, r = self.where[i]
        rows = self._details.get(p)
        if rows is None:
            part = self.parts[p]
            raw = self.store.objects.get_bytes(part.details_id)
            rows = self._details[p] = details_rows(raw, self.tables[p].detail_ends, part.details_id[:12])
            if len(self._details) > 4:  # keep memory flat while walking a big view
                self._details.pop(next(iter(self._details)))
        record = decode(rows[r])
        if not isinstance(record, dict):
            raise CorruptStoreError(f"details {self.parts[p].details_id[:12]}: row {r} is not a result")
        record["item"] = self.item(i)
        return record

    def scores_of(self, i: int) -> dict[str, Any]:
        return {name: col[i] for name, col in self.scores.items() if col[i] is not None}

    def damaged_positions(self) -> set[int]:
        """View positions whose results (details object) are missing or fail their hash.

        A resume reuses only what it can still read: it checks each details object
        (decompress and hash, no decoding) before trusting its rows.
        """
        damaged: set[int] = set()
        for p, part in enumerate(self.parts):
            try:
                self.store.objects.get_bytes(part.details_id)
            except (StoreError, ObjectNotFoundError):
                damaged.update(n for n, (q, _r) in enumerate(self.where) if q == p)
        return damaged

    @property
    def done(self) -> int:
        return self.flags.count(FLAG_OK)

    @property
    def errors(self) -> int:
        return len(self.flags) - self.done

    def summary(self) -> list[dict[str, Any]]:
        """One value per (score, metric), over the samples without error."""
        ok = [f == FLAG_OK for f in self.flags]
        columns = {
            name: [v for v, good in zip(col, ok) if good and v is not None]
            for name, col in self.scores.items()
        }
        return summarize_columns(columns, self.metrics)

    def select(self, keep: Iterable[int]) -> list[Part]:
        """The parts of a view holding only the view positions ``keep``."""
        chosen: list[list[int]] = [[] for _ in self.parts]
        for i in sorted(set(keep)):
            p, r = self.where[i]
            chosen[p].append(r)
        return [
            Part(part.table_id, part.details_id, part.length, rows) for part, rows in zip(self.parts, chosen)
        ]


class _NoColumn:
    def __getitem__(self, i: int) -> None:
        return None


_NONE = _NoColumn()


def open_view(
    store: Store, parts: list[Part], prefix: tuple[str, str], known: dict[str, SampleTable] | None = None
) -> View:
    """A view of ``parts``, reading the tables ``known`` does not hold already."""
    tables = []
    for part in parts:
        table = (known or {}).get(part.table_id) or SampleTable.load(store, part.table_id)
        if len(table) != part.length:
            raise CorruptStoreError(
                f"sample table {part.table_id[:12]} has {len(table)} rows, its view says {part.length}"
            )
        tables.append(table)
    return View(store, parts, tables, prefix)


def load_view(store: Store, evaluation: EvaluationRecord) -> View:
    """The samples an evaluation record names (empty when it names none)."""
    parts = load_parts(store, evaluation.entries)
    return open_view(store, parts, (evaluation.fingerprint, evaluation.params_digest))


def merge_parts(groups: Iterable[list[Part]]) -> list[Part]:
    """Parts naming the same table joined (rows united), in first-seen order."""
    out: dict[str, Part] = {}
    for parts in groups:
        for p in parts:
            have = out.get(p.table_id)
            if have is None:
                out[p.table_id] = Part(p.table_id, p.details_id, p.length, list(p.rows))
            elif p.rows:
                have.rows = sorted(set(have.rows) | set(p.rows))
    return list(out.values())


def object_ids(parts: list[Part]) -> Iterator[str]:
    for p in parts:
        yield p.table_id
        yield p.details_id
