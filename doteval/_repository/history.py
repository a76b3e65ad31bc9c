"""An experiment's history: revisions (``NAME@REV``, ``NAME~N``) and the log.

Every change of an experiment is a ref record (a run, a save, a rename, a
deletion); runs and saves name a manifest. ``resolve`` turns a user's
``NAME[@REV][~N]`` into one manifest; ``log`` lists records newest first with
what changed since the run before (code, params, items added or removed).
Reading history touches refs and manifests only, never results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from doteval._objects import ObjectId, RefRecord, Store, check_name
from doteval._repository.changes import changed_params
from doteval._repository.manifest import EvaluationRecord, Manifest, load_manifest
from doteval._repository.repository import Repository
from doteval.errors import ExperimentNotFoundError, NotFoundError, UsageError

_SPEC_RE = re.compile(r"(?P<name>[^@~]+)(?:@(?P<rev>[0-9a-fA-F]+))?(?:~(?P<back>\d*))?\Z")


@dataclass
class Revision:
    experiment: str
    manifest: Manifest
    manifest_id: ObjectId
    record: RefRecord
    is_head: bool

    @property
    def label(self) -> str:
        return self.experiment if self.is_head else f"{self.experiment}@{self.manifest_id[:10]}"


def parse_spec(spec: str) -> tuple[str, str | None, int]:
    """``NAME``, ``NAME@REV``, ``NAME~N``, ``NAME@REV~N`` → (name, rev, steps back)."""
    match = _SPEC_RE.match(spec or "")
    if match is None:
        if spec and ("@" in spec or "~" in spec):
            raise UsageError(
                f"cannot read revision {spec!r}: use NAME, NAME@REV (a manifest id prefix) or NAME~N"
            )
        check_name(spec)
        raise UsageError(f"cannot read experiment {spec!r}")
    name = check_name(match.group("name"))
    rev = match.group("rev")
    if rev is not None and len(rev) < 4:
        raise UsageError(f"revision {rev!r} is too short: give at least 4 hex digits of a manifest id")
    back = match.group("back")
    steps = 0 if back is None else (int(back) if back else 1)
    return name, rev.lower() if rev else None, steps


def run_records(store: Store, name: str) -> list[RefRecord]:
    """The experiment's records that name a manifest, newest first (head's line)."""
    state = store.refs.read(name)
    if state is None:
        raise ExperimentNotFoundError(name)
    return [r for r in state.history() if r.manifest is not None]


def _revisions(records: list[RefRecord]) -> list[RefRecord]:
    """One step per manifest, newest first: renaming or saving the same manifest is no new revision."""
    out = []
    seen: set[str] = set()
    for r in records:
        if r.manifest is not None and r.op != "delete" and r.manifest not in seen:
            seen.add(r.manifest)
            out.append(r)
    return out


def resolve(store: Store, spec: str, *, allow_deleted: bool = False) -> Revision:
    name, rev, steps = parse_spec(spec)
    state = Repository(store).ref_state(name)
    if state is None:
        raise ExperimentNotFoundError(name)
    if state.head.deleted and not allow_deleted and rev is None:
        raise ExperimentNotFoundError(name)
    # One line per head: two after stores were copied together (the first is the newest).
    lines = [_revisions(state.history(h)) for h in state.heads]
    line = lines[0]
    if not line:
        raise ExperimentNotFoundError(name)
    start = 0
    if rev is not None:
        found = {
            r.manifest for candidate in lines for r in candidate if r.manifest and r.manifest.startswith(rev)
        }
        if not found:
            raise NotFoundError(
                f"experiment {name!r} has no revision {rev}",
                hint=f"`doteval log {name}` lists its revisions",
            )
        if len(found) > 1:
            raise UsageError(f"revision {rev} of {name!r} is ambiguous: give more digits")
        line = next(candidate for candidate in lines if any(r.manifest in found for r in candidate))
        start = min(i for i, r in enumerate(line) if r.manifest in found)
    index = start + steps
    if index >= len(line):
        raise NotFoundError(
            f"experiment {name!r} has only {len(line) - start} run(s) from there; {spec!r} goes back too far",
            hint=f"`doteval log {name}` lists its revisions",
        )
    record = line[index]
    assert record.manifest is not None
    return Revision(
        experiment=name,
        manifest=load_manifest(store, record.manifest),
        manifest_id=record.manifest,
        record=record,
        is_head=record.id == state.head.id and not state.head.deleted,
    )


# -- log ----------------------------------------------------------------------


@dataclass
class LogEntry:
    experiment: str
    record_id: str
    manifest_id: str | None
    time: float
    op: str
    status: str
    host: str
    git_commit: str | None
    evaluated: int = 0
    reused: int = 0
    errors: int = 0
    done: int = 0
    total: int = 0
    changes: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    note: str = ""
    earlier: int = 0  # reused from earlier lines of the experiment
    imported: int = 0  # reused from another experiment (--reuse-from)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "id": self.manifest_id,
            "record": self.record_id,
            "time": self.time,
            "op": self.op,
            "status": self.status,
            "evaluated": self.evaluated,
            "reused": self.reused,
            "reused_earlier": self.earlier,
            "reused_imported": self.imported,
            "errors": self.errors,
            "done": self.done,
            "total": self.total,
            "changes": self.changes,
            "host": self.host,
            "git_commit": self.git_commit,
            "command": self.command,
            "note": self.note,
        }


def changes_since(manifest: Manifest, parent: Manifest | None) -> list[str]:
    """What a run changed compared with the run before: code, params, items."""
    out = []
    for ev in manifest.evaluations:
        if not ev.run:
            continue
        old = parent.evaluation(ev.node_id) if parent else None
        out.extend(evaluation_changes(ev, old))
    return out


def evaluation_changes(ev: EvaluationRecord, old: EvaluationRecord | None) -> list[str]:
    short = ev.node_id.rsplit("/", 1)[-1]
    if old is None:
        return [f"{short}: new evaluation ({ev.total} items)"]
    out = []
    if old.fingerprint != ev.fingerprint:
        out.append(f"{short}: code changed")
    if old.params_digest != ev.params_digest:
        names = changed_params(old.params, ev.params)
        out.append(f"{short}: params changed ({', '.join(names) or 'values'})")
    if ev.line != old.line:
        out.append(f"{short}: new line of results (--rerun-changed)")
    added, removed = ev.run.get("added", 0), ev.run.get("removed", 0)
    if old.fingerprint == ev.fingerprint and old.params_digest == ev.params_digest:
        if added:
            out.append(f"{short}: +{added} items")
        if removed:
            out.append(f"{short}: -{removed} items")
    return out


def log(store: Store, name: str | None = None, *, limit: int | None = None) -> list[LogEntry]:
    """Ref records newest first: one experiment, or all interleaved by time."""
    names = [check_name(name)] if name else store.experiment_names()
    entries: list[LogEntry] = []
    repo = Repository(store)
    for n in names:
        state = repo.ref_state(n)
        if state is None:
            if name:
                raise ExperimentNotFoundError(n)
            continue
        manifests = _Manifests(store)
        seen: set[str] = set()
        for head in state.heads:  # two lines after stores were copied together: both are listed
            taken = 0
            for record in state.history(head):
                if record.id in seen:
                    continue
                seen.add(record.id)
                entries.append(_entry(record, manifests))
                taken += 1
                if limit is not None and name and taken >= limit:
                    break
    entries.sort(key=lambda e: e.time, reverse=True)
    return entries[:limit] if limit is not None else entries


class _Manifests:
    """Manifests by id, each loaded once (a log reads parents of parents)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[str, Manifest] = {}

    def __call__(self, manifest_id: str | None) -> Manifest | None:
        if manifest_id is None:
            return None
        if manifest_id not in self.cache:
            self.cache[manifest_id] = load_manifest(self.store, manifest_id)
        return self.cache[manifest_id]


def _entry(record: RefRecord, manifest: _Manifests) -> LogEntry:
    m = manifest(record.manifest)
    entry = LogEntry(
        experiment=record.experiment,
        record_id=record.id,
        manifest_id=record.manifest,
        time=record.time,
        op=record.op,
        status=m.status if m and record.op != "delete" else record.op,
        host=m.host if m and record.op == "run" else record.host,
        git_commit=m.git_commit if m else None,
        note=record.note,
    )
    if m is None or record.op == "delete":
        entry.status = "deleted" if record.op == "delete" else entry.status
        return entry
    entry.done, entry.total = m.done, m.total
    entry.command = list(m.command)
    if record.op == "run":
        for ev in m.evaluations:
            entry.evaluated += ev.run.get("evaluated", 0)
            entry.reused += ev.run.get("reused", 0)
            entry.errors += ev.run.get("errors", 0)
            entry.earlier += ev.run.get("earlier", 0)
            entry.imported += ev.run.get("imported", 0)
        entry.changes = ([f"shard {m.shard}"] if m.shard else []) + changes_since(m, manifest(m.parent))
    elif record.op == "save":
        entry.changes = ["saved by save_session"]
    elif record.op == "merge":
        entry.changes = [record.note or "merged"]
    elif record.op == "rename":
        entry.changes = [record.note or "renamed"]
    elif record.op == "undelete":
        entry.changes = ["undeleted"]
    return entry


def duration(store: Store, revision: Revision) -> float:
    """Seconds spent in runs, from the first run up to ``revision``."""
    total = 0.0
    state = store.refs.read(revision.experiment)
    # The revision and what led to it (on its own line, if the experiment has two heads).
    for record in state.history(revision.record) if state else []:
        if record.op == "run" and record.manifest:
            m = load_manifest(store, record.manifest)
            total += max(m.finished - m.started, 0.0)
    return total
