"""Timing out one sample (``--timeout``, ``@foreach(..., timeout=)``).

A sample that runs longer than its timeout ends as an error result whose type
is ``TimeoutError`` ("timed out after 5s"); like every error result it is
evaluated again by the next run. The limit covers the whole sample, retries of
transient errors included.

An ``async def`` evaluation is cancelled at its deadline. A plain function
cannot be stopped from outside (Python has no way to kill a thread): with a
timeout each sample runs in a daemon thread (``doteval._running.execution``
schedules them), and at the deadline the run records the timeout and moves on;
the abandoned call may go on in the background until it returns, its late
result is dropped, and it does not keep the process from exiting. This module
knows nothing of the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from doteval._repository.results import Result

T = TypeVar("T")


def timed_out(seconds: float) -> Result:
    """The error result of a sample that ran past ``seconds``."""
    return Result.from_exception(TimeoutError(f"the sample timed out after {seconds:g}s"))


async def within(seconds: float | None, sample: Awaitable[T], on_timeout: Callable[[], T]) -> T:
    """Await ``sample`` (a call that turns its own exceptions into results), cancelled at
    ``seconds``; then what ``on_timeout`` gives stands for it."""
    if seconds is None:
        return await sample
    try:
        return await asyncio.wait_for(sample, seconds)
    except asyncio.TimeoutError:
        return on_timeout()
