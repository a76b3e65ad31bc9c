"""The checks of a run's settings, in one place for every way in.

The pytest options, ``doteval run`` and ``RunOptions`` all read ``--experiment``,
``--samples``, ``--concurrency`` and ``--timeout`` through these functions, so
the same value is refused with the same line whichever way it came. Each takes
the text of a command-line option or a value already parsed, and returns the
value or raises ``UsageError``. This module never prints.
"""

from __future__ import annotations

import math
from typing import Any

from doteval._objects import check_name
from doteval.errors import UsageError


class SettingError(UsageError):
    """A refused setting; ``reason`` is the message without the option's name, for parsers that
    name the option themselves (argparse, click)."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option} {reason}")
        self.reason = reason


def experiment_name(value: Any) -> str:
    """A name given with ``--experiment``: an empty one is refused, never replaced by a new one."""
    text = str(value)
    if not text.strip():
        raise SettingError(
            "--experiment",
            "needs a name (an empty one would record into a new experiment that no run resumes); "
            "leave the option out for a new run-YYYYMMDD-HHMMSS experiment",
        )
    return check_name(text)


def _whole(option: str, value: Any, least: int) -> int:
    if isinstance(value, bool):
        value = str(value)
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < least:
        raise SettingError(option, f"must be a whole number of {least} or more, not {str(value)!r}")
    return number


def sample_limit(value: Any) -> int:
    """``--samples N``: at most N items of each dataset, N >= 0."""
    return _whole("--samples", value, 0)


def concurrency(value: Any) -> int:
    """``--concurrency N``: samples in flight at once, N >= 1."""
    return _whole("--concurrency", value, 1)


def retry_count(value: Any) -> int:
    """``--max-retries N``: retries of a transient error, N >= 0."""
    return _whole("--max-retries", value, 0)


def retry_delay(value: Any) -> float:
    """``--retry-delay SECONDS``: the first retry's delay, a finite number >= 0."""
    number = _number(value)
    if number is None or not (0 <= number < math.inf):
        raise SettingError("--retry-delay", f"must be a number of seconds, 0 or more, not {str(value)!r}")
    return number


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def timeout_seconds(value: Any, option: str = "--timeout") -> float:
    """``--timeout SECONDS`` or ``@foreach(..., timeout=SECONDS)``: a finite number above 0."""
    number = _number(value)
    if number is None or not (0 < number < math.inf):
        raise SettingError(option, f"must be a number of seconds above 0, not {str(value)!r}")
    return number
