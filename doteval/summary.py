"""Summary metrics of an evaluation, computed from its score columns.

Each score of a result names the metrics that aggregate it (``accuracy`` for
booleans, ``mean`` for numbers, or those given to ``@evaluator``); the summary
is one value per (score, metric) over the samples without error. A metric name
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
            summary.append({"score": name, "metric": metric_name, "value": value})
    return summary


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
