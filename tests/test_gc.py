"""``doteval gc``: what it keeps, what it removes, and that it is safe to kill or run beside a run.

Evaluation projects live in tmp folders and run as real ``python -m pytest``
subprocesses; the CLI runs as ``python -m doteval``. Every model call appends
a line to a calls file, so "evaluated once" is counted. Stores that several
tests start from are built once per module and copied (a copy keeps mtimes
but gets new ctimes, like an rsync).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import (
    PY,
    PYTEST_FLAGS,
    Project,
    _env,
    cli,
    cli_json,
    copy_store,
    loose_path,
    read_export,
    run_cli,
    run_cli_json,
)

from doteval._objects import Store
from doteval._objects.encoding import encode
from doteval._objects.packs import CODEC_ZSTD_DICT, NO_DICTIONARY, PackIndex
from doteval._objects.refs import RefStore
from doteval._operations.fsck import fsck
from doteval._operations.gc import allocated_bytes, collect_garbage
from doteval._repository.history import resolve
from doteval._repository.sample_tables import load_parts, object_ids
from doteval.session import SessionStatus, get_session


def cli_export(store: Path, spec: str) -> str:
    return cli(store, "export", spec, "-f", "jsonl").stdout


def listing(root: Path, *, skip: tuple[str, ...] = ("locks",)) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` (but ``skip`` folders): size, mtime and content."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts and rel.parts[0] in skip:
            continue
        for d in dirs:
            out[str(rel / d) + "/"] = (0, 0, b"")
        for f in files:
            p = Path(dirpath) / f
            st = p.lstat()
            out[str(rel / f)] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


def apparent_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())


def sample_objects(store: Path, *specs: str) -> set[str]:
    """The sample tables and results objects of the views of ``specs``."""
    st = Store(store)
    out: set[str] = set()
    for spec in specs:
        for ev in resolve(st, spec).manifest.evaluations:
            out.update(object_ids(load_parts(st, ev.entries)))
    return out


def add_junk(store: Path, tag: str, count: int = 5) -> tuple[list[str], list[str], Path]:
    """Unreachable objects: ``count`` loose ones and a pack of ``count``; returns their ids and the idx."""
    st = Store(store)
    loose = [st.objects.put({"type": "junk", "tag": tag, "i": i, "pad": "x" * 300}) for i in range(count)]
    raws = [encode({"type": "junk-packed", "tag": tag, "i": i, "pad": "y" * 300}) for i in range(count)]
    before = set((store / "packs").glob("*.idx"))
    packed = st.objects.write_pack(raws)
    (idx,) = set((store / "packs").glob("*.idx")) - before
    return loose, packed, idx


def has_all(store: Path, ids: list[str]) -> bool:
    st = Store(store)
    return all(st.objects.has(i) for i in ids)


def has_none(store: Path, ids: list[str]) -> bool:
    st = Store(store)
    return not any(st.objects.has(i) for i in ids)


# -- stores built once per module ---------------------------------------------------

N = 40


# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = [pytest.mark.usefixtures("wide_output"), pytest.mark.xdist_group("gc")]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """X (two lines: the second from --rerun-changed after a code change) and Y."""
    root = tmp_path_factory.mktemp("gc-base")
    store = root / "store"
    project = Project(root / "project", N, tag="v1")
    project.run("X", store)
    project.run("Y", store)
    project.write_eval(N, tag="v2")
    project.run("X", store, "--rerun-changed")
    assert len(project.calls()) == 3 * N
    exports = {spec: cli_export(store, spec) for spec in ("X", "X~1", "Y")}
    for text in exports.values():
        assert len(text.splitlines()) == N
    assert exports["X"] != exports["X~1"]
    return {"store": store, "exports": exports}


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """600 samples with chat-like responses (enough to train a zstd dictionary)."""
    root = tmp_path_factory.mktemp("gc-chat")
    store = root / "store"
    project = Project(root / "project", 600, reply="chat")
    project.run("C", store)
    return {"store": store, "project": project, "export": read_export(store, "C")}


# -- what gc keeps ------------------------------------------------------------------


def test_gc_keeps_everything_reachable(base: dict, tmp_path: Path) -> None:
    store = copy_store(base["store"], tmp_path / "store")
    # Twice: the second gc repacks the same objects into an identical pack.
    for gc_cli in (run_cli, cli):
        out = gc_cli(store, "gc", "--prune", "now").stdout
        assert "Removed 0 loose and 0 packed objects" in out, out
        check = gc_cli(store, "fsck")
        assert "no errors" in check.stdout, check.stdout
        for spec, text in base["exports"].items():
            assert cli_export(store, spec) == text, spec
    for spec in ("X", "X~1", "Y"):
        shown = cli_json(store, "show", spec, "--full")
        assert (shown["done"], shown["total"]) == (N, N), shown
        assert len(shown["samples"]) == len({s["key"] for s in shown["samples"]}) == N
    log = cli_json(store, "log", "X")["entries"]
    assert len(log) == 2
    # Everything loose went into packs.
    assert not [p for p in (store / "objects").rglob("*") if p.is_file()]


def test_gc_removes_an_expired_deleted_experiment_and_keeps_a_recent_one(base: dict, tmp_path: Path) -> None:
    store = copy_store(base["store"], tmp_path / "store")
    y_id = cli_json(store, "show", "Y")["id"]
    y_only = sorted(sample_objects(store, "Y") - sample_objects(store, "X", "X~1"))
    assert len(y_only) >= 1  # its sample table (results equal to X's are one object)
    run_cli(store, "delete", "Y")

    # Default --expire-deleted (30 days): the deletion is recent, Y stays recoverable.
    stats = cli_json(store, "gc", "--prune", "now")
    assert stats["expired_experiments"] == []
    listed = {e["name"]: e for e in cli_json(store, "list", "--deleted")["experiments"]}
    assert listed["Y"]["deleted"] is True and listed["Y"]["done"] == N
    assert cli_export(store, f"Y@{y_id[:12]}") == base["exports"]["Y"]
    assert has_all(store, [y_id, *y_only])
    size_before = allocated_bytes(store)
    apparent_before = apparent_size(store)

    stats = run_cli_json(store, "gc", "--prune", "now", "--expire-deleted", "now")
    assert stats["expired_experiments"] == ["Y"]
    assert stats["removed_packed"] + stats["removed_loose"] >= len(y_only) + 1
    assert "Y" not in {e["name"] for e in cli_json(store, "list", "--deleted")["experiments"]}
    assert not (store / "refs" / "Y").exists()
    assert has_none(store, [y_id, *y_only])
    assert allocated_bytes(store) < size_before
    assert apparent_size(store) < apparent_before
    assert stats["bytes_after"] < stats["bytes_before"]
    # The other experiment is intact.
    assert "no errors" in cli(store, "fsck").stdout
    assert cli_export(store, "X") == base["exports"]["X"]
    assert cli_export(store, "X~1") == base["exports"]["X~1"]
    cli(store, "show", "Y", ok=False)


def test_gc_keeps_unreachable_objects_younger_than_prune(base: dict, tmp_path: Path) -> None:
    store = copy_store(base["store"], tmp_path / "store")
    fresh_loose, fresh_packed, _ = add_junk(store, "fresh")
    old_loose, old_packed, old_idx = add_junk(store, "old-mtime")
    # mtime a month ago (as rsync -t would keep it), ctime now: still young.
    month_ago = time.time() - 30 * 86400
    for oid in old_loose:
        os.utime(loose_path(store, oid), (month_ago, month_ago))
    for path in (old_idx, old_idx.with_suffix(".pack")):
        os.utime(path, (month_ago, month_ago))
    junk = fresh_loose + fresh_packed + old_loose + old_packed

    stats = run_cli_json(store, "gc", "--prune", "1h")
    assert (stats["removed_loose"], stats["removed_packed"]) == (0, 0), stats
    assert stats["kept_young"] == len(junk), stats
    assert has_all(store, junk)

    stats = cli_json(store, "gc")  # default --prune 2w
    assert (stats["removed_loose"], stats["removed_packed"]) == (0, 0), stats
    assert has_all(store, junk)

    stats = cli_json(store, "gc", "--prune", "now")
    assert stats["removed_loose"] + stats["removed_packed"] == len(junk), stats
    assert has_none(store, junk)
    assert "no errors" in cli(store, "fsck").stdout
    for spec, text in base["exports"].items():
        assert read_export(store, spec) == text


def test_gc_dry_run_changes_nothing_and_says_what_it_would_remove(base: dict, tmp_path: Path) -> None:
    store = copy_store(base["store"], tmp_path / "store")
    cli(store, "delete", "Y")
    loose, packed, _ = add_junk(store, "dry")
    before = listing(store)

    out = run_cli(store, "gc", "--dry-run", "--prune", "now", "--expire-deleted", "now").stdout
    assert "Would remove" in out, out
    predicted = cli_json(store, "gc", "--dry-run", "--prune", "now", "--expire-deleted", "now")
    assert predicted["dry_run"] is True
    assert predicted["expired_experiments"] == ["Y"]
    assert predicted["removed_loose"] >= len(loose) and predicted["removed_packed"] >= len(packed)
    assert f"{predicted['removed_loose']} loose and {predicted['removed_packed']} packed" in out
    assert listing(store) == before  # not one file added, removed or touched
    assert has_all(store, loose + packed)

    done = cli_json(store, "gc", "--prune", "now", "--expire-deleted", "now")
    for key in ("removed_loose", "removed_packed", "expired_experiments", "reachable"):
        assert done[key] == predicted[key], key
    assert has_none(store, loose + packed)


# -- --aggressive: a trained dictionary ------------------------------------------------


def test_gc_aggressive_trains_a_dictionary_that_later_runs_use(chat: dict, tmp_path: Path) -> None:
    store = copy_store(chat["store"], tmp_path / "store")
    size_before = allocated_bytes(store)

    stats = run_cli_json(store, "gc", "--prune", "now", "--aggressive")
    assert stats["dictionary"], stats
    dictionary = bytes.fromhex(stats["dictionary"])
    (idx,) = (store / "packs").glob("*.idx")
    pack = PackIndex(idx)
    assert pack.dictionary() == dictionary != NO_DICTIONARY
    assert any(pack.entry(i).codec == CODEC_ZSTD_DICT for i in range(pack.count))
    pack.close()
    assert Store(store).objects.get(dictionary.hex())["type"] == "zstd-dictionary"
    assert "no errors" in cli(store, "fsck").stdout
    assert cli_export(store, "C") == chat["export"]
    assert allocated_bytes(store) < size_before

    # A later run seals its results with that dictionary.
    project = Project(tmp_path / "project", 600, reply="chat")
    project.run("D", store, "--samples", "50")
    assert len(project.calls()) == 50
    sealed = [PackIndex(p) for p in (store / "packs").glob("*.idx") if p != idx]
    assert len(sealed) == 1
    assert sealed[0].dictionary() == dictionary
    assert any(sealed[0].entry(i).codec == CODEC_ZSTD_DICT for i in range(sealed[0].count))
    sealed[0].close()
    assert "no errors" in cli(store, "fsck").stdout
    assert cli_export(store, "C") == chat["export"]
    assert len(cli_export(store, "D").splitlines()) == 50

    # A plain gc keeps the dictionary (the packs need it) and everything reads.
    d_export = read_export(store, "D")
    cli(store, "gc", "--prune", "now")
    assert Store(store).objects.has(dictionary.hex())
    assert fsck(Store(store)).ok
    assert read_export(store, "C") == chat["export"]
    assert read_export(store, "D") == d_export


# -- gc killed at any instant ------------------------------------------------------------


def _kill_trials(chat: dict, tmp_path: Path, trials: int, seed: int) -> None:
    store = copy_store(chat["store"], tmp_path / "store")
    expected = chat["export"]
    command = [PY, "-m", "doteval", "gc", "--prune", "now", "--aggressive", "--store", str(store)]
    # One uncut gc, timed only to spread the kills over its length.
    started = time.monotonic()
    subprocess.run(command, env=_env(), check=True, capture_output=True, timeout=300)
    length = time.monotonic() - started
    rng = random.Random(seed)
    for trial in range(trials):
        proc = subprocess.Popen(
            command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.2, 1.0) * length)
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        report = fsck(Store(store))
        assert report.ok, (trial, [p.to_json() for p in report.errors])
        assert read_export(store, "C") == expected, trial
    final = run_cli(store, "gc", "--prune", "now", "--aggressive")
    assert "Repacked" in final.stdout
    check = run_cli(store, "fsck")
    assert "no errors" in check.stdout, check.stdout
    assert cli_export(store, "C") == expected
    assert len(list((store / "packs").glob("*.idx"))) == 1


def test_gc_killed_at_random_points_keeps_the_store_valid(chat: dict, tmp_path: Path) -> None:
    _kill_trials(chat, tmp_path, trials=3, seed=20240601)


@pytest.mark.slow
def test_gc_killed_at_random_points_many_trials(chat: dict, tmp_path: Path) -> None:
    _kill_trials(chat, tmp_path, trials=20, seed=7)


# -- gc beside a running experiment -----------------------------------------------------


def _gc_beside_a_run(base: dict, tmp_path: Path, n: int) -> None:
    store = copy_store(base["store"], tmp_path / "store")
    project = Project(tmp_path / "project", n, tag="beside")
    proc = project.popen("R", store, sleep=0.005)
    gcs = 0
    while proc.poll() is None:
        cli(store, "gc", "--prune", "now")
        gcs += 1
        time.sleep(0.02)
    out = proc.communicate()[0]
    assert proc.returncode == 0, out
    assert gcs >= 1
    cli(store, "gc", "--prune", "now")

    check = run_cli(store, "fsck")
    assert "no errors" in check.stdout, check.stdout
    calls = project.calls()
    assert len(calls) == len(set(calls)) == n
    session = get_session("R", store)
    assert session is not None
    assert (session.status, session.completed_count, session.total_count) == (SessionStatus.COMPLETED, n, n)
    rows = [json.loads(line) for line in cli_export(store, "R").splitlines()]
    assert len(rows) == len({r["sample_key"] for r in rows}) == n
    for spec, text in base["exports"].items():
        assert read_export(store, spec) == text, spec


def test_gc_beside_a_running_experiment(base: dict, tmp_path: Path) -> None:
    _gc_beside_a_run(base, tmp_path, 300)


@pytest.mark.slow
def test_gc_beside_a_long_running_experiment(base: dict, tmp_path: Path) -> None:
    _gc_beside_a_run(base, tmp_path, 2000)


def test_gc_prune_now_while_a_run_is_being_sealed_keeps_what_it_wrote(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A gc between a seal's results pack (and manifest) and its ref record: the window where
    nothing names the new objects yet. The run's journal still exists then, and protects them."""
    store = tmp_path / "sealing-store"
    Project(pytester.path, 20, tag="sealing")
    monkeypatch.setenv("DOTEVAL_TEST_CALLS", str(tmp_path / "calls.txt"))
    original = RefStore.append
    stats = []

    def append_after_a_gc(self: RefStore, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        stats.append(collect_garbage(Store(store), prune=0.0))  # `doteval gc --prune now` elsewhere
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RefStore, "append", append_after_a_gc)
    result = pytester.runpytest("eval_x.py", "--experiment", "S", "--store", str(store), *PYTEST_FLAGS[1:])
    result.assert_outcomes(passed=1)
    assert len(stats) == 1
    assert (stats[0].removed_loose, stats[0].removed_packed) == (0, 0), stats[0]
    report = fsck(Store(store))
    assert report.ok, [p.to_json() for p in report.problems]
    assert len(read_export(store, "S").splitlines()) == 20


def test_gc_beside_a_writer_that_publishes_a_temp_file_after_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run publishes its objects by renaming temp files; one listed by gc can be gone by the
    time gc looks at its age. That is no error (a gc loop beside two runs met it)."""
    from doteval._operations import gc as gc_module

    store = Store(tmp_path / "store")
    store.create()
    store.objects.put({"type": "junk"})
    packs = store.objects.packs_dir
    packs.mkdir(parents=True, exist_ok=True)
    real_iterdir = Path.iterdir

    def listing_with_a_vanished_temp(self: Path) -> Iterator[Path]:
        yield from real_iterdir(self)
        if self == packs:
            yield packs / ".tmp-renamed-since"  # listed, then published under its own name

    monkeypatch.setattr(Path, "iterdir", listing_with_a_vanished_temp)
    stats = gc_module.collect_garbage(store, prune=0.0)
    assert stats.removed_temp == 0 and stats.removed_loose == 1  # the gc ran to its end
