"""An experiment's life seen from outside: run again after a delete, undelete, a typo in its
name, a killed run's times.

Runs are real ``python -m pytest`` processes (``storekit.Project``) into the store
``$DOTEVAL_STORE`` names (tests/conftest.py); commands go through ``doteval._cli.main``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from storekit import Project, cli, cli_json, finish

from doteval._objects.journal import read_journal
from doteval.session import SessionStatus, get_session

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("experiment_lifecycle")


@pytest.fixture
def proj(tmp_path: Path) -> Project:
    return Project(tmp_path / "project", 6)


def wait_for_journal(store: Path, name: str, proc: object) -> Path:
    """The run's journal, once it holds the run's start record (the file is created first)."""
    deadline = time.monotonic() + 120  # turns a hang into a failure; not a limit on speed
    while time.monotonic() < deadline:
        journals = list((store / "journals" / name).glob("*.journal"))
        if journals and any(rec[0] == "start" for rec in read_journal(journals[0])[0] if rec):
            return journals[0]
        assert proc.poll() is None, proc.communicate()[0]  # type: ignore[attr-defined]
        time.sleep(0.01)
    pytest.fail("the run never started its journal")


def error_line(done: object) -> str:
    lines = done.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert lines and lines[0].startswith("Error: "), lines
    assert all(line.startswith("hint:") for line in lines[1:]), lines
    return str(lines[0])


# -- 4: a deleted experiment run again is visible at once, as Running ------------------------


def test_a_deleted_experiment_run_again_shows_as_running(proj: Project, store_path: Path) -> None:
    proj.run("exp", None)
    cli(store_path, "delete", "exp")
    gate = proj.path / "gate"
    before = time.time()
    proc = proj.popen("exp", None, gate=gate)
    try:
        wait_for_journal(store_path, "exp", proc)
        shown = cli(store_path, "show", "exp").stdout
        assert "Status: Running" in shown and "Samples: 0/6" in shown, shown
        listed = {e["name"]: e for e in cli_json(store_path, "list")["experiments"]}
        assert listed["exp"]["status"] == "running" and not listed["exp"]["deleted"]
        session = get_session("exp")
        assert session is not None and session.status == SessionStatus.RUNNING
        assert before - 1 <= session.started <= time.time()  # the live run's start, not 0.0
    finally:
        gate.touch()
        rc, out = finish(proc)
    assert rc == 0, out
    session = get_session("exp")
    assert session is not None and (session.status, session.completed_count) == (SessionStatus.COMPLETED, 6)


def test_get_session_of_a_running_experiment_gives_the_run_start(proj: Project, store_path: Path) -> None:
    proj.run("exp", None, "--samples", "3")
    sealed = get_session("exp")
    assert sealed is not None
    gate = proj.path / "gate"
    proc = proj.popen("exp", None, gate=gate)
    try:
        wait_for_journal(store_path, "exp", proc)
        session = get_session("exp")
        assert session is not None and session.status == SessionStatus.RUNNING
        assert session.started > sealed.last_updated  # this run's start, not the run before it
    finally:
        gate.touch()
        finish(proc)


# -- 8: a killed run's duration ends with its last journal record -----------------------------


def test_a_killed_run_ends_at_its_last_record_not_when_it_is_shown(proj: Project, store_path: Path) -> None:
    proc = proj.popen("killed", None, sleep=0.05)
    journal = wait_for_journal(store_path, "killed", proc)
    proj.wait_for_calls(3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    last_record = journal.stat().st_mtime
    time.sleep(0.2)  # shown a while after it died
    doc = cli_json(store_path, "show", "killed")
    session = get_session("killed")
    assert session is not None and session.status == SessionStatus.INTERRUPTED
    assert session.last_updated == pytest.approx(last_record, abs=0.01)
    assert session.started <= session.last_updated <= killed_at
    assert doc["duration"] == pytest.approx(last_record - session.started, abs=0.01)
    assert doc["duration"] <= killed_at - session.started


# -- 5: undelete --------------------------------------------------------------------------------


def test_undelete_brings_back_a_deleted_experiment_with_its_history(proj: Project, store_path: Path) -> None:
    proj.run("exp", None, "--samples", "3")
    proj.run("exp", None)
    before = cli_json(store_path, "show", "exp")
    log_before = [e["id"] for e in cli_json(store_path, "log", "exp")["entries"]]
    cli(store_path, "delete", "exp")
    done = cli(store_path, "show", "exp", ok=False)
    assert error_line(done) == "Error: no experiment named 'exp' in this store (it was deleted)"
    assert "hint: `doteval undelete exp` brings it back" in done.stderr
    out = cli(store_path, "undelete", "exp").stdout
    assert out.strip().startswith("Brought back experiment exp"), out
    after = cli_json(store_path, "show", "exp")
    assert (after["id"], after["done"], after["total"]) == (before["id"], 6, 6)
    log_after = cli_json(store_path, "log", "exp")["entries"]
    assert [e["op"] for e in log_after[:2]] == ["undelete", "delete"]
    assert [e["id"] for e in log_after[2:]] == log_before
    # The next run resumes it: nothing to evaluate again.
    calls = len(proj.calls())
    proj.run("exp", None)
    assert len(proj.calls()) == calls


def test_undelete_refuses_a_name_that_is_taken(proj: Project, store_path: Path) -> None:
    proj.run("exp", None, "--samples", "2")
    assert error_line(cli(store_path, "undelete", "exp", ok=False)) == (
        "Error: experiment 'exp' exists: there is nothing to undelete"
    )
    cli(store_path, "delete", "exp")
    proj.run("exp", None, "--samples", "1")  # the name is taken again by a new experiment
    line = error_line(cli(store_path, "undelete", "exp", ok=False))
    assert line == "Error: experiment 'exp' exists: there is nothing to undelete"
    assert cli_json(store_path, "show", "exp")["done"] == 1  # unchanged
    assert error_line(cli(store_path, "undelete", "nope", ok=False)) == (
        "Error: no experiment named 'nope' in this store"
    )


# -- 7: did you mean ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_eval_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the experiment long_eval (the commands below only fail to find a name)."""
    root = tmp_path_factory.mktemp("typo")
    Project(root / "project", 2).run("long_eval", root / "store")
    return root / "store"


@pytest.mark.parametrize(
    "command",
    [
        ["show", "long_evl"],
        ["show", "long_evl@abcd"],
        ["log", "long_evl"],
        ["diff", "long_evl", "long_eval"],
        ["export", "long_evl"],
        ["report", "long_evl"],
        ["delete", "long_evl"],
        ["rename", "long_evl", "x"],
        ["keep", "long_evl@abcd"],
    ],
)
def test_a_misspelt_experiment_name_offers_the_close_one(
    command: list[str], long_eval_store: Path, tmp_path: Path
) -> None:
    if command[0] == "report":
        command = [*command, "-o", str(tmp_path / "r.html")]
    line = error_line(cli(long_eval_store, *command, ok=False))
    assert line == "Error: no experiment named 'long_evl' in this store; did you mean 'long_eval'?"


def test_undelete_of_a_misspelt_name_offers_the_deleted_one(proj: Project, store_path: Path) -> None:
    proj.run("long_eval", None, "--samples", "1")
    cli(store_path, "delete", "long_eval")
    line = error_line(cli(store_path, "undelete", "long_evl", ok=False))
    assert line == "Error: no experiment named 'long_evl' in this store; did you mean 'long_eval'?"


def test_the_change_refusal_suggests_a_name_not_taken(proj: Project, store_path: Path) -> None:
    proj.run("long_eval", None, "--samples", "1")
    proj.run("long_eval_v2", None, "--samples", "1")
    proj.write_eval(6, tag="v2")
    code, out = finish(proj.popen("long_eval", None))
    assert code != 0
    suggested = [line for line in out.splitlines() if "a new experiment:" in line]
    assert suggested and "--experiment long_eval_v3 " in suggested[0] + " ", out
    names = [e["name"] for e in json.loads(cli(store_path, "list", "--json").stdout)["experiments"]]
    assert "long_eval_v3" not in names


def test_undelete_after_gc_expired_the_deletion_finds_nothing(proj: Project, store_path: Path) -> None:
    proj.run("exp", None, "--samples", "2")
    cli(store_path, "delete", "exp")
    cli(store_path, "gc", "--expire-deleted", "now", "--prune", "now")
    line = error_line(cli(store_path, "undelete", "exp", ok=False))
    assert line == "Error: no experiment named 'exp' in this store"
