"""Interrupting real pytest processes: Ctrl+C, a second Ctrl+C, kill -9, a second process.

Each case runs ``python -m pytest`` in a subprocess over an evaluation whose model
sleeps a little and then appends one line to a calls file. A line is written
when the model call is over, so after a stop the experiment must hold at least
every sample with a line but the one in flight: ``done >= calls - 1``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from storekit import PYTEST_FLAGS, Project, finish

from doteval.session import SessionStatus, get_session

SLEEP = 0.02  # seconds a model call takes, unless a case says otherwise

# Runs give no --store: they use the store $DOTEVAL_STORE names (tests/conftest.py sets one per test),
# so the command doteval records is the one a user would type.


def command(project: Project, experiment: str) -> str:
    """The command a user would type, as doteval records it."""
    return " ".join(["pytest", *project.args(experiment, None)])


def assert_nothing_finished_lost(name: str, calls: list[str]) -> None:
    session = get_session(name)
    assert session is not None
    assert session.status == SessionStatus.INTERRUPTED, session
    assert session.total_count > 0
    # Every call that finished is kept but the one that was in flight.
    assert len(set(calls)) - 1 <= session.completed_count <= len(set(calls)), (session, len(calls))


def resume_to_completion(project: Project, name: str, calls_before: int, *, max_repeats: int) -> None:
    proc = project.popen(name, None)
    rc, out = finish(proc, timeout=60)
    assert rc == 0, out
    calls = project.calls()
    # Over all runs: every item once, plus at most the samples lost in flight.
    assert sorted(set(calls)) == sorted(f"q{i}" for i in range(project.n))
    assert project.n <= len(calls) <= project.n + max_repeats, (len(calls), calls_before)
    session = get_session(name)
    assert session is not None
    assert (session.status, session.completed_count, session.total_count) == (
        SessionStatus.COMPLETED,
        project.n,
        project.n,
    )


# -- Ctrl+C ---------------------------------------------------------------------


def test_sigint_keeps_finished_samples_and_the_same_command_resumes(pytester: pytest.Pytester) -> None:
    project = Project(pytester.path, 200, sleep=SLEEP)
    proc = project.popen("big", None)
    project.wait_for_calls(30, proc)
    proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=60)

    assert rc == 2, out  # pytest's "interrupted"
    resume = [line for line in out.splitlines() if "Resume with:" in line]
    assert resume, out
    assert resume[-1].split("Resume with:", 1)[1].strip() == command(project, "big")
    assert "Traceback" not in out, out

    calls = project.calls()
    assert 30 <= len(calls) < 200
    assert len(calls) == len(set(calls))
    assert_nothing_finished_lost("big", calls)
    session = get_session("big")
    assert session is not None and session.total_count == 200

    resume_to_completion(project, "big", len(calls), max_repeats=1)


@pytest.mark.parametrize("sleep", [0.02, 0.3], ids=["short-calls", "long-calls"])
def test_double_sigint_stops_now_and_keeps_what_finished(pytester: pytest.Pytester, sleep: float) -> None:
    n = 80 if sleep < 0.1 else 30
    project = Project(pytester.path, n, sleep=SLEEP)
    proc = project.popen("twice", None, sleep=sleep)
    project.wait_for_calls(5, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=30)

    assert rc != 0, out
    calls = project.calls()
    assert len(calls) < n
    assert_nothing_finished_lost("twice", calls)
    resume_to_completion(project, "twice", len(calls), max_repeats=1)


def test_second_sigint_after_the_run_stopped_exits_cleanly(pytester: pytest.Pytester) -> None:
    project = Project(pytester.path, 200, sleep=SLEEP)
    proc = project.popen("late", None, sleep=0.02)
    project.wait_for_calls(5, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # the sample in flight (20 ms) is over: the run is winding down
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=30)
    assert_nothing_finished_lost("late", project.calls())
    assert rc == 2, out
    assert "Traceback" not in out, out


STUCK = """
import threading
from pathlib import Path

from doteval import foreach


@foreach("x", list(range(10)))
def eval_stuck(x):
    if x > 0:
        Path(f"started-{x}").touch()
        threading.Event().wait()  # a model call that never answers
    return True
"""


@pytest.mark.parametrize("extra", [["--concurrency", "2"], ["--sample-timeout", "600"]])
def test_double_sigint_ends_a_threaded_run_whose_calls_never_answer(
    pytester: pytest.Pytester, extra: list[str]
) -> None:
    """Threads that call samples never keep the process alive after a second Ctrl+C."""
    (pytester.path / "eval_stuck.py").write_text(STUCK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "eval_stuck.py", "--experiment", "stuck", *extra, *PYTEST_FLAGS],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(pytester.path.glob("started-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=60)

    assert rc != 0, out
    assert "Traceback" not in out, out
    session = get_session("stuck")
    assert session is not None
    assert (session.status, session.completed_count) == (SessionStatus.INTERRUPTED, 1), session


# -- kill -9 ----------------------------------------------------------------------


def _show(name: str, cwd: Path) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "doteval", "show", name],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )
    return run.returncode, run.stdout + run.stderr


def _sigkill_trials(pytester: pytest.Pytester, n: int, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    project = Project(pytester.path, n, sleep=SLEEP)
    per_trial = max(2, n // (trials + 1))
    for trial in range(trials):
        before = len(project.calls())
        proc = project.popen("killed", None, sleep=0.01)
        project.wait_for_calls(before + rng.randint(1, per_trial), proc)
        time.sleep(rng.uniform(0, 0.015))  # anywhere: in a call, in a journal write...
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        calls = project.calls()
        code, shown = _show("killed", project.path)
        assert code == 0, shown
        assert "Traceback" not in shown
        assert "Status: Interrupted" in shown, shown
        match = re.search(r"Samples: (\d+)/(\d+)", shown)
        assert match, shown
        done, total = int(match.group(1)), int(match.group(2))
        assert total in (0, n), shown  # 0 only if killed before the dataset was read
        # The journal kept every finished sample but (at most) the one in flight.
        assert len(set(calls)) - 1 <= done <= len(set(calls)), (trial, done, len(calls), shown)
        # show sealed nothing (reads never write): the journal stays for the next run to seal
        assert len(list((Path(os.environ["DOTEVAL_STORE"]) / "journals" / "killed").glob("*.journal"))) == 1

    resume_to_completion(project, "killed", len(project.calls()), max_repeats=trials)


def test_sigkill_then_show_and_resume(pytester: pytest.Pytester) -> None:
    _sigkill_trials(pytester, n=60, trials=2, seed=1234)


@pytest.mark.slow
def test_sigkill_many_times(pytester: pytest.Pytester) -> None:
    _sigkill_trials(pytester, n=200, trials=20, seed=20240601)


# -- two processes, one experiment ----------------------------------------------------


def test_second_process_on_a_running_experiment_is_refused(pytester: pytest.Pytester) -> None:
    project = Project(pytester.path, 200, sleep=SLEEP)
    first = project.popen("shared", None, sleep=0.1)  # long enough to outlive the second process
    project.wait_for_calls(3, first)

    other_calls = project.path / "calls-second.txt"
    second = project.popen("shared", None, calls=other_calls)
    rc, out = finish(second, timeout=60)
    assert rc != 0, out
    assert not other_calls.exists()  # the second process evaluated nothing
    lines = [line for line in out.splitlines() if "being run by" in line]
    assert len(lines) == 1, out
    assert f"pid {first.pid}" in lines[0]
    assert socket.gethostname() in lines[0]
    assert "Traceback" not in out

    assert first.poll() is None  # the first one goes on undisturbed
    first.send_signal(signal.SIGINT)
    rc, out = finish(first, timeout=60)
    assert rc == 2, out
    assert_nothing_finished_lost("shared", project.calls())
