"""Types and ranges of the values a store's records hold, checked when they are read.

A store copied from someone else is untrusted input: a record that decodes and
hashes correctly can still hold values no writer produces (a count of 10**400,
a time of 1e300, text where a number belongs) that would make a reader crash
far from where the record was read, and take every other experiment down with
it. The reader of each record kind (ref records, manifests, journal records)
checks every field it uses with these helpers, which raise ``ValueError``
naming the field; the reader turns that into its damaged-store error.
"""

from __future__ import annotations

import math
from typing import Any

MAX_COUNT = 2**63 - 1  # counts, sizes, pids, slots: what a signed 64-bit field holds
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z, the last second every date renderer shows


def count(value: Any, field: str, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """An ``int`` (not a bool) within ``low..high``."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{field} is not a count within {low}..{high} ({_kind(value)})")
    return value


def timestamp(value: Any, field: str) -> float:
    """Seconds since the epoch: a finite number within 0..``MAX_TIME``."""
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIME:  # NaN fails both
        raise ValueError(f"{field} is not a time ({_kind(value)})")
    return float(value)


def number(value: Any, field: str) -> float | int | None:
    """A summary value: None, a float (a metric of infinite scores is infinite, never
    NaN), or an integer no larger than a count."""
    if value is None:
        return None
    if type(value) is float and not math.isnan(value):
        return value
    if type(value) is not int or abs(value) > MAX_COUNT:
        raise ValueError(f"{field} is not a number in range ({_kind(value)})")
    return value


def text(value: Any, field: str) -> str:
    if type(value) is not str:
        raise ValueError(f"{field} is not text ({_kind(value)})")
    return value


def optional_text(value: Any, field: str) -> str | None:
    return None if value is None else text(value, field)


def texts(value: Any, field: str) -> list[str]:
    if type(value) is not list:
        raise ValueError(f"{field} is not a list ({_kind(value)})")
    return [text(v, field) for v in value]


def mapping(value: Any, field: str) -> dict[Any, Any]:
    if type(value) is not dict:
        raise ValueError(f"{field} is not a mapping ({_kind(value)})")
    return value


def _kind(value: Any) -> str:
    """What a bad value is, in a few words (never its text: it may be huge)."""
    if type(value) is int:
        return f"an integer of {len(str(abs(value)))} digits" if abs(value) >= 10**12 else f"{value}"
    if type(value) is float:
        return repr(value)
    return type(value).__name__
