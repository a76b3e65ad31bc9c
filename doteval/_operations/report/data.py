"""The data a report page is built from, read from the store.

``experiment_report`` reads one revision of an experiment: its manifest, the
manifests of the runs before it (for the metric history), and every result (for
the sample table). ``diff_report`` reads what ``doteval diff`` reads, plus the
results of the changed samples only.

A report is two documents: ``summary`` (header, metrics, charts' numbers, the
diff exactly as ``DiffReport.to_json()`` gives it) and ``rows`` (the sample
table), kept column by column so a hundred thousand samples stay compact: one
array per field, never one object with repeated keys per sample. Values are
made JSON-safe with ``doteval._operations.export.jsonable``; nothing here escapes for HTML
(the renderer does).
"""

from __future__ import annotations

import math
import shlex
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from doteval._objects import Store
from doteval._operations.diff import DiffReport, changed_samples, diff_experiments
from doteval._operations.export import iter_rows, jsonable
from doteval._repository.experiments import open_experiment
from doteval._repository.history import Revision, duration, resolve, run_records
from doteval._repository.manifest import EvaluationRecord, load_manifest
from doteval._repository.results import error_kind, error_line

REPORT_VERSION = 1
KEY_CHARS = 16  # sample keys are shown by prefix, as `doteval show --sample` takes them
MAX_HISTORY = 200  # runs in the metric history charts
MAX_BINS = 20

STATUS_OK, STATUS_FAILED, STATUS_ERROR = 0, 1, 2
DIRECTION = {"regressed": -1, "changed": 0, "improved": 1}


@dataclass
class Report:
    """What a page shows: ``summary`` (small) and ``rows`` (the table, column by column)."""

    kind: str  # "experiment" or "diff"
    title: str
    summary: dict[str, Any]
    rows: dict[str, Any]

    @property
    def row_count(self) -> int:
        return int(self.rows.get("n", 0))


# -- helpers ------------------------------------------------------------------


def iso_time(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts)) if ts else None


def short_node_id(node_id: str) -> str:
    """``dir/eval_x.py::eval_a[p]`` → ``eval_x.py::eval_a[p]``."""
    path, sep, rest = node_id.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _revision_json(store: Store, rev: Revision, status: str) -> dict[str, Any]:
    m = rev.manifest
    return {
        "experiment": rev.experiment,
        "label": rev.label,
        "id": rev.manifest_id,
        "head": rev.is_head,
        "status": status,
        "done": m.done,
        "total": m.total,
        "errors": m.errors,
        "duration": duration(store, rev),
        "started": iso_time(m.started),
        "finished": iso_time(m.finished),
        "host": m.host,
        "git_commit": m.git_commit,
        "command": shlex.join(m.command) if m.command else None,
        "shard": m.shard or None,
    }


def _status(store: Store, rev: Revision) -> str:
    if not rev.is_head:
        return rev.manifest.status
    return open_experiment(store, rev.experiment).status


def _evaluation_json(ev: EvaluationRecord) -> dict[str, Any]:
    return {
        "node_id": ev.node_id,
        "name": short_node_id(ev.node_id),
        "status": ev.status,
        "done": ev.done,
        "total": ev.total,
        "errors": ev.errors,
        "fingerprint": ev.fingerprint,
        "params": ev.params,
        "unfingerprintable": ev.unfingerprintable,
        "columns": ev.columns,
        "line": ev.line,
        "metrics": ev.metrics,
    }


# -- experiment report -------------------------------------------------------


def metric_history(store: Store, rev: Revision, *, limit: int = MAX_HISTORY) -> dict[str, Any]:
    """Each metric's value in every run of the experiment up to ``rev``, oldest first."""
    records = run_records(store, rev.experiment)
    start = next((i for i, r in enumerate(records) if r.id == rev.record.id), 0)
    line = [r for r in records[start:] if r.op != "delete"][:limit][::-1]
    runs: list[dict[str, Any]] = []
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for n, record in enumerate(line):
        assert record.manifest is not None
        m = load_manifest(store, record.manifest)
        runs.append(
            {
                "id": record.manifest,
                "op": record.op,
                "time": iso_time(record.time),
                "status": m.status,
                "done": m.done,
                "total": m.total,
                "errors": m.errors,
                "git_commit": m.git_commit,
            }
        )
        for ev in m.evaluations:
            for metric in ev.metrics:
                key = (ev.node_id, metric["score"], metric["metric"])
                s = series.setdefault(
                    key,
                    {
                        "evaluation": ev.node_id,
                        "score": metric["score"],
                        "metric": metric["metric"],
                        "values": [None] * len(line),
                    },
                )
                s["values"][n] = metric["value"]
    # The metrics of the revision shown first, in its order; metrics it no longer has after.
    order = {
        (ev.node_id, mt["score"], mt["metric"]): i
        for i, (ev, mt) in enumerate((ev, mt) for ev in rev.manifest.evaluations for mt in ev.metrics)
    }
    ordered = sorted(series.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return {"runs": runs, "series": [s for _, s in ordered]}


def histogram(values: list[Any]) -> dict[str, Any] | None:
    """Bins of a score column: true/false counts for booleans, ranges for numbers."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        t = sum(1 for v in values if v)
        return {"kind": "bool", "n": len(values), "bins": [["false", len(values) - t], ["true", t]]}
    numbers = [float(v) for v in values if _is_number(v)]
    if not numbers or len(numbers) < len(values):
        return None  # strings, lists... have no distribution to draw
    lo, hi = min(numbers), max(numbers)
    integers = all(float(v).is_integer() for v in numbers)
    unit = integers and hi - lo < MAX_BINS  # one bin per integer
    bins: list[list[Any]]
    if unit:
        counts = Counter(int(v) for v in numbers)
        bins = [[k, k + 1, counts.get(k, 0)] for k in range(int(lo), int(hi) + 1)]
    elif lo == hi:
        bins = [[lo, hi, len(numbers)]]
    else:
        k = max(1, min(MAX_BINS, math.ceil(math.sqrt(len(numbers)))))
        width = (hi - lo) / k
        counts_k = [0] * k
        for v in numbers:
            counts_k[min(int((v - lo) / width), k - 1)] += 1
        bins = [[lo + i * width, lo + (i + 1) * width, c] for i, c in enumerate(counts_k)]
    mean = sum(numbers) / len(numbers)
    return {
        "kind": "int" if integers else "float",
        "unit": unit,
        "n": len(numbers),
        "min": lo,
        "max": hi,
        "mean": mean,
        "bins": bins,
    }


def experiment_report(store: Store, spec: str) -> Report:
    """Everything the page of one experiment revision (``NAME[@REV][~N]``) shows."""
    rev = resolve(store, spec)
    m = rev.manifest
    evaluations = [_evaluation_json(ev) for ev in m.evaluations]
    ev_index = {ev.node_id: i for i, ev in enumerate(m.evaluations)}
    score_names: list[str] = []
    cols: dict[str, list[Any]] = {
        "ev": [],
        "key": [],
        "status": [],
        "item": [],
        "prompt": [],
        "response": [],
        "error_type": [],
        "error_message": [],
        "traceback": [],
        "metadata": [],
        "duration": [],
    }
    scores: dict[str, list[Any]] = {}
    error_types: list[str] = []
    error_type_index: dict[str, int] = {}
    error_counts: Counter[str] = Counter()
    error_example: dict[str, dict[str, Any]] = {}
    n = 0
    for row in iter_rows(store, rev):
        ev = ev_index[row["evaluation"]]
        error = row["error"] if isinstance(row["error"], dict) else None
        values = row["scores"]
        if error is not None or row["status"] != "ok":
            status = STATUS_ERROR
        elif any(v is False for v in values.values()):
            status = STATUS_FAILED
        else:
            status = STATUS_OK
        cols["ev"].append(ev)
        cols["key"].append(row["sample_key"][:KEY_CHARS])
        cols["status"].append(status)
        columns = m.evaluations[ev].columns
        cols["item"].append(jsonable([row["item"].get(c) for c in columns]))
        cols["prompt"].append(jsonable(row["prompt"]))
        cols["response"].append(jsonable(row["response"]))
        for name in values:
            if name not in scores:
                score_names.append(name)
                scores[name] = [None] * n
        for name, column in scores.items():
            column.append(jsonable(values.get(name)) if status != STATUS_ERROR else None)
        if status == STATUS_ERROR:
            kind = error_kind(error or {})
            if kind not in error_type_index:
                error_type_index[kind] = len(error_types)
                error_types.append(kind)
            error_counts[kind] += 1
            message = str((error or {}).get("message") or "")
            error_example.setdefault(kind, {"message": message, "evaluation": row["evaluation"]})
            cols["error_type"].append(error_type_index[kind])
            cols["error_message"].append(message)
            cols["traceback"].append(jsonable((error or {}).get("traceback")) or None)
        else:
            cols["error_type"].append(None)
            cols["error_message"].append(None)
            cols["traceback"].append(None)
        cols["metadata"].append(jsonable(row["metadata"]) or None)
        d = row["duration"]
        cols["duration"].append(round(d, 6) if _is_number(d) else None)
        n += 1

    histograms = []
    for name in score_names:
        for ev in range(len(evaluations)):
            h = histogram(
                [
                    v
                    for e, s, v in zip(cols["ev"], cols["status"], scores[name])
                    if e == ev and s != STATUS_ERROR
                ]
            )
            if h is not None:
                histograms.append({"evaluation": ev, "score": name, **h})

    errors = [
        {
            "type": kind,
            "count": count,
            "message": error_example[kind]["message"],
            "evaluation": error_example[kind]["evaluation"],
        }
        for kind, count in sorted(error_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    summary = {
        "kind": "experiment",
        "version": REPORT_VERSION,
        "generated": iso_time(time.time()),
        "header": _revision_json(store, rev, _status(store, rev)),
        "evaluations": evaluations,
        "history": metric_history(store, rev),
        "histograms": histograms,
        "errors": errors,
    }
    rows = {
        "n": n,
        "score_names": score_names,
        "error_types": error_types,
        "statuses": ["ok", "failed", "error"],
        **cols,
        "scores": [scores[name] for name in score_names],
    }
    return Report("experiment", f"doteval report: {rev.label}", jsonable(summary), rows)


# -- diff report ----------------------------------------------------------------


def diff_report(store: Store, a_spec: str, b_spec: str, *, seed: int = 0) -> Report:
    """Everything the page comparing A with B shows: the diff and the changed samples."""
    report: DiffReport = diff_experiments(store, a_spec, b_spec, seed=seed)
    diff = jsonable(report.to_json())
    names = {d.name: i for i, d in enumerate(report.evaluations)}
    columns = {d.name: d.b.columns for d in report.evaluations}
    score_names: list[str] = []
    cols: dict[str, list[Any]] = {
        "ev": [],
        "direction": [],
        "item": [],
        "a_key": [],
        "b_key": [],
        "a_response": [],
        "b_response": [],
        "a_error": [],
        "b_error": [],
    }
    a_scores: dict[str, list[Any]] = {}
    b_scores: dict[str, list[Any]] = {}
    n = 0
    for s in changed_samples(store, report):
        cols["ev"].append(names[s["evaluation"]])
        cols["direction"].append(DIRECTION.get(s["direction"], 0))
        cols["item"].append(jsonable([s["item"].get(c) for c in columns[s["evaluation"]]]))
        for side in ("a", "b"):
            data = s[side]
            cols[f"{side}_key"].append(data["key"][:KEY_CHARS])
            cols[f"{side}_response"].append(jsonable(data["response"]))
            err = data["error"] if isinstance(data["error"], dict) else None
            cols[f"{side}_error"].append(error_line(err) if err else None)
            for name in data["scores"]:
                if name not in a_scores:
                    score_names.append(name)
                    a_scores[name] = [None] * n
                    b_scores[name] = [None] * n
        for name in score_names:
            a_scores[name].append(jsonable(s["a"]["scores"].get(name)))
            b_scores[name].append(jsonable(s["b"]["scores"].get(name)))
        n += 1
    compared = {m["score"] for e in diff["evaluations"] for m in e["metrics"]}
    summary = {
        "kind": "diff",
        "version": REPORT_VERSION,
        "generated": iso_time(time.time()),
        "a": _revision_json(store, report.a, _status(store, report.a)),
        "b": _revision_json(store, report.b, _status(store, report.b)),
        "evaluation_names": [short_node_id(d.name) for d in report.evaluations],
        "evaluation_columns": [d.b.columns for d in report.evaluations],
        "diff": diff,
        "changed": {
            "total": n,
            "regressed": cols["direction"].count(-1),
            "improved": cols["direction"].count(1),
            "changed": cols["direction"].count(0),
        },
    }
    # Compared scores first: they decide the direction of a change.
    position = {name: i for i, name in enumerate(score_names)}
    score_names.sort(key=lambda name: (name not in compared, position[name]))
    rows = {
        "n": n,
        "score_names": score_names,
        "compared": [name in compared for name in score_names],
        **cols,
        "a_scores": [a_scores[name] for name in score_names],
        "b_scores": [b_scores[name] for name in score_names],
    }
    title = f"doteval diff: {report.a.label} vs {report.b.label}"
    return Report("diff", title, jsonable(summary), rows)
