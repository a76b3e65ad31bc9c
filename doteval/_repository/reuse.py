"""Finished results an experiment's history holds, found by sample key.

A run matches its dataset against the head's view first (``ExperimentRun._match``).
What is still pending may have a finished result elsewhere: in an older manifest of
the experiment (an earlier line: ``--rerun-changed`` to other params and back), or in
another experiment's history (``--reuse-from``). Within one code fingerprint and
params digest, equal (item, occurrence) tokens are equal sample keys, so only the
evaluation records with the run's fingerprint and params are read, and their tables
only for the rows the head's view does not hold already: a history in which nothing
can match decodes no table.

A reused result is not copied: the run's view names the row of the table that holds
it, and the evaluation record names where that table came from (``origins``). Errors
are never reused. This module writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doteval._objects import Store
from doteval._repository.manifest import Manifest, load_manifest
from doteval._repository.sample_tables import FLAG_OK, Part, SampleTable, load_parts, token
from doteval.errors import DotevalError


@dataclass(frozen=True)
class Earlier:
    """A finished result found in history: row ``row`` of ``part``'s table."""

    part: Part
    row: int
    origin: dict[str, Any]  # the run that evaluated it: experiment, manifest, finished


def history(store: Store, name: str) -> list[tuple[str, Manifest]]:
    """The manifests of an experiment's lines, oldest first, each once; nothing from before
    a deletion (a deleted experiment starts afresh) or a ``save_session`` (what it left out
    is forgotten: the next run evaluates it again)."""
    state = store.refs.read(name)
    if state is None:
        return []
    ids: dict[str, float] = {}
    for head in state.heads:
        for record in state.history(head):  # newest first
            if record.deleted:
                break
            if record.manifest is not None:
                ids.setdefault(record.manifest, record.time)
            if record.op == "save":
                break
    out = []
    for manifest_id in sorted(ids, key=lambda m: ids[m]):
        try:
            out.append((manifest_id, load_manifest(store, manifest_id)))
        except DotevalError:
            continue  # a damaged manifest: its results are not reused, fsck names it
    return out


def find_earlier(
    store: Store,
    manifests: list[tuple[str, Manifest]],
    key: tuple[str, str],
    wanted: set[bytes],
    have: dict[str, set[int]],
    known: dict[str, SampleTable],
) -> dict[bytes, Earlier]:
    """Token -> the newest finished result of ``manifests`` (oldest first) under ``key``
    (fingerprint, params digest), for the tokens ``wanted``; ``have`` are the rows (by table)
    the caller holds already, ``known`` tables it has read."""
    if not wanted:
        return {}
    found: dict[str, tuple[Part, dict[str, Any], set[int]]] = {}
    read: set[str] = set()  # a run that left an evaluation as it was names the same view
    for manifest_id, m in manifests:
        for ev in m.evaluations:
            if (ev.fingerprint, ev.params_digest) != key or ev.entries is None or ev.entries in read:
                continue
            read.add(ev.entries)
            try:
                parts = load_parts(store, ev.entries)
            except DotevalError:
                continue
            for part in parts:
                origin = ev.origins.get(part.table_id) or {
                    "experiment": m.experiment,
                    "manifest": manifest_id,
                    "finished": m.finished,
                }
                _part, _origin, rows = found.setdefault(part.table_id, (part, origin, set()))
                rows.update(part.rows)
    out: dict[bytes, Earlier] = {}
    for table_id, (part, origin, rows) in reversed(found.items()):  # the newest result wins
        rows -= have.get(table_id, set())
        if not rows:
            continue
        try:
            table = known.get(table_id) or SampleTable.load(store, table_id)
        except DotevalError:
            continue
        if len(table) != part.length:
            continue
        matched = {}
        for r in sorted(rows):
            if table.flags[r] != FLAG_OK:
                continue  # an error is evaluated again, never reused
            t = token(table.items[r], table.occurrences.get(r, 0))
            if t in wanted and t not in out:
                matched[t] = Earlier(part, r, origin)
        if matched and _readable(store, part):
            out.update(matched)
    return out


def _readable(store: Store, part: Part) -> bool:
    """Whether a table's results can still be read: reuse nothing damaged."""
    try:
        store.objects.get_bytes(part.details_id)
    except DotevalError:
        return False
    return True
