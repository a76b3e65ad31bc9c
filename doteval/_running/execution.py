"""Executing an evaluation's pending samples: one by one, in threads, or as coroutines.

An exception in one sample becomes that sample's error result (after retries
of transient errors) and never ends the run. Ctrl+C once stops taking new
samples, lets the model calls in flight finish and cancels the samples that
wait to retry (they are not recorded: the next run evaluates them); Ctrl+C
twice stops at once. Each result is handed to ``record``, with the number of
attempts it took, as soon as it exists, on the calling thread. This module
knows nothing of the store.
"""

from __future__ import annotations

import contextlib
import inspect
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from doteval._repository.results import Result, to_result
from doteval._running.foreach import EvaluationSpec
from doteval._running.retries import RetryPolicy, acall_with_retries, call_with_retries
from doteval.errors import DotevalError

Pending = list[tuple[Any, tuple[Any, ...]]]  # (what the record callback needs of a sample, item)


@dataclass
class Execution:
    spec: EvaluationSpec
    fixtures: dict[str, Any]
    retry: RetryPolicy
    concurrency: int
    stop: threading.Event
    record: Callable[[Any, tuple[Any, ...], Result, float, int], None]  # ..., result, started, attempts
    # (sample, number from 1 of the attempt that failed, its error, seconds before the next)
    on_retry: Callable[[Any, int, BaseException, float], None]
    on_interrupt: Callable[[int], None]
    timeout: float | None = None  # seconds one sample may take (see doteval._running.timeouts)

    def kwargs(self, item: tuple[Any, ...]) -> dict[str, Any]:
        kwargs = dict(self.fixtures)
        kwargs.update(zip(self.spec.columns, item))
        return kwargs

    def call(
        self, sample: Any, item: tuple[Any, ...], attempts: _Attempts | None = None
    ) -> tuple[Result, int] | None:
        """The sample's result and the attempts it took; None when Ctrl+C cancelled its retry."""
        kwargs = self.kwargs(item)
        attempts = attempts or _Attempts(self, sample)
        try:
            value = call_with_retries(
                lambda: self.spec.func(**kwargs), self.retry, on_retry=attempts, sleep=self.backoff
            )
            return to_result(value), attempts.count
        except _Cancelled:
            return None
        except (KeyboardInterrupt, SystemExit, DotevalError):
            raise
        except Exception as exc:  # one sample's error never ends the run
            return Result.from_exception(exc), attempts.count

    def backoff(self, delay: float) -> None:
        """Wait before a retry; a first Ctrl+C (``stop``) cancels the wait, and the sample."""
        if self.stop.wait(delay):
            raise _Cancelled

    async def abackoff(self, delay: float) -> None:
        import asyncio

        end = time.monotonic() + delay
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
        raise _Cancelled


class _Cancelled(BaseException):
    """A sample's retry wait was cancelled by Ctrl+C (never caught as a sample's error)."""


class _Attempts:
    """Counts a sample's attempts (from 1) and reports each retry with the sample."""

    def __init__(self, ex: Execution, sample: Any) -> None:
        self.ex, self.sample, self.count = ex, sample, 1

    def __call__(self, retry: int, exc: BaseException, delay: float) -> None:
        self.count = retry + 2  # retry 0 follows attempt 1
        self.ex.on_retry(self.sample, retry + 1, exc, delay)

    def timed_out(self) -> tuple[Result, int]:
        """The sample's result when it ran past its timeout, with the attempts it had begun."""
        from doteval._running.timeouts import timed_out

        return timed_out(self.ex.timeout or 0.0), self.count


def execute(execution: Execution, pending: Pending) -> None:
    if execution.spec.is_async:
        _run_async(execution, pending)
    elif execution.timeout is not None:
        from doteval._running.timeouts import run_with_deadline

        run_with_deadline(execution, pending)
    elif execution.concurrency > 1:
        _run_threads(execution, pending)
    else:
        _run_sync(execution, pending)


def _run_sync(ex: Execution, pending: Pending) -> None:
    with _interrupt_guard(ex, lambda: 1):
        for key, item in pending:
            if ex.stop.is_set():
                break
            started = time.time()
            done = ex.call(key, item)
            if done is not None:
                ex.record(key, item, done[0], started, done[1])


def _run_threads(ex: Execution, pending: Pending) -> None:
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    work = iter(pending)
    in_flight: dict[Future[tuple[Result, int] | None], tuple[bytes, tuple[Any, ...], float]] = {}
    executor = ThreadPoolExecutor(max_workers=ex.concurrency, thread_name_prefix="doteval")
    try:
        with _interrupt_guard(ex, lambda: len(in_flight)):
            while True:
                while not ex.stop.is_set() and len(in_flight) < ex.concurrency:
                    nxt = next(work, None)
                    if nxt is None:
                        break
                    in_flight[executor.submit(ex.call, *nxt)] = (nxt[0], nxt[1], time.time())
                if not in_flight:
                    break
                finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key, item, started = in_flight.pop(fut)
                    done = fut.result()
                    if done is not None:
                        ex.record(key, item, done[0], started, done[1])
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _run_async(ex: Execution, pending: Pending) -> None:
    import asyncio

    from doteval._running.timeouts import within

    work = iter(pending)
    in_flight = [0]

    async def call(sample: Any, item: tuple[Any, ...], attempts: _Attempts) -> tuple[Result, int] | None:
        kwargs = ex.kwargs(item)
        try:
            value = await acall_with_retries(
                lambda: ex.spec.func(**kwargs), ex.retry, on_retry=attempts, sleep=ex.abackoff
            )
            return to_result(value), attempts.count
        except _Cancelled:
            return None
        except (KeyboardInterrupt, SystemExit, DotevalError, asyncio.CancelledError):
            raise
        except Exception as exc:
            return Result.from_exception(exc), attempts.count

    async def worker() -> None:
        while not ex.stop.is_set():
            nxt = next(work, None)
            if nxt is None:
                return
            key, item = nxt
            started = time.time()
            attempts = _Attempts(ex, key)
            in_flight[0] += 1
            try:
                done = await within(ex.timeout, call(key, item, attempts), attempts.timed_out)
            finally:
                in_flight[0] -= 1
            if done is not None:
                ex.record(key, item, done[0], started, done[1])

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(min(ex.concurrency, max(len(pending), 1)))))

    with _interrupt_guard(ex, lambda: in_flight[0]):
        asyncio.run(main())


@contextlib.contextmanager
def _interrupt_guard(ex: Execution, in_flight: Callable[[], int]) -> Iterator[None]:
    """First Ctrl+C: finish the model calls in flight, cancel the retry waits, start no new
    sample. Second: stop now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if ex.stop.is_set():
            raise KeyboardInterrupt
        ex.stop.set()
        ex.on_interrupt(in_flight())

    previous_int = signal.signal(signal.SIGINT, handler)
    previous_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def evaluate_in_memory(spec: EvaluationSpec, fixtures: dict[str, Any]) -> list[Result]:
    """Evaluate every item without a store (a direct call of an evaluation)."""
    from doteval._running.experiment_run import normalize_item

    results = []
    for position, raw in enumerate(spec.dataset):
        item = normalize_item(raw, spec.columns, position)
        kwargs = dict(fixtures)
        kwargs.update(zip(spec.columns, item))
        try:
            value = spec.func(**kwargs)
            if inspect.isawaitable(value):
                import asyncio

                value = asyncio.run(_await(value))
            results.append(to_result(value))
        except Exception as exc:
            results.append(Result.from_exception(exc))
    return results


async def _await(awaitable: Any) -> Any:
    return await awaitable
