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
from typing import Any, NamedTuple, ParamSpec, overload

from doteval._repository.results import MetricsLike, Score, normalize_metrics
from doteval.errors import UsageError
from doteval.metrics import accuracy

_P = ParamSpec("_P")


class _Described(NamedTuple):
    """What a built-in returns: its value and what it looked at (``Score.metadata``)."""

    value: Any
    metadata: dict[str, Any]


def _as_score(name: str, value: Any, metrics: tuple[Any, ...], renamed: bool = False) -> Score:
    # An evaluator that already builds its own Score knows best, but a call's
    # ``name=`` still renames it.
    if isinstance(value, Score):
        return Score(name, value.value, value.metrics, value.metadata) if renamed else value
    if isinstance(value, _Described):
        return Score(name, value.value, metrics, value.metadata)
    return Score(name, value, metrics)


def _takes_name(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: leave every argument to the function
    return "name" in params


def _wrap(fn: Callable[_P, Any], metrics: MetricsLike, name: str | None) -> Callable[_P, Any]:
    if not callable(fn):
        raise UsageError(f"@evaluator needs a function, not {type(fn).__qualname__}")
    ms = normalize_metrics(metrics)
    score_name = name or fn.__name__
    # As in the original doteval, a call may rename its score:
    # ``exact_match(a, b, name="answer_match")``; unless ``fn`` has its own ``name``.
    renames = not _takes_name(fn)
    wrapper: Callable[_P, Any]

    def named(kwargs: dict[str, Any]) -> tuple[str, bool]:
        call_name = kwargs.pop("name", None) if renames else None
        if call_name is not None and (not isinstance(call_name, str) or not call_name):
            raise UsageError(f"name= must be a non-empty string, not {call_name!r}")
        return (score_name, False) if call_name is None else (call_name, True)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Score:
            label, renamed = named(kwargs)
            return _as_score(label, await fn(*args, **kwargs), ms, renamed)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Score:
            label, renamed = named(kwargs)
            return _as_score(label, fn(*args, **kwargs), ms, renamed)

        wrapper = sync_wrapper

    # Let callers (the runner, summaries) know what a call will produce
    # without calling it. setattr: a Callable type has no such attributes.
    setattr(wrapper, "score_name", score_name)  # noqa: B010
    setattr(wrapper, "metrics", ms)  # noqa: B010
    return wrapper


@overload
def evaluator(fn: Callable[_P, Any], /) -> Callable[_P, Any]: ...


@overload
def evaluator(
    *, metrics: MetricsLike = ..., name: str | None = None
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]: ...


def evaluator(
    fn: Callable[_P, Any] | None = None,
    /,
    *,
    metrics: MetricsLike = accuracy,
    name: str | None = None,
) -> Callable[_P, Any] | Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Make ``fn`` return ``Score(name or fn.__name__, value, metrics)``.

    Usable bare (``@evaluator``: metric ``accuracy``) or configured
    (``@evaluator(metrics=[accuracy, count])``). ``metrics`` is a ``Metric``, a
    registered metric name, or a list of them. Works for ``async def``
    functions too. A function that returns a ``Score`` itself is left alone.
    """
    if fn is not None:
        return _wrap(fn, metrics, name)

    def decorate(f: Callable[_P, Any]) -> Callable[_P, Any]:
        return _wrap(f, metrics, name)

    return decorate


# -- built-in evaluators ------------------------------------------------------


@evaluator(metrics=accuracy)
def exact_match(response: Any, expected: Any) -> Any:
    """True when ``str(response)`` and ``str(expected)`` are equal once stripped."""
    ok = str(response).strip() == str(expected).strip()
    return _Described(ok, {"result": response, "expected": expected})


# A number not glued to a preceding digit or dot, with a minus sign only when
# it does not follow a word ("3-5" reads 3 and 5, "GPT-4" reads 4, "x=-2"
# reads -2); thousands separators only when every group has three digits; a
# trailing sentence dot is not a decimal point.
_NUMBER = re.compile(
    r"(?:(?<![\w.])-|(?<![\d.]))"
    r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE][-+]?\d+)?"
)
# A whole value that is one number, as the original doteval read it: a sign
# glued to the digits, commas or spaces between digit groups ("1 234",
# "-1,234.5", "1 234,567" is 1234567), a decimal point, an exponent; or inf.
_WHOLE_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:[ ,]+\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def _parse_number(value: Any) -> float | None:
    """The number ``value`` holds as a float, or None if it holds none.

    Numbers pass through. A string that is one number, thousands separators
    (commas or spaces) and sign included, is read whole: ``"-1 234.5"`` gives
    -1234.5, ``"inf"`` gives infinity. Otherwise the last number in the text is
    read: ``"The answer is 1,000."`` gives 1000.0. Booleans are not numbers here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _WHOLE_NUMBER.fullmatch(text):
        return float(re.sub(r"[ ,]", "", text))
    matches = _NUMBER.findall(value)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except (ValueError, OverflowError):  # pragma: no cover - the regex only admits numbers
        return None


@evaluator(metrics=accuracy)
def numeric_match(response: Any, expected: Any, *, tolerance: float = 1e-9) -> Any:
    """True when the number in ``response`` equals the one in ``expected`` within ``tolerance``.

    Each side is read by ``_parse_number``. ``tolerance`` is both absolute and
    relative (``math.isclose`` with ``rel_tol=abs_tol=tolerance``); infinities
    equal themselves, NaN equals nothing. Comparison is in floats, so integers
    beyond 2**53 are compared approximately. A side without a number gives False.
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise UsageError(f"numeric_match tolerance must be a number >= 0, not {tolerance!r}")
    got = _parse_number(response)
    want = _parse_number(expected)
    ok = (
        got is not None and want is not None and math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance)
    )
    return _Described(ok, {"result": response, "expected": expected})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@evaluator(metrics=accuracy)
def valid_json(response: Any, schema: Any = None) -> Any:
    """True when ``response`` is JSON text, and matches ``schema`` if one is given.

    A str or bytes is parsed as it is; any other value but None is parsed as
    its ``str()`` (so ``123`` is JSON and a Python dict, ``{'a': 1}``, is not),
    as in the original doteval. Strict JSON: ``NaN`` and ``Infinity`` are
    rejected, and a response wrapped in a Markdown code fence is not JSON.
    ``schema`` is a JSON Schema (a dict); the keywords checked are listed in
    ``doteval._running.json_schema``, and any other keyword that constrains a value
    raises ``UsageError``.
    """
    metadata: dict[str, Any] = {"result": response}
    if schema is not None:
        metadata["schema"] = schema
    if response is None:
        return _Described(False, metadata)
    text = response if isinstance(response, (str, bytes, bytearray)) else str(response)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _Described(False, metadata)
    if schema is not None:
        from doteval._running.json_schema import matches_schema

        return _Described(matches_schema(value, schema), metadata)
    return _Described(True, metadata)


__all__ = ["evaluator", "exact_match", "numeric_match", "valid_json"]
