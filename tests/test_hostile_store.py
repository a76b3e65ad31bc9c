"""A shared store is untrusted input: hostile entries are refused in one line or ignored.

Each case copies a store built by a real ``python -m pytest`` run, plants one
hostile entry, and runs ``list``, ``show``, ``fsck`` and ``gc --prune now``
(plus the commands the case is about). Every command must either succeed
(ignoring the entry) or refuse with one ``Error:`` line and exit 1 or 2 - never
a traceback. Files outside the store (a sentinel, a folder of copied records,
a FIFO that would block whoever opened it) must not be read, written or removed.
Commands call the CLI's entry point in this process (one case also runs
``python -m doteval``); a watcher thread notices and releases any reader of a
FIFO outside the store, so a regression fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import storekit
from storekit import PY, Project, copy_store, loose_path, snapshot

from doteval._objects import Store
from doteval._objects.encoding import encode
from doteval._objects.hashing import hash_bytes
from doteval._repository.manifest import load_manifest
from doteval._repository.sample_tables import load_parts

BASIC = [("list",), ("show", "X"), ("show", "X", "--full"), ("fsck",), ("gc", "--prune", "now")]


# Results that keep their command line (a refusal is an outcome here); the subprocess runner
# fails a command that blocks on a FIFO within a minute instead of hanging the test.
class Done:
    def __init__(self, args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr

    @property
    def refused(self) -> bool:
        return self.returncode != 0


def cli(store: Path, *args: str) -> Done:
    done = storekit.cli(store, *args, ok=None)  # in this process; a refusal is a result here
    return Done(args, done.returncode, done.stdout, done.stderr)


def run_cli(store: Path, *args: str) -> Done:
    """``python -m doteval ARGS --store STORE`` in a subprocess (with a timeout, in case it blocks)."""
    try:
        proc = subprocess.run(
            [PY, "-m", "doteval", *args, "--store", str(store)],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, COLUMNS="200"),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`doteval {' '.join(args)}` hung (did it open a FIFO?)")
    return Done(args, proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def fifo_watch(fifo: Path) -> Iterator[list[str]]:
    """Notice (and release) anyone who opens ``fifo`` for reading, instead of hanging with them.

    Opening a FIFO for writing without blocking succeeds only while a reader has
    it open; the reader then sees end of file and goes on.
    """
    opened: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                time.sleep(0.005)
                continue
            opened.append(str(fifo))
            os.close(fd)
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join()


def assert_refused_or_ignored(done: Done) -> None:
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    if done.returncode == 0:
        return
    assert done.returncode in (1, 2), (done.args, done.returncode, text)
    if done.args[0] == "fsck" and not done.stderr:  # fsck's refusal is its report
        assert "error(s)" in done.stdout, done.stdout
        return
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, (done.args, done.stderr)


# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = [pytest.mark.usefixtures("wide_output"), pytest.mark.xdist_group("hostile_store")]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-base")
    store = root / "store"
    Project(root / "project", 10).run("X", store)
    return store


class Case:
    """A copied store, a folder outside it, and what a case planted."""

    def __init__(self, base: Path, tmp_path: Path) -> None:
        self.base = base
        self.store = copy_store(base, tmp_path / "store")
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        self.sentinel = self.outside / "sentinel.txt"
        self.sentinel.write_text("precious data outside the store\n")
        st = Store(self.store)
        self.record = st.refs.read("X").head.id
        self.manifest = st.refs.read("X").head.manifest
        self.entries = load_manifest(st, self.manifest).evaluations[0].entries

    def fifo(self) -> Path:
        path = self.outside / "fifo"
        if not path.is_fifo():
            os.mkfifo(path)
        return path

    def ref_record(self, name: str, **fields: object) -> Path:
        """A well-formed (correctly hashed) ref record with hostile fields."""
        record = {"type": "ref", "v": 1, "experiment": name, "manifest": self.manifest, "parent": None,
                  "time": 1.0, "op": "run", "host": "h", "note": ""}  # fmt: skip
        record.update(fields)
        raw = encode(record)
        folder = self.store / "refs" / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / hash_bytes(raw)
        path.write_bytes(b"".join(Store(self.store).objects.file_chunks(raw)))
        return path


def _run_all(
    case: Case, commands: list[tuple[str, ...]], *, subprocess_cli: bool = False
) -> dict[tuple[str, ...], Done]:
    outside_before = snapshot(case.outside)
    results = {}
    outside = [p for p in case.outside.rglob("*") if p.is_fifo()]
    inside = [p for p in case.store.rglob("*") if p.is_fifo()]  # watched too: a reader must not hang
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(fifo_watch(f)) for f in outside]
        for f in inside:
            stack.enter_context(fifo_watch(f))
        for args in commands:
            done = (run_cli if subprocess_cli else cli)(case.store, *args)
            assert_refused_or_ignored(done)
            results[args] = done
            assert not any(opened), (args, "opened a FIFO outside the store")
    assert snapshot(case.outside) == outside_before  # nothing outside modified, created or removed
    assert case.sentinel.read_text() == "precious data outside the store\n"
    return results


def _damaged_rows(done: Done) -> list[str]:
    """The experiments ``list`` marks damaged (it lists the others as usual)."""
    assert not done.refused, done.stderr
    return [line.split()[0] for line in done.stdout.splitlines() if " Damaged " in f"{line} "]


# -- names that look like paths -----------------------------------------------------------------


def test_names_that_look_like_paths_are_refused_in_one_line(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    before = snapshot(case.store)
    hostile = ["..", "../X", "../../etc/passwd", "X/../X", ".X", "~root", "a\\b", ""]
    commands = [(cmd, name) for name in hostile for cmd in ("show", "export", "log", "delete")]
    commands.remove(("log", ""))  # an empty name: the log of every experiment
    commands += [("rename", "X", ".."), ("rename", "..", "X"), ("show", "..@abcd"), ("show", "../X~1")]
    results = _run_all(case, commands)
    assert all(done.refused for done in results.values()), [a for a, d in results.items() if not d.refused]
    assert snapshot(case.store) == before


def test_ref_folders_with_names_that_are_not_experiment_names_are_ignored(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    for odd in ("...", ".hidden", "-rf", "a b", "x" * 201):
        shutil.copytree(case.store / "refs" / "X", case.store / "refs" / odd)
    results = _run_all(case, BASIC)
    assert [line.split()[0] for line in results[("list",)].stdout.splitlines()[2:]] == ["X"]
    assert not results[("show", "X", "--full")].refused
    fsck = results[("fsck",)]
    assert fsck.refused and fsck.stdout.count("not an experiment name") == 5, fsck.stdout
    assert not results[("gc", "--prune", "now")].refused


def test_a_ref_folder_linked_outside_the_store_is_never_read_or_written(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    shutil.copytree(case.store / "refs" / "X", case.outside / "records")
    os.mkfifo(case.outside / "records" / ("ab" * 32))  # whoever reads the records would block
    (case.store / "refs" / "evil").symlink_to(case.outside / "records")
    commands = [
        *BASIC,
        ("show", "evil"),
        ("delete", "evil"),
        ("log", "evil"),
        ("rename", "evil", "mine"),
        ("log",),
    ]
    results = _run_all(case, commands)
    assert "evil" not in results[("list",)].stdout
    for args in (("show", "evil"), ("delete", "evil"), ("log", "evil"), ("rename", "evil", "mine")):
        assert results[args].refused and "symbolic link" in results[args].stderr, results[args].stderr
    assert "ref folder is not a plain folder" in results[("fsck",)].stdout
    assert not results[("gc", "--prune", "now")].refused
    assert (case.store / "refs" / "evil").is_symlink()


def test_ref_records_naming_paths_or_invalid_ids_are_refused(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    case.ref_record("evil1", manifest="../../etc/passwd")
    case.ref_record("evil2", manifest="zz")
    case.ref_record("evil3", parent="../" + "a" * 62)
    case.ref_record("evil4", manifest="A" * 64)
    case.ref_record("evil5", merged=["../x"])
    commands = [*BASIC, *[("show", f"evil{i}") for i in range(1, 6)]]
    results = _run_all(case, commands)
    for i in range(1, 6):
        done = results[("show", f"evil{i}")]
        assert done.refused and "invalid object id" in done.stderr, done.stderr
    assert not results[("show", "X", "--full")].refused
    assert results[("fsck",)].stdout.count("invalid object id") == 5


# -- objects ---------------------------------------------------------------------------------------


def test_an_unreferenced_object_linked_outside_is_never_followed(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    link = case.store / "objects" / "ab" / ("cd" * 31)
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(case.sentinel)
    results = _run_all(case, [*BASIC[:4], ("gc", "--prune", "1h")])
    assert not results[("show", "X", "--full")].refused
    assert "unexpected file among objects" in results[("fsck",)].stdout
    # gc never follows the link, reports it, and leaves it (and what it points to) alone.
    gc = _run_all(case, [("gc", "--prune", "now")])[("gc", "--prune", "now")]
    assert f"warning: {link}: not a plain file or folder" in gc.stdout, gc.stdout
    assert link.is_symlink() and case.sentinel.exists()


@pytest.mark.parametrize("kind", ["symlink-to-fifo", "fifo"])
def test_a_referenced_object_that_is_not_a_file_is_refused_without_blocking(
    base: Path, tmp_path: Path, kind: str
) -> None:
    case = Case(base, tmp_path)
    path = loose_path(case.store, case.manifest)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(case.fifo())
    results = _run_all(case, BASIC, subprocess_cli=kind == "symlink-to-fifo")  # one case as a user runs it
    for args in (("show", "X"), ("gc", "--prune", "now")):
        assert results[args].refused, args
        assert "symbolic link" in results[args].stderr or "not a regular file" in results[args].stderr
    assert _damaged_rows(results[("list",)]) == ["X"]
    assert results[("fsck",)].refused


@pytest.mark.parametrize("claim", [2**40, 2**64 - 1, (1 << 30) + 1])
def test_a_loose_object_claiming_a_huge_size_is_refused(base: Path, tmp_path: Path, claim: int) -> None:
    case = Case(base, tmp_path)
    loose_path(case.store, case.entries).write_bytes(
        b"DVOBJ\x01" + struct.pack(">BQ", 1, claim) + b"\x28\xb5\x2f\xfd" * 8
    )
    results = _run_all(case, [*BASIC, ("export", "X")])
    for args in (("show", "X", "--full"), ("export", "X"), ("gc", "--prune", "now")):
        assert results[args].refused and "over the limit" in results[args].stderr, results[args].stderr
    assert not results[("show", "X")].refused  # the manifest alone reads fine
    assert "over the limit" in results[("fsck",)].stdout


# -- store files ----------------------------------------------------------------------------------


def test_a_store_of_a_newer_format_is_refused_by_every_command(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    (case.store / "VERSION").write_text("doteval-store 99\n")
    before = snapshot(case.store)
    commands = [*BASIC, ("export", "X"), ("delete", "X"), ("log",), ("push", str(tmp_path / "copy"))]
    results = _run_all(case, commands)
    for args, done in results.items():
        assert done.refused and "store format 99 is newer" in done.stderr, (args, done.stderr)
    assert snapshot(case.store) == before
    assert not (tmp_path / "copy").exists()


def test_a_pack_index_claiming_a_huge_count_is_refused(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    (idx,) = (case.store / "packs").glob("*.idx")
    data = bytearray(idx.read_bytes())
    data[8:12] = struct.pack(">I", 2**32 - 1)
    idx.write_bytes(bytes(data))
    results = _run_all(case, BASIC)
    for args in (("show", "X", "--full"), ("gc", "--prune", "now")):
        assert results[args].refused and "pack index" in results[args].stderr, results[args].stderr
    assert results[("fsck",)].refused and idx.name in results[("fsck",)].stdout


def test_a_pack_index_linked_to_a_fifo_outside_is_refused_without_blocking(
    base: Path, tmp_path: Path
) -> None:
    case = Case(base, tmp_path)
    (case.store / "packs" / f"pack-{'e' * 64}.idx").symlink_to(case.fifo())
    results = _run_all(case, BASIC)
    assert results[("fsck",)].refused and "symbolic link" in results[("fsck",)].stdout


# -- locks and journals ------------------------------------------------------------------------------


def test_a_lock_file_linked_outside_is_never_truncated(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    lock = case.store / "locks" / "X.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(case.sentinel)
    (case.store / "locks" / "Y.lock").symlink_to(case.outside / "created-by-a-lock")
    commands = [*BASIC, ("delete", "X"), ("show", "Y"), ("rename", "X", "Y")]
    results = _run_all(case, commands)
    assert results[("delete", "X")].refused and "lock file" in results[("delete", "X")].stderr
    assert not (case.outside / "created-by-a-lock").exists()


def test_a_journal_folder_linked_outside_is_never_sealed_or_removed(base: Path, tmp_path: Path) -> None:
    case = Case(base, tmp_path)
    journals = case.outside / "journals"
    journals.mkdir()
    (journals / "victim.journal").write_bytes(b"")  # an empty journal is removed when "recovered"
    (journals / "run.journal").write_bytes(b"DVJOURNAL\x00\x01\n")
    (case.store / "journals").mkdir(exist_ok=True)
    (case.store / "journals" / "Z").symlink_to(journals)
    (case.store / "journals" / "X").mkdir(exist_ok=True)
    (case.store / "journals" / "X" / "linked.journal").symlink_to(journals / "victim.journal")
    results = _run_all(case, [*BASIC, ("show", "Z"), ("log",), ("list", "--deleted")])
    assert "Z" not in results[("list",)].stdout
    assert results[("show", "Z")].refused
    fsck = results[("fsck",)]
    assert (
        "journal folder is not a plain folder" in fsck.stdout and "journal is a symbolic link" in fsck.stdout
    )
    assert (journals / "victim.journal").exists() and (journals / "run.journal").exists()


@pytest.mark.parametrize(
    "plant",
    [
        lambda case: (case.store / "objects" / "zz").mkdir(),
        lambda case: (
            (case.store / "objects" / "ab").mkdir(exist_ok=True)
            or (case.store / "objects" / "ab" / "x").write_text("x")
        ),
        lambda case: (case.store / "packs" / "notes.txt").write_text("x"),
        lambda case: (case.store / "packs" / f"pack-{'f' * 64}.idx").mkdir(),
        lambda case: (case.store / "refs" / "X" / "notes.txt").write_text("x"),
        lambda case: (case.store / "refs" / "Q").write_text("a file, not a folder"),
        lambda case: (case.store / "locks" / "X.lock").unlink() or (case.store / "locks" / "X.lock").mkdir(),
    ],
    ids=["objects-dir", "objects-file", "packs-file", "idx-dir", "refs-junk", "refs-file", "lock-dir"],
)
def test_junk_entries_are_refused_or_ignored(
    base: Path, tmp_path: Path, plant: Callable[[Case], object]
) -> None:
    case = Case(base, tmp_path)
    plant(case)
    _run_all(case, [*BASIC, ("delete", "X")])


# -- sample tables, details and views ---------------------------------------------------------------


def _hostile_samples(case: Case, kind: str) -> str:
    """A manifest whose evaluation names a well-formed (correctly hashed) but hostile view,
    sample table or details object; returns the manifest id."""
    st = Store(case.store)
    (part,) = load_parts(st, case.entries)
    table = st.objects.get(part.table_id)
    details = st.objects.get(part.details_id)
    n = part.length
    table_id, details_id, length, bits = part.table_id, part.details_id, n, b""
    if kind == "view-path":
        table_id = "../" + "a" * 61
    elif kind == "view-bitmap":
        bits = b"\xff" * (n // 8 + 3)
    elif kind == "view-length":
        length = 1 << 40
    elif kind.startswith("table-"):
        bad = {
            "table-occurrence": {"occurrences": [0, "x"]},
            "table-sizes": {"sizes": b"\xff\xff\xff\xff" * n},
            "table-flags": {"flags": b"\x00"},
            "table-flag-9": {"flags": b"\x09" * n},
            "table-scores": {"scores": encode({"s": [True]})},
            "table-items": {"items": 7},
            "table-details-sizes": {"details_sizes": b"\x01\x00\x00\x00" * n},
        }[kind]
        table_id = st.objects.put({**table, **bad})
    elif kind.startswith("details-"):
        rows = {"details-count": details["rows"][:1], "details-rows": ["not a record"] * n}[kind]
        details_id = st.objects.put({**details, "rows": rows})
    view = st.objects.put({"type": "entries", "v": 2, "parts": [[table_id, details_id, length, bits]]})
    manifest = load_manifest(st, case.manifest)
    manifest.evaluations[0].entries = view
    return st.objects.put(manifest.to_value())


@pytest.mark.parametrize(
    "kind",
    [
        "view-path",
        "view-bitmap",
        "view-length",
        "table-occurrence",
        "table-sizes",
        "table-flags",
        "table-flag-9",
        "table-scores",
        "table-items",
        "table-details-sizes",
        "details-count",
        "details-rows",
    ],
)
def test_hostile_sample_tables_and_views_are_refused_in_one_line(
    base: Path, tmp_path: Path, kind: str
) -> None:
    case = Case(base, tmp_path)
    case.ref_record("evil", manifest=_hostile_samples(case, kind))
    commands = [
        *BASIC,
        ("show", "evil"),
        ("show", "evil", "--full"),
        ("export", "evil"),
        ("diff", "X", "evil"),
    ]
    results = _run_all(case, commands)
    assert not results[("show", "evil")].refused  # counts live in the manifest
    read_all = [results[("show", "evil", "--full")], results[("export", "evil")]]
    if kind != "table-scores":  # show --full and export read the scores from the results
        assert all(done.refused for done in read_all), [d.stderr for d in read_all]
    # diff reads the views and tables, not the results
    reads_results = kind.startswith("details-") or kind == "table-details-sizes"
    assert results[("diff", "X", "evil")].refused == (not reads_results)
    assert "error(s)" in results[("fsck",)].stdout and "no errors" not in results[("fsck",)].stdout
    assert not results[("show", "X", "--full")].refused


# -- store files that are links, FIFOs or devices, for every command that reads a store -------------


def _readers(case: Case, tmp_path: Path, *, experiment: str = "X") -> list[tuple[str, ...]]:
    """Every command that reads a store, each at ``experiment`` where it takes one."""
    good = tmp_path / "good"
    if not good.exists():
        copy_store(case.base, good)
    x = experiment
    return [
        ("list",),
        ("show", x),
        ("show", x, "--full"),
        ("log",),
        ("log", x),
        ("diff", x, x),
        ("export", x),
        ("report", x, "-o", str(tmp_path / "report.html")),
        ("fsck",),
        ("gc", "--prune", "now"),
        ("push", str(tmp_path / "pushed")),
        ("pull", str(good)),
    ]


def doteval_run(case: Case, tmp_path: Path, experiment: str = "X") -> Done:
    """``doteval run`` of the base's project into the case's store, as a user runs it."""
    env = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", DOTEVAL_TEST_CALLS=str(tmp_path / "calls"))
    args = ("run", "eval_x.py", "--experiment", experiment, "--store", str(case.store))
    try:
        proc = subprocess.run(
            [PY, "-m", "doteval", *args, *storekit.PYTEST_FLAGS],
            cwd=case.base.parent / "project",
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`doteval run` hung (did it open a FIFO?)")
    return Done(args, proc.returncode, proc.stdout, proc.stderr)


def _plant_special(path: Path, kind: str, case: Case) -> None:
    path.unlink(missing_ok=True)
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-to-fifo":
        path.symlink_to(case.fifo())
    else:
        raise AssertionError(kind)


SPECIAL = ["dev-zero", "fifo", "link-to-fifo"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_a_version_file_that_is_not_a_regular_file_is_refused_by_every_command(
    base: Path, tmp_path: Path, kind: str
) -> None:
    """A VERSION linked to /dev/zero once made every command read without end; a FIFO
    blocked them forever. Every command refuses the store in one line, and writes nothing."""
    case = Case(base, tmp_path)
    _plant_special(case.store / "VERSION", kind, case)
    before = snapshot(case.store)
    results = _run_all(case, _readers(case, tmp_path))
    results[("run",)] = run = doteval_run(case, tmp_path)
    for args, done in results.items():
        assert done.refused, args
        assert "VERSION" in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert snapshot(case.store) == before
    assert not (tmp_path / "pushed").exists()


@pytest.mark.parametrize("kind", SPECIAL)
def test_an_rsync_filter_that_is_not_a_regular_file_is_never_read(
    base: Path, tmp_path: Path, kind: str
) -> None:
    case = Case(base, tmp_path)
    _plant_special(case.store / "rsync-filter", kind, case)
    results = _run_all(case, _readers(case, tmp_path))
    run = doteval_run(case, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for args, done in results.items():
        if args[0] != "push":
            assert not done.refused, (args, done.stderr)
    push = results[("push", str(tmp_path / "pushed"))]
    assert not push.refused or "rsync-filter" in push.stderr, push.stderr


@pytest.mark.parametrize("kind", SPECIAL)
def test_a_journal_that_is_not_a_regular_file_never_blocks_a_command(
    base: Path, tmp_path: Path, kind: str
) -> None:
    """A FIFO as a journal blocked every command that looked for dead runs to seal."""
    case = Case(base, tmp_path)
    folder = case.store / "journals" / "X"
    folder.mkdir(parents=True, exist_ok=True)
    _plant_special(folder / "20261130T000000-dead.journal", kind, case)
    (case.store / "journals" / "J").mkdir()
    _plant_special(case.store / "journals" / "J" / "20261130T000000-dead.journal", kind, case)
    results = _run_all(case, [*_readers(case, tmp_path), ("show", "J")])
    with fifo_watch(case.outside / "fifo") if kind == "link-to-fifo" else contextlib.nullcontext():
        run = doteval_run(case, tmp_path)
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    fsck = results[("fsck",)]
    assert fsck.refused and "2 error(s)" in fsck.stdout, fsck.stdout
    assert results[("show", "J")].refused


# -- absurd values in well-formed records ------------------------------------------------------------

ABSURD = {
    "total-huge": lambda m: m["evaluations"][0].update(total=10**400),
    "finished-huge": lambda m: m.update(finished=1e300),
    "started-nan": lambda m: m.update(started=float("nan")),
    "done-negative": lambda m: m["evaluations"][0].update(done=-5),
    "errors-text": lambda m: m["evaluations"][0].update(errors="7"),
    "status-odd": lambda m: m.update(status="\x1b[31mhacked"),
    "metric-huge": lambda m: m["evaluations"][0]["metrics"].append(
        {"score": "s", "metric": "mean", "value": 10**400}
    ),
    "run-text": lambda m: m["evaluations"][0].update(run={"evaluated": "many"}),
    "line-zero": lambda m: m["evaluations"][0].update(line=0),
    "params-list": lambda m: m["evaluations"][0].update(params=[1, 2]),
}


def _absurd_manifest(case: Case, kind: str) -> str:
    """A well-formed (correctly hashed) manifest, valid in every way but one absurd value."""
    st = Store(case.store)
    value = load_manifest(st, case.manifest).to_value()
    ABSURD[kind](value)
    return st.objects.put(value)


@pytest.mark.parametrize("kind", sorted(ABSURD))
def test_a_manifest_with_absurd_values_is_refused_and_never_hides_the_others(
    base: Path, tmp_path: Path, kind: str
) -> None:
    """`total = 10**400` or `finished = 1e300` once passed fsck, then crashed list, show, log
    and report for the whole store. Now `list` marks that experiment damaged and lists the
    others; the commands that read it refuse in one line; fsck reports it."""
    case = Case(base, tmp_path)
    case.ref_record("evil", manifest=_absurd_manifest(case, kind))
    commands = [*_readers(case, tmp_path, experiment="evil"), ("show", "X"), ("log", "X"), ("export", "X")]
    results = _run_all(case, commands)
    assert _damaged_rows(results[("list",)]) == ["evil"]
    assert "X" in [line.split()[0] for line in results[("list",)].stdout.splitlines() if line.strip()]
    for args in [("show", "evil"), ("show", "evil", "--full"), ("log", "evil"), ("export", "evil"),
                 ("diff", "evil", "evil"), ("report", "evil", "-o", str(tmp_path / "report.html"))]:  # fmt: skip
        assert results[args].refused and "malformed manifest" in results[args].stderr, (
            args,
            results[args].stderr,
        )
    for args in [("show", "X"), ("log", "X"), ("export", "X")]:
        assert not results[args].refused, (args, results[args].stderr)
    assert results[("log",)].refused or "evil" not in results[("log",)].stdout
    fsck = results[("fsck",)]
    assert fsck.refused and "malformed manifest" in fsck.stdout, fsck.stdout
    if kind in ("total-huge", "finished-huge"):  # a run into it is refused too (and the store untouched)
        run = doteval_run(case, tmp_path, "evil")
        assert run.refused and "malformed manifest" in run.stdout + run.stderr, run.stdout + run.stderr
        assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize("kind", ["total-huge", "finished-huge"])
def test_pull_refuses_a_manifest_with_absurd_values_before_publishing_it(
    base: Path, tmp_path: Path, kind: str
) -> None:
    source = Case(base, tmp_path / "source")
    source.ref_record("evil", manifest=_absurd_manifest(source, kind))
    dest = copy_store(base, tmp_path / "dest")
    before = snapshot(dest)
    for method in ((), ("--no-rsync",)):
        done = cli(dest, "pull", str(source.store), *method)
        assert_refused_or_ignored(done)
        assert done.refused and "malformed manifest" in done.stderr, done.stderr
        assert snapshot(dest) == before
    assert not cli(dest, "list").refused


@pytest.mark.parametrize(
    "fields",
    [{"time": 1e300}, {"time": "now"}, {"op": 7}, {"merged": "a" * 64}, {"host": ["h"]}],
    ids=["time-huge", "time-text", "op-int", "merged-text", "host-list"],
)
def test_a_ref_record_with_absurd_values_is_refused_and_never_hides_the_others(
    base: Path, tmp_path: Path, fields: dict[str, object]
) -> None:
    case = Case(base, tmp_path)
    case.ref_record("evil", **fields)
    results = _run_all(case, [*_readers(case, tmp_path, experiment="evil"), ("show", "X")])
    assert _damaged_rows(results[("list",)]) == ["evil"]
    assert not results[("show", "X")].refused
    assert results[("show", "evil")].refused and "malformed ref record" in results[("show", "evil")].stderr
    assert results[("fsck",)].refused and "malformed ref record" in results[("fsck",)].stdout
    run = doteval_run(case, tmp_path, "evil")
    assert run.refused and "malformed ref record" in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr


# -- store folders that are files -----------------------------------------------------------------


@pytest.mark.parametrize("folder", ["objects", "packs", "refs", "journals", "locks", "objects/*"])
def test_a_store_folder_that_is_a_file_is_refused_in_one_line(
    base: Path, tmp_path: Path, folder: str
) -> None:
    """`objects` (or another store folder) as a plain file: `run` crashed with NotADirectoryError.
    ``objects/*``: every object folder the store lacks is a file, so the run meets one when it seals."""
    case = Case(base, tmp_path)
    if folder == "objects/*":
        for n in range(256):
            path = case.store / "objects" / f"{n:02x}"
            if not path.exists():
                path.write_text("not a folder\n")
    else:
        shutil.rmtree(case.store / folder, ignore_errors=True)
        (case.store / folder).write_text("not a folder\n")
    _run_all(case, _readers(case, tmp_path))
    run = doteval_run(case, tmp_path, "fresh")
    text = run.stdout + run.stderr
    assert "Traceback" not in text and "NotADirectoryError" not in text, text
    assert run.returncode != 0 and "not a folder" in text, text


@pytest.mark.parametrize("method", [(), ("--no-rsync",)], ids=["rsync", "copy"])
def test_pull_copies_only_regular_files_and_never_reads_a_fifo_or_a_device(
    base: Path, tmp_path: Path, method: tuple[str, ...]
) -> None:
    """A plain copy once read a FIFO among the source's objects (SpecialFileError) and would
    copy /dev/zero without end. A source holding anything but plain files and folders is
    refused in one line, by rsync and by the copy alike, before a byte is read."""
    source = Case(base, tmp_path / "source")
    folder = source.store / "objects" / "ab"
    folder.mkdir(exist_ok=True)
    for n, kind in enumerate(SPECIAL):
        _plant_special(folder / (f"{n}" * 62), kind, source)
    dest = tmp_path / "dest"
    with fifo_watch(source.outside / "fifo") as opened, fifo_watch(folder / ("1" * 62)) as opened_inside:
        done = cli(dest, "pull", str(source.store), *method)
    assert_refused_or_ignored(done)
    assert done.refused and "not a plain file or folder" in done.stderr, done.stderr
    assert not opened and not opened_inside
    assert not list((dest / "objects").glob("ab/*"))


@pytest.mark.parametrize(
    "item", [b"s1:x", b"t1:s1:x", b"t2:s1:xs1:yZ"], ids=["not-a-tuple", "one-column", "bad"]
)
def test_a_sample_table_item_that_is_not_an_item_is_reported_by_fsck(
    base: Path, tmp_path: Path, item: bytes
) -> None:
    """An item that does not decode to one value per column once made `show` count 128
    samples and `export` die at the one it could not read: fsck names it now."""
    case = Case(base, tmp_path)
    st = Store(case.store)
    (part,) = load_parts(st, case.entries)
    table = st.objects.get(part.table_id)
    sizes = list(struct.unpack(f"<{part.length}I", table["sizes"]))
    first = table["items"][: sizes[0]]
    table_id = st.objects.put(
        {
            **table,
            "items": item + table["items"][len(first) :],
            "sizes": struct.pack(f"<{part.length}I", len(item), *sizes[1:]),
        }
    )
    view = st.objects.put(
        {"type": "entries", "v": 2, "parts": [[table_id, part.details_id, part.length, b""]]}
    )
    manifest = load_manifest(st, case.manifest)
    manifest.evaluations[0].entries = view
    case.ref_record("evil", manifest=st.objects.put(manifest.to_value()))
    results = _run_all(case, [*BASIC, ("show", "evil"), ("export", "evil")])
    fsck = results[("fsck",)]
    assert fsck.refused, fsck.stdout
    assert "not one value per column" in fsck.stdout or "malformed encoded value" in fsck.stdout, fsck.stdout
    assert not results[("show", "evil")].refused
    if item != b"t1:s1:x":  # one value for two columns: exported as the one column it has
        assert results[("export", "evil")].refused


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """rsync's remote shell replaced by one that runs the command here: ``host:path`` works."""
    script = tmp_path / "fake-ssh"
    script.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("RSYNC_RSH", str(script))
    return "fakehost"


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_pull_from_host_path_publishes_only_checked_ref_records(
    base: Path, tmp_path: Path, fake_ssh: str
) -> None:
    source = Case(base, tmp_path / "source")
    dest = copy_store(base, tmp_path / "dest")
    good = cli(dest, "pull", f"{fake_ssh}:{source.store}")
    assert not good.refused and "rsync" in good.stdout, good.stderr
    source.ref_record("evil", manifest=_absurd_manifest(source, "total-huge"))
    source.ref_record("fine", time=2.0)
    done = cli(dest, "pull", f"{fake_ssh}:{source.store}")
    assert_refused_or_ignored(done)
    assert done.refused and "malformed manifest" in done.stderr, done.stderr
    assert not (dest / "refs" / "evil").exists() and not (dest / "refs" / "fine").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp-")]
    (source.store / "refs" / "evil").rename(tmp_path / "evil-moved")
    done = cli(dest, "pull", f"{fake_ssh}:{source.store}")
    assert not done.refused, done.stderr
    assert sorted(line.split()[0] for line in cli(dest, "list").stdout.splitlines()[2:]) == ["X", "fine"]
