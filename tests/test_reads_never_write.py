"""Reads never write (issue 12): every read command and reading API, run on a store holding a
killed run, leaves the store byte-for-byte as it was, shows the killed run as interrupted with
the samples its journal holds, and works on a read-only mount of the store; a run into a
read-only store is refused in one line before anything is evaluated; the next writer seals."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from storekit import PY, Project, cli, cli_json, copy_store, read_only_mount_works, snapshot

from doteval._objects.journal import read_journal
from doteval.session import get_session
from doteval.storage import get_storage_backend

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("reads_never_write")

N = 40


def _journal_results(store: Path, name: str) -> int:
    journals = list((store / "journals" / name).glob("*.journal"))
    assert len(journals) == 1, journals
    records, _valid = read_journal(journals[0])
    return sum(1 for r in records if r[0] == "r")


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path, int]:
    """A store with B (complete) and A, whose first run was killed part way (its journal is
    never sealed); returns the project, the store and how many results A's journal holds."""
    root = tmp_path_factory.mktemp("killed")
    project = Project(root / "project", N, sleep=0.02)
    store = root / "store"
    project.run("B", store)
    (project.calls_path).unlink()
    proc = project.popen("A", store)
    project.wait_for_calls(N // 4, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    held = _journal_results(store, "A")
    assert 0 < held < N
    return project, store, held


def _reads(store: Path, out: Path) -> list[tuple[str, ...]]:
    return [
        ("list",),
        ("list", "--json"),
        ("show", "A"),
        ("show", "A", "--full"),
        ("show", "A", "--json"),
        ("log", "A"),
        ("log",),
        ("diff", "A", "B"),
        ("export", "A", "-o", str(out / "a.jsonl")),
        ("report", "A", "-o", str(out / "a.html")),
        ("fsck",),
    ]


def _check_view(store: Path, held: int) -> None:
    listed = {e["name"]: e for e in cli_json(store, "list")["experiments"]}
    assert listed["A"]["status"] == "interrupted", listed["A"]
    assert listed["A"]["done"] + listed["A"]["errors"] == held, listed["A"]
    shown = cli_json(store, "show", "A")
    assert shown["status"] == "interrupted"
    assert "Interrupted" in cli(store, "show", "A").stdout


def test_every_read_leaves_a_store_with_a_killed_run_unchanged(
    killed: tuple[Project, Path, int], tmp_path: Path
) -> None:
    _project, base, held = killed
    store = copy_store(base, tmp_path / "store")
    before = snapshot(store)
    for args in _reads(store, tmp_path):
        done = cli(store, *args, ok=None)
        assert done.returncode == 0 or args == ("fsck",), (args, done.stdout, done.stderr)
    _check_view(store, held)
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == held
    # the Python reading APIs
    session = get_session("A", store)
    assert session is not None and session.status.lower() == "interrupted"
    backend = get_storage_backend(store)
    assert "A" in backend.list_sessions()
    loaded: dict[str, Any] | None = backend.load_session("A")
    assert loaded is not None and len(loaded["results"]) == held
    assert snapshot(store) == before


def _on_read_only(
    store: Path, command: list[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` run with ``store`` bind-mounted read-only over itself (its own mount namespace)."""
    script = f"mount --bind -o ro {store} {store} && exec {shlex.join(command)}"
    env = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_reads_work_on_a_read_only_mount_and_a_run_into_it_is_refused(
    killed: tuple[Project, Path, int], tmp_path: Path
) -> None:
    if not read_only_mount_works(tmp_path):
        pytest.skip("needs unshare and mount (root) for a read-only bind mount")
    project, base, held = killed
    store = copy_store(base, tmp_path / "store")
    before = snapshot(store)
    for args in _reads(store, tmp_path):
        done = _on_read_only(store, [PY, "-m", "doteval", *args, "--store", str(store)])
        assert "Traceback" not in done.stderr + done.stdout, (args, done.stderr)
        assert "Read-only" not in done.stderr + done.stdout, (args, done.stderr)
        assert done.returncode == 0 or args == ("fsck",), (args, done.stdout, done.stderr)
        if args == ("list",):
            assert "interrupted" in done.stdout.lower(), done.stdout
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == held
    api = (
        "import sys; from doteval.session import get_session; from doteval.storage import get_storage_backend;"
        "s = get_session('A', sys.argv[1]); r = get_storage_backend(sys.argv[1]).load_session('A');"
        "print(s.status, len(r['results']))"
    )
    done = _on_read_only(store, [PY, "-c", api, str(store)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Interrupted", str(held)]

    project.calls_path.unlink(missing_ok=True)
    done = _on_read_only(store, [PY, "-m", "pytest", *project.args("A", store)], cwd=project.path)
    assert done.returncode != 0, done.stdout
    assert project.calls() == []  # nothing evaluated
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "read-only" in line.lower()]
    assert len(errors) == 1 and "a run cannot record its results there" in errors[0], (
        done.stdout + done.stderr
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert snapshot(store) == before


def test_the_next_writer_seals_the_killed_run_and_nothing_is_lost(
    killed: tuple[Project, Path, int], tmp_path: Path
) -> None:
    project, base, held = killed
    store = copy_store(base, tmp_path / "store")
    for args in _reads(store, tmp_path):
        cli(store, *args, ok=None)
    project.calls_path.unlink(missing_ok=True)
    project.run("A", store)
    assert len(project.calls()) == N - held  # the journal's samples were kept, not evaluated again
    assert not list((store / "journals").rglob("*.journal"))
    assert cli_json(store, "fsck")["ok"]
    listed = {e["name"]: e for e in cli_json(store, "list")["experiments"]}
    assert listed["A"]["status"] == "completed" and listed["A"]["done"] == N


def test_a_killed_resume_is_read_over_the_sealed_head_without_writing(
    killed: tuple[Project, Path, int], tmp_path: Path
) -> None:
    """The second killed run's journal is read over the head its first run was sealed into."""
    project, base, held = killed
    store = copy_store(base, tmp_path / "store")
    project.calls_path.unlink(missing_ok=True)
    proc = project.popen("A", store)  # seals the first journal (a writer), then is killed too
    project.wait_for_calls(N // 4, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    more = _journal_results(store, "A")
    before = snapshot(store)
    _check_view(store, held + more)
    assert len(cli(store, "export", "A").stdout.splitlines()) == held + more
    assert snapshot(store) == before


def test_lines_copied_together_are_joined_for_a_reader_in_memory(
    killed: tuple[Project, Path, int], tmp_path: Path
) -> None:
    """Two stores' lines of one experiment, copied together: a read shows them joined (as the
    next writer will join them) and writes no merge record."""
    project, _base, _held = killed
    one, two = tmp_path / "one", tmp_path / "two"
    project.run("C", one)
    project.run("C", two)
    for sub in ("objects", "packs", "refs"):
        shutil.copytree(two / sub, one / sub, dirs_exist_ok=True)
    before = snapshot(one)
    for args in (("list",), ("show", "C"), ("log", "C"), ("export", "C")):
        cli(one, *args)
    shown = cli_json(one, "show", "C")
    assert not shown["diverged"] and shown["done"] == N, shown
    assert snapshot(one) == before
