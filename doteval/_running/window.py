"""The window of samples calling a model at once, adapted to rate limits as TCP adapts its
congestion window (AIMD).

``--concurrency N`` is a ceiling: at most N samples in flight. Of those, at most ``limit``
are calling (the others wait to retry). The window starts at the ceiling, so a run that meets
no rate limit runs exactly as before. An attempt refused with a rate limit (``is_rate_limit``:
HTTP 429, or an SDK's ``RateLimitError``) halves it (min 1), once per window's worth of calls:
the refusals of calls begun before the cut are of the window already cut, so a burst of
refusals halves it once. A window's worth of served calls adds 1, if the window was full
since it last moved (RFC 7661's rule: a window that samples waiting to retry, or the end of the
dataset, leave unused does not grow, so it is not wide open when they come back). A sample whose retry wait is over waits for room before new samples start.

It is thread-safe; ``execution`` uses it from worker threads or from one event loop. It
knows nothing of samples or results; it never sleeps longer than a poll of the stop event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Protocol

from doteval._running.retries import is_rate_limit

POLL = 0.05  # seconds between two looks at the stop event while waiting for room
DECREASE = 0.5  # a rate limit multiplies the window by this (TCP Reno's half)


class Holder(Protocol):
    ticket: int | None  # the slot held (the number of the attempt that took it), None: none


class Cancelled(BaseException):
    """Ctrl+C stopped the wait (never caught as a sample's error)."""


class Window:
    def __init__(self, ceiling: int, on_free: Callable[[], None] | None = None) -> None:
        self.ceiling = max(1, ceiling)
        self.size = self.ceiling
        self._served = 0  # calls served since the window last moved
        self._used = False  # whether it was full since it last moved: only a used window grows
        self.calling = 0  # attempts in flight
        self.waiting = 0  # retries waiting for room (served before new samples)
        self.refused = 0  # attempts refused with a rate limit
        self.on_free = on_free  # a slot was freed (the thread scheduler wakes up)
        self._begun = 0  # attempts begun
        self._cut_at = 0  # attempts begun before the last cut belong to the window that was cut
        self._cond = threading.Condition()
        self._freed: asyncio.Event | None = None

    @property
    def limit(self) -> int:
        return self.size

    def try_enter(self, holder: Holder) -> bool:
        """Take a slot for a new sample if there is room (none while a retry waits)."""
        with self._cond:
            if not self._room(new=True):
                return False
            self._take(holder)
            return True

    def enter(self, holder: Holder, stop: threading.Event) -> None:
        """Take a slot for a retry, waiting for room; ``Cancelled`` when ``stop`` is set."""
        with self._cond:
            self.waiting += 1
            try:
                while not self._room(new=False):
                    if stop.is_set():
                        raise Cancelled
                    self._cond.wait(POLL)
                if stop.is_set():
                    raise Cancelled
            finally:
                self.waiting -= 1
            self._take(holder)

    async def aenter(self, holder: Holder, stop: threading.Event, *, new: bool) -> None:
        """``enter`` in an event loop: for a new sample (``new``) or a retry."""
        if self._freed is None:
            self._freed = asyncio.Event()
        self.waiting += 0 if new else 1
        try:
            while not self._room(new):
                if stop.is_set():
                    raise Cancelled
                self._freed.clear()
                try:
                    await asyncio.wait_for(self._freed.wait(), POLL)
                except asyncio.TimeoutError:
                    pass
            if stop.is_set():
                raise Cancelled
        finally:
            self.waiting -= 0 if new else 1
        self._take(holder)

    def _room(self, new: bool) -> bool:
        return self.calling + (self.waiting if new else 0) < self.limit

    def _take(self, holder: Holder) -> None:
        self.calling += 1
        self._used = self._used or self.calling >= self.limit
        holder.ticket = self._begun
        self._begun += 1

    def leave(self, holder: Holder, error: BaseException | None, *, counts: bool = True) -> None:
        """Free the holder's slot (if it still holds one): ``error`` None is a served call, a
        rate limit cuts the window; ``counts=False`` (a cancelled or timed-out call) changes
        nothing but the count."""
        with self._cond:
            ticket, holder.ticket = holder.ticket, None
            if ticket is None:
                return
            self.calling -= 1
            if counts and error is None:
                self._served += 1
                if self._served >= self.size and self._used and self.size < self.ceiling:
                    self.size, self._served = self.size + 1, 0
                    self._used = False
            elif counts and is_rate_limit(error):
                self.refused += 1
                if ticket >= self._cut_at:
                    self.size, self._served = max(1, int(self.size * DECREASE)), 0
                    self._used = False
                    self._cut_at = self._begun
            self._cond.notify_all()
        if self._freed is not None:
            self._freed.set()
        if self.on_free is not None:
            self.on_free()
