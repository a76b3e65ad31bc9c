"""Tests for doteval._running.retries: what is transient, the backoff, and the retry loops."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doteval._running.retries import (
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    http_status,
    is_transient,
    retry_after,
)
from doteval.errors import LockedError, UsageError

# -- client-library look-alikes (nothing imported) -------------------------------


class APIError(Exception):
    pass


class APIStatusError(APIError):
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code
        self.response = FakeResponse(status_code, headers or {})


class RateLimitError(APIStatusError):
    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__(429, headers)


class BadRequestError(APIStatusError):
    def __init__(self) -> None:
        super().__init__(400)


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class OverloadedError(APIError):
    pass


class ServiceUnavailableError(Exception):
    pass


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers


class HTTPStatusError(Exception):
    """Like httpx: the status is only on the response."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = FakeResponse(status, headers or {})


class AiohttpLike(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HintedError(Exception):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


class StatusIsNotAnInt(Exception):
    status_code = "503"


# -- is_transient ------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        asyncio.TimeoutError(),
        ConnectionError(),
        ConnectionResetError(),
        BrokenPipeError(),
        RateLimitError(),
        APIStatusError(500),
        APIStatusError(502),
        APIStatusError(503),
        APIStatusError(504),
        APIStatusError(529),
        APIStatusError(408),
        APIStatusError(409),
        APIStatusError(425),
        HTTPStatusError(503),
        AiohttpLike(429),
        APIConnectionError(),
        APITimeoutError(),
        OverloadedError(),
        ServiceUnavailableError(),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")),
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("k"),
        AssertionError(),
        TypeError(),
        RuntimeError(),
        BadRequestError(),
        APIStatusError(401),
        APIStatusError(404),
        HTTPStatusError(422),
        AiohttpLike(403),
        StatusIsNotAnInt(),
        KeyboardInterrupt(),
        SystemExit(1),
        asyncio.CancelledError(),
        LockedError("run", 1, "host", "now"),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")),
)
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_http_status_reads_the_exception_then_its_response() -> None:
    assert http_status(APIStatusError(418)) == 418
    assert http_status(HTTPStatusError(502)) == 502
    assert http_status(ValueError()) is None


# -- delays --------------------------------------------------------------------------


def test_delay_without_jitter_doubles_and_is_capped() -> None:
    p = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.0)
    assert [p.delay(a) for a in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert p.delay(5000) == 10.0  # no overflow for absurd attempts


def test_delay_jitter_is_seeded_by_the_rng() -> None:
    p = RetryPolicy(base_delay=1.0, jitter=0.5)
    assert p.delay(2, random.Random(7)) == p.delay(2, random.Random(7))
    assert 2.0 <= p.delay(2, random.Random(7)) <= 6.0


def test_retry_after_attribute_and_headers() -> None:
    assert retry_after(HintedError(3)) == 3.0
    assert retry_after(HintedError("2.5")) == 2.5
    assert retry_after(HintedError(None)) is None
    assert retry_after(RateLimitError({"retry-after": "7"})) == 7.0
    assert retry_after(HTTPStatusError(429, {"Retry-After": "4"})) == 4.0
    assert retry_after(RateLimitError({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after(RateLimitError({"retry-after": "soon"})) is None
    assert retry_after(RateLimitError()) is None
    assert retry_after(ValueError()) is None


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    hint = retry_after(RateLimitError({"retry-after": when}))
    assert hint is not None and 25 <= hint <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after(RateLimitError({"retry-after": past})) == 0.0


def test_delay_honours_the_hint_capped_at_max_delay() -> None:
    p = RetryPolicy(base_delay=1.0, max_delay=20.0, jitter=0.5)
    assert p.delay(0, exc=RateLimitError({"retry-after": "12"})) == 12.0
    assert p.delay(0, exc=HintedError(3600)) == 20.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"base_delay": -1.0},
        {"max_delay": float("inf")},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_invalid_policies_are_usage_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)


def test_negative_attempt_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        RetryPolicy().delay(-1)


@given(
    attempt=st.integers(0, 10_000),
    base=st.floats(0, 100),
    max_delay=st.floats(0, 1000),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_delay_always_within_bounds(
    attempt: int, base: float, max_delay: float, jitter: float, seed: int
) -> None:
    p = RetryPolicy(base_delay=base, max_delay=max_delay, jitter=jitter)
    d = p.delay(attempt, random.Random(seed))
    assert 0.0 <= d <= max_delay * (1 + jitter) + 1e-9


@given(hint=st.floats(0, 1e6), max_delay=st.floats(0, 1000))
def test_hinted_delay_never_exceeds_max_delay(hint: float, max_delay: float) -> None:
    p = RetryPolicy(max_delay=max_delay)
    assert 0.0 <= p.delay(0, exc=HintedError(hint)) <= max_delay


# -- call_with_retries ----------------------------------------------------------------


class Flaky:
    """Fails with ``errors`` in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_two_transient_failures_then_success() -> None:
    fn = Flaky(RateLimitError(), TimeoutError())
    slept: list[float] = []
    seen: list[tuple[int, str, float]] = []
    policy = RetryPolicy(max_retries=3, base_delay=1.0, jitter=0.0)

    result = call_with_retries(
        fn,
        policy,
        sleep=slept.append,
        on_retry=lambda attempt, exc, delay: seen.append((attempt, type(exc).__name__, delay)),
    )

    assert result == "ok"
    assert fn.calls == 3
    assert slept == [1.0, 2.0]
    assert slept[1] > slept[0]
    assert seen == [(0, "RateLimitError", 1.0), (1, "TimeoutError", 2.0)]


def test_delays_grow_with_jitter_too() -> None:
    fn = Flaky(*(ConnectionError() for _ in range(4)))
    slept: list[float] = []
    policy = RetryPolicy(max_retries=4, base_delay=1.0, jitter=0.25)
    assert call_with_retries(fn, policy, sleep=slept.append, rng=random.Random(0)) == "ok"
    # with jitter 0.25 consecutive doublings can never overlap
    assert all(b > a for a, b in itertools.pairwise(slept))


def test_non_transient_error_is_raised_at_once() -> None:
    fn = Flaky(ValueError("bug"))
    slept: list[float] = []
    with pytest.raises(ValueError, match="bug"):
        call_with_retries(fn, RetryPolicy(), sleep=slept.append)
    assert fn.calls == 1
    assert slept == []


def test_exhausted_retries_reraise_the_last_error() -> None:
    errors = [APIStatusError(503) for _ in range(5)]
    fn = Flaky(*errors)
    slept: list[float] = []
    with pytest.raises(APIStatusError) as info:
        call_with_retries(fn, RetryPolicy(max_retries=2, jitter=0.0), sleep=slept.append)
    assert info.value is errors[2]
    assert fn.calls == 3
    assert slept == [1.0, 2.0]


def test_zero_retries_means_one_call() -> None:
    fn = Flaky(TimeoutError())
    with pytest.raises(TimeoutError):
        call_with_retries(fn, RetryPolicy(max_retries=0), sleep=lambda d: None)
    assert fn.calls == 1


def test_keyboard_interrupt_is_never_retried() -> None:
    fn = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        call_with_retries(fn, RetryPolicy(), sleep=lambda d: None)
    assert fn.calls == 1


def test_server_hint_drives_the_wait() -> None:
    fn = Flaky(RateLimitError({"retry-after": "5"}))
    slept: list[float] = []
    assert call_with_retries(fn, RetryPolicy(), sleep=slept.append) == "ok"
    assert slept == [5.0]


# -- acall_with_retries ----------------------------------------------------------------


def test_async_two_transient_failures_then_success() -> None:
    flaky = Flaky(APITimeoutError(), OverloadedError())
    slept: list[float] = []

    async def fn() -> str:
        await asyncio.sleep(0)
        return flaky()

    async def fake_sleep(d: float) -> None:
        slept.append(d)

    policy = RetryPolicy(base_delay=0.5, jitter=0.0)
    assert asyncio.run(acall_with_retries(fn, policy, sleep=fake_sleep)) == "ok"
    assert flaky.calls == 3
    assert slept == [0.5, 1.0]


def test_async_non_transient_and_exhausted() -> None:
    async def fake_sleep(d: float) -> None:
        pass

    bad = Flaky(KeyError("k"))

    async def fn_bad() -> str:
        return bad()

    with pytest.raises(KeyError):
        asyncio.run(acall_with_retries(fn_bad, RetryPolicy(), sleep=fake_sleep))
    assert bad.calls == 1

    down = Flaky(*(ConnectionError() for _ in range(10)))

    async def fn_down() -> str:
        return down()

    with pytest.raises(ConnectionError):
        asyncio.run(acall_with_retries(fn_down, RetryPolicy(max_retries=3), sleep=fake_sleep))
    assert down.calls == 4


def test_async_cancellation_is_never_retried() -> None:
    flaky = Flaky(asyncio.CancelledError())

    async def fn() -> str:
        return flaky()

    async def fake_sleep(d: float) -> None:
        pass

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(acall_with_retries(fn, RetryPolicy(), sleep=fake_sleep))
    assert flaky.calls == 1


def test_async_real_sleep_default_is_awaited() -> None:
    flaky = Flaky(TimeoutError())

    async def fn() -> str:
        return flaky()

    policy = RetryPolicy(base_delay=0.001, jitter=0.0)
    assert asyncio.run(acall_with_retries(fn, policy)) == "ok"
    assert flaky.calls == 2
