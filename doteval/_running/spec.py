"""What ``@foreach`` knows about one evaluation, and how a dataset item becomes its columns.

The decorator (``doteval._running.foreach``), the execution of samples and a run
of an experiment all read an evaluation through ``EvaluationSpec``; this module
imports nothing of theirs, so each of them can import it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from doteval.errors import UsageError

# Options that say how samples run, not what a result is: changing them changes no fingerprint.
EXECUTION_OPTIONS = frozenset({"timeout", "concurrency", "max_retries"})


@dataclass
class EvaluationSpec:
    """What ``@foreach`` knows about one evaluation."""

    func: Callable[..., Any]
    columns: tuple[str, ...]
    dataset: Iterable[Any]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def name(self) -> str:
        return getattr(self.func, "__name__", "evaluation")

    def fingerprinted_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in EXECUTION_OPTIONS}

    def fixture_names(self) -> tuple[str, ...]:
        params = inspect.signature(self.func).parameters
        return tuple(n for n in params if n not in self.columns)


def normalize_item(item: Any, columns: tuple[str, ...], position: int) -> tuple[Any, ...]:
    """A dataset item as one value per column: a dict by its keys, a tuple or list as it is,
    a bare value for a single column; anything else is refused in one line."""
    if isinstance(item, dict):
        try:
            return tuple(item[c] for c in columns)
        except KeyError as e:
            raise UsageError(f"dataset item {position} has no key {e.args[0]!r} for @foreach") from None
    if isinstance(item, (tuple, list)) and (len(columns) > 1 or len(item) == 1):
        if len(item) != len(columns):
            raise UsageError(
                f"dataset item {position} has {len(item)} values for {len(columns)} "
                f"columns ({', '.join(columns)})"
            )
        return tuple(item)
    if len(columns) == 1:
        return (item,)
    raise UsageError(
        f"dataset item {position} is a {type(item).__name__}, expected a tuple of "
        f"{len(columns)} values ({', '.join(columns)})"
    )
