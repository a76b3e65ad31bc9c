"""Metrics: named functions that turn a column of score values into one number.

A metric is registered under its name so that a stored summary can say which
metrics it was computed with and a later process (``doteval show``, a resumed
run) can recompute them from the stored values alone. Only the name is ever
stored, never the code.

The built-ins (``accuracy``, ``mean``, ``std``, ``count``) are pure Python: this
module is imported by every evaluation and must stay cheap. All of them skip
``None`` values (a sample that produced no value for this score) and all but
``count`` return ``nan`` when nothing is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, overload

from doteval.errors import UsageError

MetricFunction = Callable[[list[Any]], float]

_REGISTRY: dict[str, Metric] = {}
# Names that user code may not take over: a stored summary that says
# "accuracy" must mean the same thing in every process.
_BUILTIN_NAMES: frozenset[str] = frozenset({"accuracy", "mean", "std", "count"})


@dataclass(frozen=True)
class Metric:
    """A named aggregation ``list[value] -> float``.

    Two metrics are equal when their names are: the name is what is stored.

    ``fn`` is ``None`` for a *placeholder*: a metric named by a stored record
    whose defining module has not been imported in this process. A placeholder
    keeps its name (so the record round-trips) and resolves itself through the
    registry when called; if the name is still unknown then, it raises
    ``UsageError``.
    """

    name: str
    fn: MetricFunction | None = field(default=None, compare=False, repr=False)

    def __call__(self, values: Iterable[Any]) -> float:
        fn = self.fn
        if fn is None:
            fn = get_metric(self.name).fn
            if fn is None:  # pragma: no cover - the registry holds no placeholders
                raise UsageError(f"metric {self.name!r} has no function")
        return fn(list(values))

    @property
    def available(self) -> bool:
        """Whether this metric can be computed in this process."""
        return self.fn is not None or self.name in _REGISTRY


def get_metric(name: str) -> Metric:
    """Return the metric registered under ``name``; ``UsageError`` if none is."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UsageError(
            f"unknown metric {name!r} (registered: {known})",
            hint="define it with @doteval.metric in a module imported before it is used",
        ) from None


def _metric_ref(name: str) -> Metric:
    """Return the metric named ``name``, or a placeholder keeping the name if unknown.

    Used when reading stored records: an unknown name must not make a stored
    result unreadable.
    """
    return _REGISTRY.get(name) or Metric(name)


def registered_metrics() -> dict[str, Metric]:
    """A copy of the registry, name -> metric."""
    return dict(_REGISTRY)


def _register(fn: MetricFunction, name: str) -> Metric:
    if not isinstance(name, str) or not name:
        raise UsageError(f"a metric name must be a non-empty string, not {name!r}")
    current = _REGISTRY.get(name)
    if name in _BUILTIN_NAMES and current is not None and current.fn is not fn:
        raise UsageError(
            f"metric name {name!r} is taken by doteval's built-in metric",
            hint="register yours under another name: @metric(name='...')",
        )
    # A later definition replaces an earlier one: pytest may import a test
    # module twice, and a user redefining a metric in a notebook expects the
    # new code to win.
    m = Metric(name, fn)
    _REGISTRY[name] = m
    return m


@overload
def metric(fn: MetricFunction, /) -> Metric: ...


@overload
def metric(*, name: str | None = None) -> Callable[[MetricFunction], Metric]: ...


def metric(
    fn: MetricFunction | None = None, /, *, name: str | None = None
) -> Metric | Callable[[MetricFunction], Metric]:
    """Register ``fn`` as a metric, under ``name`` or the function's name.

    Usable bare (``@metric``) or with a name (``@metric(name="pass_rate")``).
    Returns the ``Metric``, which is callable like the function.
    """
    if fn is not None:
        if not callable(fn):
            raise UsageError(f"@metric needs a function, not {type(fn).__qualname__}")
        return _register(fn, name or fn.__name__)

    def decorate(f: MetricFunction) -> Metric:
        if not callable(f):
            raise UsageError(f"@metric needs a function, not {type(f).__qualname__}")
        return _register(f, name or f.__name__)

    return decorate


def _numbers(values: list[Any], metric_name: str) -> list[float]:
    out: list[float] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            out.append(1.0 if v else 0.0)
        elif isinstance(v, (int, float)):
            out.append(float(v))
        elif type(v).__module__ == "numpy" and hasattr(v, "item"):
            # numpy scalars, recognised without importing numpy
            out.append(float(v.item()))
        else:
            raise UsageError(
                f"metric {metric_name!r} needs numbers or booleans, got a {type(v).__qualname__}: {v!r:.60}"
            )
    return out


def _accuracy(values: list[Any]) -> float:
    """Mean of booleans (or 0/1 numbers): the fraction of true values."""
    nums = _numbers(values, "accuracy")
    for x in nums:
        # nan is let through: it then propagates into the mean, which is honest
        if x < 0.0 or x > 1.0:
            raise UsageError(
                f"metric 'accuracy' needs booleans or values in [0, 1], got {x!r}",
                hint="use the 'mean' metric for other numbers",
            )
    return math.fsum(nums) / len(nums) if nums else math.nan


def _mean(values: list[Any]) -> float:
    """Arithmetic mean (booleans count as 0 and 1)."""
    nums = _numbers(values, "mean")
    return math.fsum(nums) / len(nums) if nums else math.nan


def _std(values: list[Any]) -> float:
    """Sample standard deviation (ddof=1); 0.0 for a single value, nan for none.

    The sample form is used because the samples of an evaluation are a draw from
    the population of possible inputs; it is what ``statistics.stdev`` and
    ``pandas.Series.std`` return.
    """
    nums = _numbers(values, "std")
    n = len(nums)
    if n == 0:
        return math.nan
    if n == 1:
        return 0.0
    m = math.fsum(nums) / n
    return math.sqrt(math.fsum((x - m) ** 2 for x in nums) / (n - 1))


def _count(values: list[Any]) -> float:
    """Number of values that are not None (0.0 for no values)."""
    return float(sum(1 for v in values if v is not None))


accuracy: Metric = metric(name="accuracy")(_accuracy)
mean: Metric = metric(name="mean")(_mean)
std: Metric = metric(name="std")(_std)
count: Metric = metric(name="count")(_count)

__all__ = [
    "Metric",
    "MetricFunction",
    "accuracy",
    "count",
    "get_metric",
    "mean",
    "metric",
    "registered_metrics",
    "std",
]
