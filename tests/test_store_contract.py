"""The store contract: one suite run against the store in a folder and the store in memory.

Every test takes ``store`` (a ``Store`` in ``tmp_path``, then a ``MemoryStore``) and
holds both to the same behaviour: objects (``BaseObjectStore``), ref records with
their compare-and-swap, experiment locks, and the repository read on top of them.
A hypothesis state machine then drives both with the same random steps and checks
that they agree at every one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from doteval._objects import MemoryStore, Store
from doteval._objects.base import RepackOptions, RepackStats, TrainingRows
from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import ObjectId, digest, hash_bytes
from doteval._objects.repacking import BIG_OBJECT
from doteval._repository.experiments import (
    delete_experiment,
    iter_samples,
    list_experiments,
    open_experiment,
    undelete_experiment,
)
from doteval._repository.history import log, resolve
from doteval._repository.manifest import EvaluationRecord, Manifest, load_manifest, save_manifest
from doteval._repository.sample_tables import FLAG_OK, NewRow, load_view, save_view, table_objects
from doteval._running.experiment_run import ExperimentRun, RunOptions
from doteval.errors import (
    CorruptStoreError,
    ExperimentNotFoundError,
    InvalidNameError,
    LockedError,
    ObjectNotFoundError,
    StoreError,
)

DAY = 86400.0
LATER = time.time() + 3 * DAY  # a clock at which everything stored now is old


@pytest.fixture(params=["disk", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    disk = Store(tmp_path / "store", durable=False)
    disk.create()
    return disk


def missing_id(n: int = 0) -> ObjectId:
    return hash_bytes(b"never stored %d" % n)


# -- objects ---------------------------------------------------------------------------------


def test_round_trip(store: Store) -> None:
    value = {"type": "result", "scores": [1, 2.5, None], "item": ("q", "a"), "blob": b"\x00" * 200}
    oid = store.objects.put(value)
    assert oid == hash_bytes(encode(value))
    assert store.objects.get(oid) == value
    assert store.objects.get_bytes(oid) == encode(value)
    assert store.objects.get(oid, loose_first=True) == value
    assert store.objects.has(oid) and oid in store.objects


def test_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(ObjectNotFoundError) as e:
        store.objects.get(missing_id())
    assert isinstance(e.value, KeyError)
    assert not store.objects.has(missing_id())
    assert missing_id() not in store.objects


@pytest.mark.parametrize("bad", ["", "ab", "../../etc/passwd", "A" * 64, "g" * 64, "0" * 63 + "/"])
def test_an_id_that_is_no_id_is_refused_before_use(store: Store, bad: str) -> None:
    for call in (store.objects.get, store.objects.get_bytes, store.objects.has):
        with pytest.raises(CorruptStoreError):
            call(bad)


def test_put_is_idempotent_and_listed_once(store: Store) -> None:
    first = store.objects.put("hello")
    assert store.objects.put("hello") == first
    assert store.objects.put_bytes(encode("hello")) == first
    assert list(store.objects.iter_ids()) == [first]


def test_listing_holds_every_object_once_loose_or_packed(store: Store) -> None:
    loose = {store.objects.put({"n": n}) for n in range(5)}
    raws = [encode({"packed": n, "text": "x" * (n * 50)}) for n in range(6)]
    packed = store.objects.write_pack(raws)
    assert packed == [hash_bytes(r) for r in raws]
    again = store.objects.write_pack([raws[0], encode({"n": 0})])  # already there, both ways
    listed = list(store.objects.iter_ids())
    assert sorted(listed) == sorted(loose | set(packed)) and len(listed) == len(set(listed))
    assert set(again) <= set(listed)


def test_a_pack_with_its_ids_known_reads_back(store: Store) -> None:
    raws = [encode("y" * n) for n in (0, 10, 100, 5000)]
    ids = store.objects.write_pack(raws, [digest(r) for r in raws])
    assert [store.objects.get_bytes(i) for i in ids] == raws
    assert store.objects.write_pack([]) == []


def test_repack_keeps_what_is_kept_and_removes_the_rest(store: Store) -> None:
    kept = [store.objects.put({"kept": n}) for n in range(3)]
    garbage = [store.objects.put({"garbage": n}) for n in range(3)]
    raws = [encode({"packed": n, "pad": "p" * 300}) for n in range(4)]
    packed = store.objects.write_pack(raws)
    keep = set(kept) | set(packed[:2])

    snapshot = store.objects.snapshot()
    dry = store.objects.repack(snapshot, keep, RepackOptions(grace_period=DAY, now=LATER, dry_run=True))
    assert dry.removed_loose + dry.removed_packed == len(garbage) + 2
    assert all(store.objects.has(i) for i in garbage + packed)  # a dry run changes nothing

    stats = store.objects.repack(snapshot, keep, RepackOptions(grace_period=DAY, now=LATER))
    assert stats.removed_loose + stats.removed_packed == len(garbage) + 2
    assert stats.kept >= len(keep) and stats.kept_young == 0
    for oid in keep:
        assert store.objects.has(oid)
        assert hash_bytes(store.objects.get_bytes(oid)) == oid
    for oid in garbage + packed[2:]:
        assert not store.objects.has(oid)
        with pytest.raises(ObjectNotFoundError):
            store.objects.get(oid)
    assert sorted(store.objects.iter_ids()) == sorted(keep)


def test_repack_keeps_young_objects_and_what_came_after_its_snapshot(store: Store) -> None:
    young = store.objects.put({"young": 1})
    snapshot = store.objects.snapshot()
    after = store.objects.put({"written": "after the snapshot"})
    stats = store.objects.repack(snapshot, set(), RepackOptions(grace_period=DAY, now=time.time()))
    assert stats.kept_young == 1 and stats.removed_loose == stats.removed_packed == 0
    assert store.objects.has(young) and store.objects.has(after)
    # later, nobody keeps them: both go
    stats = store.objects.repack(store.objects.snapshot(), set(), RepackOptions(grace_period=DAY, now=LATER))
    assert stats.kept_young == 0 and not store.objects.has(young) and not store.objects.has(after)


def test_an_aggressive_repack_keeps_every_byte(store: Store) -> None:
    values = [{"answer": f"the answer to question {n} is {n * 7}", "n": n} for n in range(300)]
    ids = store.objects.write_pack([encode(v) for v in values])
    stats = store.objects.repack(
        store.objects.snapshot(), set(ids), RepackOptions(grace_period=DAY, now=LATER, aggressive=True)
    )
    assert stats.removed_loose == stats.removed_packed == 0
    assert [store.objects.get(i) for i in ids] == values


def test_prune_never_removes_an_object(store: Store) -> None:
    oid = store.objects.put("stays")
    assert store.objects.prune(grace_period=0.0, now=LATER) == 0
    assert store.objects.get(oid) == "stays"


# -- refs ------------------------------------------------------------------------------------


def test_ref_records_append_and_read(store: Store) -> None:
    assert store.refs.read("exp") is None
    m1, m2 = store.objects.put("m1"), store.objects.put("m2")
    first = store.refs.append("exp", m1, expected=None, op="run")
    second = store.refs.append("exp", m2, expected=first.id, op="run", note="again")
    state = store.refs.read("exp")
    assert state is not None and not state.diverged
    assert state.head == second and state.head.parent == first.id
    assert [r.manifest for r in state.history()] == [m2, m1]
    assert state.head.note == "again" and state.head.experiment == "exp"
    assert store.refs.names() == ["exp"]


def test_a_stale_expected_head_is_refused_and_writes_nothing(store: Store) -> None:
    m1, m2 = store.objects.put("m1"), store.objects.put("m2")
    first = store.refs.append("exp", m1, expected=None, op="run")
    store.refs.append("exp", m2, expected=first.id, op="run")
    for stale in (None, first.id, missing_id()):
        with pytest.raises(StoreError, match="moved while this command ran"):
            store.refs.append("exp", m1, expected=stale, op="run")
    state = store.refs.read("exp")
    assert state is not None and len(state.records) == 2


def test_a_branch_from_an_older_record_makes_two_heads_and_a_merge_joins_them(store: Store) -> None:
    m1, m2, m3 = (store.objects.put(f"m{n}") for n in (1, 2, 3))
    first = store.refs.append("exp", m1, expected=None, op="run")
    second = store.refs.append("exp", m2, expected=first.id, op="run")
    other = store.refs.append("exp", m3, expected=first.id, op="run", branch=True)
    state = store.refs.read("exp")
    assert state is not None and state.diverged
    assert {h.id for h in state.heads} == {second.id, other.id}
    joined = store.refs.append("exp", m3, expected=state.head.id, op="merge", merged=(state.heads[1].id,))
    state = store.refs.read("exp")
    assert state is not None and not state.diverged and state.head == joined
    assert {r.id for r in state.history()} == {first.id, second.id, other.id, joined.id}


@pytest.mark.parametrize("bad", ["../x", "", "a/b", ".hidden"])
def test_experiment_names_are_checked(store: Store, bad: str) -> None:
    with pytest.raises(InvalidNameError):
        store.refs.read(bad)
    with pytest.raises(InvalidNameError):
        store.lock(bad)


def test_a_second_holder_of_an_experiment_lock_is_refused(store: Store) -> None:
    assert store.live_holder("exp") is None
    lock = store.lock("exp")
    lock.acquire(purpose="run")
    try:
        with pytest.raises(LockedError):
            store.lock("exp").acquire()
        holder = store.live_holder("exp")
        assert holder is not None and holder["purpose"] == "run"
        with store.lock("other"):  # another experiment: no conflict
            pass
    finally:
        lock.release()
    assert store.live_holder("exp") is None
    with store.lock("exp"):
        pass


# -- the repository on top -------------------------------------------------------------------


def _seal_by_hand(store: Store, name: str, answers: dict[str, bool], expected: ObjectId | None) -> ObjectId:
    """What a run's seal writes: sample tables in one pack, a view, a manifest, a ref record."""
    rows = [
        NewRow(
            flag=FLAG_OK if ok else 1,
            item=encode((prompt,)),
            occurrence=0,
            details=encode({"prompt": prompt, "response": prompt.upper(), "error": None if ok else {}}),
            scores={"exact": ok},
        )
        for prompt, ok in answers.items()
    ]
    raws: list[bytes] = []
    ids: list[bytes] = []
    sealed = table_objects(rows, raws, ids)
    store.objects.write_pack(raws, ids)
    view_id = save_view(store, [part for part, _ in sealed])
    done = sum(answers.values())
    evaluation = EvaluationRecord(
        node_id="eval_x.py::eval_x",
        fingerprint="f" * 64,
        params_digest="p" * 64,
        columns=["prompt"],
        entries=view_id,
        total=len(answers),
        done=done,
        errors=len(answers) - done,
        status="completed",
    )
    parent = store.refs.read(name)
    manifest = Manifest(
        experiment=name,
        parent=parent.head.manifest if parent else None,
        status="completed",
        started=1.0,
        finished=2.0,
        evaluations=[evaluation],
    )
    manifest_id = save_manifest(store, manifest)
    store.refs.append(name, manifest_id, expected=expected, op="run")
    return manifest_id


def test_the_repository_reads_and_changes_experiments_on_either_store(store: Store) -> None:
    first = _seal_by_hand(store, "exp", {"a": True, "b": False}, None)
    state = store.refs.read("exp")
    assert state is not None
    second = _seal_by_hand(store, "exp", {"a": True, "b": True, "c": True}, state.head.id)

    info = open_experiment(store, "exp")
    assert (info.manifest_id, info.status, info.total, info.done) == (second, "completed", 3, 3)
    assert [i.name for i in list_experiments(store)] == ["exp"]
    assert [e.manifest_id for e in log(store, "exp")] == [second, first]
    assert resolve(store, "exp~1").manifest_id == first

    manifest = load_manifest(store, second)
    view = load_view(store, manifest.evaluations[0])
    assert len(view) == 3 and view.scores["exact"] == [True, True, True]
    assert [view.result(i)["response"] for i in range(3)] == ["A", "B", "C"]
    samples = iter_samples(store, manifest.evaluations[0])
    assert sorted(s.record["response"] for s in samples) == ["A", "B", "C"]

    delete_experiment(store, "exp")
    with pytest.raises(ExperimentNotFoundError):
        open_experiment(store, "exp")
    undelete_experiment(store, "exp")
    assert open_experiment(store, "exp").manifest_id == second


def test_a_run_into_a_store_in_memory_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = ExperimentRun(MemoryStore(), RunOptions(experiment="exp"))
    with pytest.raises(StoreError, match="cannot record a run"):
        run.open()
    assert list(tmp_path.iterdir()) == []


def test_an_aggressive_repack_trains_on_what_the_caller_finds_in_large_objects(tmp_path: Path) -> None:
    """The disk store's dictionary: trained on small objects and on the records the caller's
    ``training_rows`` finds in large ones; when training fails the current one stays."""
    store = Store(tmp_path / "store", durable=False)
    store.create()
    rows = [{"n": n, "answer": f"the answer to question {n} is {n * 7}, " * 8} for n in range(600)]
    big = encode({"rows": rows})
    assert len(big) >= BIG_OBJECT
    small = [store.objects.put({"n": n, "answer": f"answer {n}"}) for n in range(20)]
    big_id = store.objects.write_pack([big])[0]
    keep = set(small) | {big_id}
    seen = []

    def training_rows(raw: bytes) -> list[bytes]:
        seen.append(hash_bytes(raw))
        return [encode(r) for r in decode(raw)["rows"]]

    def repack(rows: TrainingRows | None) -> RepackStats:
        how = RepackOptions(grace_period=DAY, now=LATER, aggressive=True, training_rows=rows)
        return store.objects.repack(store.objects.snapshot(), keep, how)

    assert repack(None).dictionary is None  # 20 small objects are too few: none, as before
    trained = repack(training_rows).dictionary
    assert seen == [big_id] and trained is not None
    assert repack(None).dictionary == trained  # training failed: the current dictionary stays
    assert store.objects.get(big_id) == {"rows": rows}
    assert [store.objects.get(i)["n"] for i in small] == list(range(20))


# -- the two agree -----------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=200),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=8,
)


class StoresAgree(RuleBasedStateMachine):
    """The same random puts, packs, reads and ref appends on a disk store and a memory store."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="doteval-agree-"))
        self.disk = Store(self.folder / "store", durable=False)
        self.disk.create()
        self.memory = MemoryStore()
        self.ids: list[ObjectId] = [missing_id()]

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def both(self, call: Any) -> Any:
        """``call(store)`` on each store: the same value, or the same kind of error."""
        outcomes = []
        for store in (self.disk, self.memory):
            try:
                outcomes.append(("ok", call(store)))
            except Exception as e:
                outcomes.append(("error", type(e)))
        assert outcomes[0] == outcomes[1]
        return outcomes[0][1]

    @rule(value=VALUES)
    def put(self, value: Any) -> None:
        self.ids.append(self.both(lambda s: s.objects.put(value)))

    @rule(raws=st.lists(st.binary(max_size=300), max_size=5))
    def write_pack(self, raws: list[bytes]) -> None:
        self.ids.extend(self.both(lambda s: s.objects.write_pack(raws)))

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        oid = data.draw(st.sampled_from(self.ids))
        self.both(lambda s: s.objects.get_bytes(oid))
        self.both(lambda s: s.objects.has(oid))

    @precondition(lambda self: len(self.ids) > 1)
    @rule(name=NAMES, data=st.data(), stale=st.booleans())
    def append(self, name: str, data: st.DataObject, stale: bool) -> None:
        manifest = data.draw(st.sampled_from(self.ids))

        def append(store: Store) -> list[tuple[str | None, str]]:
            state = store.refs.read(name)
            expected = state.head.id if state else None
            if stale:
                expected = state.head.parent if state else missing_id(1)
            store.refs.append(name, manifest, expected=expected, op="run")
            return history(store, name)

        self.both(append)

    @rule(keep_share=st.integers(0, 3), later=st.booleans())
    def repack(self, keep_share: int, later: bool) -> None:
        keep = set(self.ids[::2] if keep_share else [])
        how = RepackOptions(grace_period=DAY, now=LATER if later else time.time())
        self.both(lambda s: s.objects.repack(s.objects.snapshot(), keep, how).removed_loose is not None)
        self.ids = [i for i in self.ids if i in keep or not later] or [missing_id()]

    @invariant()
    def same_objects_and_refs(self) -> None:
        self.both(lambda s: sorted(s.objects.iter_ids()))
        self.both(lambda s: s.refs.names())
        for name in ("a", "b"):
            self.both(lambda s: history(s, name))  # noqa: B023 - called at once


def history(store: Store, name: str) -> list[tuple[str | None, str]]:
    """An experiment's records as both stores hold them (record ids differ: they hold the time)."""
    state = store.refs.read(name)
    return [] if state is None else [(r.manifest, r.op) for r in state.history()]


TestStoresAgree = StoresAgree.TestCase
TestStoresAgree.settings = settings(
    max_examples=15, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_a_manifest_without_calls_or_origins_is_written_as_before_and_one_with_them_says_it_is_newer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Version 3 fields (model calls, origins) are written only when used: a plain manifest is
    version 2, byte for byte what an older doteval wrote and reads; one that uses them is
    version 3, which an older doteval refuses as newer, not as damaged."""
    from doteval._repository import manifest as manifest_module

    plain = Manifest(experiment="e", parent=None, status="completed", started=1.0, finished=2.0)
    value = plain.to_value()
    assert value["v"] == 2 and "calls" not in value and "call_counts" not in value
    used = Manifest(experiment="e", parent=None, status="completed", started=1.0, finished=2.0)
    used.call_counts = {"made": 1, "cached": 0, "tokens_spent": 0, "tokens_saved": 0}
    newer = used.to_value()
    assert newer["v"] == 3
    assert Manifest.from_value(newer).call_counts == used.call_counts
    monkeypatch.setattr(manifest_module, "MANIFEST_VERSION", 2)  # a doteval from before version 3
    assert Manifest.from_value(value).experiment == "e"
    with pytest.raises(CorruptStoreError, match="manifest version 3 is newer than this doteval"):
        Manifest.from_value(newer)
