"""Concurrency that adapts to rate limits: ``--concurrency N`` is a ceiling, and the window of
samples calling at once halves on a rate limit and grows back by one per window's worth of
successes (AIMD); ``@foreach(concurrency=, max_retries=)`` are defaults the options override.

The end-to-end runs are real pytest processes against a stand-in API: a threaded HTTP server on
127.0.0.1 that answers in 20 ms and refuses with HTTP 429 whatever comes beyond 8 requests at once.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from doteval._cli.console.progress import ProgressListener
from doteval._objects import Store
from doteval._repository.history import resolve
from doteval._repository.results import result_fields
from doteval._repository.sample_tables import load_view
from doteval._running.experiment_run import EvaluationOutcome
from doteval._running.retries import is_rate_limit
from doteval._running.window import Cancelled, Window
from doteval.session import SessionStatus, get_session

# -- the stand-in API ---------------------------------------------------------------------------


class StandInAPI(ThreadingHTTPServer):
    """Serves ``capacity`` requests at once, each in ``latency`` seconds; refuses the others (429)."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, capacity: int = 8, latency: float = 0.02) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.capacity, self.latency = capacity, latency
        self.lock = threading.Lock()
        self.active = self.served = self.refused = self.most = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: StandInAPI

    def do_GET(self) -> None:
        api = self.server
        with api.lock:
            refused = api.active >= api.capacity
            if refused:
                api.refused += 1
            else:
                api.active += 1
                api.most = max(api.most, api.active)
        if not refused:
            time.sleep(api.latency)
            with api.lock:
                api.active -= 1
                api.served += 1
        body = b"too many requests" if refused else self.path.encode()
        self.send_response(429 if refused else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[StandInAPI]:
    server = StandInAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# The evaluations call the API: a plain function with urllib (HTTPError carries .status 429), a
# coroutine with a bare asyncio HTTP/1.0 client raising an SDK-like error with .status_code.
EVAL = """
import asyncio
import os
import urllib.parse
import urllib.request

from doteval import Result, foreach

URL = os.environ["API_URL"]
DATA = [f"q{i}" for i in range(int(os.environ["N"]))]


@foreach("q", DATA)
def eval_threads(q):
    with urllib.request.urlopen(URL + q, timeout=60) as response:
        return Result(response.read().decode() == "/" + q, prompt=q)


class APIStatusError(Exception):
    def __init__(self, status_code):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


async def get(q):
    url = urllib.parse.urlsplit(URL)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(f"GET /{q} HTTP/1.0\\r\\nHost: {url.hostname}\\r\\n\\r\\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    status = int(head.split()[1])
    if status != 200:
        raise APIStatusError(status)
    return body.decode()


@foreach("q", DATA)
async def eval_async(q):
    return Result(await get(q) == "/" + q, prompt=q)


@foreach("q", DATA, concurrency=4, max_retries=0)
def eval_defaults(q):
    return eval_threads.__wrapped__(q)
"""


def run(tmp_path: Path, api: StandInAPI, n: int, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "eval_api.py").write_text(EVAL)
    env = dict(os.environ, API_URL=api.url, N=str(n), COLUMNS="200", DOTEVAL_PROGRESS_EVERY="0")
    env["DOTEVAL_PROGRESS"] = "auto"  # plain lines (stderr is not a terminal)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "eval_api.py", *args]
    # a generous timeout only turns a hang into a failure
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("evaluation", ["eval_threads", "eval_async"])
def test_concurrency_64_against_an_api_serving_8_finishes_without_errors(
    evaluation: str, tmp_path: Path, api: StandInAPI
) -> None:
    n = 600
    proc = run(tmp_path, api, n, "-k", evaluation, "--experiment", "x", "--concurrency", "64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    session = get_session("x")
    assert session is not None
    assert session.status == SessionStatus.COMPLETED
    assert (session.completed_count, session.error_count) == (n, 0), proc.stdout
    assert api.served == n and api.most <= 8
    # (about 0.05-0.12 per sample here, most of them the first burst; 0.19 without the window)
    assert api.refused < 0.15 * n, (api.refused, proc.stderr[-2000:])
    # the plain progress lines said the window was below the ceiling
    assert "rate limited: " in proc.stderr and " of 64 at once" in proc.stderr, proc.stderr[-2000:]


def test_foreach_defaults_and_the_options_that_override_them(tmp_path: Path, api: StandInAPI) -> None:
    # @foreach(concurrency=4, max_retries=0): never more than 4 at once, so never refused
    proc = run(tmp_path, api, 40, "-k", "eval_defaults", "--experiment", "d")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert api.most <= 4 and api.refused == 0
    assert "this run evaluated 40, reused 0" in proc.stdout

    # --concurrency 32 wins: refusals come, and with max_retries=0 they are errors...
    api.most = 0
    proc = run(tmp_path, api, 80, "-k", "eval_defaults", "--experiment", "e", "--concurrency", "32")
    assert api.most > 4 and api.refused > 0, proc.stderr
    session = get_session("e")
    assert session is not None and session.error_count > 0
    # ...and --max-retries wins too: the same command with retries leaves no error
    proc = run(
        tmp_path, api, 80, "-k", "eval_defaults", "--experiment", "e", "--concurrency", "32",
        "--max-retries", "8", "--retry-delay", "0.05",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    session = get_session("e")
    assert session is not None and (session.completed_count, session.error_count) == (80, 0)


@pytest.mark.parametrize(
    "options", ["concurrency=0", "max_retries=-1", "concurrency='many'"], ids=["zero", "negative", "text"]
)
def test_bad_foreach_defaults_are_one_line(tmp_path: Path, options: str) -> None:
    (tmp_path / "eval_bad.py").write_text(
        f"from doteval import foreach\n\n@foreach('q', [1], {options})\ndef eval_bad(q):\n    return q\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", "run", "eval_bad.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    name = options.split("=")[0]
    assert f"@foreach({name}=...) must be a whole number" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# -- the window itself ----------------------------------------------------------------------------


class Holder:
    ticket: int | None = None


class RateLimitError(Exception):
    """Named like openai's and anthropic's."""


class WithResponse(Exception):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.response = type("Response", (), {"status_code": status})()


class Status(Exception):
    status = 429


def test_rate_limits_are_429s_and_rate_limit_errors() -> None:
    assert is_rate_limit(RateLimitError())
    assert is_rate_limit(WithResponse(429)) and is_rate_limit(Status())
    assert not is_rate_limit(WithResponse(503)) and not is_rate_limit(TimeoutError())
    assert not is_rate_limit(ValueError()) and not is_rate_limit(None)


def enter(window: Window, n: int) -> list[Holder]:
    holders = [Holder() for _ in range(n)]
    for h in holders:
        assert window.try_enter(h)
    return holders


def test_the_window_starts_at_the_ceiling_and_has_room_for_that_many() -> None:
    window = Window(4)
    assert window.limit == 4
    enter(window, 4)
    assert not window.try_enter(Holder())


def test_a_burst_of_refusals_halves_the_window_once() -> None:
    window = Window(64)
    holders = enter(window, 64)
    for h in holders[:56]:
        window.leave(h, RateLimitError())
    assert window.limit == 32 and window.refused == 56
    for h in holders[56:]:
        window.leave(h, None)
    # the calls begun after the cut are of the new window: their refusal halves it again
    again = enter(window, 1)[0]
    window.leave(again, RateLimitError())
    assert window.limit == 16


def test_the_window_halves_down_to_1_and_grows_by_1_per_window_of_successes() -> None:
    window = Window(8)
    for _ in range(5):
        window.leave(enter(window, 1)[0], Status())
    assert window.limit == 1
    sizes = []
    for _ in range(4):  # a window's worth of successes at 1, 2, 3, then 4
        for holder in enter(window, window.limit):
            window.leave(holder, None)
            sizes.append(window.limit)
    assert sizes == [2, 2, 3, 3, 3, 4, 4, 4, 4, 5]
    for _ in range(200):
        for holder in enter(window, window.limit):
            window.leave(holder, None)
    assert window.limit == 8  # never past the ceiling


def test_a_window_left_unused_does_not_grow() -> None:
    """Samples waiting to retry (or the end of the dataset) keep it from being full: it stays."""
    window = Window(64)
    first, *others = enter(window, 64)
    window.leave(first, Status())
    for holder in others:  # refused too, and waiting to retry: no longer calling
        window.leave(holder, Status())
    assert window.limit == 32
    for _ in range(500):  # 8 at a time: never full
        for holder in enter(window, 8):
            window.leave(holder, None)
    assert window.limit == 32


def test_other_errors_and_cancelled_calls_leave_the_window_as_it_is() -> None:
    window = Window(8)
    window.leave(enter(window, 1)[0], Status())
    size = window.size
    window.leave(enter(window, 1)[0], ValueError())
    window.leave(enter(window, 1)[0], None, counts=False)
    window.leave(enter(window, 1)[0], WithResponse(503))
    assert window.size == size and window.calling == 0


def test_a_retry_waits_for_room_and_goes_before_new_samples() -> None:
    window = Window(2)
    stop = threading.Event()
    holders = enter(window, 2)
    retry = Holder()
    entered = threading.Event()

    def wait() -> None:
        window.enter(retry, stop)
        entered.set()

    thread = threading.Thread(target=wait)
    thread.start()
    while window.waiting == 0:
        time.sleep(0.001)
    window.leave(holders[0], None)
    thread.join(timeout=60)
    assert entered.is_set() and retry.ticket is not None
    assert not window.try_enter(Holder())  # the retry took the freed slot


def test_ctrl_c_ends_a_wait_for_room() -> None:
    window = Window(1)
    stop = threading.Event()
    enter(window, 1)
    outcome: list[str] = []

    def wait() -> None:
        try:
            window.enter(Holder(), stop)
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=wait)
    thread.start()
    stop.set()
    thread.join(timeout=60)
    assert outcome == ["cancelled"]


def test_each_record_says_the_attempts_its_sample_took(tmp_path: Path, api: StandInAPI) -> None:
    """A sample refused and retried says how many attempts it took (its record's ``attempts``)."""
    proc = run(tmp_path, api, 100, "-k", "eval_threads", "--experiment", "a", "--concurrency", "32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = Store(Path(os.environ["DOTEVAL_STORE"]), reading=True)
    (evaluation,) = resolve(store, "a").manifest.evaluations
    table = load_view(store, evaluation)
    attempts = [result_fields(table.result(i), evaluation.columns)["attempts"] for i in range(len(table))]
    assert len(attempts) == 100 and min(attempts) >= 1
    # every refusal was retried: a sample's attempts are its refusals and the call that was served
    assert api.refused > 0 and sum(a - 1 for a in attempts) == api.refused, proc.stderr


def test_the_progress_bar_shows_the_window_below_the_ceiling() -> None:
    out = io.StringIO()
    listener = ProgressListener()
    listener.console = Console(file=out, force_terminal=True, width=200, color_system=None)
    listener.evaluation_started("eval_api.py::eval_x", 10, 0, 10)
    listener.window_changed("eval_api.py::eval_x", 4, 64)
    listener.sample_done("eval_api.py::eval_x", True)
    assert listener.progress is not None
    listener.progress.refresh()
    assert "rate limited: 4 of 64 at once" in out.getvalue()
    listener.window_changed("eval_api.py::eval_x", 64, 64)  # back at the ceiling: nothing shown
    listener.evaluation_finished("eval_api.py::eval_x", EvaluationOutcome("eval_api.py::eval_x"))
    assert out.getvalue().rstrip().splitlines()[-1].count("rate limited") == 0
