"""Several processes on one store: parallel runs beside gc, one experiment started twice, a group's store.

Runs are real ``python -m pytest`` subprocesses of an evaluation project in a
tmp folder; each process appends its model calls to its own calls file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from storekit import PY, PYTEST_FLAGS, _env

from doteval.export import export as export_rows
from doteval.history import resolve
from doteval.objects import Store
from doteval.session import SessionStatus, get_session

CONFTEST = """
import os
import time
from pathlib import Path

import pytest


class Model:
    def __doteval_params__(self):
        return {"name": "test-model", "version": 1}

    def generate(self, prompt):
        gate = os.environ.get("DOTEVAL_TEST_GATE")
        if gate:  # hold the run (and its lock) until the test opens the gate
            deadline = time.monotonic() + 120
            while not Path(gate).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        delay = float(os.environ.get("DOTEVAL_TEST_SLEEP") or 0)
        if delay:
            time.sleep(delay)
        with open(os.environ["DOTEVAL_TEST_CALLS"], "a") as f:
            f.write(prompt + "\\n")
        return prompt.upper()


@pytest.fixture
def model():
    return Model()
"""

EVAL = """
from doteval import Result, foreach

DATA = [(f"q{{i}}", f"Q{{i}}") for i in range({n})]


@foreach("prompt,expected", DATA)
def eval_x(prompt, expected, model):
    response = model.generate(prompt)
    return Result(response == expected, prompt=prompt, response=response)
"""


class Project:
    def __init__(self, path: Path, n: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.n = n
        (path / "conftest.py").write_text(CONFTEST)
        (path / "eval_x.py").write_text(EVAL.format(n=n))

    def popen(
        self,
        name: str,
        store: Path,
        calls: Path,
        *,
        sleep: float = 0.0,
        gate: Path | None = None,
        umask: int = -1,
    ) -> subprocess.Popen[str]:
        env = _env(DOTEVAL_TEST_CALLS=str(calls), DOTEVAL_TEST_SLEEP=str(sleep))
        if gate is not None:
            env["DOTEVAL_TEST_GATE"] = str(gate)
        return subprocess.Popen(
            [PY, "-m", "pytest", "eval_x.py", "--experiment", name, "--store", str(store), *PYTEST_FLAGS],
            cwd=self.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            umask=umask,
        )


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        pytest.fail(f"the run did not end within {timeout}s:\n{out}")
    return proc.returncode, out


def cli(store: Path, *args: str) -> tuple[int, str, str]:
    """``doteval ARGS --store STORE`` through ``doteval.cli.main`` in this process."""
    from doteval.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args, "--store", str(store)])
        except SystemExit as e:
            code = e.code
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


def run_cli(store: Path, *args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PY, "-m", "doteval", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        umask=umask,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def assert_complete_once(store: Path, name: str, calls: Path, n: int) -> None:
    made = lines(calls)
    assert len(made) == len(set(made)) == n, (name, len(made))
    session = get_session(name, store)
    assert session is not None
    assert (session.status, session.completed_count, session.total_count) == (SessionStatus.COMPLETED, n, n)
    st = Store(store)
    out = io.StringIO()
    export_rows(st, resolve(st, name), "jsonl", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == len({r["sample_key"] for r in rows}) == n
    assert sorted(r["item"]["prompt"] for r in rows) == sorted(f"q{i}" for i in range(n))


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


# -- two runs and a gc loop on one store ------------------------------------------------------


def test_two_experiments_at_once_beside_a_gc_loop(tmp_path: Path) -> None:
    n = 150
    project = Project(tmp_path / "project", n)
    store = tmp_path / "store"
    calls = {name: tmp_path / f"calls-{name}.txt" for name in ("first", "second")}
    procs = {name: project.popen(name, store, calls[name], sleep=0.005) for name in calls}
    gcs = failed_gcs = 0
    while any(p.poll() is None for p in procs.values()):
        code, _out, err = cli(store, "gc", "--prune", "now")
        gcs += 1
        if code != 0:
            failed_gcs += 1
            pytest.fail(f"gc failed beside the runs: {err}")
        time.sleep(0.01)
    for proc in procs.values():
        code, out = finish(proc)
        assert code == 0, out
    assert gcs >= 1 and failed_gcs == 0
    code, out, _err = cli(store, "fsck")
    assert code == 0 and "no errors, 0 warning(s)" in out, out
    for name in calls:
        assert_complete_once(store, name, calls[name], n)


# -- one experiment started twice ----------------------------------------------------------------


def test_the_same_experiment_started_twice_runs_once_and_names_the_holder(tmp_path: Path) -> None:
    n = 20
    project = Project(tmp_path / "project", n)
    store = tmp_path / "store"
    gate = tmp_path / "gate"
    calls = [tmp_path / "calls-1.txt", tmp_path / "calls-2.txt"]
    procs = [project.popen("same", store, c, gate=gate) for c in calls]
    deadline = time.monotonic() + 120
    while all(p.poll() is None for p in procs):  # the winner waits at the gate, holding the lock
        assert time.monotonic() < deadline, "neither process stopped"
        time.sleep(0.01)
    loser = next(i for i, p in enumerate(procs) if p.poll() is not None)
    winner = 1 - loser
    code, out = finish(procs[loser])
    assert code != 0, out
    assert "Traceback" not in out, out
    assert f"is being run by pid {procs[winner].pid} on {socket.gethostname()}" in out, out
    assert procs[winner].poll() is None  # still running
    holder = Store(store).live_holder("same")
    assert holder is not None and holder["pid"] == procs[winner].pid

    gate.touch()
    code, out = finish(procs[winner])
    assert code == 0, out
    assert lines(calls[loser]) == []
    assert_complete_once(store, "same", calls[winner], n)
    assert Store(store).live_holder("same") is None


# -- a store shared by a group -------------------------------------------------------------------


def _not_shared(root: Path, *, folders_only: bool = False) -> list[str]:
    """Entries under ``root`` without group write (and folders without setgid)."""
    bad = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or (folders_only and not stat.S_ISDIR(mode)):
            continue
        if not mode & stat.S_IWGRP or (stat.S_ISDIR(mode) and not mode & stat.S_ISGID):
            bad.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}")
    return bad


@pytest.mark.parametrize("umask", [0o002, 0o022], ids=["umask002", "umask022"])
def test_files_created_in_a_group_store_are_group_writable(tmp_path: Path, umask: int) -> None:
    store = tmp_path / "shared"
    store.mkdir()
    os.chmod(store, 0o2775)
    project = Project(tmp_path / "project", 15)
    calls = tmp_path / "calls.txt"
    code, out = finish(project.popen("team", store, calls, umask=umask))
    assert code == 0, out
    done = run_cli(store, "gc", "--prune", "now", umask=umask)  # a new pack, written by "another user"
    assert done.returncode == 0, done.stderr
    assert run_cli(store, "delete", "team", umask=umask).returncode == 0  # a new ref record

    kinds = {
        "objects": list((store / "objects").rglob("*")),
        "packs": list((store / "packs").glob("pack-*")),
        "refs": [p for p in (store / "refs").rglob("*") if p.is_file()],
        "locks": list((store / "locks").glob("*.lock")),
    }
    for kind, paths in kinds.items():
        assert paths, kind
    assert len(kinds["refs"]) == 2
    assert _not_shared(store) == []


@pytest.mark.parametrize("method", ["rsync", "copy"])
def test_a_push_into_a_group_store_keeps_its_folders_group_writable(tmp_path: Path, method: str) -> None:
    source = tmp_path / "mine"
    project = Project(tmp_path / "project", 10)
    code, out = finish(project.popen("team", source, tmp_path / "calls.txt"))
    assert code == 0, out
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    flags = ["--no-rsync"] if method == "copy" else []
    done = run_cli(source, "push", str(shared), *flags, umask=0o022)
    assert done.returncode == 0, done.stderr
    folders = [p for p in [shared, *shared.rglob("*")] if p.is_dir()]
    assert {p.name for p in folders} >= {"objects", "packs", "refs", "team"}
    # Another member of the group must be able to add objects and ref records.
    assert _not_shared(shared, folders_only=True) == []
    if method == "copy":  # plain copies also give each file group write (rsync files keep 0644: immutable)
        assert _not_shared(shared) == []
