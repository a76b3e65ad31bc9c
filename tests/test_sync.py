"""``doteval push`` / ``pull``: stores copied together keep every line, shard runs merge, kills are safe.

Every store here is a folder in tmp ("a machine"); evaluation projects run as
real ``python -m pytest`` subprocesses and the CLI as ``python -m doteval``.
Pushes go through rsync (installed) and through plain copies (``--no-rsync``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from storekit import PY, Project, _env, cli, cli_json, copy_store, read_export, run_cli

from doteval._objects import Store
from doteval._operations.fsck import fsck
from doteval.session import SessionStatus, get_session

# Runs here spell --store=PATH in one argument (store_arg="joined"): see
# test_store_option_spelling_keeps_node_ids.


def names(store: Path) -> list[str]:
    return [e["name"] for e in cli_json(store, "list")["experiments"]]


def assert_clean(store: Path, *, subprocess_cli: bool = False) -> str:
    done = (run_cli if subprocess_cli else cli)(store, "fsck")
    assert "no errors, 0 warning(s)" in done.stdout, done.stdout
    return done.stdout


def tree(root: Path, *, skip: tuple[str, ...] = ("locks", "journals", "rsync-filter")) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in skip and not p.name.startswith(".")
    }


# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = [pytest.mark.usefixtures("wide_output"), pytest.mark.xdist_group("sync")]


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Store A holds experiment alpha, store B holds beta (the same evaluation)."""
    root = tmp_path_factory.mktemp("sync-two")
    project = Project(root / "project", 25, store_arg="joined")
    a, b = root / "A", root / "B"
    project.run("alpha", a)
    project.run("beta", b)
    return {"A": a, "B": b, "exports": {"alpha": read_export(a, "alpha"), "beta": read_export(b, "beta")}}


# -- pushing two stores into a third ----------------------------------------------------------


@pytest.mark.parametrize("method", ["rsync", "copy"])
def test_two_stores_pushed_into_a_third_have_both_and_a_second_push_copies_nothing(
    two_stores: dict, tmp_path: Path, method: str
) -> None:
    dest = tmp_path / "C"
    flags = ["--no-rsync"] if method == "copy" else []
    for source in (two_stores["A"], two_stores["B"]):
        out = run_cli(source, "push", str(dest), *flags).stdout
        assert out.startswith("Pushed ") and f", {method})." in out, out
        assert "Pushed 0 file(s)" not in out
    assert sorted(names(dest)) == ["alpha", "beta"]
    assert_clean(dest, subprocess_cli=True)
    for name, text in two_stores["exports"].items():
        assert read_export(dest, name) == text
    before = tree(dest)
    for source in (two_stores["A"], two_stores["B"]):
        assert cli(source, "push", str(dest), *flags).stdout.startswith("Pushed 0 file(s), 0 B")
        stats = cli_json(source, "push", str(dest), *flags)
        assert (stats["files"], stats["bytes"], stats["method"]) == (0, 0, method)
        assert stats["diverged"] == stats["merged"] == []
    assert tree(dest) == before


def test_pull_into_a_fresh_store_creates_it(two_stores: dict, tmp_path: Path) -> None:
    dest = tmp_path / "new" / "store"
    out = run_cli(dest, "pull", str(two_stores["A"])).stdout
    assert out.startswith("Pulled ") and "Pulled 0 file(s)" not in out, out
    assert (dest / "VERSION").read_text() == "doteval-store 2\n"
    assert names(dest) == ["alpha"]
    assert_clean(dest)
    assert read_export(dest, "alpha") == two_stores["exports"]["alpha"]
    assert cli(dest, "pull", str(two_stores["A"])).stdout.startswith("Pulled 0 file(s)")
    cli(tmp_path / "other", "pull", str(tmp_path / "not-a-store"), ok=False)


# -- an experiment that moved on both sides ---------------------------------------------------


def moved_on_both_sides(tmp_path: Path, n: int) -> tuple[Project, Path, Path, str, str]:
    """Experiment X run in store A, copied to B, then a new line of other code in each
    (laptop in A, server in B): (project, A, B, head of A, head of B)."""
    project = Project(tmp_path / "project", n, tag="base", store_arg="joined")
    a, b = tmp_path / "A", tmp_path / "B"
    project.run("X", a)
    cli(b, "pull", str(a))
    project.write_eval(n, tag="laptop")
    project.run("X", a, "--rerun-changed")
    project.write_eval(n, tag="server")
    project.run("X", b, "--rerun-changed")
    return project, a, b, cli_json(a, "show", "X")["id"], cli_json(b, "show", "X")["id"]


def test_experiment_moved_on_both_sides_keeps_both_lines(tmp_path: Path) -> None:
    _project, a, b, head_a, head_b = moved_on_both_sides(tmp_path, 15)
    export_a, export_b = read_export(a, "X"), read_export(b, "X")
    assert head_a != head_b

    out = run_cli(b, "pull", str(a)).stdout
    assert "X moved on both sides with different code or params: both lines are kept" in out, out
    assert "`doteval log X`" in out
    stats = cli_json(b, "pull", str(a))
    assert stats["files"] == 0 and stats["diverged"] == ["X"] and stats["merged"] == []

    log = cli_json(b, "log", "X")["entries"]
    ids = [e["id"] for e in log if e["op"] == "run"]
    assert head_a in ids and head_b in ids and len(ids) == 3  # base, laptop, server
    check = cli(b, "fsck")
    assert "no errors" in check.stdout and "has 2 heads" in check.stdout, check.stdout
    shown = cli(b, "show", "X").stdout
    assert "two heads" in shown, shown
    # Nothing lost: each line reads as it was in its own store.
    assert read_export(b, f"X@{head_a[:12]}") == export_a
    assert read_export(b, f"X@{head_b[:12]}") == export_b
    assert {json.loads(line)["item"]["prompt"] for line in export_a.splitlines()} == {
        f"q{i}" for i in range(15)
    }


def test_keep_chooses_one_line_and_the_next_run_continues_it(tmp_path: Path) -> None:
    project, a, b, head_a, head_b = moved_on_both_sides(tmp_path, 10)
    export_a = read_export(a, "X")
    cli(b, "pull", str(a))
    assert "keep X@REV" in cli(b, "show", "X").stdout

    # Refused in one line: a revision that ends no line, a spec without @REV.
    base_rev = next(e["id"] for e in cli_json(b, "log", "X")["entries"] if e["id"] not in (head_a, head_b))
    for bad, words in ((f"X@{base_rev[:10]}", "not the newest revision"), ("X", "NAME@REV")):
        done = run_cli(b, "keep", bad, ok=False)
        assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr, done.stderr

    out = run_cli(b, "keep", f"X@{head_a[:10]}").stdout
    assert f"Kept the line of X ending at 10/10 samples (X@{head_a[:10]})" in out, out
    assert f"X@{head_b[:10]}" in out
    state = Store(b).refs.read("X")
    assert state is not None and not state.diverged and state.head.op == "merge"
    assert "two heads" not in cli(b, "show", "X").stdout
    assert "has 2 heads" not in cli(b, "fsck").stdout
    assert read_export(b, "X") == export_a  # the kept line, as it was in its own store
    assert cli_json(b, "show", "X")["id"] == head_a
    log = [e["id"] for e in cli_json(b, "log", "X")["entries"] if e["op"] == "run"]
    assert head_a in log and head_b in log  # the other line stays in the history
    assert read_export(b, f"X@{head_b[:12]}")

    # The laptop's code continues its line: nothing to evaluate again.
    calls_before = len(project.calls())
    project.write_eval(10, tag="laptop")
    project.run("X", b)
    assert len(project.calls()) == calls_before
    done = run_cli(b, "keep", f"X@{head_a[:10]}", ok=False)
    assert done.returncode == 1 and "has one line" in done.stderr, done.stderr


# -- shards run on three machines -------------------------------------------------------------


def test_shards_from_three_stores_merge_into_one_complete_experiment(tmp_path: Path) -> None:
    n = 30
    project = Project(tmp_path / "project", n, store_arg="joined")
    shards = [tmp_path / f"machine{i}" for i in (1, 2, 3)]
    for i, store in enumerate(shards, 1):
        project.run("sh", store, "--shard", f"{i}/3")
    calls = project.calls()
    assert len(calls) == len(set(calls)) == n  # every item on exactly one machine

    merged = tmp_path / "merged"
    first = run_cli(merged, "pull", str(shards[0])).stdout
    assert first.startswith("Pulled "), first
    for store in shards[1:]:  # each later shard joins the line it meets
        stats = cli_json(merged, "pull", str(store))
        assert stats["merged"] == ["sh"] and stats["diverged"] == [], stats

    session = get_session("sh", merged)
    assert session is not None
    assert (session.status, session.completed_count, session.total_count) == (SessionStatus.COMPLETED, n, n)
    shown = cli(merged, "show", "sh").stdout
    assert "Status: Completed" in shown and f"Samples: {n}/{n}" in shown, shown
    rows = [json.loads(line) for line in read_export(merged, "sh").splitlines()]
    assert len(rows) == len({r["sample_key"] for r in rows}) == n
    assert sorted(r["item"]["prompt"] for r in rows) == sorted(f"q{i}" for i in range(n))
    log = cli_json(merged, "log", "sh")["entries"]
    changes = [c for e in log for c in e["changes"]]
    for i in (1, 2, 3):
        assert f"shard {i}/3" in changes, changes
    assert sum(e["op"] == "merge" for e in log) == 2
    assert_clean(merged)


# -- a push killed half way --------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with one experiment and some hundred small objects, so a push takes a while."""
    root = tmp_path_factory.mktemp("sync-many")
    store = root / "store"
    Project(root / "project", 25, store_arg="joined").run("many", store)
    st = Store(store, durable=False)
    for i in range(400):
        st.objects.put({"type": "note", "i": i, "text": f"note {i} " * 20})
    return {"store": store, "export": read_export(store, "many")}


PARTIAL = ("missing", "without an index", "history is cut", "temporary", "no store here")


def _killed_pushes(many_files: dict, tmp_path: Path, method: str, trials: int, seed: int) -> None:
    source = many_files["store"]
    flags = ["--no-rsync"] if method == "copy" else []

    def command(dest: Path) -> list[str]:
        return [PY, "-m", "doteval", "push", str(dest), *flags, "--store", str(source)]

    started = time.monotonic()  # one whole push, timed only to spread the kills over its length
    subprocess.run(command(tmp_path / "timed"), env=_env(), check=True, capture_output=True, timeout=300)
    length = time.monotonic() - started
    rng = random.Random(seed)
    for trial in range(trials):
        dest = tmp_path / f"dest{trial}"
        proc = subprocess.Popen(
            command(dest), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        time.sleep(rng.uniform(0.15, 0.95) * length)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # doteval and its rsync
        proc.communicate(timeout=60)
        report = fsck(Store(dest))
        for problem in report.problems:
            assert any(word in problem.message for word in PARTIAL), (trial, problem.to_json())

        out = cli(source, "push", str(dest), *flags).stdout
        assert out.startswith("Pushed "), out
        assert_clean(dest)
        assert read_export(dest, "many") == many_files["export"]
        assert tree(dest) == tree(source)


@pytest.mark.parametrize("method", ["rsync", "copy"])
def test_push_killed_half_way_then_pushed_again(many_files: dict, tmp_path: Path, method: str) -> None:
    _killed_pushes(many_files, tmp_path, method, trials=2, seed=31 if method == "rsync" else 32)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rsync", "copy"])
def test_push_killed_half_way_many_trials(many_files: dict, tmp_path: Path, method: str) -> None:
    _killed_pushes(many_files, tmp_path, method, trials=10, seed=5)


# -- the documented raw-rsync route ----------------------------------------------------------


def test_printed_rsync_commands_make_the_same_store_as_push(two_stores: dict, tmp_path: Path) -> None:
    source = tmp_path / "source"
    copy_store(two_stores["A"], source)
    raw, pushed = tmp_path / "raw", tmp_path / "pushed"
    printed = run_cli(source, "push", "--print", str(raw)).stdout.splitlines()
    assert len(printed) == 3 and all(line.startswith("rsync ") for line in printed), printed
    assert not raw.exists()  # --print copies nothing
    for line in printed:
        subprocess.run(shlex.split(line), check=True, capture_output=True, timeout=120)
    run_cli(source, "push", str(pushed))
    for store in (raw, pushed):
        assert_clean(store)
        assert read_export(store, "alpha") == two_stores["exports"]["alpha"]
    assert tree(raw) == tree(pushed)
    assert names(raw) == ["alpha"]


# -- the --store option and pytest's rootdir ---------------------------------------------------


def test_store_option_spelling_keeps_node_ids(tmp_path: Path) -> None:
    """``--store PATH`` once named an existing PATH beside the project a test path for pytest's
    rootdir, so evaluation ids changed once the store existed and everything ran again."""
    project = Project(tmp_path / "project", 5, store_arg="split")
    store = tmp_path / "store"  # beside the project, not inside it
    project.run("X", store)  # the store does not exist yet
    project.run("X", store)  # now it does
    project.store_arg = "joined"
    project.run("X", store)  # --store=PATH
    assert len(project.calls()) == 5, project.calls()
    log = cli_json(store, "log", "X")["entries"]
    assert [e["evaluated"] for e in log if e["op"] == "run"][-1] == 5  # later runs: nothing to evaluate
    assert sum(e["evaluated"] for e in log) == 5


# -- experiment names of every shape the name rule allows (issue 10, item 8) ----------------------

# Names that look like files rsync must skip (locks, journals, temp files) or like store folders:
# the filter's rules are anchored to their folders, so none of them is left out.
ODD_NAMES = [
    "results.lock",
    "x.journal",
    "a.tmp-1-0123456789ab",
    "journals",
    "locks",
    "objects",
    "rsync-filter",
    "VERSION",
    "pack-x.idx",
    "_x+y=z,w-v.",
    "9" + "z" * 199,
]


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sync-odd")
    project = Project(root / "project", 2, store_arg="joined")
    for name in ODD_NAMES:
        project.run(name, root / "store")
    return root / "store"


@pytest.mark.parametrize("method", ["rsync", "copy"])
def test_experiments_of_every_name_shape_are_pushed_and_pulled(
    odd_store: Path, tmp_path: Path, method: str
) -> None:
    flags = ["--no-rsync"] if method == "copy" else []
    assert sorted(names(odd_store)) == sorted(ODD_NAMES)
    pushed, pulled = tmp_path / "pushed", tmp_path / "pulled"
    cli(odd_store, "push", str(pushed), *flags)
    cli(pulled, "pull", str(odd_store), *flags)
    for store in (pushed, pulled):
        assert sorted(names(store)) == sorted(ODD_NAMES)
        assert_clean(store)
        assert tree(store) == tree(odd_store)
