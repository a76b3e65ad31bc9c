"""Journals, ref records, experiment locks, and sealing a dead run's journal."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from storekit import JOURNAL_HEADER

from doteval._objects import Store
from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import hash_bytes
from doteval._objects.journal import JOURNAL_MAGIC, JournalWriter, read_journal, result_frame
from doteval._objects.locks import ExperimentLock, live_holder
from doteval._operations.fsck import fsck
from doteval._repository.manifest import Manifest
from doteval._repository.repository import Repository
from doteval._repository.run_journal import Head, RunRecorder, read_head
from doteval._repository.sample_tables import FLAG_ERROR, FLAG_OK, load_view, sample_key
from doteval.errors import CorruptStoreError, LockedError, StoreError

RECORDS: list[Any] = [
    ("start", {"experiment": "exp", "n": 1}),
    ("eval", 0, {"node_id": "t::x"}),
    ("r", 0, b"\x01" * 32, 0, b"result bytes"),
    ("r", 0, b"\x02" * 32, 1, b"x" * 300),
]


def write_journal(path: Path, records: list[Any] = RECORDS) -> list[int]:
    """Write ``records``; return the offset where each record starts."""
    writer = JournalWriter(path, fsync_interval=3600)
    starts = []
    for rec in records:
        starts.append(path.stat().st_size)
        writer.append(rec)
    writer.close()
    return starts


def frame(body: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">II", len(body), zlib.crc32(body) if crc is None else crc) + body


# -- journal -----------------------------------------------------------------


def test_journal_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "j" / "run.journal"
    starts = write_journal(path)
    assert path.read_bytes().startswith(JOURNAL_MAGIC)
    assert starts[0] == len(JOURNAL_MAGIC)
    assert read_journal(path) == (RECORDS, True)


def test_journal_is_exclusive_and_closed_writer_refuses(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    writer = JournalWriter(path, fsync_interval=3600)
    with pytest.raises(FileExistsError):
        JournalWriter(path)
    writer.append(("a",))
    writer.sync()
    writer.close()
    writer.close()  # twice is harmless
    with pytest.raises(ValueError):
        writer.append(("b",))
    assert read_journal(path) == ([("a",)], True)


def test_torn_tail_keeps_the_valid_prefix(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    starts = write_journal(path)
    data = path.read_bytes()
    last = starts[-1]
    torn = tmp_path / "torn.journal"
    torn.write_bytes(data[:last])
    assert read_journal(torn) == (RECORDS[:-1], True)
    for cut in range(last + 1, len(data)):
        torn.write_bytes(data[:cut])
        assert read_journal(torn) == (RECORDS[:-1], False), cut


@pytest.mark.parametrize("which", [1, 2, 3])
def test_flipped_byte_stops_reading_at_that_record(tmp_path: Path, which: int) -> None:
    path = tmp_path / "run.journal"
    starts = write_journal(path)
    data = path.read_bytes()
    end = starts[which + 1] if which + 1 < len(starts) else len(data)
    damaged_path = tmp_path / "damaged.journal"
    for at in range(starts[which], end):  # frame header and body
        damaged = bytearray(data)
        damaged[at] ^= 0x20
        damaged_path.write_bytes(bytes(damaged))
        records, valid = read_journal(damaged_path)
        assert not valid
        assert records == RECORDS[:which], at


def test_crc_valid_but_undecodable_record_ends_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    path.write_bytes(JOURNAL_MAGIC + frame(encode(("ok",))) + frame(b"l2:N") + frame(encode(("after",))))
    assert read_journal(path) == ([("ok",)], False)


def test_huge_length_claim_ends_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    path.write_bytes(JOURNAL_MAGIC + frame(encode(1)) + struct.pack(">II", 2**32 - 1, 0) + b"x")
    assert read_journal(path) == ([1], False)


def test_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "x.journal"
    path.write_bytes(b"DVOBJ\x01 something else entirely")
    with pytest.raises(CorruptStoreError, match="not a journal"):
        read_journal(path)


def test_empty_and_header_only_journals(tmp_path: Path) -> None:
    path = tmp_path / "x.journal"
    path.write_bytes(b"")
    assert read_journal(path) == ([], False)
    for cut in range(1, len(JOURNAL_MAGIC)):
        path.write_bytes(JOURNAL_MAGIC[:cut])
        assert read_journal(path) == ([], False)
    path.write_bytes(JOURNAL_MAGIC)
    assert read_journal(path) == ([], True)


# -- refs --------------------------------------------------------------------

M1, M2, M3 = (hash_bytes(encode(f"manifest {i}")) for i in range(3))


def new_store(root: Path) -> Store:
    store = Store(root)
    store.create()
    return store


def test_ref_chain_and_history(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    assert store.refs.read("exp") is None
    r1 = store.refs.append("exp", M1, expected=None, op="run")
    r2 = store.refs.append("exp", M2, expected=r1.id, op="save", note="kept")
    r3 = store.refs.append("exp", M2, expected=r2.id, op="delete")
    state = store.refs.read("exp")
    assert state is not None
    assert not state.diverged
    assert state.head == r3
    assert state.head.deleted and not r1.deleted
    assert [r.id for r in state.history()] == [r3.id, r2.id, r1.id]
    assert [r.id for r in state.history(state.records[r2.id])] == [r2.id, r1.id]
    assert state.records[r2.id] == r2
    assert (r1.parent, r2.parent, r3.parent) == (None, r1.id, r2.id)
    assert (r2.manifest, r2.op, r2.note, r2.host) == (M2, "save", "kept", socket.gethostname())
    assert store.refs.names() == ["exp"]
    assert sorted(p.name for p in (store.root / "refs" / "exp").iterdir()) == sorted([r1.id, r2.id, r3.id])


def test_ref_append_is_compare_and_swap(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    with pytest.raises(StoreError, match="moved"):
        store.refs.append("exp", M1, expected=M2, op="run")
    r1 = store.refs.append("exp", M1, expected=None, op="run")
    with pytest.raises(StoreError, match="moved") as info:
        store.refs.append("exp", M2, expected=None, op="run")
    assert type(info.value) is StoreError
    r2 = store.refs.append("exp", M2, expected=r1.id, op="run")
    with pytest.raises(StoreError, match="moved"):
        store.refs.append("exp", M3, expected=r1.id, op="run")  # stale head
    state = store.refs.read("exp")
    assert state is not None and state.head.id == r2.id and len(state.records) == 2


def test_two_stores_merged_by_copy_diverge(tmp_path: Path) -> None:
    a = new_store(tmp_path / "a")
    r1 = a.refs.append("exp", M1, expected=None, op="run")
    shutil.copytree(a.root / "refs", tmp_path / "b" / "refs")
    b = Store(tmp_path / "b")
    on_a = a.refs.append("exp", M2, expected=r1.id, op="run")
    on_b = b.refs.append("exp", M3, expected=r1.id, op="run")
    assert on_a.id != on_b.id
    for f in (b.root / "refs" / "exp").iterdir():  # rsync b into a
        target = a.root / "refs" / "exp" / f.name
        if not target.exists():
            shutil.copy2(f, target)
    state = a.refs.read("exp")
    assert state is not None
    assert state.diverged
    assert {h.id for h in state.heads} == {on_a.id, on_b.id}
    newest = max((on_a, on_b), key=lambda r: (r.time, r.id))
    assert state.head.id == newest.id
    assert state.history()[-1].id == r1.id
    # both lines keep moving only through an explicit choice
    with pytest.raises(StoreError):
        a.refs.append("exp", M1, expected=(set((on_a.id, on_b.id)) - {newest.id}).pop(), op="run")


def _write_record(store: Store, name: str, **fields: Any) -> str:
    record = {"type": "ref", "v": 1, "experiment": name, "manifest": M1, "parent": None,
              "time": 0.0, "op": "run", "host": "h", "note": ""}  # fmt: skip
    record.update(fields)
    raw = encode(record)
    rid = hash_bytes(raw)
    directory = store.root / "refs" / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / rid).write_bytes(b"".join(store.objects.file_chunks(raw)))
    return rid


def test_head_of_a_divergence_is_the_newest_record(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    root = _write_record(store, "exp", time=1.0)
    newer = _write_record(store, "exp", parent=root, time=300.0, manifest=M2)
    older = _write_record(store, "exp", parent=root, time=200.0, manifest=M3)
    state = store.refs.read("exp")
    assert state is not None and state.diverged
    assert [h.id for h in state.heads] == [newer, older]
    assert state.head.manifest == M2
    assert [r.id for r in state.history()] == [newer, root]


def test_junk_in_a_ref_directory_is_corruption(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    store.refs.append("exp", M1, expected=None, op="run")
    directory = store.root / "refs" / "exp"
    (directory / ".tmp-123-abc").write_bytes(b"partial")  # in-flight writes are skipped
    assert store.refs.read("exp") is not None
    junk = directory / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(CorruptStoreError, match="unexpected file"):
        store.refs.read("exp")
    junk.unlink()
    link = directory / hash_bytes(b"link")
    link.symlink_to(next(p for p in directory.iterdir() if not p.name.startswith(".")))
    with pytest.raises(CorruptStoreError, match="unexpected file"):
        store.refs.read("exp")


def test_ref_records_are_verified_against_their_names(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    r1 = store.refs.append("exp", M1, expected=None, op="run")
    directory = store.root / "refs" / "exp"
    (directory / r1.id).rename(directory / M3)
    with pytest.raises(CorruptStoreError, match="does not match its name"):
        store.refs.read("exp")


@pytest.mark.parametrize(
    "fields",
    [{"type": "manifest"}, {"manifest": "../../etc/passwd"}, {"parent": "zz"}, {"time": "soon"}],
    ids=["not-a-ref", "bad-manifest-id", "bad-parent-id", "bad-time"],
)
def test_malformed_ref_records(tmp_path: Path, fields: dict[str, Any]) -> None:
    store = new_store(tmp_path / "s")
    _write_record(store, "exp", **fields)
    with pytest.raises(CorruptStoreError):
        store.refs.read("exp")


def test_ref_record_missing_a_field(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    raw = encode({"type": "ref", "v": 1})
    directory = store.root / "refs" / "exp"
    directory.mkdir(parents=True)
    (directory / hash_bytes(raw)).write_bytes(b"".join(store.objects.file_chunks(raw)))
    with pytest.raises(CorruptStoreError, match="malformed ref record"):
        store.refs.read("exp")


def test_names_skip_what_is_not_an_experiment(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    store.refs.append("b-exp", M1, expected=None, op="run")
    store.refs.append("a_exp", M1, expected=None, op="run")
    (store.root / "refs" / ".hidden").mkdir()
    (store.root / "refs" / "file").write_text("x")
    assert store.refs.names() == ["a_exp", "b-exp"]


# -- locks -------------------------------------------------------------------

CHILD = """
import sys
from pathlib import Path
from doteval._objects.locks import ExperimentLock
ExperimentLock(Path(sys.argv[1]), "exp").acquire()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until killed (or until the test's end of stdin)
"""


def test_lock_held_by_another_process_and_released_by_kill(tmp_path: Path) -> None:
    root = tmp_path / "s"
    new_store(root)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"locked\n"
        lock = ExperimentLock(root, "exp")
        with pytest.raises(LockedError) as info:
            lock.acquire()
        assert (info.value.pid, info.value.host) == (child.pid, socket.gethostname())
        assert f"pid {child.pid}" in str(info.value)
        assert socket.gethostname() in str(info.value)
        assert not lock.held
        holder = live_holder(root, "exp")
        assert holder is not None and holder["pid"] == child.pid
        assert Store(root).live_holder("exp") == holder

        child.send_signal(signal.SIGKILL)
        child.wait()
        assert live_holder(root, "exp") is None  # the kernel dropped the flock
        lock.acquire()
        assert lock.held
        assert live_holder(root, "exp")["pid"] == os.getpid()  # type: ignore[index]
        lock.release()
        assert not lock.held
        assert live_holder(root, "exp") is None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdin:
            child.stdin.close()
        if child.stdout:
            child.stdout.close()


def test_lock_in_process(tmp_path: Path) -> None:
    root = tmp_path / "s"
    assert live_holder(root, "exp") is None  # no lock file yet
    with ExperimentLock(root, "exp") as held:
        assert held.held
        with pytest.raises(LockedError) as info:
            ExperimentLock(root, "exp").acquire()
        assert info.value.pid == os.getpid()
    assert live_holder(root, "exp") is None
    ExperimentLock(root, "exp").acquire()  # free again (and dropped when collected)


# -- seal / recover ----------------------------------------------------------


def recover(store: Store, name: str) -> list[Manifest]:
    """What a writer's transaction does first: seal the journals of dead runs of ``name``."""
    with Repository(store).transaction(name, purpose="recover") as tx:
        return tx.recovered


HEADER = JOURNAL_HEADER
ITEMS = [encode((f"p{i}", "e")) for i in range(4)]
KEYS = [sample_key("f" * 64, "p" * 64, item, 0) for item in ITEMS]


def result(i: int, ok: bool = True) -> bytes:
    return encode(
        {
            "type": "result",
            "v": 1,
            "scores": [{"name": "score", "value": i % 2 == 0, "metrics": ["accuracy"]}],
            "prompt": f"p{i}",
            "response": f"r{i}",
            "error": None if ok else {"type": "RuntimeError", "message": "boom", "traceback": ""},
            "metadata": {},
        }
    )


def crashed_run(store: Store, outcomes: list[bool]) -> Path:
    """A run that recorded ``outcomes`` for the first samples, then died."""
    recorder = RunRecorder(store, "exp", Head(None, None, None), command=["pytest", "x"])
    recorder.start()
    recorder.begin_evaluation(0, HEADER)
    recorder.record_view(0, {"base": None, "kept": None, "total": 4, "reused": 0, "added": 4, "removed": 0})
    for i, ok in enumerate(outcomes):
        recorder.record_result(0, ok, ITEMS[i], 0, result(i, ok))
    assert recorder.journal is not None
    recorder.journal.close()  # no "end" record, no seal: the process died here
    (path,) = store.journals("exp")
    return path


def test_recover_seals_a_dead_run(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    crashed_run(store, [True, True, False])
    assert store.experiment_names() == ["exp"]
    (manifest,) = recover(store, "exp")
    assert store.journals("exp") == []
    assert manifest.status == "interrupted"
    assert manifest.command == ["pytest", "x"]
    assert manifest.pid == os.getpid()
    (ev,) = manifest.evaluations
    assert ev.node_id == HEADER["node_id"]
    assert ev.params == {"model": "m"}
    assert (ev.total, ev.done, ev.errors, ev.missing) == (4, 2, 1, 1)
    assert (ev.run["evaluated"], ev.run["reused"], ev.run["errors"]) == (3, 0, 1)
    assert ev.metrics == [{"score": "score", "metric": "accuracy", "value": 0.5, "n": 2}]

    head = read_head(store, "exp")
    assert head.manifest == manifest
    assert head.state is not None and head.state.head.op == "run"
    view = load_view(store, ev)
    assert view.keys == KEYS[:3]
    for i in range(3):
        assert view.flags[i] == (FLAG_OK if i < 2 else FLAG_ERROR)
        assert view.items[i] == ITEMS[i]
        assert view.result(i) == {**decode(result(i, i < 2)), "item": (f"p{i}", "e")}

    assert recover(store, "exp") == []  # nothing left to seal


def test_recover_keeps_the_valid_prefix_of_a_torn_journal(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    path = crashed_run(store, [True, True, True])
    data = path.read_bytes()
    last_result_len = 8 + len(result_frame(0, FLAG_OK, -1, 0, ITEMS[2], result(2)))
    path.write_bytes(data[: len(data) - last_result_len // 2])
    (manifest,) = recover(store, "exp")
    (ev,) = manifest.evaluations
    assert manifest.status == "interrupted"
    assert (ev.total, ev.done, ev.errors) == (4, 2, 0)
    assert load_view(store, ev).keys == KEYS[:2]
    assert not path.exists()


def test_recover_discards_a_journal_torn_inside_its_header(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    path = crashed_run(store, [])
    path.write_bytes(path.read_bytes()[: len(JOURNAL_MAGIC) - 3])
    assert recover(store, "exp") == []
    assert not path.exists()
    assert store.refs.read("exp") is None


def test_a_finished_run_is_sealed_completed_and_continues_the_chain(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    crashed_run(store, [True, True])
    with Repository(store).transaction("exp", purpose="run") as tx:  # as ExperimentRun does
        (first,) = tx.recovered
        head = tx.head
        recorder = RunRecorder(store, "exp", head)
        recorder.start()
        recorder.begin_evaluation(0, HEADER)
        base = first.evaluations[0].entries
        recorder.record_view(
            0, {"base": base, "kept": b"\x03", "total": 4, "reused": 2, "added": 2, "removed": 0}
        )
        for i in (2, 3):
            recorder.record_result(0, True, ITEMS[i], 0, result(i))
        recorder.end_evaluation(0, "completed")
        manifest = tx.seal_run(recorder, "completed")
    assert manifest is not None
    assert manifest.status == "completed"
    assert manifest.parent == head.manifest_id
    (ev,) = manifest.evaluations
    assert (ev.total, ev.done, ev.errors) == (4, 4, 0)
    assert (ev.run["evaluated"], ev.run["reused"], ev.run["errors"]) == (2, 2, 0)
    state = store.refs.read("exp")
    assert state is not None and len(state.history()) == 2
    assert store.journals("exp") == []
    assert first.status == "interrupted"


_VIEW = {"base": None, "kept": None, "total": 4, "reused": 0, "added": 4, "removed": 0}


@pytest.mark.parametrize(
    "view, result, done",
    [
        ({**_VIEW, "kept": b"\x01\x02"}, None, 1),  # a bitmap of the wrong size: the whole view is kept
        ({**_VIEW, "total": "4"}, None, 1),
        ({**_VIEW, "base": 7}, None, 1),
        ({**_VIEW, "total": 10**400}, None, 1),
        (_VIEW, encode([1, 2]), 0),
        (_VIEW, encode({"scores": 3}), 0),
        (_VIEW, encode({"scores": [{"name": "s", "value": 1}], "error": "boom"}), 0),
        (_VIEW, encode({"scores": [], "duration": 1e300}), 0),
    ],
    ids=[
        "short-bitmap",
        "total-text",
        "base-int",
        "total-huge",
        "result-list",
        "scores-int",
        "error-text",
        "duration",
    ],
)
def test_a_journal_record_that_makes_no_sense_is_skipped_alone(
    tmp_path: Path, view: dict[str, Any], result: bytes | None, done: int
) -> None:
    """A journal is read back after a crash: a record that passes its checksum but makes no
    sense is skipped (its sample is evaluated again by the next run); the rest is sealed."""
    store = new_store(tmp_path / "s")
    recorder = RunRecorder(store, "exp", Head(None, None, None))
    recorder.start()
    recorder.begin_evaluation(0, HEADER)
    recorder.record_view(0, view)
    recorder.record_result(0, True, ITEMS[0], 0, result if result is not None else globals()["result"](0))
    recorder.record_result(0, True, ITEMS[1], 0, globals()["result"](1))
    assert recorder.journal is not None
    recorder.journal.close()
    (manifest,) = recover(store, "exp")
    assert manifest.evaluations[0].done == done + 1 and not store.journals("exp")
    assert manifest.evaluations[0].total <= 4  # a view record of 10**400 samples is skipped


def _dead_run(store: Store, name: str = "exp", header: dict[str, Any] | None = None) -> JournalWriter:
    """The journal of a run of ``name`` that died; the caller appends records and closes it."""
    path = store.journals_dir / name / "20261130T000000-dead.journal"
    journal = JournalWriter(path, fsync_interval=3600)
    start = {"experiment": name, "run_id": "r", "parent_record": None, "started": 5.0, "host": "h", "pid": 1}
    journal.append(("start", {**start, **(header or {})}))
    journal.append(("eval", 0, HEADER))
    return journal


def test_one_malformed_result_among_many_hides_none_of_the_others(tmp_path: Path) -> None:
    """Crafted records that pass their checksum: a malformed details record, a flag of 9, an
    item that is not one value per column, an end record whose time is text. Each is
    skipped alone; the 127 good samples are sealed and agree everywhere."""
    store = new_store(tmp_path / "s")
    journal = _dead_run(store)
    items = [encode((f"p{i}", "e")) for i in range(127)]
    for i, item in enumerate(items):
        journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, item, result(i)))
        if i == 60:
            journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, encode(("bad", "e")), encode([1])))
            journal.append_encoded(result_frame(0, 9, -1, 0, encode(("flag", "e")), result(0)))
            journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, encode("one value"), result(0)))
            journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, b"t1:s1:x", result(0)))  # cut short
    journal.append(("end", "completed", "yesterday"))
    journal.close()
    (manifest,) = recover(store, "exp")
    (ev,) = manifest.evaluations
    view = load_view(store, ev)
    assert (ev.done, ev.errors, len(view)) == (127, 0, 127)
    assert sorted(view.items) == sorted(items)
    assert all(view.result(i)["prompt"] for i in range(len(view)))
    assert manifest.status == "interrupted"  # the end record was skipped


def test_a_result_whose_slot_is_not_its_item_replaces_nothing(tmp_path: Path) -> None:
    """A slot names the position of the sample a result replaces (a retried error): read
    back from a journal, a slot of 10**9, or one that holds another item, is refused."""
    store = new_store(tmp_path / "s")
    crashed_run(store, [False, False, True, True])
    (first,) = recover(store, "exp")
    head = read_head(store, "exp")
    journal = _dead_run(store, header={"parent_record": head.record_id})
    journal.append(("view", 0, {**_VIEW, "base": first.evaluations[0].entries, "kept": b"\x0f"}))
    journal.append_encoded(result_frame(0, FLAG_OK, 10**9, 0, ITEMS[0], result(0)))
    journal.append_encoded(result_frame(0, FLAG_OK, 2, 0, ITEMS[1], result(1)))  # slot 2 holds ITEMS[2]
    journal.close()
    (manifest,) = recover(store, "exp")
    view = load_view(store, manifest.evaluations[0])
    assert sorted(view.items) == sorted(ITEMS)  # nothing lost, nothing twice
    assert (manifest.evaluations[0].done, manifest.evaluations[0].errors) == (2, 2)


@pytest.mark.parametrize(
    "header",
    [
        {"experiment": "other"},
        {"started": 1e300},
        {"started": "now"},
        {"pid": 10**400},
        {"parent_record": "../x"},
    ],
    ids=["other-experiment", "time-huge", "time-text", "pid-huge", "parent-path"],
)
def test_a_journal_whose_run_header_makes_no_sense_is_refused_and_kept(
    tmp_path: Path, header: dict[str, Any]
) -> None:
    store = new_store(tmp_path / "s")
    journal = _dead_run(store, header=header)
    journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, ITEMS[0], result(0)))
    journal.close()
    with pytest.raises(CorruptStoreError, match="journal header"):
        recover(store, "exp")
    assert store.journals("exp")
    assert store.refs.read("other") is None
    (problem,) = fsck(store).errors
    assert "journal" in problem.message and problem.path.endswith(".journal")


def test_live_progress_skips_journal_records_that_make_no_sense(tmp_path: Path) -> None:
    """A live run's journal is read for progress while it is written (and a shared store is
    untrusted): a record of the wrong shape is skipped, never a traceback."""
    from doteval._repository.experiments import live_progress

    store = new_store(tmp_path / "s")
    path = store.journals_dir / "exp" / "20261130T000000-bad.journal"
    journal = JournalWriter(path)
    journal.append(("start", {"started": 5.0}))
    journal.append(("view", 0, 7))  # not a dict
    journal.append(7)  # not a record
    journal.append(("view", 0, {"total": 3}))
    journal.append_encoded(result_frame(0, FLAG_OK, -1, 0, ITEMS[0], result(0)))
    journal.close()
    live = live_progress(store, "exp")
    assert live is not None and (live.started, live.total, live.ok, live.errors) == (5.0, 3, 1, 0)
