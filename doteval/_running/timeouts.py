"""Timing out one sample (``--timeout``, ``@foreach(..., timeout=)``).

A sample that runs longer than its timeout ends as an error result whose type
is ``TimeoutError`` ("timed out after 5s"); like every error result it is
evaluated again by the next run. The limit covers the whole sample, retries of
transient errors included.

An ``async def`` evaluation is cancelled at its deadline. A plain function
cannot be stopped from outside (Python has no way to kill a thread): with a
timeout each sample runs in a daemon thread, and at the deadline the run
records the timeout and moves on; the abandoned call may go on in the
background until it returns, its late result is dropped, and it does not keep
the process from exiting. This module knows nothing of the store.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from doteval._repository.results import Result

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from doteval._running.execution import Execution, Pending


T = TypeVar("T")


def timed_out(seconds: float) -> Result:
    """The error result of a sample that ran past ``seconds``."""
    return Result.from_exception(TimeoutError(f"the sample timed out after {seconds:g}s"))


async def within(seconds: float | None, sample: Awaitable[T], on_timeout: Callable[[], T]) -> T:
    """Await ``sample`` (a call that turns its own exceptions into results), cancelled at
    ``seconds``; then what ``on_timeout`` gives stands for it."""
    import asyncio

    if seconds is None:
        return await sample
    try:
        return await asyncio.wait_for(sample, seconds)
    except asyncio.TimeoutError:
        return on_timeout()


def run_with_deadline(ex: Execution, pending: Pending) -> None:
    """Plain functions with a timeout: each sample in its own daemon thread, at most
    ``ex.concurrency`` running that have not passed their deadline."""
    from doteval._running.execution import _Attempts, _interrupt_guard

    assert ex.timeout is not None
    limit = ex.timeout
    work = iter(pending)
    finished: queue.Queue[tuple[object, tuple[Result, int] | None, BaseException | None]] = queue.Queue()
    # token -> (record key, item, wall-clock start, monotonic start, the sample's attempts)
    in_flight: dict[object, tuple[Any, tuple[Any, ...], float, float, _Attempts]] = {}

    def run_one(token: object, key: Any, item: tuple[Any, ...], attempts: _Attempts) -> None:
        try:
            done = ex.call(key, item, attempts)
        except BaseException as exc:  # handed to the run's thread, which raises it
            finished.put((token, None, exc))
        else:
            finished.put((token, done, None))

    with _interrupt_guard(ex, lambda: len(in_flight)):
        while True:
            while not ex.stop.is_set() and len(in_flight) < ex.concurrency:
                nxt = next(work, None)
                if nxt is None:
                    break
                token = object()
                attempts = _Attempts(ex, nxt[0])
                in_flight[token] = (nxt[0], nxt[1], time.time(), time.monotonic(), attempts)
                threading.Thread(
                    target=run_one, args=(token, nxt[0], nxt[1], attempts), name="doteval-sample", daemon=True
                ).start()
            if not in_flight:
                break
            first_deadline = min(entry[3] for entry in in_flight.values()) + limit
            try:
                token, result, exc = finished.get(timeout=max(0.0, first_deadline - time.monotonic()))
            except queue.Empty:
                now = time.monotonic()
                for token, (key, item, started, began, attempts) in list(in_flight.items()):
                    if now - began >= limit:
                        del in_flight[token]
                        ex.record(key, item, timed_out(limit), started, attempts.count)
                continue
            entry = in_flight.pop(token, None)
            if entry is None:
                continue  # the late end of a sample already recorded as timed out
            if exc is not None:
                raise exc
            if result is not None:  # None: Ctrl+C cancelled its retry wait (not recorded)
                ex.record(entry[0], entry[1], result[0], entry[2], result[1])
