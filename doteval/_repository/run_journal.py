"""Recording a run: the journal while it lives, the seal when it ends.

A run appends every result to its journal the moment it exists. Sealing turns
the journal into immutable store content in the order that keeps the store
valid at every instant: the pack of sample tables, the views and the manifest
(``seal``, here), then the ref record; only then is the journal removed (both by
the repository's transaction, ``doteval._repository.repository``). A run killed
before sealing leaves its journal, which the next writer's transaction seals (as
Interrupted, keeping its valid prefix). This module never writes a ref record.

Journal records (canonical encoding, framed by ``doteval._objects.journal``):

    ("start", {...run header...})
    ("eval", i, {...evaluation header...})
    ("view", i, {...})                 what the run keeps of the view before it
    ("reuse", i, {...})                rows of an older table reused (``RunRecorder.record_reuse``)
    R frame (``journal.result_frame``)  one sample's result: flag, the view
                                       position it replaces, item, details
    ("eval_end", i, status)
    ("end", status, time)
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from doteval._objects import ObjectId, Store
from doteval._objects.encoding import decode, encode
from doteval._objects.journal import JournalWriter, read_journal, result_frame
from doteval._objects.refs import RefState
from doteval._repository import journal_records
from doteval._repository.manifest import EvaluationRecord, Manifest, load_manifest, save_manifest
from doteval._repository.sample_tables import (
    FLAG_ERROR,
    FLAG_OK,
    NewRow,
    Part,
    SampleTable,
    View,
    load_parts,
    merge_parts,
    open_view,
    save_view,
    table_objects,
    token,
)
from doteval._repository.scores import scores_of
from doteval.errors import CorruptStoreError, DotevalError

STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"


@dataclass
class Head:
    """Where an experiment stands: its ref state and current manifest."""

    state: RefState | None
    manifest: Manifest | None
    manifest_id: ObjectId | None

    @property
    def record_id(self) -> ObjectId | None:
        return self.state.head.id if self.state else None


_READ: Any = object()


def read_head(store: Store, name: str, state: RefState | None = _READ) -> Head:
    """The experiment's head; ``state`` is its ref state when the caller has just read it."""
    if state is _READ:
        state = store.refs.read(name)
    if state is None or state.head.manifest is None or state.head.deleted:
        return Head(state, None, None)  # a deleted experiment starts afresh
    return Head(state, load_manifest(store, state.head.manifest), state.head.manifest)


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the user's repository, read from .git without running git."""
    here = (cwd or Path.cwd()).resolve()
    for d in (here, *here.parents):
        git = d / ".git"
        if git.is_dir():
            try:
                head = (git / "HEAD").read_text().strip()
                if head.startswith("ref: "):
                    ref = head[5:]
                    ref_file = git / ref
                    if ref_file.exists():
                        return ref_file.read_text().strip()
                    packed = git / "packed-refs"
                    if packed.exists():
                        for line in packed.read_text().splitlines():
                            if line.endswith(" " + ref):
                                return line.split()[0]
                    return None
                return head
            except OSError:
                return None
    return None


@dataclass
class RunRecorder:
    """The live side of a run: appends to the journal (its transaction holds the lock)."""

    store: Store
    experiment: str
    parent: Head
    command: list[str] = field(default_factory=list)
    rerun_changed: bool = False
    shard: str = ""
    journal: JournalWriter | None = None
    run_id: str = ""
    scores: dict[int, list[tuple[dict[str, Any], dict[str, list[str]]]]] = field(default_factory=dict)
    records: list[Any] = field(default_factory=list)  # every record journaled, as read back

    def start(self) -> None:
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(4).hex()
        path = self.store.journals_dir / self.experiment / f"{self.run_id}.journal"
        self.journal = JournalWriter(path, root=self.store.root)
        self._append(
            (
                "start",
                {
                    "experiment": self.experiment,
                    "run_id": self.run_id,
                    "parent_record": self.parent.record_id,
                    "started": time.time(),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "git_commit": git_commit(),
                    "command": list(self.command),
                    "rerun_changed": self.rerun_changed,
                    "shard": self.shard,
                },
            )
        )

    def _append(self, record: Any) -> None:
        assert self.journal is not None, "run not started"
        body = encode(record)
        self.journal.append_encoded(body)
        self.records.append(decode(body))  # what a reader of the journal gets

    def begin_evaluation(self, index: int, header: dict[str, Any]) -> None:
        self._append(("eval", index, header))

    def record_view(self, index: int, view: dict[str, Any]) -> None:
        """What this run keeps of the view before it (see ``_seal_eval``)."""
        self._append(("view", index, view))

    def record_reuse(self, index: int, reuse: dict[str, Any]) -> None:
        """Rows of a table sealed by another run, reused as this run's results:
        ``{"table", "details", "length", "rows", "slots", "from", "origin"}`` (``slots``: the
        view positions they replace, -1 for none; ``from``: the experiment whose history held
        them; ``origin``: the run that evaluated them)."""
        self._append(("reuse", index, reuse))

    def record_result(
        self,
        index: int,
        ok: bool,
        item: bytes,
        occurrence: int,
        details: bytes,
        *,
        slot: int = -1,
        scores: tuple[dict[str, Any], dict[str, list[str]]] | None = None,
    ) -> None:
        """Journal one result: its item (canonical encoding) and occurrence, the rest of
        the result (``details``), and the position in the view before it that it
        replaces (``slot``, -1 for none).

        ``scores`` (values and metric names, as ``summary.scores_of`` gives) spare
        this process's seal from decoding the result again.
        """
        assert self.journal is not None, "run not started"
        flag = FLAG_OK if ok else FLAG_ERROR
        self.journal.append_encoded(result_frame(index, flag, slot, occurrence, item, details))
        self.records.append(("r", index, flag, slot, occurrence, item, details))
        if scores is not None:  # the seal uses them only if every result of ``index`` has them
            self.scores.setdefault(index, []).append(scores)

    def end_evaluation(self, index: int, status: str) -> None:
        self._append(("eval_end", index, status))

    def finish(self, status: str) -> Path:
        """Write the end record and close the journal; the run's transaction seals it
        (``Transaction.seal_run``), from the records in memory."""
        assert self.journal is not None
        try:
            self._append(("end", status, time.time()))
        finally:  # a full disk: the journal keeps what it holds, the next writer seals it
            self.journal.close()
        return self.journal.path


# -- sealing ----------------------------------------------------------------


@dataclass
class _EvalLog:
    header: dict[str, Any]
    view: dict[str, Any] | None = None
    results: list[tuple[int, int, int, bytes, bytes]] = field(
        default_factory=list
    )  # flag, slot, occ, item, details
    status: str = STATUS_INTERRUPTED
    parts: list[Part] = field(default_factory=list)  # the tables sealed from ``results``
    tables: dict[str, SampleTable] = field(default_factory=dict)  # those tables, by id
    rows: list[NewRow] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    reuses: list[dict[str, Any]] = field(default_factory=list)


def _parse(
    records: list[Any], path: Path, *, check: bool = True
) -> tuple[dict[str, Any], dict[int, _EvalLog], str, float]:
    """The run a journal's records describe. ``check``: each record is checked
    (``doteval._repository.journal_records``) and a malformed one skipped, its sample evaluated again
    by the next run; records this process wrote itself are not checked again."""
    if not records or not isinstance(records[0], tuple) or records[0][:1] != ("start",):
        return {}, {}, STATUS_INTERRUPTED, 0.0
    try:
        header = records[0][1]
        if check:
            header = journal_records.start_header(header, path.parent.name)
    except (CorruptStoreError, IndexError, TypeError, ValueError) as e:
        raise CorruptStoreError(
            f"malformed journal header ({e})", path=str(path), hint=_JOURNAL_HINT
        ) from None
    evals: dict[int, _EvalLog] = {}
    status = STATUS_INTERRUPTED
    ended = 0.0
    for rec in records[1:]:
        try:
            kind = rec[0]
            if kind == "r":
                log = evals.get(rec[1])
                if log is not None:
                    if check:
                        _flag, slot, _occurrence, item, details = rec[2:]
                        journal_records.check_result(
                            _flag, slot, item, details, len(log.header.get("columns", []))
                        )
                    log.results.append(rec[2:])
            elif kind == "eval":
                evals[rec[1]] = _EvalLog(journal_records.eval_header(rec[2]) if check else rec[2])
            elif kind == "view":
                evals[rec[1]].view = journal_records.view_record(rec[2])
            elif kind == "reuse":
                evals[rec[1]].reuses.append(journal_records.reuse_record(rec[2]) if check else rec[2])
            elif kind == "eval_end":
                evals[rec[1]].status = journal_records.status(rec[2])
            elif kind == "end":
                status, ended = journal_records.end_record(rec)
        except (CorruptStoreError, IndexError, KeyError, TypeError, ValueError):
            continue  # this record alone: the results around it are kept
    return header, evals, status, ended


_JOURNAL_HINT = "move the journal out of the store to go on without its results"


def journal_problem(path: Path) -> str | None:
    """Why the journal at ``path`` cannot be sealed (for fsck), or None when it can."""
    try:
        records, _valid = read_journal(path)
        _parse(records, path)
    except DotevalError as e:
        return str(e)
    return None


@dataclass
class Sealed:
    """A journal sealed into objects: the manifest, and where its ref record goes."""

    manifest: Manifest
    manifest_id: ObjectId
    parent: ObjectId | None  # the ref record the run started from (compare-and-swap)
    branch: bool  # that record is no longer the head: the run continues its own line


def seal(
    store: Store,
    name: str,
    path: Path,
    *,
    scores: dict[int, list[tuple[dict[str, Any], dict[str, list[str]]]]] | None = None,
    records: list[Any] | None = None,
) -> Sealed | None:
    """Seal the journal at ``path`` of experiment ``name`` into objects: its sample tables,
    views and manifest. None when it holds no run. The caller (the repository's
    transaction, holding the lock) appends the ref record and then removes the journal.

    ``scores`` are the score values and metric names of the journal's results
    (per evaluation index, in journal order) when the process that wrote it
    still has them; others are decoded. ``records`` are the journal's records when
    the process that wrote it still has them (it is read otherwise).
    """
    trusted = records is not None  # this process's own records, as it wrote them
    if records is None:
        records, _valid = read_journal(path)
    header, evals, status, ended = _parse(records, path, check=not trusted)
    if not header:
        return None
    head, branch = _start_of(store, name, header.get("parent_record"))
    base = head.manifest

    raws: list[bytes] = []
    ids: list[bytes] = []
    for index, log in evals.items():
        if not trusted:
            _check_slots(store, log, base)
        _new_rows(log, (scores or {}).get(index), path)
        sealed = table_objects(log.rows, raws, ids)
        log.parts = [part for part, _ in sealed]
        log.tables = {part.table_id: table for part, table in sealed}
    store.objects.write_pack(raws, ids)

    by_node = {log.header["node_id"]: log for log in evals.values()}
    evaluations: list[EvaluationRecord] = []
    seen = set()
    for old in base.evaluations if base else []:
        ran = by_node.get(old.node_id)
        evaluations.append(_seal_eval(store, ran, old, name) if ran else replace(old, run={}))
        seen.add(old.node_id)
    for log in evals.values():
        if log.header["node_id"] not in seen:
            evaluations.append(_seal_eval(store, log, None, name))

    final = final_status(status, evaluations)
    manifest = Manifest(
        experiment=name,
        parent=head.manifest_id,
        status=final,
        started=float(header["started"]),
        finished=float(ended or _last_write(path, float(header["started"]))),
        host=str(header.get("host", "")),
        pid=int(header.get("pid", 0)),
        git_commit=header.get("git_commit"),
        command=list(header.get("command", [])),
        evaluations=evaluations,
        shard=str(header.get("shard") or ""),
    )
    return Sealed(manifest, save_manifest(store, manifest), head.record_id, branch)


def _last_write(path: Path, started: float) -> float:
    """When a run that died without its end record last wrote to its journal: the time
    of its last record (sealed later, the run must not seem to have lasted until then)."""
    try:
        return max(path.stat().st_mtime, started)
    except OSError:
        return time.time()


def _start_of(store: Store, name: str, parent: str | None) -> tuple[Head, bool]:
    """The head a journal continues: the record its run started from.

    That is the experiment's head, unless another store's line was copied in while the
    run lay dead; then the journal is sealed on its own line (``branch``), and joining
    the lines is left to the repository's recovery (``merge.merge_manifests``), which lets an ok result win and keeps lines of
    other code apart.
    """
    state = store.refs.read(name)
    if state is None or parent == state.head.id:
        return read_head(store, name, state), False
    if parent is None:  # the run began a new experiment; a line was copied in since
        return Head(None, None, None), True
    record = state.records.get(ObjectId(parent))
    if record is None:  # its start is not in this store (a partial copy): the head it is
        return read_head(store, name, state), False
    if record.manifest is None or record.deleted:
        return Head(RefState(name, state.records, (record,)), None, None), True
    return Head(
        RefState(name, state.records, (record,)), load_manifest(store, record.manifest), record.manifest
    ), True


def _check_slots(store: Store, log: _EvalLog, base: Manifest | None) -> None:
    """Skip results whose slot (the view position they replace) does not hold their own
    item: a result read back from a journal replaces only the sample it is a result of."""
    if not any(slot >= 0 for _flag, slot, *_ in log.results):
        return
    old = base.evaluation(log.header["node_id"]) if base else None
    if old is None or old.entries is None or (log.view or {}).get("base") != old.entries:
        return  # the slots are not used (see ``_seal_eval``)
    tokens = _view(store, load_parts(store, old.entries), {}, old).tokens()
    log.results = [
        r for r in log.results if r[1] < 0 or (r[1] < len(tokens) and tokens[r[1]] == token(r[3], r[2]))
    ]


def _new_rows(
    log: _EvalLog, known: list[tuple[dict[str, Any], dict[str, list[str]]]] | None, path: Path
) -> None:
    """The journal's results as table rows, one per item (the last result of an item wins)."""
    if known is not None and len(known) != len(log.results):
        known = None
    latest: dict[bytes, int] = {}
    for n, (_flag, _slot, occurrence, item, _details) in enumerate(log.results):
        latest[token(item, occurrence)] = n
    for n in sorted(latest.values()):
        flag, slot, occurrence, item, details = log.results[n]
        values, metrics = known[n] if known is not None else _scores_of(details, path)
        log.rows.append(NewRow(flag, item, occurrence, details, values, metrics))
        log.slots.append(slot)


def _scores_of(details: bytes, path: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    try:
        record = decode(details)
        if not isinstance(record, dict) or not isinstance(record.get("scores") or [], list):
            raise TypeError("not a result record")
        return scores_of(record)
    except (CorruptStoreError, AttributeError, TypeError) as e:
        raise CorruptStoreError(
            f"a result in the journal is malformed ({e})", path=str(path), hint=_JOURNAL_HINT
        ) from None


def _seal_eval(store: Store, log: _EvalLog, old: EvaluationRecord | None, name: str) -> EvaluationRecord:
    h = log.header
    record = EvaluationRecord(
        node_id=h["node_id"],
        fingerprint=h["fingerprint"],
        params_digest=h["params_digest"],
        params=h.get("params", {}),
        unfingerprintable=list(h.get("unfingerprintable", [])),
        columns=list(h.get("columns", [])),
        code=h.get("code"),
        line=int(h.get("line", 1)),
    )
    continuing = old is not None and old.same_code_and_params(record) and old.line == record.line
    base_id = old.entries if continuing and old is not None else None
    base_parts = load_parts(store, base_id)
    base_len = sum(len(p.rows) for p in base_parts)
    view = log.view or {}
    same_base = log.view is not None and view.get("base") == base_id
    bits = view.get("kept")
    if same_base and bits is not None and len(bits) == (base_len + 7) // 8:
        kept = {i for i in range(base_len) if bits[i >> 3] >> (i & 7) & 1}
    else:  # died before reading the dataset, or a --samples/--shard run: keep the whole view
        kept = set(range(base_len))
    reused = [Part(r["table"], r["details"], r["length"], sorted(r["rows"])) for r in log.reuses]
    base_view: View | None = None
    if same_base:
        kept -= {slot for slot in log.slots if slot >= 0}
        kept -= {slot for r in log.reuses for slot in r["slots"] if slot >= 0}
    elif (log.rows or reused) and base_parts:  # a journal sealed over another view: replace by item
        base_view = _view(store, base_parts, {}, record)
        new_tokens = {token(r.item, r.occurrence) for r in log.rows}
        if reused:
            new_tokens.update(_view(store, reused, {}, record).tokens())
        kept -= {i for i, t in enumerate(base_view.tokens()) if t in new_tokens}

    unchanged = continuing and old is not None and not log.rows and not reused and len(kept) == base_len
    if unchanged and old is not None:
        record.entries, record.metrics = old.entries, old.metrics
        record.done, record.errors = old.done, old.errors
        record.origins = dict(old.origins)
        size = base_len
    else:
        if base_view is None and base_parts:
            base_view = _view(store, base_parts, {}, record)
        kept_parts = base_view.select(kept) if base_view is not None else []
        parts = merge_parts([kept_parts, log.parts, reused]) if reused else kept_parts + log.parts
        tables = dict(log.tables)
        if base_view is not None:
            tables.update({p.table_id: t for p, t in zip(base_view.parts, base_view.tables)})
        current = _view(store, parts, tables, record)
        record.entries = save_view(store, parts)
        record.metrics = current.summary()
        record.done, record.errors = current.done, current.errors
        carried = old.origins if continuing and old is not None else {}
        record.origins = _origins(carried, log.reuses, parts, {p.table_id for p in base_parts})
        size = len(current)
    new_errors = sum(1 for r in log.rows if r.flag == FLAG_ERROR)
    if log.view is not None:
        record.total = max(int(view.get("total", 0)), size)
        record.run = {
            "evaluated": len(log.rows),
            "reused": int(view.get("reused", 0)),
            "errors": new_errors,
            "added": int(view.get("added", 0)),
            "removed": int(view.get("removed", 0)),
        }
        record.run.update(_reuse_counts(log.reuses, name))
    else:
        record.total = max(old.total if continuing and old is not None else 0, size)
        record.run = {
            "evaluated": len(log.rows),
            "reused": len(kept),
            "errors": new_errors,
            "added": 0,
            "removed": 0,
        }
    record.status = log.status
    return record


def _origins(
    carried: dict[str, dict[str, Any]], reuses: list[dict[str, Any]], parts: list[Part], base: set[str]
) -> dict[str, dict[str, Any]]:
    """Where the tables of a view that another run evaluated came from: those the view
    before held (``carried``), and those this run reused; only tables the view still names.
    A table the view before held (``base``) keeps what it had: its own line's stays unnamed."""
    origins = dict(carried)
    for r in reuses:
        if r["table"] not in base:
            origins.setdefault(r["table"], dict(r["origin"]))
    named = {p.table_id for p in parts if p.rows}
    return {t: o for t, o in origins.items() if t in named}


def _reuse_counts(reuses: list[dict[str, Any]], name: str) -> dict[str, int]:
    """The run's counts of reused results: ``earlier`` (this experiment's history) and
    ``imported`` (``--reuse-from``); written only when not zero."""
    counts: dict[str, int] = {}
    for r in reuses:
        kind = "earlier" if r["from"] == name else "imported"
        counts[kind] = counts.get(kind, 0) + len(r["rows"])
    return counts


def _view(store: Store, parts: list[Part], tables: dict[str, SampleTable], record: EvaluationRecord) -> View:
    return open_view(store, parts, (record.fingerprint, record.params_digest), tables)


def final_status(ended: str, evaluations: list[EvaluationRecord]) -> str:
    if ended == STATUS_FAILED:
        return STATUS_FAILED
    if ended == STATUS_INTERRUPTED or any(e.missing for e in evaluations):
        return STATUS_INTERRUPTED
    if any(e.errors for e in evaluations):
        return STATUS_FAILED
    return STATUS_COMPLETED
