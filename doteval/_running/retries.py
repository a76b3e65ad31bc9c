"""Retrying the transient failures of model calls: timeouts, rate limits, 5xx.

An evaluation over thousands of samples meets rate limits and dropped
connections; those samples should be retried with backoff rather than stored
as errors. A bug in the evaluation (``ValueError``, ``KeyError``, a 400 from
the API) must not be retried: it would fail the same way, only slower.

Client libraries (openai, anthropic, httpx, requests...) are recognised by
duck typing, never imported: an HTTP status on the exception or its
``response``, or a telling class name.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import email.utils
import inspect
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from doteval.errors import DotevalError, UsageError

T = TypeVar("T")

TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

# Matched against every class name in the exception's MRO. "ConnectError" and
# "ConnectionError" catch httpx.ConnectError and requests' ConnectionError,
# which do not derive from the builtin ConnectionError.
TRANSIENT_NAME_PARTS: tuple[str, ...] = (
    "RateLimit",
    "Timeout",
    "APIConnectionError",
    "ServiceUnavailable",
    "InternalServerError",
    "Overloaded",
    "ConnectError",
    "ConnectionError",
)

# Retried with their subclasses. httpx's and requests' errors do not derive from them:
# their names are matched (TRANSIENT_NAME_PARTS).
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError, ConnectionError)

# Never retried, whatever they look like: the user or the event loop wants
# the run to stop (and DotevalError: doteval's own errors are not transient).
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
    DotevalError,
)

OnRetry = Callable[[int, BaseException, float], Any]


def _status_of(obj: Any) -> int | None:
    for attr in ("status_code", "status"):
        try:
            value = getattr(obj, attr, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by ``exc`` or ``exc.response``, if any."""
    status = _status_of(exc)
    if status is None:
        try:
            response = getattr(exc, "response", None)
        except Exception:
            response = None
        if response is not None:
            status = _status_of(response)
    return status


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: a timeout, a dropped connection, a rate
    limit or a server-side failure. Everything else is not."""
    if isinstance(exc, NEVER_RETRIED):
        return False
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    if http_status(exc) in TRANSIENT_STATUSES:
        return True
    return any(part in cls.__name__ for cls in type(exc).__mro__ for part in TRANSIENT_NAME_PARTS)


def is_rate_limit(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a rate limit: HTTP 429 on it or its ``response``, or a class named
    like the SDKs' ``RateLimitError`` in its MRO. The window of samples calling
    (``doteval._running.window``) shrinks on these."""
    if exc is None or isinstance(exc, NEVER_RETRIED):
        return False
    if http_status(exc) == 429:
        return True
    return any("RateLimit" in cls.__name__ for cls in type(exc).__mro__)


def _header(headers: Any, name: str) -> Any:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    # httpx/requests headers are case-insensitive; a plain dict is not.
    for key in (name, name.title(), name.upper()):
        try:
            value = getter(key)
        except Exception:
            return None
        if value is not None:
            return value
    return None


def _seconds(value: Any, *, now: float | None = None) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (str, bytes)):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        text = text.strip()
        try:
            seconds = float(text)
        except ValueError:
            # Retry-After may also be an HTTP date.
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.timezone.utc)
            seconds = when.timestamp() - (time.time() if now is None else now)
    else:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after(exc: BaseException) -> float | None:
    """The wait in seconds that ``exc`` asks for, if it carries a hint.

    Looks at an attribute ``retry_after`` (seconds), then at the response
    headers ``retry-after-ms`` (milliseconds, sent by OpenAI) and
    ``retry-after`` (seconds or an HTTP date).
    """
    try:
        hint = _seconds(getattr(exc, "retry_after", None))
    except Exception:
        hint = None
    if hint is not None:
        return hint
    try:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    except Exception:
        return None
    if headers is None:
        return None
    ms = _seconds(_header(headers, "retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    return _seconds(_header(headers, "retry-after"))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure.

    The wait before retry number ``attempt`` (0 for the first retry) is
    ``min(base_delay * 2**attempt, max_delay)`` times a random factor in
    ``[1 - jitter, 1 + jitter]``, so it lies in ``[0, max_delay * (1 + jitter)]``.
    A ``Retry-After`` hint from the server replaces it (capped at ``max_delay``,
    not jittered). ``max_retries=0`` disables retrying.
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise UsageError(f"max_retries must be an integer >= 0, not {self.max_retries!r}")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not (0 <= value < math.inf):
                raise UsageError(f"{name} must be a finite number >= 0, not {value!r}")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter must be between 0 and 1, not {self.jitter!r}")

    def delay(
        self,
        attempt: int,
        rng: random.Random | None = None,
        *,
        exc: BaseException | None = None,
    ) -> float:
        """Seconds to wait before retry ``attempt`` (0-based), after failure ``exc``."""
        if attempt < 0:
            raise UsageError(f"attempt must be >= 0, not {attempt!r}")
        if exc is not None:
            hint = retry_after(exc)
            if hint is not None:
                return min(hint, float(self.max_delay))
        # 2.0**1024 overflows; any exponent past ~1000 is capped anyway.
        backoff = min(self.base_delay * 2.0 ** min(attempt, 1000), self.max_delay)
        if self.jitter == 0:
            return float(backoff)
        r = rng if rng is not None else random
        return float(backoff * r.uniform(1.0 - self.jitter, 1.0 + self.jitter))


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Any] = time.sleep,
    on_retry: OnRetry | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn()``; on a transient error wait and call again, up to ``policy.max_retries``
    more times, then re-raise the last error. Other errors are raised at once.

    ``on_retry(attempt, exc, delay)`` is called before each wait, ``attempt``
    being 0 for the first retry.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # BaseExceptions (Ctrl-C, exit) go straight out
            if attempt >= policy.max_retries or not is_transient(exc):
                raise
            wait = policy.delay(attempt, rng, exc=exc)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
        sleep(wait)
        attempt += 1


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: OnRetry | None = None,
    rng: random.Random | None = None,
) -> T:
    """Async ``call_with_retries``: awaits ``fn()`` and ``sleep(delay)``.

    ``asyncio.CancelledError`` is never retried: cancelling the task stops it.
    """
    attempt = 0
    while True:
        try:
            result: Any = fn()
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[no-any-return]
        except Exception as exc:
            if attempt >= policy.max_retries or not is_transient(exc):
                raise
            wait = policy.delay(attempt, rng, exc=exc)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
        await sleep(wait)
        attempt += 1


__all__ = [
    "NEVER_RETRIED",
    "TRANSIENT_NAME_PARTS",
    "TRANSIENT_STATUSES",
    "TRANSIENT_TYPES",
    "RetryPolicy",
    "acall_with_retries",
    "call_with_retries",
    "http_status",
    "is_rate_limit",
    "is_transient",
    "retry_after",
]
