"""Summary metrics of an evaluation, computed from its score columns.

Each score of a result names the metrics that aggregate it (``accuracy`` for
booleans, ``mean`` for numbers, or those given to ``@evaluator``); the summary
is one value per (score, metric) over the samples without error, with ``n``, the
number of samples it covers. Errored samples are left out, not counted as wrong
(the original doteval counted them as wrong): every view says so next to the
value, as ``coverage`` words it. A metric name
this process does not know (a custom metric defined in a module not imported
here) is reported without a value rather than guessed.
"""

from __future__ import annotations

import math
from typing import Any

from doteval.errors import DotevalError


def summarize_columns(values: dict[str, list[Any]], metrics: dict[str, list[str]]) -> list[dict[str, Any]]:
    from doteval.metrics import get_metric

    summary = []
    for name in sorted(values):
        for metric_name in metrics.get(name, []):
            try:
                value: float | None = float(get_metric(metric_name)(values[name]))
                if value is not None and math.isnan(value):
                    value = None
            except (DotevalError, TypeError, ValueError, ZeroDivisionError):
                value = None
            summary.append({"score": name, "metric": metric_name, "value": value, "n": len(values[name])})
    return summary


def coverage(n: int | None, *, done: int, errors: int, total: int) -> str:
    """Which samples a metric covers: ``2 of 4 samples; 2 errors not scored``.

    ``n`` is the number of values the metric was computed over (None for a
    summary stored before doteval recorded it: then every sample without error).
    """
    n = done if n is None else n
    noun = "sample" if total == 1 else "samples"
    left = []
    if errors:
        left.append(f"{errors} error{'s' if errors != 1 else ''} not scored")
    if done - n > 0:
        left.append(f"{done - n} without this score")
    if total - done - errors > 0:
        left.append(f"{total - done - errors} not run yet")
    return f"{n} of {total} {noun}" + (f"; {', '.join(left)}" if left else "")


def scores_of(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A stored result's score values, and the metrics each score names."""
    values: dict[str, Any] = {}
    metrics: dict[str, list[str]] = {}
    if record.get("error"):
        return values, metrics
    for score in record.get("scores") or ():
        name = score.get("name")
        if isinstance(name, str):
            values[name] = score.get("value")
            if score.get("metrics"):
                metrics[name] = list(score["metrics"])
    return values, metrics
