"""Recording a run: the journal while it lives, the seal when it ends.

A run appends every result to its journal the moment it exists. Sealing turns
the journal into immutable store content in the order that keeps the store
valid at every instant: the results pack, the entries tables and the manifest,
then the ref record; only then is the journal removed. A run killed before
sealing leaves its journal, which ``recover`` seals (as Interrupted, keeping its
valid prefix) the next time any command takes the experiment's lock.

Journal records (canonical encoding, framed by ``doteval.objects.journal``):

    ("start", {...run header...})
    ("eval", i, {...evaluation header...})
    ("keys", i, keys_blob, complete)   the dataset's sample keys, 32 bytes each
    ("r", i, key, flag, result_bytes)  one sample's result
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

from doteval.errors import CorruptStoreError
from doteval.manifest import (
    FLAG_ERROR,
    FLAG_OK,
    MAX_DELTA_DEPTH,
    EntriesTable,
    EvaluationRecord,
    Manifest,
    Row,
    delta_table,
    item_digest,
    load_entries,
    load_manifest,
    save_entries,
    save_manifest,
)
from doteval.objects import ObjectId, Store
from doteval.objects.encoding import decode, encode
from doteval.objects.hashing import digest
from doteval.objects.journal import JournalWriter, read_journal, result_frame
from doteval.objects.refs import RefState
from doteval.summary import scores_of

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


def read_head(store: Store, name: str) -> Head:
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
    """The live side of a run: holds the lock and appends to the journal."""

    store: Store
    experiment: str
    parent: Head
    command: list[str] = field(default_factory=list)
    rerun_changed: bool = False
    shard: str = ""
    journal: JournalWriter | None = None
    run_id: str = ""
    scores: dict[bytes, tuple[dict[str, Any], dict[str, list[str]]]] = field(default_factory=dict)

    def start(self) -> None:
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(4).hex()
        path = self.store.journals_dir / self.experiment / f"{self.run_id}.journal"
        self.journal = JournalWriter(path)
        self.journal.append(
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
        self.journal.append(record)

    def begin_evaluation(self, index: int, header: dict[str, Any]) -> None:
        self._append(("eval", index, header))

    def record_keys(self, index: int, keys: bytes, complete: bool, dataset_total: int | None = None) -> None:
        """The sample keys this run covers; ``dataset_total`` when a shard covers only part."""
        self._append(("keys", index, keys, complete, dataset_total))

    def record_result(
        self,
        index: int,
        key: bytes,
        ok: bool,
        result: bytes,
        item: bytes = bytes(16),
        scores: tuple[dict[str, Any], dict[str, list[str]]] | None = None,
    ) -> None:
        """Journal one result; ``item`` is its item digest (see ``manifest.item_digest``).

        ``scores`` (values and metric names, as ``summary.scores_of`` gives) spare
        this process's seal from decoding the result again.
        """
        assert self.journal is not None, "run not started"
        flag = FLAG_OK if ok else FLAG_ERROR
        self.journal.append_encoded(result_frame(index, key, flag, item, result))
        if scores is not None:
            self.scores[key] = scores

    def end_evaluation(self, index: int, status: str) -> None:
        self._append(("eval_end", index, status))

    def finish(self, status: str) -> Manifest | None:
        """Write the end record, close the journal and seal it."""
        assert self.journal is not None
        self.journal.append(("end", status, time.time()))
        self.journal.close()
        return seal(self.store, self.journal.path, scores=self.scores)


# -- sealing ----------------------------------------------------------------


@dataclass
class _EvalLog:
    header: dict[str, Any]
    keys: bytes | None = None
    complete: bool = False
    dataset_total: int | None = None
    ids: dict[bytes, bytes] = field(default_factory=dict)  # key -> raw result id, filled by seal
    results: dict[bytes, tuple[int, bytes, bytes]] = field(default_factory=dict)  # key -> flag, raw, item
    status: str = STATUS_INTERRUPTED


def _parse(records: list[Any], path: Path) -> tuple[dict[str, Any], dict[int, _EvalLog], str, float]:
    if not records or records[0][0] != "start":
        return {}, {}, STATUS_INTERRUPTED, 0.0
    header = records[0][1]
    evals: dict[int, _EvalLog] = {}
    status = STATUS_INTERRUPTED
    ended = 0.0
    try:
        for rec in records[1:]:
            kind = rec[0]
            if kind == "r":
                log = evals.get(rec[1])
                if log is not None:
                    log.results[rec[2]] = (rec[3], rec[4], rec[5] if len(rec) > 5 else b"")
            elif kind == "eval":
                evals[rec[1]] = _EvalLog(rec[2])
            elif kind == "keys":
                evals[rec[1]].keys = rec[2]
                evals[rec[1]].complete = bool(rec[3])
                evals[rec[1]].dataset_total = rec[4] if len(rec) > 4 else None
            elif kind == "eval_end":
                evals[rec[1]].status = rec[2]
            elif kind == "end":
                status, ended = rec[1], rec[2]
    except (IndexError, KeyError, TypeError) as e:
        raise CorruptStoreError(f"malformed journal record ({e})", path=str(path)) from None
    return header, evals, status, ended


def seal(
    store: Store,
    path: Path,
    *,
    scores: dict[bytes, tuple[dict[str, Any], dict[str, list[str]]]] | None = None,
) -> Manifest | None:
    """Seal one journal into the store; the caller holds the experiment's lock.

    ``scores`` are the score values and metric names of the journal's results
    when the process that wrote it still has them; others are decoded.
    """
    records, _valid = read_journal(path)
    header, evals, status, ended = _parse(records, path)
    if not header:
        path.unlink(missing_ok=True)
        return None
    name = header["experiment"]
    head = read_head(store, name)
    base = head.manifest

    raws, ids = [], []
    for log in evals.values():
        for key, (_flag, raw, _item) in log.results.items():
            log.ids[key] = digest(raw)
            raws.append(raw)
            ids.append(log.ids[key])
    store.objects.write_pack(raws, ids)

    by_node = {log.header["node_id"]: log for log in evals.values()}
    evaluations: list[EvaluationRecord] = []
    seen = set()
    for old in base.evaluations if base else []:
        ran = by_node.get(old.node_id)
        evaluations.append(_seal_eval(store, ran, old, scores or {}) if ran else replace(old, run={}))
        seen.add(old.node_id)
    for log in evals.values():
        if log.header["node_id"] not in seen:
            evaluations.append(_seal_eval(store, log, None, scores or {}))

    final = final_status(status, evaluations)
    manifest = Manifest(
        experiment=name,
        parent=head.manifest_id,
        status=final,
        started=float(header["started"]),
        finished=float(ended or time.time()),
        host=str(header.get("host", "")),
        pid=int(header.get("pid", 0)),
        git_commit=header.get("git_commit"),
        command=list(header.get("command", [])),
        evaluations=evaluations,
        shard=str(header.get("shard") or ""),
    )
    manifest_id = save_manifest(store, manifest)
    store.refs.append(name, manifest_id, expected=head.record_id, op="run")
    path.unlink(missing_ok=True)
    return manifest


def _seal_eval(
    store: Store,
    log: _EvalLog,
    old: EvaluationRecord | None,
    known: dict[bytes, tuple[dict[str, Any], dict[str, list[str]]]],
) -> EvaluationRecord:
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
    base = load_entries(store, old.entries) if continuing and old else EntriesTable()
    base_index = base.index()
    metrics = dict(base.metrics)
    new_rows: dict[bytes, Row] = {}
    for key, (flag, raw, item) in log.results.items():
        values, named = known.get(key) or scores_of(decode(raw))
        for name, names in named.items():
            metrics.setdefault(name, names)
        new_rows[key] = Row(
            log.ids.get(key) or digest(raw), flag, item if any(item) else _item_digest_of(raw), values
        )
    current: list[bytes] = []
    if log.keys is not None:
        current = [log.keys[i : i + 32] for i in range(0, len(log.keys), 32)]
        view_keys = set(current)
        if not log.complete:  # --samples or --shard cut the dataset: keep what lies beyond
            view_keys.update(base_index)
        total = max(len(view_keys), log.dataset_total or 0)
    else:  # died before the dataset was read: keep the old view
        view_keys = set(base_index) | set(new_rows)
        total = max(old.total if continuing and old else 0, len(view_keys))
    rows: dict[bytes, Row] = {}
    for key in view_keys:
        row = new_rows.get(key)
        if row is None and key in base_index:
            row = base.row(base_index[key])
        if row is not None:
            rows[key] = row
    unchanged = continuing and old is not None and not new_rows and len(rows) == len(base)
    if unchanged and old is not None:
        record.entries, record.metrics = old.entries, old.metrics
        done, errors = old.done, old.errors
    else:
        table = EntriesTable.build(rows, metrics)
        record.metrics = table.summary()
        done, errors = table.done, table.errors
        if continuing and old is not None and old.entries and base.depth < MAX_DELTA_DEPTH:
            # Store what this run changed over the view before it, not the whole view again.
            changed = {k: r for k, r in rows.items() if k in new_rows}
            dropped = set(base_index) - set(rows)
            table = delta_table(old.entries, base.depth, changed, dropped, metrics)
        record.entries = save_entries(store, table)
    record.total, record.done, record.errors = total, done, errors
    reused_from = current if log.keys is not None else list(rows)
    record.run = {
        "evaluated": len(new_rows),
        "reused": sum(1 for k in reused_from if k in base_index and k not in new_rows),
        "errors": sum(1 for r in new_rows.values() if r.flag == FLAG_ERROR),
        # items new to the dataset; a view that only grew into what --samples left out is no change
        "added": (
            max(0, len(view_keys - set(base_index)) - max(0, old.total - len(base_index)))
            if continuing and old is not None
            else len(view_keys)
        ),
        "removed": len(set(base_index) - view_keys),
    }
    record.status = log.status
    return record


def _item_digest_of(raw: bytes) -> bytes:
    item = decode(raw).get("item")
    return item_digest(encode(item), 0)


def final_status(ended: str, evaluations: list[EvaluationRecord]) -> str:
    if ended == STATUS_FAILED:
        return STATUS_FAILED
    if ended == STATUS_INTERRUPTED or any(e.missing for e in evaluations):
        return STATUS_INTERRUPTED
    if any(e.errors for e in evaluations):
        return STATUS_FAILED
    return STATUS_COMPLETED


def recover(store: Store, name: str) -> list[Manifest]:
    """Seal journals left by dead runs of ``name``; the caller holds its lock."""
    sealed = []
    for path in store.journals(name):
        manifest = seal(store, path)
        if manifest is not None:
            sealed.append(manifest)
    return sealed
