"""Joining two lines of one experiment after stores were merged.

When the same experiment ran in two stores (shards on several machines, or a
laptop and a server) and the stores were copied together, the experiment has
two heads. If every evaluation they share has the same code, params and line
of results, their samples can be joined without mixing anything: the union of
their samples, each item once (an ok result wins over an error). ``settle``
then writes a merged manifest and a merge record naming both heads. If the
code or params differ, nothing is joined: both lines stay, and are reported.
"""

from __future__ import annotations

import time

from doteval._objects import Store
from doteval._repository.manifest import EvaluationRecord, Manifest
from doteval._repository.run_journal import STATUS_FAILED, final_status
from doteval._repository.sample_tables import (
    FLAG_OK,
    Part,
    SampleTable,
    load_view,
    merge_parts,
    open_view,
    save_view,
)


def mergeable(manifests: list[Manifest]) -> bool:
    by_node: dict[str, EvaluationRecord] = {}
    for m in manifests:
        for ev in m.evaluations:
            seen = by_node.setdefault(ev.node_id, ev)
            if not seen.same_code_and_params(ev) or seen.line != ev.line:
                return False
    return True


def merge_manifests(store: Store, manifests: list[Manifest], parent_id: str) -> Manifest:
    """One manifest holding the union of the samples of ``manifests`` (newest first)."""
    order: list[str] = []
    groups: dict[str, list[EvaluationRecord]] = {}
    for m in manifests:
        for ev in m.evaluations:
            if ev.node_id not in groups:
                order.append(ev.node_id)
            groups.setdefault(ev.node_id, []).append(ev)
    evaluations = []
    for node in order:
        evs = groups[node]
        chosen: dict[bytes, tuple[int, int, bool]] = {}  # token -> (line, view position, ok)
        views = [load_view(store, ev) for ev in evs]
        for n, view in enumerate(views):  # newest first: the first ok result of an item wins
            for i, (t, flag) in enumerate(zip(view.tokens(), view.flags)):
                have = chosen.get(t)
                if have is None or (not have[2] and flag == FLAG_OK):
                    chosen[t] = (n, i, flag == FLAG_OK)
        picks: list[list[int]] = [[] for _ in views]
        for n, i, _ok in chosen.values():
            picks[n].append(i)
        parts: list[Part] = merge_parts(view.select(p) for view, p in zip(views, picks))
        known: dict[str, SampleTable] = {}
        for view in views:
            known.update({p.table_id: t for p, t in zip(view.parts, view.tables)})
        merged = open_view(store, parts, (evs[0].fingerprint, evs[0].params_digest), known)
        first = evs[0]
        named = {p.table_id for p in parts if p.rows}
        origins = {t: o for ev in reversed(evs) for t, o in ev.origins.items() if t in named}
        record = EvaluationRecord(
            node_id=node,
            fingerprint=first.fingerprint,
            params_digest=first.params_digest,
            params=first.params,
            unfingerprintable=first.unfingerprintable,
            columns=first.columns,
            code=first.code,
            line=first.line,
            entries=save_view(store, parts),
            total=max(max(ev.total for ev in evs), len(merged)),
            done=merged.done,
            errors=merged.errors,
            metrics=merged.summary(),
            run={},
            status=first.status,
            origins=origins,
        )
        evaluations.append(record)
    newest = manifests[0]
    ended = STATUS_FAILED if any(m.status == STATUS_FAILED and m.errors == 0 for m in manifests) else ""
    return Manifest(
        experiment=newest.experiment,
        parent=parent_id,
        status=final_status(ended, evaluations),
        started=min(m.started for m in manifests),
        finished=time.time(),
        host=newest.host,
        git_commit=newest.git_commit,
        command=newest.command,
        evaluations=evaluations,
        note=f"merged {len(manifests)} lines"
        + (
            f" (shards {', '.join(shards)})"
            if (shards := sorted({m.shard for m in manifests if m.shard}))
            else ""
        ),
    )
