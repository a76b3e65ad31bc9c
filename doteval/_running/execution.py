"""Executing an evaluation's pending samples: one by one, in threads, or as coroutines.

With a timeout (``doteval._running.timeouts``) a plain function runs in a thread
even at concurrency 1, and one scheduler (``_run_threads``) keeps the limits:
at most ``concurrency`` samples in flight, none past its deadline, and at most the
window's ``limit`` of them calling (``doteval._running.window``: it halves on rate limits
and grows back as calls succeed). Coroutines keep the same two limits in one event loop.

An exception in one sample becomes that sample's error result (after retries
of transient errors) and never ends the run. Ctrl+C once stops taking new
samples, lets the model calls in flight finish and cancels the samples that
wait to retry (they are not recorded: the next run evaluates them); Ctrl+C
twice stops at once. Each result is handed to ``record``, with the number of
attempts it took, as soon as it exists, on the calling thread. This module
knows nothing of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from doteval._repository.results import Result, to_result
from doteval._running.call_cache import RunCalls, sample_scope
from doteval._running.retries import RetryPolicy, acall_with_retries, call_with_retries
from doteval._running.spec import EvaluationSpec
from doteval._running.timeouts import timed_out, within
from doteval._running.window import Cancelled, Window
from doteval.errors import CacheMissError, DotevalError

Pending = list[tuple[Any, tuple[Any, ...]]]  # (what the record callback needs of a sample, item)
# token -> (record key, item, wall-clock start, monotonic deadline, the sample's attempts), in the
# order the samples started: with one timeout for all, the first has the nearest deadline
InFlight = dict[int, tuple[Any, tuple[Any, ...], float, float, "_Attempts"]]


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
    calls: RunCalls | None = None  # the run's call cache: each attempt of a sample is a scope of it
    # the window of samples calling changed: (its limit, the ceiling ``concurrency``)
    on_window: Callable[[int, int], None] = lambda limit, ceiling: None

    def __post_init__(self) -> None:
        self.window = Window(self.concurrency)
        self._shown_limit = self.window.limit

    def window_moved(self) -> None:
        """Tell ``on_window`` when the window's limit changed (on the run's thread)."""
        limit = self.window.limit
        if limit != self._shown_limit:
            self._shown_limit = limit
            self.on_window(limit, self.window.ceiling)

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
                lambda: self.attempt(kwargs, attempts), self.retry, on_retry=attempts, sleep=self.backoff
            )
            return to_result(value), attempts.count
        except (_Cancelled, Cancelled):
            return None
        except CacheMissError as exc:  # --cache-only: that sample's error, the others go on
            return Result.from_exception(exc), attempts.count
        except (KeyboardInterrupt, SystemExit, DotevalError):
            raise
        except Exception as exc:  # one sample's error never ends the run
            return Result.from_exception(exc), attempts.count

    def attempt(self, kwargs: dict[str, Any], attempts: _Attempts) -> Any:
        """One attempt of a sample's call, holding a slot of the window (a retry waits for one)."""
        if attempts.ticket is None:
            if attempts.abandoned:
                raise _Cancelled  # past its deadline: its result is already recorded
            self.window.enter(attempts, self.stop)
            if attempts.abandoned:  # its deadline passed while it waited for room
                self.window.leave(attempts, None, counts=False)
                raise _Cancelled
        try:
            with sample_scope(self.calls):
                value = self.spec.func(**kwargs)
        except BaseException as exc:
            self.window.leave(attempts, exc, counts=isinstance(exc, Exception))
            raise
        self.window.leave(attempts, None)
        return value

    def backoff(self, delay: float) -> None:
        """Wait before a retry; a first Ctrl+C (``stop``) cancels the wait, and the sample."""
        if self.stop.wait(delay):
            raise _Cancelled

    async def abackoff(self, delay: float) -> None:
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
        self.ticket: int | None = None  # the window's slot it holds (see doteval._running.window)
        self.abandoned = False  # recorded as timed out: its thread takes no slot again

    def __call__(self, retry: int, exc: BaseException, delay: float) -> None:
        self.count = retry + 2  # retry 0 follows attempt 1
        self.ex.on_retry(self.sample, retry + 1, exc, delay)

    def timed_out(self) -> tuple[Result, int]:
        """The sample's result when it ran past its timeout, with the attempts it had begun."""
        self.abandoned = True
        self.ex.window.leave(self, None, counts=False)
        return timed_out(self.ex.timeout or 0.0), self.count


def execute(execution: Execution, pending: Pending) -> None:
    if execution.spec.is_async:
        _run_async(execution, pending)
    elif execution.concurrency > 1 or execution.timeout is not None:
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
    """Plain functions in worker threads: at most ``ex.concurrency`` samples in flight, each
    until it ends or its deadline (``ex.timeout`` after it started) passes, whichever comes
    first. A sample past its deadline is recorded as timed out and no longer counts."""
    work = iter(pending)
    workers = _Workers(ex)
    ex.window.on_free = workers.wake
    tokens = itertools.count()
    in_flight: InFlight = {}
    more = True
    try:
        with _interrupt_guard(ex, lambda: len(in_flight)):
            while True:
                while not ex.stop.is_set() and len(in_flight) < ex.concurrency and more:
                    attempts = _Attempts(ex, None)
                    if not ex.window.try_enter(attempts):
                        break
                    nxt = next(work, None)
                    if nxt is None:
                        more = False
                        ex.window.leave(attempts, None, counts=False)
                        break
                    token, attempts.sample = next(tokens), nxt[0]
                    deadline = time.monotonic() + ex.timeout if ex.timeout is not None else 0.0
                    in_flight[token] = (nxt[0], nxt[1], time.time(), deadline, attempts)
                    workers.submit(token, nxt[0], nxt[1], attempts)
                ex.window_moved()
                if not in_flight:
                    break
                wait = None
                if ex.timeout is not None:
                    wait = max(0.0, next(iter(in_flight.values()))[3] - time.monotonic())
                try:
                    token, done, exc = workers.next_end(wait)
                except queue.Empty:
                    _record_timeouts(ex, in_flight)
                    continue
                if token < 0:
                    continue  # a slot of the window was freed: room for a new sample, maybe
                entry = in_flight.pop(token, None)
                if entry is None:
                    continue  # the late end of a sample already recorded as timed out
                if exc is not None:
                    raise exc
                if done is not None:  # None: Ctrl+C cancelled its retry wait (not recorded)
                    ex.record(entry[0], entry[1], done[0], entry[2], done[1])
    finally:
        workers.close()


def _record_timeouts(ex: Execution, in_flight: InFlight) -> None:
    now = time.monotonic()
    for token, (key, item, started, deadline, attempts) in list(in_flight.items()):
        if deadline > now:
            break  # the others started later
        del in_flight[token]
        result, count = attempts.timed_out()
        ex.record(key, item, result, started, count)


class _Workers:
    """Daemon threads that call samples, each thread taking one sample after another.

    A thread whose sample passed its deadline is left to finish that call (Python cannot stop
    a thread; its late result is dropped, and as a daemon it does not keep the process from
    exiting): a new thread takes its place, so a hung call never holds a slot."""

    def __init__(self, ex: Execution) -> None:
        self.ex = ex
        self._jobs: queue.SimpleQueue[tuple[int, Any, tuple[Any, ...], _Attempts] | None] = (
            queue.SimpleQueue()
        )
        # (token, the result and its attempts or None, the exception to raise on the run's thread)
        self._ends: queue.Queue[tuple[int, tuple[Result, int] | None, BaseException | None]]
        self._ends = queue.Queue()
        self.threads = 0
        self.busy = 0  # samples handed out whose end was not taken by ``next_end`` yet

    def submit(self, token: int, key: Any, item: tuple[Any, ...], attempts: _Attempts) -> None:
        if self.busy >= self.threads:
            threading.Thread(target=self._work, name="doteval-sample", daemon=True).start()
            self.threads += 1
        self.busy += 1
        self._jobs.put((token, key, item, attempts))

    def next_end(self, wait: float | None) -> tuple[int, tuple[Result, int] | None, BaseException | None]:
        """The next sample to end (raises ``queue.Empty`` when none did within ``wait`` seconds),
        or a token below 0: a slot of the window was freed (``wake``)."""
        end = self._ends.get(timeout=wait)
        if end[0] >= 0:
            self.busy -= 1
        return end

    def wake(self) -> None:
        if self._ends.empty():  # one wake-up is enough for the scheduler to look again
            self._ends.put((-1, None, None))

    def close(self) -> None:
        for _ in range(self.threads):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            token, key, item, attempts = job
            try:
                done = self.ex.call(key, item, attempts)
            except BaseException as exc:  # handed to the run's thread, which raises it
                self._ends.put((token, None, exc))
            else:
                self._ends.put((token, done, None))


def _run_async(ex: Execution, pending: Pending) -> None:
    """Coroutines: ``ex.concurrency`` workers, each taking the next sample when the window has
    room for it; a sample's retry waits for room again."""
    work = iter(pending)
    in_flight = [0]

    async def attempt(kwargs: dict[str, Any], attempts: _Attempts) -> Any:
        if attempts.ticket is None:
            await ex.window.aenter(attempts, ex.stop, new=False)
        try:
            with sample_scope(ex.calls):
                value = await ex.spec.func(**kwargs)
        except BaseException as exc:
            ex.window.leave(attempts, exc, counts=isinstance(exc, Exception))
            raise
        ex.window.leave(attempts, None)
        return value

    async def call(sample: Any, item: tuple[Any, ...], attempts: _Attempts) -> tuple[Result, int] | None:
        kwargs = ex.kwargs(item)
        try:
            value = await acall_with_retries(
                lambda: attempt(kwargs, attempts), ex.retry, on_retry=attempts, sleep=ex.abackoff
            )
            return to_result(value), attempts.count
        except (_Cancelled, Cancelled):
            return None
        except CacheMissError as exc:
            return Result.from_exception(exc), attempts.count
        except (KeyboardInterrupt, SystemExit, DotevalError, asyncio.CancelledError):
            raise
        except Exception as exc:
            return Result.from_exception(exc), attempts.count
        finally:
            ex.window.leave(attempts, None, counts=False)  # cancelled by its timeout mid-call

    async def worker() -> None:
        while not ex.stop.is_set():
            attempts = _Attempts(ex, None)
            try:
                await ex.window.aenter(attempts, ex.stop, new=True)
            except Cancelled:
                return
            nxt = next(work, None)
            if nxt is None:
                ex.window.leave(attempts, None, counts=False)
                return
            key, item = nxt
            attempts.sample = key
            started = time.time()
            in_flight[0] += 1
            try:
                done = await within(ex.timeout, call(key, item, attempts), attempts.timed_out)
            finally:
                in_flight[0] -= 1
            if done is not None:
                ex.record(key, item, done[0], started, done[1])
            ex.window_moved()

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
