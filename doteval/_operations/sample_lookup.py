"""Looking at single samples: find by key prefix, group errors, explain a key.

These read one evaluation's sample tables and only the results they show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from doteval._objects import Store
from doteval._repository.changes import changed_params
from doteval._repository.history import run_records
from doteval._repository.manifest import EvaluationRecord, Manifest, load_manifest
from doteval._repository.results import result_fields
from doteval._repository.sample_tables import FLAG_ERROR, View, load_parts, load_view, token
from doteval.errors import DotevalError, NotFoundError, UsageError


@dataclass
class SampleRef:
    evaluation: EvaluationRecord
    table: View
    index: int

    @property
    def key(self) -> str:
        return self.table.key(self.index).hex()


def find_sample(store: Store, manifest: Manifest, prefix: str) -> SampleRef:
    prefix = prefix.lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError(
            f"sample key prefix {prefix!r}: give at least 4 hex digits (see `doteval show NAME --full`)"
        )
    found: list[SampleRef] = []
    raw = bytes.fromhex(prefix[: len(prefix) // 2 * 2])
    for ev in manifest.evaluations:
        table = load_view(store, ev)
        for i, key in enumerate(table.keys):
            if key.startswith(raw) and key.hex().startswith(prefix):
                found.append(SampleRef(ev, table, i))
    if not found:
        raise NotFoundError(f"no sample with key {prefix} in {manifest.experiment!r}")
    if len(found) > 1:
        raise UsageError(f"{len(found)} samples have keys starting with {prefix}: give more digits")
    return found[0]


def sample_record(store: Store, ref: SampleRef) -> dict[str, Any]:
    return {
        "evaluation": ref.evaluation.node_id,
        "key": ref.key,
        "ok": ref.table.flags[ref.index] != FLAG_ERROR,
        **result_fields(ref.table.result(ref.index), ref.evaluation.columns),
    }


def iter_errors(store: Store, manifest: Manifest) -> Iterator[tuple[EvaluationRecord, str, dict[str, Any]]]:
    """(evaluation, sample key, error) for every errored sample."""
    for ev in manifest.evaluations:
        if not ev.errors:
            continue
        table = load_view(store, ev)
        for i in range(len(table)):
            if table.flags[i] == FLAG_ERROR:
                record = table.result(i)
                yield ev, table.key(i).hex(), record.get("error") or {}


def errors_by_type(store: Store, manifest: Manifest) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for ev, key, error in iter_errors(store, manifest):
        kind = str(error.get("type") or "")  # as recorded: "" for Result(error="...")
        groups.setdefault(kind, []).append(
            {
                "evaluation": ev.node_id,
                "key": key,
                "message": error.get("message", ""),
                "traceback": error.get("traceback", ""),
            }
        )
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def why(store: Store, experiment: str, manifest_id: str, ref: SampleRef) -> dict[str, Any]:
    """Where this sample's result came from (``origin``), and which part of its key differs
    from the nearest earlier result of its item."""
    return {
        **_why_key(store, experiment, manifest_id, ref),
        "origin": origin(store, experiment, manifest_id, ref),
    }


def origin(store: Store, experiment: str, manifest_id: str, ref: SampleRef) -> dict[str, Any]:
    """The run that evaluated this sample's result, and how it came into this revision:
    ``evaluated`` by a run of this line, reused from an ``earlier line`` of the experiment, or
    reused from another ``experiment`` (``--reuse-from``)."""
    table_id = ref.table.parts[ref.table.where[ref.index][0]].table_id
    recorded = ref.evaluation.origins.get(table_id)
    if recorded is not None:
        same = recorded["experiment"] == experiment
        return {
            "how": "earlier line" if same else "experiment",
            "experiment": recorded["experiment"],
            "manifest": recorded["manifest"],
            "time": recorded["finished"],
        }
    # Not reused: the oldest revision of this line whose view holds the table sealed it.
    found: tuple[str, float] | None = None
    seen_current = False
    for record in run_records(store, experiment):
        seen_current = seen_current or record.manifest == manifest_id
        if not seen_current or record.manifest is None:
            continue
        try:
            older = load_manifest(store, record.manifest)
            holds = any(
                p.table_id == table_id
                for ev in older.evaluations
                if ev.node_id == ref.evaluation.node_id
                for p in load_parts(store, ev.entries)
            )
        except DotevalError:
            break
        if not holds:
            break
        found = (record.manifest, older.finished)
    return {
        "how": "evaluated",
        "experiment": experiment,
        "manifest": found[0] if found else manifest_id,
        "time": found[1] if found else None,
    }


def _why_key(store: Store, experiment: str, manifest_id: str, ref: SampleRef) -> dict[str, Any]:
    """Which part of this sample's key differs from the nearest earlier result of its item."""
    ev = ref.evaluation
    item = token(ref.table.items[ref.index], ref.table.occurrences[ref.index])
    seen_current = False
    for record in run_records(store, experiment):
        if not seen_current:
            seen_current = record.manifest == manifest_id
            continue
        assert record.manifest is not None
        older = load_manifest(store, record.manifest)
        for old_ev in older.evaluations:
            table = load_view(store, old_ev)
            position = _find_item(table, item)
            if position is None:
                continue
            old_key = table.key(position).hex()
            parts = []
            if old_ev.node_id != ev.node_id:
                parts.append(f"evaluation: {old_ev.node_id} -> {ev.node_id}")
            if old_ev.fingerprint != ev.fingerprint:
                parts.append(f"code: fingerprint {old_ev.fingerprint[:12]} -> {ev.fingerprint[:12]}")
            if old_ev.params_digest != ev.params_digest:
                names = changed_params(old_ev.params, ev.params)
                parts.append(f"params: {', '.join(names) or 'values'} changed")
            if old_key == ref.key:
                summary = "same key: this result was reused from (or equals) the earlier run"
                if table.flags[position] == FLAG_ERROR:
                    summary = "same key: the earlier result was an error, so the sample ran again"
            elif parts:
                summary = "the key differs in " + "; ".join(parts)
            else:
                summary = "same code, params and item: a new line of results (--rerun-changed)"
            return {
                "key": ref.key,
                "earlier_key": old_key,
                "earlier_manifest": record.manifest,
                "earlier_time": older.finished,
                "differs": parts,
                "summary": summary,
            }
    return {
        "key": ref.key,
        "earlier_key": None,
        "earlier_manifest": None,
        "earlier_time": None,
        "differs": [],
        "summary": "no earlier result of this item in the experiment's history",
    }


def _find_item(table: View, item: bytes) -> int | None:
    for i, t in enumerate(table.tokens()):
        if t == item:
            return i
    return None
