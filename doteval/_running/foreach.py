"""The ``@foreach`` decorator: an evaluation is a function run over a dataset.

``@foreach("prompt,expected", dataset)`` marks a function as an evaluation. The
function receives one dataset item's columns plus any pytest fixtures it asks
for (``model``...). The decorated function keeps only the fixture parameters in
its signature, so pytest injects those and the doteval plugin runs the dataset.
Called directly (outside pytest), it evaluates every item in memory and
returns the list of ``Result``s, which is handy in a notebook.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from doteval._repository.results import Result, to_result
from doteval._running.settings import concurrency, retry_count, timeout_seconds
from doteval._running.spec import EvaluationSpec, normalize_item
from doteval.errors import UsageError

SPEC_ATTR = "_doteval_spec"


class SharedIterator:
    """A one-shot dataset (a generator) that every reader reads from its first item.

    Items are kept as they are first read, so the second case of a
    ``@pytest.mark.parametrize``, or a second call, sees the same items instead
    of an exhausted generator; and nobody reads further than they need
    (``--samples 2`` over an endless generator reads three items).
    """

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source
        self._read: list[Any] = []
        self._ended = False

    def __iter__(self) -> Iterator[Any]:
        n = 0
        while True:
            if n == len(self._read):
                if self._ended:
                    return
                try:
                    self._read.append(next(self._source))
                except StopIteration:
                    self._ended = True
                    return
            yield self._read[n]
            n += 1


def parse_columns(columns: str | Sequence[str]) -> tuple[str, ...]:
    names = columns.split(",") if isinstance(columns, str) else list(columns)
    parsed = tuple(str(n).strip() for n in names)
    if not parsed or any(not n.isidentifier() for n in parsed):
        raise UsageError(f"@foreach columns must be identifiers separated by commas, got {columns!r}")
    if len(set(parsed)) != len(parsed):
        raise UsageError(f"@foreach columns repeat a name: {columns!r}")
    return parsed


def foreach(
    columns: str | Sequence[str], dataset: Iterable[Any], **options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Run the decorated evaluation once per item of ``dataset``.

    ``columns`` names the item's fields ("prompt,expected"); each item is a
    tuple (or list) with one value per column, a dict with those keys, or, for
    a single column, the bare value. ``options`` are recorded with the code
    fingerprint: changing them is a change of the evaluation. ``timeout=SECONDS``
    is the exception: it ends a sample that runs longer with a ``TimeoutError``
    result (see ``doteval._running.timeouts``) and is not part of the fingerprint;
    so are ``concurrency=N`` and ``max_retries=N``, this evaluation's defaults for
    ``--concurrency`` and ``--max-retries`` (the command-line options win).
    """
    cols = parse_columns(columns)
    if options.get("timeout") is not None:
        options["timeout"] = timeout_seconds(options["timeout"], "@foreach(timeout=...)")
    if options.get("concurrency") is not None:
        options["concurrency"] = concurrency(options["concurrency"], "@foreach(concurrency=...)")
    if options.get("max_retries") is not None:
        options["max_retries"] = retry_count(options["max_retries"], "@foreach(max_retries=...)")
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Iterable):
        raise UsageError(
            f"@foreach needs an iterable dataset (list, generator...), got {type(dataset).__name__}"
        )

    if isinstance(dataset, Iterator):
        dataset = SharedIterator(dataset)

    def decorate(func: Callable[..., Any]) -> Any:
        sig = inspect.signature(func)
        missing = [c for c in cols if c not in sig.parameters]
        if missing:
            raise UsageError(f"{func.__qualname__} has no parameter for column(s) {', '.join(missing)}")
        spec = EvaluationSpec(func, cols, dataset, dict(options))
        fixtures = [p for n, p in sig.parameters.items() if n not in cols]

        @functools.wraps(func)
        def evaluation(**fixture_values: Any) -> Any:
            return evaluate_in_memory(spec, fixture_values)

        evaluation.__signature__ = sig.replace(parameters=fixtures)  # type: ignore[attr-defined]
        setattr(evaluation, SPEC_ATTR, spec)
        return evaluation

    return decorate


def get_spec(obj: Any) -> EvaluationSpec | None:
    spec = getattr(obj, SPEC_ATTR, None)
    return spec if isinstance(spec, EvaluationSpec) else None


def evaluate_in_memory(spec: EvaluationSpec, fixtures: dict[str, Any]) -> list[Result]:
    """Evaluate every item without a store (a direct call of an evaluation)."""
    results = []
    for position, raw in enumerate(spec.dataset):
        item = normalize_item(raw, spec.columns, position)
        kwargs = dict(fixtures)
        kwargs.update(zip(spec.columns, item))
        try:
            value = spec.func(**kwargs)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            results.append(to_result(value))
        except Exception as exc:
            results.append(Result.from_exception(exc))
    return results


async def _await(awaitable: Any) -> Any:
    return await awaitable
