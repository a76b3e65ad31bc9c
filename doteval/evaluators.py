"""Evaluators: functions that score one response and return a ``Score``.

``@evaluator`` turns any function returning a value (usually a bool) into one
returning ``Score(name=<function name>, value, metrics)``, so that the metrics
to summarise it with travel with the value into the store. The built-ins
(``exact_match``, ``numeric_match``, ``valid_json``) are evaluators too.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable
from typing import Any, ParamSpec, overload

from doteval.errors import UsageError
from doteval.metrics import accuracy
from doteval.results import MetricsLike, Score, normalize_metrics

P = ParamSpec("P")


def _as_score(name: str, value: Any, metrics: tuple[Any, ...]) -> Score:
    # An evaluator that already builds its own Score knows best.
    if isinstance(value, Score):
        return value
    return Score(name, value, metrics)


def _wrap(fn: Callable[P, Any], metrics: MetricsLike, name: str | None) -> Callable[P, Any]:
    if not callable(fn):
        raise UsageError(f"@evaluator needs a function, not {type(fn).__qualname__}")
    ms = normalize_metrics(metrics)
    score_name = name or fn.__name__
    wrapper: Callable[P, Any]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Score:
            return _as_score(score_name, await fn(*args, **kwargs), ms)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Score:
            return _as_score(score_name, fn(*args, **kwargs), ms)

        wrapper = sync_wrapper

    # Let callers (the runner, summaries) know what a call will produce
    # without calling it. setattr: a Callable type has no such attributes.
    setattr(wrapper, "score_name", score_name)  # noqa: B010
    setattr(wrapper, "metrics", ms)  # noqa: B010
    return wrapper


@overload
def evaluator(fn: Callable[P, Any], /) -> Callable[P, Any]: ...


@overload
def evaluator(
    *, metrics: MetricsLike = ..., name: str | None = None
) -> Callable[[Callable[P, Any]], Callable[P, Any]]: ...


def evaluator(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    metrics: MetricsLike = accuracy,
    name: str | None = None,
) -> Callable[P, Any] | Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Make ``fn`` return ``Score(name or fn.__name__, value, metrics)``.

    Usable bare (``@evaluator``: metric ``accuracy``) or configured
    (``@evaluator(metrics=[accuracy, count])``). ``metrics`` is a ``Metric``, a
    registered metric name, or a list of them. Works for ``async def``
    functions too. A function that returns a ``Score`` itself is left alone.
    """
    if fn is not None:
        return _wrap(fn, metrics, name)

    def decorate(f: Callable[P, Any]) -> Callable[P, Any]:
        return _wrap(f, metrics, name)

    return decorate


# -- built-in evaluators ------------------------------------------------------


@evaluator(metrics=accuracy)
def exact_match(response: Any, expected: Any) -> bool:
    """True when ``str(response)`` and ``str(expected)`` are equal once stripped."""
    return str(response).strip() == str(expected).strip()


# A number not glued to a preceding digit or dot, with a minus sign only when
# it does not follow a word ("3-5" reads 3 and 5, "GPT-4" reads 4, "x=-2"
# reads -2); thousands separators only when every group has three digits; a
# trailing sentence dot is not a decimal point.
_NUMBER = re.compile(
    r"(?:(?<![\w.])-|(?<![\d.]))"
    r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE][-+]?\d+)?"
)


def parse_number(value: Any) -> float | None:
    """The last number in ``value`` as a float, or None if it holds none.

    Numbers pass through; strings like ``"The answer is 1,000."`` give 1000.0.
    Booleans are not numbers here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    matches = _NUMBER.findall(value)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except (ValueError, OverflowError):  # pragma: no cover - the regex only admits numbers
        return None


@evaluator(metrics=accuracy)
def numeric_match(response: Any, expected: Any, *, tolerance: float = 1e-9) -> bool:
    """True when the last number in ``response`` equals ``expected`` within ``tolerance``.

    ``tolerance`` is both absolute and relative (``math.isclose`` with
    ``rel_tol=abs_tol=tolerance``). Comparison is in floats, so integers beyond
    2**53 are compared approximately. A response or expected value without a
    number gives False.
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise UsageError(f"numeric_match tolerance must be a number >= 0, not {tolerance!r}")
    got = parse_number(response)
    want = parse_number(expected)
    if got is None or want is None:
        return False
    return math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@evaluator(metrics=accuracy)
def valid_json(response: Any) -> bool:
    """True when ``response`` (a str or bytes) parses as strict JSON.

    ``NaN`` and ``Infinity``, which Python's parser accepts, are rejected; a
    response wrapped in a Markdown code fence is not JSON.
    """
    if not isinstance(response, (str, bytes, bytearray)):
        return False
    try:
        json.loads(response, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


__all__ = ["evaluator", "exact_match", "numeric_match", "parse_number", "valid_json"]
