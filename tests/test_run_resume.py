"""Real pytest sessions (pytester) that run, resume and re-check evaluations.

Every model call appends one line to a calls file (``$DOTEVAL_TEST_CALLS``), so
"evaluated again" and "skipped" are counted, not assumed. The store is the
per-test one set up by ``tests/conftest.py`` (``$DOTEVAL_STORE``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from projects import COUNTING_CONFTEST, PytesterProject
from storekit import json_dataset_eval

from doteval.session import SessionStatus, get_session
from doteval.storage import get_storage_backend

# An evaluation over a dataset read from data.json (so the dataset can change
# without the evaluation's source changing).
EVAL_FROM_JSON = json_dataset_eval("response == expected")


def items(n: int, start: int = 0) -> list[list[str]]:
    return [[f"q{i}", f"Q{i}"] for i in range(start, start + n)]


class Project(PytesterProject):
    """A test project in ``pytester.path`` with a counting model fixture."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(pytester, monkeypatch)
        monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapped node ids

    def write_data(self, rows: list[list[object]]) -> None:
        self.write("data.json", json.dumps(rows))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytest(*args)

    def show(self, *args: str) -> tuple[int, str]:
        """``doteval show ...`` in this process: (exit code, stdout + stderr)."""
        from doteval._cli import main

        out = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(["show", *args])
            except SystemExit as e:
                code = int(e.code or 0)
        return code, out.getvalue()


@pytest.fixture
def proj(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(pytester, monkeypatch)


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_session(name: str, status: SessionStatus, done: int, total: int, errors: int = 0) -> None:
    session = get_session(name)
    assert session is not None, f"no session {name!r}"
    assert (session.status, session.completed_count, session.total_count, session.error_count) == (
        status,
        done,
        total,
        errors,
    )


# -- run and resume -------------------------------------------------------------


def test_second_run_of_a_completed_experiment_makes_no_call(proj: Project) -> None:
    proj.write_data(items(20))
    proj.write("eval_upper.py", EVAL_FROM_JSON)

    result = proj.run("eval_upper.py", "--experiment", "basic")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(20))
    assert_session("basic", SessionStatus.COMPLETED, 20, 20)

    result = proj.run("eval_upper.py", "--experiment", "basic")
    assert result.ret == 0, output(result)
    assert proj.take_calls() == []
    assert_session("basic", SessionStatus.COMPLETED, 20, 20)
    assert "this run evaluated 0, reused 20" in output(result)


def test_samples_limit_then_the_rest(proj: Project) -> None:
    proj.write_data(items(20))
    proj.write("eval_upper.py", EVAL_FROM_JSON)

    result = proj.run("eval_upper.py", "--experiment", "partial", "--samples", "5")
    assert result.ret == 0, output(result)
    assert proj.take_calls() == [f"q{i}" for i in range(5)]
    session = get_session("partial")
    assert session is not None and session.completed_count == 5

    result = proj.run("eval_upper.py", "--experiment", "partial")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(5, 20))
    assert_session("partial", SessionStatus.COMPLETED, 20, 20)


FLAKY_EVAL = """
import os

from doteval import Result, foreach

BROKEN = {"q2", "q9", "q15"}


@foreach("prompt,expected", [(f"q{i}", f"Q{i}") for i in range(20)])
def eval_flaky(prompt, expected, model):
    response = model.generate(prompt)
    if prompt in BROKEN and not os.environ.get("DOTEVAL_TEST_FIXED"):
        raise ValueError(f"cannot score {prompt}")
    return Result(response == expected, prompt=prompt, response=response)
"""


def test_sample_errors_are_kept_and_only_they_are_retried(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj.write("eval_flaky.py", FLAKY_EVAL)
    monkeypatch.delenv("DOTEVAL_TEST_FIXED", raising=False)

    result = proj.run("eval_flaky.py", "--experiment", "errs")
    out = output(result)
    # The run went on past the errors: every item was tried once.
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(20))
    assert_session("errs", SessionStatus.FAILED, 17, 20, errors=3)
    assert "3 sample(s) errored" in out

    code, shown = proj.show("errs")
    assert code == 0, shown
    assert "Status: Failed" in shown
    assert "Errors: 3" in shown
    code, full = proj.show("errs", "--full")
    assert code == 0, full
    assert full.count("ValueError: cannot score") == 3
    for prompt in ("q2", "q9", "q15"):
        assert f"ValueError: cannot score {prompt}" in full

    # Same command, bug fixed: only the three errored samples run again.
    monkeypatch.setenv("DOTEVAL_TEST_FIXED", "1")
    result = proj.run("eval_flaky.py", "--experiment", "errs")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == ["q15", "q2", "q9"]
    assert_session("errs", SessionStatus.COMPLETED, 20, 20, errors=0)


# -- dataset changes ------------------------------------------------------------


def test_dataset_order_extension_and_changed_items(proj: Project) -> None:
    rows = items(20)
    proj.write_data(rows)
    proj.write("eval_upper.py", EVAL_FROM_JSON)
    args = ("eval_upper.py", "--experiment", "data")

    assert proj.run(*args).ret == 0
    assert len(proj.take_calls()) == 20

    shuffled = list(rows)
    random.Random(7).shuffle(shuffled)
    assert shuffled != rows
    proj.write_data(shuffled)
    assert proj.run(*args).ret == 0
    assert proj.take_calls() == []
    assert_session("data", SessionStatus.COMPLETED, 20, 20)

    extended = shuffled + items(5, start=20)
    proj.write_data(extended)
    assert proj.run(*args).ret == 0
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(20, 25))
    assert_session("data", SessionStatus.COMPLETED, 25, 25)

    changed = [list(r) for r in extended]
    changed[3][1] = changed[3][1] + "!"
    changed[17][1] = changed[17][1] + "!"
    proj.write_data(changed)
    result = proj.run(*args)
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == sorted([changed[3][0], changed[17][0]])
    assert_session("data", SessionStatus.COMPLETED, 25, 25)


def test_identical_items_are_separate_samples(proj: Project) -> None:
    proj.write_data([["same", "SAME"], ["same", "SAME"], ["other", "OTHER"]])
    proj.write("eval_upper.py", EVAL_FROM_JSON)
    args = ("eval_upper.py", "--experiment", "dups")

    assert proj.run(*args).ret == 0
    assert sorted(proj.take_calls()) == ["other", "same", "same"]
    assert_session("dups", SessionStatus.COMPLETED, 3, 3)

    assert proj.run(*args).ret == 0
    assert proj.take_calls() == []

    # A third copy is a third sample: exactly one more call.
    proj.write_data([["same", "SAME"], ["same", "SAME"], ["other", "OTHER"], ["same", "SAME"]])
    assert proj.run(*args).ret == 0
    assert proj.take_calls() == ["same"]
    assert_session("dups", SessionStatus.COMPLETED, 4, 4)


# -- code and params changes ----------------------------------------------------

HELPERS = """
def normalize(text):
    return text.strip().upper()
"""

HELPERS_CHANGED = """
def normalize(text):
    return text.strip().lower()
"""

EVAL_WITH_HELPER = '''
from doteval import Result, foreach
from helpers import normalize


@foreach("prompt,expected", [(f"q{i}", f"Q{i}") for i in range(20)])
def eval_scored(prompt, expected, model):
    """Scores the normalized response."""
    response = model.generate(prompt)
    return Result(normalize(response) == expected, prompt=prompt, response=response)
'''

# Same logic: another docstring, comments, blank lines and formatting.
EVAL_WITH_HELPER_REFORMATTED = '''
from doteval import Result, foreach
from helpers import normalize


@foreach("prompt,expected", [(f"q{i}", f"Q{i}") for i in range(20)])
def eval_scored(prompt, expected, model):
    """A different docstring.

    Spanning lines.
    """
    # ask the model
    response = model.generate(
        prompt
    )

    # score it
    return Result(
        normalize(response) == expected,
        prompt=prompt,
        response=response,
    )
'''


def test_cosmetic_change_reruns_nothing_and_helper_logic_change_is_refused(proj: Project) -> None:
    proj.write("helpers.py", HELPERS)
    proj.write("eval_scored.py", EVAL_WITH_HELPER)
    args = ("eval_scored.py", "--experiment", "code")

    assert proj.run(*args).ret == 0
    assert len(proj.take_calls()) == 20

    proj.write("eval_scored.py", EVAL_WITH_HELPER_REFORMATTED)
    result = proj.run(*args)
    assert result.ret == 0, output(result)
    assert proj.take_calls() == []

    proj.write("helpers.py", HELPERS_CHANGED)
    result = proj.run(*args)
    out = output(result)
    assert result.ret != 0, out
    assert proj.take_calls() == []
    assert "eval_scored.py::eval_scored" in out
    assert "code changed" in out
    # A diff of the helper: the old line and the new one.
    assert re.search(r"^\s*-\s*return text\.strip\(\)\.upper\(\)", out, re.M), out
    assert re.search(r"^\s*\+\s*return text\.strip\(\)\.lower\(\)", out, re.M), out
    # Both ways on: a new experiment, or a new line with --rerun-changed.
    assert "--experiment code_v2" in out
    assert "--rerun-changed" in out
    assert "Traceback" not in out
    assert_session("code", SessionStatus.COMPLETED, 20, 20)

    result = proj.run(*args, "--rerun-changed")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(20))
    assert_session("code", SessionStatus.COMPLETED, 20, 20)

    # The new line is now the one resumed: nothing left to do.
    result = proj.run(*args)
    assert result.ret == 0, output(result)
    assert proj.take_calls() == []


CONFTEST_WITH_CONFIG = (
    COUNTING_CONFTEST
    + '''

import dataclasses


@dataclasses.dataclass
class Config:
    temperature: float
    max_tokens: int = 64


@pytest.fixture
def config():
    return Config(temperature=float(os.environ.get("DOTEVAL_TEST_TEMPERATURE", "0.0")))


class Client:
    """An API client: nothing doteval can fingerprint."""


@pytest.fixture
def client():
    return Client()
'''
)

EVAL_WITH_CONFIG = """
from doteval import Result, foreach


@foreach("prompt", [f"q{i}" for i in range(6)])
def eval_config(prompt, model, config):
    response = model.generate(prompt)
    return Result(response == prompt.upper(), prompt=prompt, response=response)
"""

EVAL_WITH_CLIENT = """
from doteval import Result, foreach


@foreach("prompt", [f"q{i}" for i in range(3)])
def eval_client(prompt, model, client):
    return Result(model.generate(prompt) == prompt.upper(), prompt=prompt)
"""


def test_changed_dataclass_fixture_is_a_params_change(
    proj: Project, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST_WITH_CONFIG)
    proj.write("eval_config.py", EVAL_WITH_CONFIG)
    args = ("eval_config.py", "--experiment", "params")

    monkeypatch.setenv("DOTEVAL_TEST_TEMPERATURE", "0.0")
    result = proj.run(*args)
    assert result.ret == 0, output(result)
    assert len(proj.take_calls()) == 6
    assert "cannot fingerprint" not in output(result)

    monkeypatch.setenv("DOTEVAL_TEST_TEMPERATURE", "0.7")
    result = proj.run(*args)
    out = output(result)
    assert result.ret != 0, out
    assert proj.take_calls() == []
    assert "eval_config.py::eval_config" in out
    assert "params changed" in out
    changed = [line.strip() for line in out.splitlines() if re.match(r"\s+[\w.]+: .* -> ", line)]
    # Only the field that moved is listed; the unchanged model fixture is not.
    assert changed == ["config.temperature: 0.0 -> 0.7"], out
    assert "--rerun-changed" in out
    assert "Traceback" not in out

    result = proj.run(*args, "--rerun-changed")
    assert result.ret == 0, output(result)
    assert len(proj.take_calls()) == 6
    assert_session("params", SessionStatus.COMPLETED, 6, 6)

    # Back to the old temperature: that is a change again, not a silent resume.
    monkeypatch.setenv("DOTEVAL_TEST_TEMPERATURE", "0.0")
    result = proj.run(*args)
    assert result.ret != 0, output(result)
    assert proj.take_calls() == []


def test_unfingerprintable_fixture_is_named_in_a_warning(proj: Project, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST_WITH_CONFIG)
    proj.write("eval_client.py", EVAL_WITH_CLIENT)
    result = proj.run("eval_client.py", "--experiment", "client")
    out = output(result)
    assert result.ret == 0, out
    assert len(proj.take_calls()) == 3
    assert re.search(r"cannot fingerprint fixture 'client'", out), out
    assert "'model'" not in out.split("warnings summary")[-1]


# -- concurrency and retries ------------------------------------------------------

CONCURRENT_EVAL = """
import asyncio
import os
import threading
import time

from doteval import Result, foreach

_lock = threading.Lock()
_state = {"now": 0, "max": 0}


def _enter():
    with _lock:
        _state["now"] += 1
        _state["max"] = max(_state["max"], _state["now"])
        with open(os.environ["DOTEVAL_TEST_CONCURRENCY"], "a") as f:
            f.write(f"{_state['max']}\\n")


def _leave():
    with _lock:
        _state["now"] -= 1


@foreach("prompt", [f"q{i}" for i in range(24)])
async def eval_async(prompt, model):
    _enter()
    try:
        await asyncio.sleep(0.01)
        response = model.generate(prompt)
    finally:
        _leave()
    return Result(response == prompt.upper(), prompt=prompt, response=response)


@foreach("prompt", [f"t{i}" for i in range(24)])
def eval_threads(prompt, model):
    _enter()
    try:
        time.sleep(0.01)
        response = model.generate(prompt)
    finally:
        _leave()
    return Result(response == prompt.upper(), prompt=prompt, response=response)
"""


@pytest.mark.parametrize(("evaluation", "prefix"), [("eval_async", "q"), ("eval_threads", "t")])
def test_concurrency_is_bounded_and_every_item_runs_once(
    proj: Project, monkeypatch: pytest.MonkeyPatch, evaluation: str, prefix: str
) -> None:
    seen = proj.path / "concurrency.txt"
    monkeypatch.setenv("DOTEVAL_TEST_CONCURRENCY", str(seen))
    proj.write("eval_conc.py", CONCURRENT_EVAL)
    result = proj.run(f"eval_conc.py::{evaluation}", "--experiment", "conc", "--concurrency", "4")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == sorted(f"{prefix}{i}" for i in range(24))
    peak = max(int(x) for x in seen.read_text().split())
    assert 1 < peak <= 4
    assert_session("conc", SessionStatus.COMPLETED, 24, 24)


RETRY_EVAL = """
import os
from collections import Counter

from doteval import Result, foreach

_attempts = Counter()


def _log(tag):
    with open(os.environ["DOTEVAL_TEST_CALLS"], "a") as f:
        f.write(tag + "\\n")


@foreach("prompt", [f"q{i}" for i in range(5)])
def eval_transient(prompt):
    _log(prompt)
    _attempts[prompt] += 1
    if _attempts[prompt] <= 2:
        raise TimeoutError(f"slow upstream for {prompt}")
    return Result(True, prompt=prompt)


@foreach("prompt", [f"b{i}" for i in range(5)])
def eval_bug(prompt):
    _log(prompt)
    raise ValueError(f"bug on {prompt}")
"""


def test_transient_errors_are_retried_and_bugs_are_not(proj: Project) -> None:
    proj.write("eval_retry.py", RETRY_EVAL)

    result = proj.run("eval_retry.py::eval_transient", "--experiment", "retry", "--retry-delay", "0.001")
    assert result.ret == 0, output(result)
    calls = proj.take_calls()
    assert sorted(calls) == sorted(f"q{i}" for i in range(5) for _ in range(3))
    assert_session("retry", SessionStatus.COMPLETED, 5, 5)

    result = proj.run("eval_retry.py::eval_bug", "--experiment", "bugs", "--retry-delay", "0.001")
    calls = proj.take_calls()
    assert sorted(calls) == sorted(f"b{i}" for i in range(5))  # once each
    assert_session("bugs", SessionStatus.FAILED, 0, 5, errors=5)


def test_transient_error_beyond_max_retries_is_an_error_retried_next_run(proj: Project) -> None:
    proj.write("eval_retry.py", RETRY_EVAL)
    args = ("eval_retry.py::eval_transient", "--experiment", "giveup", "--retry-delay", "0.001")
    proj.run(*args, "--max-retries", "1")
    assert sorted(proj.take_calls()) == sorted(f"q{i}" for i in range(5) for _ in range(2))
    assert_session("giveup", SessionStatus.FAILED, 0, 5, errors=5)
    # A new process starts counting attempts afresh: 2 more failures, then success.
    result = proj.run(*args)
    assert result.ret == 0, output(result)
    assert len(proj.take_calls()) == 15
    assert_session("giveup", SessionStatus.COMPLETED, 5, 5)


# -- selection, names, the CLI ----------------------------------------------------

TWO_EVALS = """
from doteval import Result, foreach


@foreach("prompt", [f"a{i}" for i in range(4)])
def eval_a(prompt, model):
    return Result(model.generate(prompt) == prompt.upper(), prompt=prompt)


@foreach("prompt", [f"b{i}" for i in range(6)])
def eval_b(prompt, model):
    return Result(model.generate(prompt) == prompt.upper(), prompt=prompt)
"""


def test_running_one_evaluation_keeps_the_others_results(proj: Project) -> None:
    proj.write("eval_two.py", TWO_EVALS)

    result = proj.run("eval_two.py::eval_a", "--experiment", "pick")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == [f"a{i}" for i in range(4)]
    assert_session("pick", SessionStatus.COMPLETED, 4, 4)

    result = proj.run("eval_two.py::eval_b", "--experiment", "pick")
    assert result.ret == 0, output(result)
    assert sorted(proj.take_calls()) == [f"b{i}" for i in range(6)]
    assert_session("pick", SessionStatus.COMPLETED, 10, 10)

    code, shown = proj.show("pick")
    assert code == 0, shown
    assert "eval_two.py::eval_a" in shown and "4/4" in shown
    assert "eval_two.py::eval_b" in shown and "6/6" in shown

    # Both at once now: all reused.
    result = proj.run("eval_two.py", "--experiment", "pick")
    assert result.ret == 0, output(result)
    assert proj.take_calls() == []


def test_without_experiment_results_go_to_a_generated_name(proj: Project) -> None:
    proj.write("eval_two.py", TWO_EVALS)
    result = proj.run("eval_two.py::eval_a")
    out = output(result)
    assert result.ret == 0, out
    assert len(proj.take_calls()) == 4
    names = re.findall(r"Experiment '([^']+)': Completed", out)
    assert len(names) == 1, out
    assert_session(names[0], SessionStatus.COMPLETED, 4, 4)
    assert get_storage_backend().list_sessions() == [names[0]]


def test_unencodable_dataset_item_is_one_clear_error(proj: Project) -> None:
    proj.write(
        "eval_bad_item.py",
        """
        from doteval import Result, foreach

        DATA = [("q0", "Q0"), ("q1", "Q1"), ("q2", object())]


        @foreach("prompt,expected", DATA)
        def eval_bad(prompt, expected, model):
            return Result(model.generate(prompt) == expected, prompt=prompt)
        """,
    )
    result = proj.run("eval_bad_item.py", "--experiment", "badItem")
    out = output(result)
    assert result.ret != 0, out
    assert proj.take_calls() == []
    lines = [line for line in out.splitlines() if "dataset item 2" in line]
    assert len(lines) == 1, out
    assert "column 'expected'" in lines[0]
    assert "object" in lines[0]
    assert "Traceback" not in out
    assert "doteval/" not in out.replace("doteval/_pytest_plugin", "")  # no internal frames
    # Nothing was evaluated: the experiment must not look like a finished run.
    session = get_session("badItem")
    assert session is None or session.status != SessionStatus.COMPLETED, session


def test_bad_experiment_name_is_a_one_line_error(proj: Project) -> None:
    proj.write("eval_two.py", TWO_EVALS)
    result = proj.run("eval_two.py", "--experiment", "../x")
    out = output(result)
    assert result.ret != 0, out
    assert proj.take_calls() == []
    lines = [line for line in out.splitlines() if "invalid experiment name" in line]
    assert len(lines) == 1, out
    assert "'../x'" in lines[0]
    assert "Traceback" not in out
    store = Path(os.environ["DOTEVAL_STORE"])
    assert not (store.parent / "x.lock").exists()
    assert not (store.parent / "x").exists()


# -- the how-to's session API -----------------------------------------------------


def test_storage_backend_load_truncate_and_save_resumes_the_rest(proj: Project) -> None:
    proj.write_data(items(20))
    proj.write("eval_upper.py", EVAL_FROM_JSON)
    args = ("eval_upper.py", "--experiment", "ckpt")
    assert proj.run(*args).ret == 0
    assert len(proj.take_calls()) == 20

    storage = get_storage_backend()
    data = storage.load_session("ckpt")
    assert data is not None
    assert data["status"] == "completed"
    assert data["total_count"] == 20 and data["completed_count"] == 20
    assert data["success_rate"] == 1.0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", data["last_updated"])
    results = data["results"]
    assert len(results) == 20
    for r in results:
        assert r["scores"] == {"score": True}
        assert r["response"] == r["prompt"].upper()
        assert not r["scores"].get("error", False)
    assert storage.load_session("no_such_experiment") is None

    # The how-to's force_session_recovery(name, 10).
    kept = results[:10]
    data["results"] = kept
    data["completed_count"] = len(kept)
    data["status"] = "interrupted"
    storage.save_session("ckpt", data)

    session = get_session("ckpt")
    assert session is not None
    assert session.completed_count == 10
    assert session.total_count == 20
    assert session.status == SessionStatus.INTERRUPTED

    result = proj.run(*args)
    assert result.ret == 0, output(result)
    rerun = proj.take_calls()
    assert sorted(rerun) == sorted({f"q{i}" for i in range(20)} - {r["prompt"] for r in kept})
    assert_session("ckpt", SessionStatus.COMPLETED, 20, 20)


def test_seed_cli_commands_list_show_delete(proj: Project) -> None:
    from doteval._cli import main

    proj.write_data(items(3))
    proj.write("eval_upper.py", EVAL_FROM_JSON)
    assert proj.run("eval_upper.py", "--experiment", "long_eval").ret == 0

    def cli(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(list(argv))
            except SystemExit as e:
                return int(e.code or 0), out.getvalue()
        return 0, out.getvalue()

    code, listed = cli("list")
    assert code == 0 and "long_eval" in listed and "3/3" in listed
    code, full = cli("show", "long_eval", "--full")
    assert code == 0
    picked = [line for line in full.splitlines() if re.search(r"(Status|Progress|Samples)", line)]
    assert "Status: Completed" in picked and "Samples: 3/3 (100.0%)" in picked
    code, _ = cli("delete", "long_eval")
    assert code == 0
    code, err = cli("show", "long_eval")
    assert code == 1 and "no experiment named 'long_eval'" in err
    assert get_session("long_eval") is None
    # Start fresh under a new name.
    assert proj.run("eval_upper.py", "--experiment", "long_eval_v2").ret == 0
    assert len(proj.take_calls()) == 6
    assert_session("long_eval_v2", SessionStatus.COMPLETED, 3, 3)


# -- doteval run --------------------------------------------------------------------

EVAL_ONE = """
from doteval import Result, foreach


@foreach("prompt", ["one-a", "one-b"])
def eval_one(prompt, model):
    return Result(model.generate(prompt) == prompt.upper(), prompt=prompt)
"""

EVAL_TWO = """
from doteval import Result, foreach


@foreach("prompt", ["two-a", "two-b", "two-c"])
def eval_two(prompt, model):
    return Result(model.generate(prompt) == prompt.upper(), prompt=prompt)


def eval_not_an_evaluation():
    raise AssertionError("only @foreach functions are run from eval_ files")
"""


def test_doteval_run_folder_collects_eval_files(proj: Project) -> None:
    proj.write("evals/conftest.py", COUNTING_CONFTEST)
    proj.write("evals/eval_one.py", EVAL_ONE)
    proj.write("evals/eval_two.py", EVAL_TWO)
    proj.write("evals/helpers_not_collected.py", "raise RuntimeError('never imported')\n")
    command = [sys.executable, "-m", "doteval", "run", "evals", "--experiment", "cli_run"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=proj.path, capture_output=True, text=True, timeout=120)

    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(proj.take_calls()) == ["one-a", "one-b", "two-a", "two-b", "two-c"]
    assert_session("cli_run", SessionStatus.COMPLETED, 5, 5)
    assert "eval_one.py::eval_one" in first.stdout and "eval_two.py::eval_two" in first.stdout

    second = run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert proj.take_calls() == []
    assert "this run evaluated 0, reused 5" in second.stdout


def test_doteval_run_bundled_example(pytester: pytest.Pytester, wide_output: None) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    command = [sys.executable, "-m", "doteval", "run", str(examples), "--experiment", "quickstart"]
    run = subprocess.run(command, cwd=pytester.path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    session = get_session("quickstart")
    assert session is not None and session.status == SessionStatus.COMPLETED
    assert session.completed_count == session.total_count > 0
    assert not (pytester.path / ".doteval").exists()  # $DOTEVAL_STORE was used
