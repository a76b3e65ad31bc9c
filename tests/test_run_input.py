"""Careless input on the run path, in real pytest sessions: endless datasets, hung samples,
generator datasets shared by parametrized cases, evaluations with one id, bad option values.

Runs that could hang are subprocesses with a generous timeout that turns a hang into a
failure; nothing here measures time.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from storekit import take_lines

from doteval._running.settings import RUN_SETTINGS
from doteval.session import SessionStatus, get_session
from doteval.storage import get_storage_backend

FLAGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q")
HANG = 300  # seconds after which a run is taken to hang


def write(base: Path, name: str, source: str) -> Path:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def pytest_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, *FLAGS, timeout=HANG)


def doteval_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "doteval", "run", *args, *FLAGS, timeout=HANG)


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def status(name: str) -> tuple[SessionStatus, int, int, int]:
    session = get_session(name)
    assert session is not None, f"no experiment {name!r}"
    return session.status, session.completed_count, session.total_count, session.error_count


def errors_of(name: str) -> list[tuple[str, str]]:
    """(error type, message) of every errored sample of experiment ``name``."""
    session = get_storage_backend().load_session(name)
    assert session is not None
    return sorted((r["error"]["type"], r["error"]["message"]) for r in session["results"] if r["error"])


# -- 7. a hung sample ends with a timeout error, retried by the next run -----------------

HUNG = """
import asyncio
import os
import threading

from doteval import foreach


def stuck():
    return not os.path.exists("fixed")


@foreach("x", [1, 2, 3])
async def eval_async(x):
    if x == 2 and stuck():
        await asyncio.Event().wait()  # a call that never answers
    return True


@foreach("x", [1, 2, 3])
def eval_sync(x):
    if x == 2 and stuck():
        threading.Event().wait()  # a call that never answers, in a plain function
    return True


@foreach("x", [1, 2, 3], timeout=0.5)
def eval_own_timeout(x):
    if x == 2 and stuck():
        threading.Event().wait()
    return True
"""


@pytest.mark.parametrize(
    ("how", "evaluation", "seconds"),
    [
        ("pytest", "eval_async", "1"),
        ("pytest", "eval_sync", "1"),
        ("pytest --concurrency 3", "eval_sync", "1"),  # plain functions in threads
        ("doteval run", "eval_async", "1"),
        ("doteval run", "eval_sync", "1"),
        ("pytest", "eval_own_timeout", "0.5"),  # @foreach(timeout=0.5), no option
    ],
)
def test_a_hung_sample_times_out_and_the_next_run_retries_it(
    pytester: pytest.Pytester, how: str, evaluation: str, seconds: str
) -> None:
    write(pytester.path, "eval_hung.py", HUNG)
    target = f"eval_hung.py::{evaluation}"
    args = [target, "--experiment", "hung"]
    if evaluation != "eval_own_timeout":
        args += ["--timeout" if how == "doteval run" else "--sample-timeout", seconds]
    if how.endswith("--concurrency 3"):
        args += ["--concurrency", "3"]
    run = doteval_run if how == "doteval run" else pytest_run

    result = run(pytester, *args)
    assert "Traceback" not in output(result), output(result)
    assert status("hung") == (SessionStatus.FAILED, 2, 3, 1)
    assert errors_of("hung") == [("TimeoutError", f"the sample timed out after {seconds}s")]

    (pytester.path / "fixed").touch()
    result = run(pytester, *args)
    assert result.ret == 0, output(result)
    assert "this run evaluated 1, reused 2" in output(result)
    assert status("hung") == (SessionStatus.COMPLETED, 3, 3, 0)


def test_the_timeout_is_no_part_of_the_code_fingerprint(pytester: pytest.Pytester) -> None:
    source = (
        'from doteval import foreach\n\n@foreach("x", [1, 2], timeout={t})\ndef eval_t(x):\n    return True\n'
    )
    write(pytester.path, "eval_t.py", source.format(t=5))
    assert pytest_run(pytester, "eval_t.py", "--experiment", "t").ret == 0
    write(pytester.path, "eval_t.py", source.format(t=60))
    result = pytest_run(pytester, "eval_t.py", "--experiment", "t")
    assert result.ret == 0, output(result)
    assert "this run evaluated 0, reused 2" in output(result)


def test_a_bad_foreach_timeout_is_one_line(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        "eval_t.py",
        'from doteval import foreach\n\n@foreach("x", [1], timeout=-1)\ndef eval_t(x):\n    return True\n',
    )
    result = pytest_run(pytester, "eval_t.py", "--experiment", "t")
    assert result.ret != 0
    assert "@foreach(timeout=...) must be a number of seconds above 0, not '-1'" in output(result)


# -- 19. bad option values are refused the same way by pytest and by doteval run ---------

ONE = 'from doteval import foreach\n\n@foreach("x", [1, 2])\ndef eval_one(x):\n    return True\n'


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--experiment", "", "needs a name"),
        ("--experiment", " ", "needs a name"),
        ("--concurrency", "0", "must be a whole number of 1 or more, not '0'"),
        ("--concurrency", "-3", "must be a whole number of 1 or more, not '-3'"),
        ("--samples", "-1", "must be a whole number of 0 or more, not '-1'"),
        ("--samples", "all", "must be a whole number of 0 or more, not 'all'"),
        ("--concurrency", "many", "must be a whole number of 1 or more, not 'many'"),
        ("--timeout", "0", "must be a number of seconds above 0"),
        ("--timeout", "nan", "must be a number of seconds above 0"),
        ("--max-retries", "-1", "must be a whole number of 0 or more, not '-1'"),
        ("--retry-delay", "-1", "must be a number of seconds, 0 or more, not '-1'"),
        ("--shard", "5/4", "5/4: I must be between 1 and N"),
        ("--shard", "half", "takes I/N, such as 1/4, not 'half'"),
    ],
)
@pytest.mark.parametrize("how", ["pytest", "doteval run"])
def test_bad_run_options_are_refused_in_one_line(
    pytester: pytest.Pytester, store_path: Path, how: str, option: str, value: str, message: str
) -> None:
    write(pytester.path, "eval_one.py", ONE)
    if how == "pytest" and option == "--timeout":
        option = "--sample-timeout"
    run = doteval_run if how == "doteval run" else pytest_run
    result = run(pytester, "eval_one.py", f"{option}={value}")
    out = output(result)
    assert result.ret not in (0, 1), out  # a usage error, before anything runs
    lines = [line for line in out.splitlines() if message in line]
    assert len(lines) == 1, out
    assert option in lines[0]
    assert "Traceback" not in out
    assert not store_path.exists()  # nothing recorded, no run-… experiment


def test_pytest_and_doteval_run_declare_every_run_setting(pytester: pytest.Pytester) -> None:
    """Both ways in take the same run options, with the same help (from one table)."""
    pytest_help = " ".join(output(pytester.runpytest_subprocess("--help", *FLAGS, timeout=HANG)).split())
    run_help = " ".join(output(doteval_run(pytester, "--help")).split())
    for setting in RUN_SETTINGS.values():
        value = setting.metavar or ""
        assert f"{setting.flag}{'=' * bool(value)}{value} {setting.help}" in pytest_help, setting.flag
        names = ", ".join(sorted(setting.run_names, key=len))  # -e, --experiment
        capitalized = setting.help[0].upper() + setting.help[1:]
        assert f"{names}{' ' * bool(value)}{value} {capitalized}." in run_help, names


# -- 5. --samples reads only what it needs ----------------------------------------------------

ENDLESS = """
import itertools

from doteval import foreach


class Counted:
    \"\"\"A sequence that logs every item read from it.\"\"\"

    def __len__(self):
        return 1000

    def __iter__(self):
        for i in range(1000):
            yield pulled("list", i)


def pulled(source, i):
    with open("pulls.txt", "a") as f:
        f.write(f"{source} {i}\\n")
    return i


def endless():
    for i in itertools.count():
        yield pulled("endless", i)


def three():
    for i in range(3):
        yield pulled("three", i)


@foreach("x", endless())
def eval_endless(x):
    return True


@foreach("x", three())
def eval_three(x):
    return True


@foreach("x", Counted())
def eval_sequence(x):
    return True
"""


def pulls(base: Path) -> list[str]:
    return take_lines(base / "pulls.txt")


def test_samples_over_an_endless_generator_reads_only_what_it_needs(pytester: pytest.Pytester) -> None:
    write(pytester.path, "eval_endless.py", ENDLESS)
    result = pytest_run(pytester, "eval_endless.py::eval_endless", "--experiment", "e", "--samples", "2")
    assert result.ret == 0, output(result)
    # Two items, and one look past them to learn that the dataset goes on.
    assert pulls(pytester.path) == ["endless 0", "endless 1", "endless 2"]
    state, done, total, errors = status("e")
    assert (done, errors) == (2, 0)
    assert total > done  # its size is unknown: the experiment is not complete
    assert state != SessionStatus.COMPLETED

    result = pytest_run(pytester, "eval_endless.py::eval_endless", "--experiment", "e", "--samples", "4")
    assert result.ret == 0, output(result)
    assert "this run evaluated 2, reused 2" in output(result)
    assert len(pulls(pytester.path)) == 5


def test_samples_over_a_generator_that_ends_there_is_complete(pytester: pytest.Pytester) -> None:
    write(pytester.path, "eval_endless.py", ENDLESS)
    result = pytest_run(pytester, "eval_endless.py::eval_three", "--experiment", "t", "--samples", "3")
    assert result.ret == 0, output(result)
    assert pulls(pytester.path) == ["three 0", "three 1", "three 2"]
    assert status("t") == (SessionStatus.COMPLETED, 3, 3, 0)


def test_samples_over_a_sequence_takes_its_size_from_len(pytester: pytest.Pytester) -> None:
    write(pytester.path, "eval_endless.py", ENDLESS)
    result = pytest_run(pytester, "eval_endless.py::eval_sequence", "--experiment", "s", "--samples", "2")
    assert result.ret == 0, output(result)
    assert pulls(pytester.path) == ["list 0", "list 1"]  # the other 998 are not read to count them
    assert status("s")[1:] == (2, 1000, 0)


def read_terminal(args: list[str], cwd: Path) -> str:
    """What a run shows in a terminal (a pseudo-terminal), stderr included."""
    import os
    import pty
    import select
    import subprocess
    import time

    master, slave = pty.openpty()
    env = dict(os.environ, DOTEVAL_PROGRESS="auto", COLUMNS="160", TERM="xterm")
    proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + HANG
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            os.close(master)
            pytest.fail("the run did not end:\n" + b"".join(chunks).decode(errors="replace"))
        if not select.select([master], [], [], 1.0)[0]:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the run ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    proc.wait(timeout=HANG)
    return b"".join(chunks).decode(errors="replace")


def test_the_progress_bar_says_a_generators_size_is_unknown(pytester: pytest.Pytester) -> None:
    write(pytester.path, "eval_endless.py", ENDLESS)
    base = [sys.executable, "-m", "pytest", *FLAGS]
    shown = read_terminal(
        [*base, "eval_endless.py::eval_endless", "--experiment", "e", "--samples", "2"], pytester.path
    )
    assert "2/?" in shown, shown
    shown = read_terminal(
        [*base, "eval_endless.py::eval_sequence", "--experiment", "s", "--samples", "2"], pytester.path
    )
    assert "2/2" in shown and "/?" not in shown, shown


# -- 10. a generator dataset shared by parametrized cases -------------------------------------

PARAMETRIZED = """
import pytest

from doteval import foreach


def rows():
    for i in range(3):
        with open("pulls.txt", "a") as f:
            f.write(f"{i}\\n")
        yield (f"q{i}", i)


@pytest.mark.parametrize("model", ["small", "large"])
@foreach("prompt,n", rows())
def eval_models(prompt, n, model):
    return n >= 0
"""


def test_a_generator_dataset_is_read_once_and_shared_by_parametrized_cases(pytester: pytest.Pytester) -> None:
    write(pytester.path, "eval_models.py", PARAMETRIZED)
    result = pytest_run(pytester, "eval_models.py", "--experiment", "m")
    assert result.ret == 0, output(result)
    assert pulls(pytester.path) == ["0", "1", "2"]
    assert status("m") == (SessionStatus.COMPLETED, 6, 6, 0)
    assert "this run evaluated 6, reused 0" in output(result)

    result = pytest_run(pytester, "eval_models.py", "--experiment", "m")
    assert result.ret == 0, output(result)
    assert "this run evaluated 0, reused 6" in output(result)


def test_a_generator_evaluation_called_twice_sees_every_item_twice() -> None:
    from doteval import foreach

    @foreach("x", (i for i in range(3)))
    def evaluation(x: int) -> bool:
        return x >= 0

    assert len(evaluation()) == 3
    assert len(evaluation()) == 3


# -- 9. two evaluations with one id ---------------------------------------------------------


@pytest.mark.parametrize("how", ["pytest", "doteval run"])
def test_two_evaluations_with_one_id_are_refused_naming_both_files(
    pytester: pytest.Pytester, store_path: Path, how: str
) -> None:
    for folder in ("a", "b"):
        write(pytester.path, f"{folder}/pyproject.toml", "")
        source = f'from doteval import foreach\n\n@foreach("x", [1, 2])\ndef eval_qa(x):\n    return "{folder}" == "a"\n'
        write(pytester.path, f"{folder}/eval_qa.py", source)
    run = doteval_run if how == "doteval run" else pytest_run
    result = run(pytester, "a", "b", "--import-mode=importlib", "--experiment", "qa")
    out = output(result)
    assert result.ret not in (0, 5), out
    lines = [line for line in out.splitlines() if "'eval_qa.py::eval_qa'" in line]
    assert len(lines) == 1, out
    assert "a/eval_qa.py" in lines[0] and "b/eval_qa.py" in lines[0]
    assert "Traceback" not in out
    assert get_session("qa") is None  # nothing recorded

    # Each folder on its own is one evaluation, as before.
    result = run(pytester, "a", "--import-mode=importlib", "--experiment", "qa")
    assert result.ret == 0, output(result)
    assert status("qa") == (SessionStatus.COMPLETED, 2, 2, 0)
    assert get_storage_backend().load_session("qa")["results"][0]["evaluation"] == "eval_qa.py::eval_qa"


# -- a doteval error while an evaluation file is imported: pytest's collection error, one line --


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            '"x", [1, 2], concurrency=0',
            "@foreach(concurrency=...) must be a whole number of 1 or more, not '0'",
        ),
        ('"x", [1, 2], timeout=-1', "@foreach(timeout=...) must be a number of seconds above 0"),
        ('"x,x", [(1, 1)]', "@foreach columns repeat a name: 'x,x'"),
    ],
)
@pytest.mark.parametrize("how", ["pytest", "doteval run"])
def test_a_bad_foreach_is_one_collection_error_naming_its_line(
    pytester: pytest.Pytester, how: str, arguments: str, message: str
) -> None:
    write(
        pytester.path,
        "eval_bad.py",
        f"from doteval import foreach\n\n@foreach({arguments})\ndef eval_bad(x):\n    return True\n",
    )
    run = doteval_run if how == "doteval run" else pytest_run
    out = output(run(pytester, "eval_bad.py", "--experiment", "bad"))
    assert f"eval_bad.py:3: {message}" in out, out
    assert "doteval/_running" not in out and "Traceback" not in out, out  # no frames of doteval's own
