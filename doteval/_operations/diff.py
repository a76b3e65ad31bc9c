"""Comparing two experiments sample by sample.

Samples of A and B are paired by their dataset item (the item's canonical
encoding and its occurrence among equal items, read from the sample tables), so a comparison
works across code versions and params. For each evaluation and each score that
a mean summarises (``accuracy``, ``mean``), it reports A, B and the delta over
the paired samples with a paired-bootstrap confidence interval, and for binary
scores the improved / regressed / unchanged counts and an exact McNemar
p-value. Reading a diff touches manifests and sample tables; results are read
only for the changed samples a caller asks to see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from doteval._objects import Store
from doteval._operations.stats import PairedComparison, compare_paired
from doteval._repository.changes import explain_code_change, params_diff
from doteval._repository.history import Revision, resolve
from doteval._repository.manifest import EvaluationRecord
from doteval._repository.results import result_fields
from doteval._repository.sample_tables import FLAG_OK, View, load_view

MEAN_METRICS = ("accuracy", "mean")
ALPHA = 0.05


@dataclass
class MetricDiff:
    score: str
    metric: str
    comparison: PairedComparison

    @property
    def significant(self) -> bool:
        c = self.comparison
        if c.n == 0:
            return False
        if c.binary and c.p_value is not None:
            return c.p_value < ALPHA
        return c.ci_low > 0 or c.ci_high < 0

    @property
    def regressed(self) -> bool:
        return self.significant and self.comparison.delta < 0

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "score": self.score,
            "metric": self.metric,
            "n": c.n,
            "a": _num(c.mean_a),
            "b": _num(c.mean_b),
            "delta": _num(c.delta),
            "ci": [_num(c.ci_low), _num(c.ci_high)],
            "confidence": c.confidence,
            "bootstrap": {"resamples": c.resamples, "method": c.method},
            "binary": c.binary,
            "improved": c.improved,
            "regressed": c.regressed,
            "unchanged": c.unchanged,
            "p_value": c.p_value,
            "significant": self.significant,
            "significant_regression": self.regressed,
        }


@dataclass
class EvaluationDiff:
    a: EvaluationRecord
    b: EvaluationRecord
    pairs: list[tuple[int, int]]
    only_a: int
    only_b: int
    metrics: list[MetricDiff] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    table_a: View | None = field(default=None, repr=False)
    table_b: View | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        if self.a.node_id == self.b.node_id:
            return self.a.node_id
        return f"{self.a.node_id} vs {self.b.node_id}"

    @property
    def code_changed(self) -> bool:
        return self.a.fingerprint != self.b.fingerprint

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluation": self.name,
            "a": self.a.node_id,
            "b": self.b.node_id,
            "paired": len(self.pairs),
            "only_a": self.only_a,
            "only_b": self.only_b,
            "code_changed": self.code_changed,
            "code_diff": self.code,
            "params_changed": self.params,
            "metrics": [m.to_json() for m in self.metrics],
        }


@dataclass
class DiffReport:
    a: Revision
    b: Revision
    evaluations: list[EvaluationDiff]
    only_in_a: list[str]
    only_in_b: list[str]
    seed: int

    @property
    def regressions(self) -> list[tuple[EvaluationDiff, MetricDiff]]:
        return [(e, m) for e in self.evaluations for m in e.metrics if m.regressed]

    @property
    def nothing_in_common(self) -> bool:
        return not any(e.pairs for e in self.evaluations)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": {"experiment": self.a.experiment, "id": self.a.manifest_id, "label": self.a.label},
            "b": {"experiment": self.b.experiment, "id": self.b.manifest_id, "label": self.b.label},
            "seed": self.seed,
            "alpha": ALPHA,
            "evaluations": [e.to_json() for e in self.evaluations],
            "evaluations_only_in_a": self.only_in_a,
            "evaluations_only_in_b": self.only_in_b,
            "nothing_in_common": self.nothing_in_common,
            "significant_regressions": [
                {"evaluation": e.name, "score": m.score, "metric": m.metric} for e, m in self.regressions
            ],
        }


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def pair_evaluations(
    a: list[EvaluationRecord], b: list[EvaluationRecord]
) -> tuple[list[tuple[EvaluationRecord, EvaluationRecord]], list[str], list[str]]:
    by_node = {e.node_id: e for e in b}
    pairs = [(ea, by_node[ea.node_id]) for ea in a if ea.node_id in by_node]
    only_a = [e.node_id for e in a if e.node_id not in by_node]
    matched_b = {eb.node_id for _, eb in pairs}
    only_b = [e.node_id for e in b if e.node_id not in matched_b]
    if not pairs and len(a) == 1 and len(b) == 1:  # one evaluation each, renamed
        return [(a[0], b[0])], [], []
    return pairs, only_a, only_b


def pair_samples(ta: View, tb: View) -> list[tuple[int, int]]:
    """Positions of the same item (and occurrence) in both views: the same sample, whatever
    code or params computed it."""
    index_a = {t: n for n, t in enumerate(ta.tokens())}
    pairs = []
    for n, t in enumerate(tb.tokens()):
        ia = index_a.get(t)
        if ia is not None:
            pairs.append((ia, n))
    return pairs


def _numeric(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def diff_experiments(store: Store, a_spec: str, b_spec: str, *, seed: int = 0) -> DiffReport:
    ra, rb = resolve(store, a_spec), resolve(store, b_spec)
    pairs, only_a, only_b = pair_evaluations(ra.manifest.evaluations, rb.manifest.evaluations)
    out = []
    for ea, eb in pairs:
        ta, tb = load_view(store, ea), load_view(store, eb)
        sample_pairs = pair_samples(ta, tb)
        d = EvaluationDiff(
            ea,
            eb,
            sample_pairs,
            len(ta) - len(sample_pairs),
            len(tb) - len(sample_pairs),
            table_a=ta,
            table_b=tb,
        )
        if ea.fingerprint != eb.fingerprint:
            d.code = explain_code_change(_code(store, ea), _code(store, eb))
        if ea.params_digest != eb.params_digest:
            d.params = params_diff(ea.params, eb.params)
        for score in sorted(set(ta.scores) & set(tb.scores)):
            metric_names = ta.metrics.get(score) or tb.metrics.get(score) or []
            metric = next((m for m in metric_names if m in MEAN_METRICS), None)
            if metric is None:
                continue
            col_a, col_b = ta.scores[score], tb.scores[score]
            va, vb = [], []
            for ia, ib in sample_pairs:
                if ta.flags[ia] != FLAG_OK or tb.flags[ib] != FLAG_OK:
                    continue
                x, y = _numeric(col_a[ia]), _numeric(col_b[ib])
                if x is not None and y is not None:
                    va.append(x)
                    vb.append(y)
            d.metrics.append(MetricDiff(score, metric, compare_paired(va, vb, seed=seed)))
        out.append(d)
    return DiffReport(ra, rb, out, only_a, only_b, seed)


def _code(store: Store, ev: EvaluationRecord) -> dict[str, Any]:
    return {} if ev.code is None else dict(store.objects.get(ev.code))


def changed_samples(
    store: Store, report: DiffReport, *, regressions_only: bool = False
) -> Iterator[dict[str, Any]]:
    """Paired samples whose compared scores differ (or got worse), with both results."""
    for d in report.evaluations:
        names = [m.score for m in d.metrics]
        assert d.table_a is not None and d.table_b is not None
        for ia, ib in d.pairs:
            ok_a, ok_b = d.table_a.flags[ia] == FLAG_OK, d.table_b.flags[ib] == FLAG_OK
            direction = 0
            changed = ok_a != ok_b
            for name in names:
                x = _numeric(d.table_a.scores[name][ia]) if ok_a else None
                y = _numeric(d.table_b.scores[name][ib]) if ok_b else None
                if x != y:
                    changed = True
                    if x is not None and y is not None:
                        direction = direction or (1 if y > x else -1)
            if ok_a and not ok_b:
                direction = -1
            elif ok_b and not ok_a:
                direction = direction or 1
            if not changed or (regressions_only and direction >= 0):
                continue
            rec_a, rec_b = d.table_a.result(ia), d.table_b.result(ib)
            yield {
                "evaluation": d.name,
                "item": dict(zip(d.b.columns, rec_b.get("item") or ())),
                "direction": "improved" if direction > 0 else "regressed" if direction < 0 else "changed",
                "a": _side(d.table_a, ia, rec_a),
                "b": _side(d.table_b, ib, rec_b),
            }


def _side(table: View, i: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"key": table.key(i).hex(), **result_fields(record, fields=("response", "scores", "error"))}
