"""The checks of a run's settings, in one place for every way in.

The pytest options, ``doteval run`` and ``RunOptions`` all read ``--experiment``,
``--samples``, ``--concurrency``, ``--timeout``... through these functions, so
the same value is refused with the same line whichever way it came. Each takes
the text of a command-line option or a value already parsed, and returns the
value or raises ``UsageError``. ``RUN_SETTINGS`` is the one table of a run's
options (name, value, check, help, default) from which the pytest plugin and
``doteval run`` both declare them. This module never prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doteval._objects import check_name
from doteval._text import parse_fraction
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


def reuse_from(value: Any) -> str:
    """``--reuse-from EXPERIMENT``: an experiment name (whether it exists is the run's check)."""
    text = str(value)
    if not text.strip():
        raise SettingError("--reuse-from", "needs the name of an experiment of this store")
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


def concurrency(value: Any, option: str = "--concurrency") -> int:
    """``--concurrency N`` or ``@foreach(..., concurrency=N)``: at most N samples in flight, N >= 1."""
    return _whole(option, value, 1)


def retry_count(value: Any, option: str = "--max-retries") -> int:
    """``--max-retries N`` or ``@foreach(..., max_retries=N)``: retries of a transient error, N >= 0."""
    return _whole(option, value, 0)


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


_COUNT = re.compile(r"\d+")
_FRACTION = re.compile(r"(\d*\.\d+|\d+\.)")


@dataclass(frozen=True)
class MaxErrors:
    """A count (``count``) or a fraction of the samples (``fraction``), as the user wrote it."""

    text: str
    count: int | None = None
    fraction: float | None = None

    def exceeded(self, errors: int, samples: int) -> bool:
        if self.fraction is not None:
            return errors > self.fraction * samples
        assert self.count is not None
        return errors > self.count


def parse_max_errors(text: str) -> MaxErrors:
    """``--max-errors``: ``"3"`` → at most 3 errored samples; ``"0.05"`` or ``"5%"`` → at most 5%
    of them (see ``doteval._running.error_budget``)."""
    word = str(text).strip()
    if _COUNT.fullmatch(word):
        return MaxErrors(word, count=int(word))
    percent = word.endswith("%")
    number = word[:-1].strip() if percent else word
    if _COUNT.fullmatch(number) or _FRACTION.fullmatch(number):
        fraction = float(number) / (100 if percent else 1)
        if fraction <= 1:
            return MaxErrors(word, fraction=fraction)
    raise UsageError(
        f"--max-errors takes a count of samples (such as 3) or a fraction of them "
        f"(such as 0.05 or 5%), not {text!r}"
    )


def shard(value: Any) -> tuple[int, int]:
    """``--shard I/N``: this process evaluates shard I of N (1-based)."""
    try:
        return parse_fraction(str(value), "--shard")
    except UsageError as e:
        raise SettingError("--shard", str(e).removeprefix("--shard ")) from None


# -- the options of a run, declared by both ways in -----------------------------------


@dataclass(frozen=True)
class Setting:
    """One option of a run. The pytest plugin declares it under ``flag``; ``doteval run``
    declares it under ``run_flags`` and hands it on to pytest under ``flag``."""

    flag: str  # pytest's option
    help: str  # one line: lower case, no final period (``doteval run`` capitalizes it)
    metavar: str | None = None  # None: an on/off flag
    check: Callable[[Any], Any] | None = None  # parses a value or raises UsageError; None: any text
    default: Any = None  # pytest's (``doteval run`` leaves an option it was not given to pytest)
    run_flags: tuple[str, ...] = ()  # ``doteval run``'s names, when not ``flag``

    @property
    def dest(self) -> str:
        """The name pytest's ``config.getoption`` and ``doteval run``'s parameter use."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def run_names(self) -> tuple[str, ...]:
        """Its names under ``doteval run``."""
        return self.run_flags or (self.flag,)

    def args(self, value: Any, flag: str | None = None) -> list[str]:
        """The option as command-line arguments (none when it was not given)."""
        if value is None or value is False:
            return []
        return [flag or self.flag] if value is True else [flag or self.flag, str(value)]


RUN_SETTINGS = {
    s.dest: s
    for s in (
        Setting(
            "--experiment",
            "experiment to record into (resumes it if it exists)",
            "NAME",
            experiment_name,
            run_flags=("--experiment", "-e"),
        ),
        Setting("--samples", "evaluate at most N items of each dataset", "N", sample_limit),
        Setting(
            "--concurrency",
            "at most N samples in flight; fewer while rate limited (default: 1 sync, 16 async)",
            "N",
            concurrency,
        ),
        # Not --timeout under pytest: pytest-timeout owns that name, and its timeout ends the whole
        # evaluation. `doteval run` has no such neighbour.
        Setting(
            "--sample-timeout",
            "end a sample that runs longer with a timeout error, retried by the next run",
            "SECONDS",
            timeout_seconds,
            run_flags=("--timeout",),
        ),
        Setting(
            "--rerun-changed", "start a new line of results for evaluations whose code or params changed"
        ),
        Setting(
            "--reuse-from",
            "reuse the finished results of another experiment's history whose sample keys match exactly",
            "EXPERIMENT",
            reuse_from,
        ),
        Setting("--max-retries", "retries of a transient error (default 3)", "N", retry_count),
        Setting(
            "--shard",
            "evaluate only shard I of N of the samples (stable across machines; merge stores after)",
            "I/N",
            shard,
        ),
        Setting(
            "--dry-run", "evaluate nothing: say per evaluation what would be reused and evaluated, and why"
        ),
        Setting("--retry-delay", "first retry delay, doubled each time", "SECONDS", retry_delay, default=1.0),
        Setting(
            "--max-errors",
            "exit 1 when more than N samples (or a fraction, such as 0.05) ended in an error",
            "N",
            parse_max_errors,
        ),
        Setting("--no-cache", "make every @cached model call, and store the fresh answers"),
        Setting(
            "--cache-only",
            "never make a @cached model call: a call the store holds no answer for is that sample's error",
        ),
    )
}


def cache_mode(no_cache: bool, cache_only: bool) -> str:
    """The call cache's mode (``doteval._running.call_cache``) from ``--no-cache`` and ``--cache-only``."""
    if no_cache and cache_only:
        raise SettingError("--cache-only", "cannot be used with --no-cache")
    return "refresh" if no_cache else "replay" if cache_only else "use"
