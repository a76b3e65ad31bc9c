"""Summary metrics of an evaluation, computed from its result records.

Each score of a result names the metrics that aggregate it (``accuracy`` for
booleans, ``mean`` for numbers, or those given to ``@evaluator``); the summary
is one value per (score, metric). Errored samples have no scores and count
only as errors. A metric name this process does not know (a custom metric
defined in a module not imported here) is reported without a value rather than
guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from doteval.errors import DotevalError


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    from doteval.metrics import get_metric

    values: dict[str, list[Any]] = {}
    metric_names: dict[str, list[str]] = {}
    for record in records:
        if record.get("error"):
            continue
        for score in record.get("scores") or ():
            name = score.get("name")
            metrics = score.get("metrics") or []
            if not isinstance(name, str) or not metrics:
                continue
            values.setdefault(name, []).append(score.get("value"))
            known = metric_names.setdefault(name, [])
            for m in metrics:
                if m not in known:
                    known.append(m)
    summary = []
    for name in values:
        for metric_name in metric_names[name]:
            try:
                fn = get_metric(metric_name)
                value: float | None = float(fn(values[name]))
                if value is not None and math.isnan(value):
                    value = None
            except DotevalError:
                value = None
            except (TypeError, ValueError, ZeroDivisionError):
                value = None
            summary.append({"score": name, "metric": metric_name, "value": value})
    return summary
