"""Sample tables and views: every run adds tables, the view is exactly the current samples."""

from __future__ import annotations

import random
import struct
import types
from pathlib import Path
from typing import Any

from doteval import Result, foreach
from doteval._objects import Store
from doteval._objects.encoding import decode, encode
from doteval._operations.fsck import fsck
from doteval._operations.gc import collect_garbage
from doteval._repository import sample_tables as tables
from doteval._repository.run_journal import read_head
from doteval._repository.sample_tables import (
    NewRow,
    SampleTable,
    details_bytes,
    load_parts,
    load_view,
    table_objects,
    table_value,
)
from doteval._running.experiment_run import ExperimentRun, RunOptions
from doteval._running.fingerprint import params_fingerprint
from doteval._running.foreach import get_spec

DATA: list[tuple[str, str]] = []
FAIL: set[str] = set()


# Which prompts fail, read through an object that is no part of the code fingerprint
# (a module constant would be, and changing it would be a code change).
WORLD = types.SimpleNamespace(fail=FAIL)


def make_eval() -> Any:
    # Built in a function: a module-level @foreach would be collected by the doteval plugin.
    @foreach("prompt,expected", DATA)
    def eval_delta(prompt: str, expected: str) -> Result:
        if prompt in WORLD.fail:
            raise ValueError(f"no answer for {prompt}")
        return Result(prompt.upper() == expected, prompt=prompt, response=prompt.upper())

    return eval_delta


def run_once(store: Store, **options: Any) -> None:
    run = ExperimentRun(store, RunOptions(experiment="d", **options))
    run.open()
    spec = get_spec(make_eval())
    assert spec is not None
    prepared = run.prepare("eval_delta.py::eval_delta", spec)
    run.run_evaluation(prepared, {}, params_fingerprint({}))
    run.close()


def view(store: Store) -> dict[str, tuple[bool, str]]:
    head = read_head(store, "d")
    assert head.manifest is not None
    ev = head.manifest.evaluations[0]
    table = load_view(store, ev)
    out = {}
    for i in range(len(table)):
        record = table.result(i)
        prompt = record["item"][0]
        assert prompt not in out, "an item twice in one view"
        out[prompt] = (table.flags[i] == 0, record["response"] if not record["error"] else "ERR")
    assert (ev.done, ev.errors) == (table.done, table.errors)
    return out


def test_many_runs_of_changes_keep_an_exact_view(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 7)  # several tables per run, too
    store = Store(tmp_path / "store")
    rng = random.Random(5)
    DATA[:] = [(f"q{i}", f"Q{i}") for i in range(40)]
    FAIL.clear()
    state: dict[str, tuple[bool, str]] = {}
    for step in range(12):
        # each run: a few new items, a few removed, a few that fail then heal
        DATA.extend((f"n{step}-{j}", f"N{step}-{j}") for j in range(3))
        for _ in range(2):
            DATA.pop(rng.randrange(len(DATA)))
        FAIL.clear()
        FAIL.update(p for p, _ in rng.sample(DATA, 2))
        rng.shuffle(DATA)
        ev_before = read_head(store, "d").manifest
        parts_before = (
            {p.table_id for p in load_parts(store, ev_before.evaluations[0].entries)} if ev_before else set()
        )
        run_once(store)
        # a sample that ended ok is kept (never run again); the others run now
        expected = {
            p: state[p]
            if state.get(p, (False, ""))[0]
            else (p not in FAIL, "ERR" if p in FAIL else p.upper())
            for p, _ in DATA
        }
        assert view(store) == expected, f"run {step}"
        # the run stored only the samples it evaluated: its new tables hold exactly those
        ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
        new_rows = sum(p.length for p in load_parts(store, ev.entries) if p.table_id not in parts_before)
        assert new_rows == ev.run["evaluated"] == sum(1 for p in expected if not state.get(p, (False,))[0])
        state = expected

    before = view(store)
    collect_garbage(store, prune=0.0)
    assert view(store) == before
    report = fsck(store)
    assert report.ok, [p.to_json() for p in report.problems]


def test_a_missing_sample_table_is_reported_not_misread(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    DATA[:] = [(f"q{i}", f"Q{i}") for i in range(10)]
    FAIL.clear()
    FAIL.add("q3")
    run_once(store)
    FAIL.clear()
    run_once(store)  # heals q3: a table of one row over the first one
    ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
    parts = load_parts(store, ev.entries)
    assert [len(p.rows) for p in parts] == [9, 1]
    newest = max((store.root / "packs").glob("*.pack"), key=lambda p: p.stat().st_mtime_ns)
    newest.unlink()
    newest.with_suffix(".idx").unlink()
    report = fsck(store)
    assert not report.ok
    assert any("missing" in p.message or "not found" in p.message for p in report.errors)


def test_details_are_the_canonical_encoding_of_their_rows() -> None:
    rows = [encode({"prompt": f"p{i}", "scores": [], "n": i}) for i in range(3)]
    assert details_bytes(rows) == encode({"type": "details", "v": 1, "rows": [decode(r) for r in rows]})
    assert details_bytes([]) == encode({"type": "details", "v": 1, "rows": []})


def test_a_table_stores_items_once_and_occurrences_sparsely() -> None:
    rows = [
        NewRow(0, encode(("a",)), 0, encode({}), {"x": True}, {"x": ["accuracy"]}),
        NewRow(1, encode(("a",)), 1, encode({}), {}),
        NewRow(0, encode(("b",)), 0, encode({}), {"x": False, "y": 2}),
    ]
    value = table_value(rows)
    assert value["items"] == encode(("a",)) * 2 + encode(("b",))
    assert value["occurrences"] == [1, 1]
    assert value["flags"] == bytes([0, 1, 0])
    assert value["details_sizes"] == struct.pack("<3I", *(len(r.details) for r in rows))
    assert decode(value["scores"]) == {"x": [True, None, False], "y": [None, None, 2]}
    assert value["metrics"] == {"x": ["accuracy"]}


def test_duplicate_items_are_separate_samples_and_resume_by_occurrence(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    DATA[:] = [("same", "SAME")] * 3 + [("other", "OTHER")]
    FAIL.clear()
    run_once(store, samples=2)
    ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
    assert (ev.done, ev.total) == (2, 4)
    run_once(store)
    ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
    assert (ev.done, ev.total, ev.run["evaluated"], ev.run["reused"]) == (4, 4, 2, 2)
    table = load_view(store, ev)
    assert sorted(table.occurrences) == [0, 0, 1, 2]
    assert len(set(table.keys)) == 4


def test_a_table_as_sealed_reads_back_the_same(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.create()
    rows = [
        NewRow(0, encode((f"q{i % 3}",)), i // 3, encode({"n": i}), {"x": i % 2 == 0}, {"x": ["accuracy"]})
        for i in range(7)
    ]
    raws: list[bytes] = []
    ids: list[bytes] = []
    ((part, sealed),) = table_objects(rows, raws, ids)
    store.objects.write_pack(raws, ids)
    loaded = SampleTable.load(store, part.table_id)
    assert (sealed.items, sealed.occurrences, sealed.flags) == (
        loaded.items,
        loaded.occurrences,
        loaded.flags,
    )
    assert (sealed.scores, sealed.metrics, sealed.detail_ends) == (
        loaded.scores,
        loaded.metrics,
        loaded.detail_ends,
    )
    assert sealed.scores == {"x": [i % 2 == 0 for i in range(7)]}
