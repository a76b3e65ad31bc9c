"""Text for people: how values, durations and times are written, and ``I/N`` options read.

Shared by the CLI, the pytest plugin and the HTML report, so every view says a
number the same way.
"""

from __future__ import annotations

import time
from typing import Any

from doteval.errors import UsageError


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


CELL_LIMIT = 1000


def clip_text(text: str, limit: int = CELL_LIMIT) -> str:
    """``text`` cut to ``limit`` characters for a terminal, with its full length said.

    A table that folds one long unbroken token costs time quadratic in its length
    (a 10 MB response took minutes); ``show --sample`` and ``export`` keep values whole.
    A lone surrogate comes out as its ``\\udXXX`` escape, as doteval's stdout writes it.
    """
    cut = text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters in all)"
    if not cut.isascii():  # a lone surrogate, escaped here so the table measures what is printed
        cut = cut.encode("utf-8", "backslashreplace").decode("utf-8")
    return cut


def format_param(value: Any) -> str:
    """A stored param as people write it: ``ToyModel(name='x', temperature=0.0)``.

    The one form params take everywhere (``show``, the change messages, ``diff``,
    the report): a dataclass or model, stored as a dict with ``__type__``, reads
    as its class called with its fields; everything else as Python writes it,
    numbers in full (a table must not round 0.123456 to 0.1235).
    """
    if isinstance(value, dict) and "__type__" in value:
        name = str(value["__type__"]).rsplit(".", 1)[-1]
        fields = ", ".join(f"{k}={format_param(v)}" for k, v in value.items() if k != "__type__")
        return f"{name}({fields})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_param(k)}: {format_param(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_param(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_param(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def format_duration(seconds: float | None, *, tenths_below: float = 0.0) -> str:
    """``2h 15m``, ``3m 5s``, ``12s``; under ``tenths_below`` seconds, ``1.5s``."""
    seconds = max(seconds or 0.0, 0.0)
    if seconds < tenths_below:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def percent(done: int, total: int) -> str:
    return f"{100.0 * done / total:.1f}%" if total else "0.0%"


def parse_fraction(text: str, option: str, names: str = "I/N") -> tuple[int, int]:
    """``"2/4"`` → (2, 4) for options like ``--shard I/N``; 1-based, part ≤ whole."""
    part, whole = names.split("/")
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"{option} takes {names}, such as 1/4, not {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"{option} {text}: {part} must be between 1 and {whole}")
    return i, n
