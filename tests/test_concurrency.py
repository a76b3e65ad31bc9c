"""Several processes on one store: parallel runs beside gc, one experiment started twice, a group's store.

Runs are real ``python -m pytest`` subprocesses of an evaluation project in a
tmp folder; each process appends its model calls to its own calls file.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from storekit import Project, cli, finish, read_export, read_lines, run_cli

from doteval._objects import Store
from doteval.session import SessionStatus, get_session


def assert_complete_once(store: Path, name: str, calls: Path, n: int) -> None:
    made = read_lines(calls)
    assert len(made) == len(set(made)) == n, (name, len(made))
    session = get_session(name, store)
    assert session is not None
    assert (session.status, session.completed_count, session.total_count) == (SessionStatus.COMPLETED, n, n)
    rows = [json.loads(line) for line in read_export(store, name).splitlines()]
    assert len(rows) == len({r["sample_key"] for r in rows}) == n
    assert sorted(r["item"]["prompt"] for r in rows) == sorted(f"q{i}" for i in range(n))


pytestmark = pytest.mark.usefixtures("wide_output")


# -- two runs and a gc loop on one store ------------------------------------------------------


def test_two_experiments_at_once_beside_a_gc_loop(tmp_path: Path) -> None:
    n = 150
    project = Project(tmp_path / "project", n)
    store = tmp_path / "store"
    calls = {name: tmp_path / f"calls-{name}.txt" for name in ("first", "second")}
    procs = {name: project.popen(name, store, calls=calls[name], sleep=0.005) for name in calls}
    gcs = failed_gcs = 0
    while any(p.poll() is None for p in procs.values()):
        done = cli(store, "gc", "--prune", "now", ok=None)
        gcs += 1
        if done.returncode != 0:
            failed_gcs += 1
            pytest.fail(f"gc failed beside the runs: {done.stderr}")
        time.sleep(0.01)
    for proc in procs.values():
        code, out = finish(proc)
        assert code == 0, out
    assert gcs >= 1 and failed_gcs == 0
    done = cli(store, "fsck", ok=None)
    assert done.returncode == 0 and "no errors, 0 warning(s)" in done.stdout, done.stdout
    for name in calls:
        assert_complete_once(store, name, calls[name], n)


# -- one experiment started twice ----------------------------------------------------------------


def test_the_same_experiment_started_twice_runs_once_and_names_the_holder(tmp_path: Path) -> None:
    n = 20
    project = Project(tmp_path / "project", n)
    store = tmp_path / "store"
    gate = tmp_path / "gate"
    calls = [tmp_path / "calls-1.txt", tmp_path / "calls-2.txt"]
    procs = [project.popen("same", store, calls=c, gate=gate) for c in calls]
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
    assert read_lines(calls[loser]) == []
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
    code, out = finish(project.popen("team", store, calls=calls, umask=umask))
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
    code, out = finish(project.popen("team", source, calls=tmp_path / "calls.txt"))
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
