"""What a run tells its user and its CI: the exit code (errored samples are data;
``--max-errors``), Ctrl+C during retry backoff, plain progress without a terminal, and retry
lines and attempt counts per sample.

The exit code of each documented case is held by ``tests/test_docs.py`` (the table in
docs/reference/cli.md, run as written); these are the cases a table cannot hold.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doteval._running.settings import parse_max_errors
from doteval.errors import UsageError
from doteval.session import SessionStatus, get_session

# Samples: "ok*" answer, "bad*" raise a ValueError (an error, not retried), "slow*" are rate
# limited (HTTP 429: retried) until the calls file holds them ``FLAKY_TRIES`` times.
EVAL = """
import asyncio
import os
from pathlib import Path

from doteval import Result, foreach


class RateLimited(Exception):
    status_code = 429


def call(q):
    calls = Path(os.environ["CALLS"])
    with calls.open("a") as f:
        f.write(q + "\\n")
    if q.startswith("bad"):
        raise ValueError("cannot score " + q)
    if q.startswith("slow") and calls.read_text().split().count(q) < int(os.environ.get("FLAKY_TRIES", "1000")):
        raise RateLimited("rate limited: " + q)
    return Result(True, prompt=q)


DATA = ["ok0", "ok1", "bad0", "slow0", "slow1", "slow2", "slow3", "ok2", "ok3", "ok4"]


@foreach("q", DATA)
def eval_threads(q):
    return call(q)


@foreach("q", DATA)
async def eval_async(q):
    await asyncio.sleep(0)
    return call(q)
"""


def project(path: Path) -> Path:
    (path / "eval_outcome.py").write_text(EVAL)
    return path / "calls.txt"


def env(calls: Path, **extra: str) -> dict[str, str]:
    out = dict(os.environ, CALLS=str(calls), COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    out.update(extra)
    return out


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "eval_outcome.py", *args]


def calls_of(calls: Path) -> list[str]:
    return calls.read_text().split() if calls.exists() else []


# -- 1. exit code -----------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["pytest", "doteval run"])
def test_errored_samples_exit_0_and_the_summary_says_how_many_and_how_to_retry(
    runner: str, tmp_path: Path
) -> None:
    calls = project(tmp_path)
    if runner == "pytest":
        cmd = pytest_cmd("-k", "eval_threads", "--experiment", "e", "--max-retries", "0")
    else:
        cmd = [sys.executable, "-m", "doteval", "run", "eval_outcome.py", "-k", "eval_threads"]
        cmd += ["--experiment", "e", "--max-retries", "0"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env(calls), capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed" in out and "failed" not in out, out
    assert (
        "5 sample(s) errored (`doteval show e --errors` lists them); running the same command retries them"
        in out
    )
    session = get_session("e")
    assert session is not None and session.status == SessionStatus.FAILED


@pytest.mark.parametrize(
    ("text", "count", "fraction"),
    [
        ("0", 0, None),
        ("3", 3, None),
        ("0.05", None, 0.05),
        (".5", None, 0.5),
        ("5%", None, 0.05),
        ("1", 1, None),
    ],
)
def test_max_errors_reads_a_count_or_a_fraction(text: str, count: int | None, fraction: float | None) -> None:
    limit = parse_max_errors(text)
    assert (limit.count, limit.fraction) == (count, fraction)


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.5", "150%", "1e3", "nan", "0x10"])
def test_max_errors_refuses_what_is_not_a_count_or_a_fraction(text: str) -> None:
    with pytest.raises(UsageError, match="--max-errors takes a count"):
        parse_max_errors(text)


def test_more_errors_than_allowed_is_more_than_n_not_n() -> None:
    assert not parse_max_errors("2").exceeded(2, 10)
    assert parse_max_errors("2").exceeded(3, 10)
    assert not parse_max_errors("0.2").exceeded(2, 10)
    assert parse_max_errors("0.2").exceeded(3, 10)
    assert not parse_max_errors("0").exceeded(0, 0)


# -- 9. Ctrl+C during retry backoff ------------------------------------------------------


@pytest.mark.parametrize("evaluation", ["eval_threads", "eval_async"])
def test_ctrl_c_cancels_the_samples_waiting_to_retry(evaluation: str, tmp_path: Path) -> None:
    """Four samples are rate limited and wait (30 s or more) to retry; Ctrl+C ends the run
    without a second attempt of any of them, and records none of them. Interrupted wins over
    --max-errors: the exit code is pytest's for an interruption."""
    calls = project(tmp_path)
    cmd = pytest_cmd("-k", evaluation, "--experiment", "c", "--concurrency", "4")
    cmd += ["--retry-delay", "600", "--max-errors", "0"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(calls), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        # ok0, ok1, bad0 and the four slow ones: every slot is a sample waiting to retry
        while len(calls_of(calls)) < 7 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(calls_of(calls)) == sorted(["ok0", "ok1", "bad0", "slow0", "slow1", "slow2", "slow3"])
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]  # the backoff is at least 30 s: a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    assert sorted(calls_of(calls)) == sorted(["ok0", "ok1", "bad0", "slow0", "slow1", "slow2", "slow3"])
    session = get_session("c")
    assert session is not None
    assert session.status == SessionStatus.INTERRUPTED
    # the slow ones are not recorded (not even as errors): the next run evaluates them
    assert (session.completed_count, session.error_count) == (2, 1), session
    # and it does: the same command, with the model answering now
    again = subprocess.run(
        pytest_cmd("-k", evaluation, "--experiment", "c", "--retry-delay", "0"),
        cwd=tmp_path,
        env=env(calls, FLAKY_TRIES="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    session = get_session("c")
    assert session is not None and (session.completed_count, session.error_count) == (9, 1), session


# -- 11. progress without a terminal ---------------------------------------------------


def test_progress_without_a_terminal_is_a_plain_line_every_few_seconds(tmp_path: Path) -> None:
    calls = project(tmp_path)
    log = tmp_path / "run.log"
    with log.open("w") as f:  # a file, as in CI: not a terminal
        proc = subprocess.run(
            pytest_cmd("-k", "eval_threads", "--experiment", "p", "--retry-delay", "0"),
            cwd=tmp_path,
            env=env(calls, DOTEVAL_PROGRESS="auto", DOTEVAL_PROGRESS_EVERY="0", FLAKY_TRIES="2"),
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    out = log.read_text()
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("doteval: eval_threads: ")]
    # each on a line of its own, never in the middle of pytest's "eval_x.py ..." line
    assert len(lines) == out.count("doteval: eval_threads: "), out
    pattern = r"doteval: eval_threads: (\d+)/10 samples, \d+\.\d/s, (\d+) errors, (about .+ left|done in .+)"
    assert lines and all(re.fullmatch(pattern, line) for line in lines), out
    done = [int(re.fullmatch(pattern, line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert done == sorted(done) and done[-1] == 10, lines
    assert lines[-1].endswith(tuple(f"done in {n}s" for n in range(100))) and ", 1 errors," in lines[-1]
    assert "\x1b[" not in out  # no terminal codes in a log


def test_progress_lines_come_every_few_seconds_not_every_sample(tmp_path: Path) -> None:
    calls = project(tmp_path)
    proc = subprocess.run(
        pytest_cmd("-k", "eval_threads", "--experiment", "q", "--retry-delay", "0"),
        cwd=tmp_path,
        env=env(calls, DOTEVAL_PROGRESS="auto", DOTEVAL_PROGRESS_EVERY="3600", FLAKY_TRIES="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("doteval: eval_threads: ")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # no line before the interval is over, and so no closing line: the summary says it
    assert lines == [], proc.stderr
    assert "this run evaluated 10, reused 0" in proc.stdout, proc.stdout


# -- 13. retry lines and attempts ---------------------------------------------------------


def test_retry_lines_name_the_sample_and_count_attempts_from_1(tmp_path: Path) -> None:
    calls = project(tmp_path)
    proc = subprocess.run(
        pytest_cmd("-k", "eval_threads", "--experiment", "r", "--retry-delay", "0"),
        cwd=tmp_path,
        env=env(calls, DOTEVAL_PROGRESS="auto", FLAKY_TRIES="3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    retries = [line for line in proc.stderr.splitlines() if "retrying" in line]
    slow0 = [line for line in retries if "q='slow0'" in line]
    assert len(retries) == 8 and len(slow0) == 2, proc.stderr
    key = re.search(r"sample ([0-9a-f]{12}) \(q='slow0'\)", slow0[0])
    assert key, slow0
    assert "attempt 1 of 4 failed with RateLimited: rate limited: slow0; attempt 2 in 0.0s" in slow0[0]
    assert "attempt 2 of 4 failed with RateLimited" in slow0[1] and "attempt 3 in" in slow0[1]

    # the key prefix the line names is what `show --sample` takes; it says 3 attempts
    shown = doteval("show", "r", "--sample", key.group(1))
    assert "Item q: slow0" in shown
    assert "Attempts: 3 (2 retries after a transient error)" in shown, shown
    assert json.loads(doteval("show", "r", "--sample", key.group(1), "--json"))["attempts"] == 3
    ok0 = [
        s for s in json.loads(doteval("show", "r", "--json", "--full"))["samples"] if s["item"]["q"] == "ok0"
    ]
    assert json.loads(doteval("show", "r", "--sample", ok0[0]["key"], "--json"))["attempts"] == 1


def doteval(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_record_from_before_attempts_were_counted_reads_as_unknown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doteval._repository.results import Result

    calls = project(pytester.path)
    monkeypatch.setenv("CALLS", str(calls))
    monkeypatch.setenv("FLAKY_TRIES", "0")
    new = Result.record_bytes

    def old_record(self: Result, duration: float, attempts: int = 1) -> bytes:
        # the record as doteval wrote it before: no "attempts" (d8: eight keys, not nine)
        record = new(self, duration, attempts)
        return record.replace(b"s8:attemptsi%d;" % attempts, b"").replace(b"d9:", b"d8:", 1)

    monkeypatch.setattr(Result, "record_bytes", old_record)
    result = pytester.runpytest("eval_outcome.py", "-k", "eval_threads", "--experiment", "old")
    assert result.ret == 0, result.outlines
    key = json.loads(doteval("show", "old", "--json", "--full"))["samples"][0]["key"]
    assert json.loads(doteval("show", "old", "--sample", key[:12], "--json"))["attempts"] is None
    text = doteval("show", "old", "--sample", key[:12])
    assert "Duration:" in text and "Attempts" not in text, text
