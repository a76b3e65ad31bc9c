"""Reading and changing experiments as a whole: list, open, samples, delete.

Opening an experiment first recovers runs that died without sealing (when no
live process holds its lock), so every command sees the same, complete state; a
reader does so in memory and never writes (see ``Repository.ref_state``).
Listing and opening read refs and manifests only; samples are read from the
sample tables, and results only when asked for. Deleting, renaming, undeleting
and keeping a line are each one transaction of the repository.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from doteval._objects import ObjectId, Store, check_name
from doteval._objects.journal import read_journal
from doteval._objects.refs import RefRecord
from doteval._repository.history import parse_spec
from doteval._repository.manifest import EvaluationRecord, Manifest, load_manifest
from doteval._repository.repository import Repository
from doteval._repository.run_journal import STATUS_INTERRUPTED, read_head
from doteval._repository.sample_tables import FLAG_OK, load_view
from doteval.errors import DotevalError, ExperimentNotFoundError, UsageError

STATUS_RUNNING = "running"
STATUS_DAMAGED = "damaged"  # listed, but its records cannot be read (see ``ExperimentInfo.damage``)


@dataclass
class ExperimentInfo:
    name: str
    status: str
    manifest: Manifest | None
    manifest_id: ObjectId | None
    holder: dict[str, Any] | None = None
    diverged: bool = False
    deleted: bool = False
    live: LiveProgress | None = None  # what a running run has journaled so far
    damage: str = ""  # why the experiment cannot be read (status ``damaged``)
    unsealed: bool = False  # its head is a dead run's journal, sealed in memory for a reader

    @property
    def total(self) -> int:
        if self.manifest is None:
            return self.live.total if self.live else 0
        return self.manifest.total

    @property
    def done(self) -> int:
        if self.manifest is None:
            return self.live.ok if self.live else 0
        return self.manifest.done

    @property
    def errors(self) -> int:
        if self.manifest is None:
            return self.live.errors if self.live else 0
        return self.manifest.errors

    @property
    def last_updated(self) -> float:
        if self.live is not None and self.live.updated:
            return self.live.updated
        return self.manifest.finished if self.manifest else 0.0


@dataclass
class LiveProgress:
    """A live run's journal read so far (a prefix: it is being written)."""

    started: float = 0.0
    updated: float = 0.0
    total: int = 0  # samples of the evaluations begun
    ok: int = 0
    errors: int = 0


def live_progress(store: Store, name: str) -> LiveProgress | None:
    journals = store.journals(name)
    if not journals:
        return None
    live = LiveProgress()
    for path in journals:
        try:
            records, _valid = read_journal(path)
            live.updated = max(live.updated, path.stat().st_mtime)
        except (DotevalError, OSError):
            continue
        for rec in records:
            try:
                kind = rec[0]
                if kind == "r":
                    if rec[2] == FLAG_OK:
                        live.ok += 1
                    else:
                        live.errors += 1
                elif kind == "view":
                    live.total += int(rec[2].get("total") or 0)
                elif kind == "start":
                    live.started = float(rec[1].get("started") or 0.0)
            except (AttributeError, IndexError, KeyError, TypeError, ValueError):
                continue  # progress is a best guess; the seal checks the journal for real
    return live


@dataclass
class Sample:
    evaluation: str
    key: str
    ok: bool
    record: dict[str, Any]


def open_experiment(store: Store, name: str, *, include_deleted: bool = False) -> ExperimentInfo:
    check_name(name)
    state = Repository(store).ref_state(name)
    holder = store.live_holder(name)
    head = read_head(store, name, state)
    if head.state is None and holder is None:
        live = live_progress(store, name)  # a first run that could not be sealed (a full disk)
        if live is None:
            raise ExperimentNotFoundError(name)
        return ExperimentInfo(
            name=name, status=STATUS_INTERRUPTED, manifest=None, manifest_id=None, live=live
        )
    deleted = head.state is not None and head.state.head.deleted
    if deleted and holder is not None and holder.get("purpose", "run") == "run":
        deleted = False  # run again under its name: a new experiment, running from nothing
    if deleted and not include_deleted:
        raise ExperimentNotFoundError(name)
    manifest, manifest_id = head.manifest, head.manifest_id
    if deleted and head.state is not None:
        # A deletion record names the manifest it deleted, so it stays recoverable.
        manifest_id = head.state.head.manifest
        manifest = load_manifest(store, manifest_id) if manifest_id else None
    status = manifest.status if manifest else "interrupted"
    if holder is not None:
        status = STATUS_RUNNING
    return ExperimentInfo(
        name=name,
        status=status,
        manifest=manifest,
        manifest_id=manifest_id,
        holder=holder,
        diverged=bool(head.state and head.state.diverged),
        deleted=deleted,
        live=live_progress(store, name) if holder is not None else None,
        unsealed=head.state is not None and head.state.head.id in store.refs.unwritten(name),
    )


def list_experiments(store: Store, *, include_deleted: bool = False) -> list[ExperimentInfo]:
    """Every experiment; one whose records cannot be read is listed as damaged, and never
    keeps the others from being listed."""
    out = []
    for name in store.experiment_names():
        try:
            info = open_experiment(store, name, include_deleted=include_deleted)
        except ExperimentNotFoundError:
            continue
        except DotevalError as e:
            info = ExperimentInfo(name, STATUS_DAMAGED, None, None, damage=str(e))
        out.append(info)
    out.sort(key=lambda i: i.last_updated, reverse=True)
    return out


def iter_samples(
    store: Store, evaluation: EvaluationRecord, *, with_records: bool = True
) -> Iterator[Sample]:
    view = load_view(store, evaluation)
    for i in range(len(view)):
        record = view.result(i) if with_records else {}
        yield Sample(evaluation.node_id, view.key(i).hex(), view.flags[i] == FLAG_OK, record)


def _deletion(store: Store, name: str) -> RefRecord | None:
    """The record that deleted ``name``; None when it is not deleted (or has no readable ref)."""
    try:
        state = store.refs.read(name)
    except DotevalError:
        return None
    return state.head if state is not None and state.head.deleted else None


def missing_experiment(store: Store, name: str, *, deleted: bool = False) -> ExperimentNotFoundError:
    """The error for an experiment not found by ``name``: it says when ``name`` was deleted or
    renamed, and offers the names that look like it (a typo), as typer does for commands.

    ``deleted``: look among deleted experiments (what ``undelete`` can bring back).
    """
    record = None if deleted else _deletion(store, name)
    if record is not None:
        renamed = record.note[len("renamed to ") :] if record.note.startswith("renamed to ") else ""
        error = ExperimentNotFoundError(name, deleted=True, renamed_to=renamed)
    else:
        close = difflib.get_close_matches(name, [n for n in store.experiment_names() if n != name], n=3)
        wanted = tuple(n for n in close if (_deletion(store, n) is not None) == deleted)
        error = ExperimentNotFoundError(name, close=wanted)
    error.explained = True
    return error


def unused_name(store: Store, name: str) -> str:
    """A new experiment name after ``name`` that the store does not hold: NAME_v2, NAME_v3..."""
    match = re.fullmatch(r"(.+)_v(\d+)", name)
    base, n = (match.group(1), int(match.group(2)) + 1) if match else (name, 2)
    taken = set(store.experiment_names())
    while f"{base}_v{n}" in taken:
        n += 1
    return f"{base}_v{n}"


def delete_experiment(store: Store, name: str) -> Manifest | None:
    """Move the ref to a deletion record; history stays until gc expires it."""
    check_name(name)
    with Repository(store).transaction(name, purpose="delete") as tx:
        head = tx.head
        if head.state is None or head.state.head.deleted:
            raise ExperimentNotFoundError(name)
        tx.commit(head.manifest_id, op="delete")
        return head.manifest


def rename_experiment(store: Store, old: str, new: str) -> Manifest | None:
    """Give an experiment a new name; the old name's history stays, marked deleted."""
    check_name(old)
    check_name(new)
    if old == new:
        raise UsageError(f"{old!r} already has that name")
    with Repository(store).transactions(old, new, purpose="rename") as (source, target):
        src = source.head
        if src.state is None or src.state.head.deleted or src.manifest_id is None:
            raise ExperimentNotFoundError(old)
        dst = target.state
        if dst is not None and not dst.head.deleted:
            raise UsageError(
                f"experiment {new!r} already exists",
                hint=f"pick another name, or `doteval delete {new}` first",
            )
        # NEW gets OLD's records (immutable copies), so its history is OLD's.
        target.adopt(list(src.state.records.values()), old)
        target.commit(
            src.manifest_id,
            op="rename",
            expected=src.record_id,
            note=f"renamed from {old}",
            merged=(dst.head.id,) if dst else (),
        )
        source.commit(src.manifest_id, op="delete", note=f"renamed to {new}")
        return src.manifest


def undelete_experiment(store: Store, name: str) -> Manifest:
    """Bring back a deleted experiment as it was when deleted, its history with it.

    Refused when ``name`` is taken (it was not deleted, or was run again since). Like every
    change, a new ref record written in a transaction of the repository.
    """
    check_name(name)
    with Repository(store).transaction(name, purpose="undelete") as tx:
        state = tx.state
        if state is None:
            raise missing_experiment(store, name, deleted=True)
        if not state.head.deleted:
            raise UsageError(
                f"experiment {name!r} exists: there is nothing to undelete",
                hint=f"`doteval log {name}` lists its history; `doteval show {name}@REV` reads an older revision",
            )
        manifest_id = state.head.manifest
        if manifest_id is None:
            raise ExperimentNotFoundError(name)
        manifest = load_manifest(store, manifest_id)
        tx.commit(manifest_id, op="undelete", note="undeleted")
        return manifest


def keep_line(store: Store, spec: str) -> tuple[str, Manifest, list[str]]:
    """Make the line whose newest revision is ``spec`` (``NAME@REV``) the experiment's head.

    For lines that cannot be joined (different code or params in two stores). A merge
    record names every head, so the other lines stay in the history (``doteval log``,
    ``NAME@REV``); the next run continues the kept line. Returns the name, the kept
    manifest and the manifest ids of the lines left behind.
    """
    name, rev, steps = parse_spec(spec)
    if rev is None or steps:
        raise UsageError(
            f"give the line to keep as NAME@REV, the newest revision of that line (not {spec!r})",
            hint=f"`doteval log {name}` lists both lines",
        )
    # The transaction seals dead runs and joins the lines that can be joined first.
    with Repository(store).transaction(name, purpose="keep") as tx:
        state = tx.state
        if state is None:
            raise ExperimentNotFoundError(name)
        heads = [h for h in state.heads if h.manifest and not h.deleted]
        if not state.diverged:
            raise UsageError(f"experiment {name!r} has one line: there is nothing to choose")
        chosen = [h for h in heads if h.manifest is not None and h.manifest.startswith(rev)]
        if len(chosen) != 1:
            newest = ", ".join(f"{name}@{h.manifest[:10]}" for h in heads if h.manifest)
            raise UsageError(
                f"{rev} is {'ambiguous' if chosen else 'not the newest revision of a line'} of {name!r}",
                hint=f"the lines end at {newest}",
            )
        keep = chosen[0]
        assert keep.manifest is not None
        others = [h for h in state.heads if h.id != keep.id]
        tx.commit(
            keep.manifest,
            op="merge",
            expected=keep.id,
            note=f"kept the line of {keep.manifest[:10]}",
            merged=tuple(h.id for h in others),
        )
        return name, load_manifest(store, keep.manifest), [h.manifest or h.id for h in others]
