"""Entries tables stored as deltas of the run before: the view must be exactly the full one."""

from __future__ import annotations

import random
import types
from pathlib import Path
from typing import Any

from doteval import Result, foreach
from doteval.fingerprint import params_fingerprint
from doteval.foreach import get_spec
from doteval.fsck import fsck
from doteval.gc import collect_garbage
from doteval.manifest import MAX_DELTA_DEPTH, load_entries, load_key_sets, load_table
from doteval.objects import Store
from doteval.runner import ExperimentRun, RunOptions
from doteval.runs import read_head

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
    table = load_entries(store, ev.entries)
    out = {}
    for i in range(len(table)):
        record = store.objects.get(table.row(i).result.hex())
        out[record["item"][0]] = (table.flags[i] == 0, record["response"] if not record["error"] else "ERR")
    every, ok = load_key_sets(store, ev.entries)
    assert every == {table.key(i) for i in range(len(table))}
    assert ok == table.ok_keys()
    return out


def test_many_runs_of_changes_keep_an_exact_view_and_compact_their_chain(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    rng = random.Random(5)
    DATA[:] = [(f"q{i}", f"Q{i}") for i in range(40)]
    FAIL.clear()
    depths = []
    state: dict[str, tuple[bool, str]] = {}
    for step in range(2 * MAX_DELTA_DEPTH + 3):
        # each run: a few new items, a few removed, a few that fail then heal
        DATA.extend((f"n{step}-{j}", f"N{step}-{j}") for j in range(3))
        for _ in range(2):
            DATA.pop(rng.randrange(len(DATA)))
        FAIL.clear()
        FAIL.update(p for p, _ in rng.sample(DATA, 2))
        rng.shuffle(DATA)
        run_once(store)
        # a sample that ended ok is kept (never run again); the others run now
        expected = {
            p: state[p]
            if state.get(p, (False, ""))[0]
            else (p not in FAIL, "ERR" if p in FAIL else p.upper())
            for p, _ in DATA
        }
        assert view(store) == expected, f"run {step}"
        state = expected
        ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
        depths.append(load_table(store, ev.entries).depth)  # type: ignore[arg-type]

    assert max(depths) == MAX_DELTA_DEPTH  # chains grow, then a full table starts a new one
    assert depths.count(0) >= 2
    # a delta holds only what its run changed
    ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
    last = load_table(store, ev.entries)  # type: ignore[arg-type]
    if last.base is not None:
        assert len(last) < len(DATA)

    before = view(store)
    collect_garbage(store, prune=0.0)
    assert view(store) == before
    report = fsck(store)
    assert report.ok, [p.to_json() for p in report.problems]


def test_a_delta_whose_base_is_missing_is_reported_not_misread(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    DATA[:] = [(f"q{i}", f"Q{i}") for i in range(10)]
    FAIL.clear()
    FAIL.add("q3")
    run_once(store)
    FAIL.clear()
    run_once(store)  # heals q3: a delta over the first table
    ev = read_head(store, "d").manifest.evaluations[0]  # type: ignore[union-attr]
    delta = load_table(store, ev.entries)  # type: ignore[arg-type]
    assert delta.base is not None and len(delta) == 1
    store.objects.loose_path(delta.base).unlink()
    report = fsck(store)
    assert not report.ok
    assert any("missing" in p.message for p in report.errors)
