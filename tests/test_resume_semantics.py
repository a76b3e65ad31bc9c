"""Resume, seal and view semantics, proved with real runs.

Every case runs evaluations for real (pytest sessions through ``pytester``, a
``python -m pytest`` subprocess killed with SIGKILL, or ``ExperimentRun`` as the
plugin drives it) and checks two things exactly after each run:

- which samples the model was called for (every call appends its prompt to a
  calls file, or to a list in process), in order;
- what the experiment's current view holds: each sample's item and occurrence,
  ok or error, and its response. A response names the run that made it
  (``Q3#r2.0``: prompt ``q3``, run ``r2``, the first call of ``q3`` in that
  run), so a result reused from an earlier run is told from a new one.

Every view is also checked to hold no (item, occurrence) twice, to agree with
its manifest's counts, and the store to pass ``fsck``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from projects import PytesterProject, counting_conftest
from storekit import PYTEST_FLAGS, cli, json_dataset_eval

from doteval import Result, foreach
from doteval._objects import Store
from doteval._objects.encoding import encode
from doteval._operations.diff import changed_samples, diff_experiments
from doteval._operations.fsck import fsck
from doteval._operations.gc import collect_garbage
from doteval._repository import sample_tables as tables
from doteval._repository.manifest import EvaluationRecord, load_manifest
from doteval._repository.repository import Repository
from doteval._repository.run_journal import read_head
from doteval._repository.sample_tables import FLAG_OK, load_parts, load_view, sample_key
from doteval._running.experiment_run import ExperimentRun, RunOptions, in_shard
from doteval._running.fingerprint import code_fingerprint, params_fingerprint
from doteval._running.foreach import get_spec
from doteval.storage import get_storage_backend

# The dataset is read from data.json, so it changes without the evaluation's code changing.
EVAL = json_dataset_eval('response.split("#")[0] == expected')

# The same evaluation with other logic: a code change.
EVAL_V2 = EVAL.replace('response.split("#")[0] == expected', 'response.partition("#")[0] == expected')

# Rows given as lists or as dicts, with a structured column.
EVAL_ROWS = """
import json
from pathlib import Path

from doteval import Result, foreach


def load():
    rows = json.loads(Path(__file__).with_name("rows.json").read_text())
    return [row if isinstance(row, dict) else tuple(row) for row in rows]


@foreach("prompt,meta", load())
def eval_rows(prompt, meta, model):
    response = model.generate(prompt)
    return Result(bool(meta), prompt=prompt, response=response)
"""

# The same evaluation run concurrently: async, or sync in threads (--concurrency).
EVAL_ASYNC = """
import asyncio
import json
from pathlib import Path

from doteval import Result, foreach


def load():
    return [tuple(row) for row in json.loads(Path(__file__).with_name("data.json").read_text())]


@foreach("prompt,expected", load())
async def eval_async(prompt, expected, model):
    await asyncio.sleep(0.001 * (len(prompt) % 3))
    response = model.generate(prompt)
    return Result(response.split("#")[0] == expected, prompt=prompt, response=response)
"""

Samples = dict[tuple[str, int], str]  # (prompt, occurrence) -> response, or ERR for an error
ERR = "ERR"


def resp(prompt: str, tag: str, k: int = 0) -> str:
    """The response of the model in run ``tag`` at its ``k``-th call of ``prompt``."""
    return f"{prompt.upper()}#{tag}.{k}"


def qs(*numbers: int) -> list[str]:
    return [f"q{i}" for i in numbers]


def current(store: Store, name: str) -> EvaluationRecord:
    head = read_head(store, name)
    assert head.manifest is not None and head.state is not None
    assert not head.state.diverged, "the experiment has two heads"
    (ev,) = head.manifest.evaluations
    return ev


def view_of(store_path: Path, name: str = "x", *, check_store: bool = True) -> Samples:
    """The experiment's current samples, checked: no (item, occurrence) twice, counts agree."""
    store = Store(store_path)
    ev = current(store, name)
    view = load_view(store, ev)
    out: Samples = {}
    scores: list[float] = []
    for i in range(len(view)):
        record = view.result(i)
        key = (record["item"][0], view.occurrences[i])
        assert key not in out, f"{key} twice in one view"
        ok = view.flags[i] == FLAG_OK
        assert (record["error"] is None) == ok, (key, record)
        out[key] = record["response"] if ok else ERR
        if ok:
            scores.extend(float(s["value"]) for s in record["scores"] if s["name"] == "score")
    assert (ev.done, ev.errors) == (view.done, view.errors)
    accuracy = [m["value"] for m in ev.metrics if (m["score"], m["metric"]) == ("score", "accuracy")]
    if scores:  # the summary is over the samples of the view, whichever run made them
        assert accuracy == [pytest.approx(sum(scores) / len(scores))], (ev.metrics, scores)
    if check_store:
        report = fsck(store)
        assert report.ok, [p.to_json() for p in report.problems]
    return out


def plain(view: Samples) -> dict[str, str]:
    """A view without duplicates, by prompt."""
    assert all(occ == 0 for _, occ in view), view
    return {p: r for (p, _), r in view.items()}


# -- pytest sessions ------------------------------------------------------------------


class Project(PytesterProject):
    """An evaluation project in ``pytester.path``: data.json, a counting model, one store."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = Path(os.environ["DOTEVAL_STORE"])
        super().__init__(pytester, monkeypatch, counting_conftest(tagged=True))
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.delenv("DOTEVAL_TEST_HANG", raising=False)
        self.write("eval_upper.py", EVAL)

    def data(self, prompts: list[str]) -> None:
        self.write("data.json", json.dumps([[p, p.upper()] for p in prompts]))

    def run(
        self,
        *args: str,
        tag: str,
        fail: tuple[str, ...] = (),
        experiment: str = "x",
        ret: int | None = None,
        file: str = "eval_upper.py",
    ) -> list[str]:
        """One pytest session; the model calls it made. ``ret``: the expected exit code (0 by
        default: errored samples are data the next run retries, not a failed run)."""
        self.mp.setenv("DOTEVAL_TEST_TAG", tag)
        self.mp.setenv("DOTEVAL_TEST_FAIL", ",".join(fail))
        result = self.pytest(file, "--experiment", experiment, *args)
        calls = self.take_calls()
        text = "\n".join(result.outlines + result.errlines)
        expected = 0 if ret is None else ret
        assert result.ret == expected, text
        assert "Traceback" not in text, text
        return calls

    def view(self, name: str = "x", *, store: Path | None = None) -> Samples:
        return view_of(store or self.store, name)

    def record(self, name: str = "x", *, store: Path | None = None) -> EvaluationRecord:
        return current(Store(store or self.store), name)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", DOTEVAL_PROGRESS="off", COLUMNS="200")
        env.update(extra)
        return env

    def killed_run(
        self, *args: str, tag: str, hang: str, fail: tuple[str, ...] = (), experiment: str = "x"
    ) -> list[str]:
        """``python -m pytest`` in a subprocess, SIGKILLed while the model is in its call of
        ``hang`` (so every sample before it is finished and journaled); the calls it made."""
        marker = self.path / f"hung-{tag}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "eval_upper.py",
                "--experiment",
                experiment,
                *args,
                *PYTEST_FLAGS[1:],
            ],
            cwd=self.path,
            env=self.env(
                DOTEVAL_TEST_TAG=tag,
                DOTEVAL_TEST_FAIL=",".join(fail),
                DOTEVAL_TEST_HANG=hang,
                DOTEVAL_TEST_HANG_FILE=str(marker),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            while not marker.exists():  # the run either calls ``hang`` or ends
                if proc.poll() is not None:
                    pytest.fail(f"the run ended before calling {hang}:\n{proc.communicate()[0]}")
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        return self.take_calls()

    def journals(self, name: str = "x", *, store: Path | None = None) -> list[Path]:
        return sorted(((store or self.store) / "journals" / name).glob("*.journal"))


@pytest.fixture
def proj(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(pytester, monkeypatch)


def seal_dead(store: Path, name: str) -> None:
    """What the next writer of ``name`` does first: seal its dead runs' journals and join the
    lines that can be joined (a read command seals nothing: it computes that in memory)."""
    Repository(Store(store)).settle(name)


def show(store: Path, *args: str) -> str:
    """``doteval show``, after the next writer sealed what the experiment's dead runs left."""
    seal_dead(store, args[0].split("@")[0].split("~")[0])
    return cli(store, "show", *args).stdout


def copy_into(src: Path, dst: Path) -> None:
    """Copy a store's immutable folders into another, as an rsync of two machines would."""
    for sub in ("objects", "packs", "refs"):
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dst / sub, dirs_exist_ok=True)


# -- 1. the dataset changes between runs ---------------------------------------------------------


def test_reordered_shuffled_extended_and_shrunk_datasets_resume_by_item(proj: Project) -> None:
    rng = random.Random(1)
    data = qs(*range(12))
    proj.data(data)
    assert proj.run(tag="r1") == data
    state = {p: resp(p, "r1") for p in data}
    assert plain(proj.view()) == state

    proj.data(data[::-1])  # reversed: nothing to do
    assert proj.run(tag="r2") == []
    assert plain(proj.view()) == state

    data = data + qs(12, 13, 14, 15)
    rng.shuffle(data)
    proj.data(data)
    new = [p for p in data if p in qs(12, 13, 14, 15)]
    assert proj.run(tag="r3") == new  # only the new items, in dataset order
    state.update({p: resp(p, "r3") for p in new})
    assert plain(proj.view()) == state
    assert proj.record().run["added"] == 4

    data = [p for p in data if p not in qs(0, 5, 13)]
    rng.shuffle(data)
    proj.data(data)
    assert proj.run(tag="r4") == []
    state = {p: state[p] for p in data}
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.total, ev.done, ev.run["removed"], ev.run["evaluated"]) == (13, 13, 3, 0)

    # an item that comes back reuses its result from history (its key is the same)
    data = ["q5", *data[:6], "q16", *data[6:]]
    proj.data(data)
    assert proj.run(tag="r5") == ["q16"]
    state.update({"q5": resp("q5", "r1"), "q16": resp("q16", "r5")})
    assert plain(proj.view()) == state
    assert proj.record().run["earlier"] == 1

    # a changed item (same prompt, other expected) is another sample: it replaces the old one
    changed = [[p, p.upper() if p != "q7" else "changed"] for p in data]
    proj.write("data.json", json.dumps(changed))
    assert proj.run(tag="r6") == ["q7"]
    state["q7"] = resp("q7", "r6")
    assert plain(proj.view()) == state
    assert proj.record().run["removed"] == 1

    for step in range(3):  # several shuffles in a row: nothing to do, nothing changes
        rng.shuffle(changed)
        proj.write("data.json", json.dumps(changed))
        assert proj.run(tag=f"s{step}") == []
        assert plain(proj.view()) == state
    assert len(state) == len(data) == proj.record().total


def test_items_match_by_encoding_whatever_the_row_shape_or_key_order(proj: Project) -> None:
    def rows(shape: str, order: list[int]) -> str:
        out: list[object] = []
        for i in order:
            meta = {"id": i, "tags": ["x", "y"]}
            if shape == "dict":  # the keys of the row and of the column value reversed
                out.append(
                    {"meta": dict(reversed(list(meta.items()))), "prompt": f"q{i}", "extra": "ignored"}
                )
            else:
                out.append([f"q{i}", meta])
        return json.dumps(out)

    proj.write("eval_rows.py", EVAL_ROWS)
    proj.write("rows.json", rows("list", list(range(6))))
    assert proj.run(tag="r1", file="eval_rows.py") == qs(*range(6))
    state = {p: resp(p, "r1") for p in qs(*range(6))}
    assert plain(proj.view()) == state

    proj.write("rows.json", rows("dict", [5, 3, 1, 0, 2, 4, 6]))
    assert proj.run(tag="r2", file="eval_rows.py") == ["q6"]
    state["q6"] = resp("q6", "r2")
    assert plain(proj.view()) == state

    # a changed column value is another item: evaluated, and it replaces the old one
    changed = json.loads(rows("list", list(range(7))))
    changed[2][1]["tags"] = ["x"]
    proj.write("rows.json", json.dumps(changed))
    assert proj.run(tag="r3", file="eval_rows.py") == ["q2"]
    state["q2"] = resp("q2", "r3")
    assert plain(proj.view()) == state
    assert proj.record().run["removed"] == 1


def test_delete_and_rename_then_run(proj: Project) -> None:
    data = qs(*range(5))
    proj.data(data)
    assert proj.run(tag="r1", fail=("q1",)) == data
    cli(proj.store, "rename", "x", "y")
    assert proj.run(tag="r2", experiment="y") == ["q1"]  # the renamed experiment resumes
    assert plain(proj.view("y")) == {p: resp(p, "r1" if p != "q1" else "r2") for p in data}
    assert proj.run(tag="r3") == data  # the old name starts afresh
    cli(proj.store, "delete", "y")
    assert proj.run(tag="r4", experiment="y") == data  # so does a deleted experiment
    assert plain(proj.view("y")) == {p: resp(p, "r4") for p in data}


@pytest.mark.parametrize("how", ["async", "threads"])
def test_concurrent_runs_resume_the_same_way(proj: Project, how: str) -> None:
    file = "eval_async.py" if how == "async" else "eval_upper.py"
    args = ("--concurrency", "4")
    proj.write("eval_async.py", EVAL_ASYNC)
    data = qs(*range(24))
    proj.data(data)
    assert sorted(proj.run(*args, tag="r1", fail=qs(3, 9, 17), file=file)) == sorted(data)
    state = {p: ERR if p in qs(3, 9, 17) else resp(p, "r1") for p in data}
    assert plain(proj.view()) == state

    data = [p for p in data if p not in qs(4, 9)] + qs(24, 25)
    random.Random(4).shuffle(data)
    proj.data(data)
    assert sorted(proj.run(*args, tag="r2", fail=("q17",), file=file)) == sorted(qs(3, 17, 24, 25))
    state = {p: state.get(p, "") for p in data}
    state.update({p: ERR if p == "q17" else resp(p, "r2") for p in qs(3, 17, 24, 25)})
    assert plain(proj.view()) == state
    assert proj.run(*args, tag="r3", file=file) == ["q17"]
    state["q17"] = resp("q17", "r3")
    assert plain(proj.view()) == state
    assert proj.run(*args, tag="r4", file=file) == []


# -- 2. duplicate items --------------------------------------------------------------------------


def test_duplicate_items_are_one_sample_per_occurrence(proj: Project) -> None:
    proj.data(["a", "b", "a", "a", "b"])
    assert proj.run(tag="r1") == ["a", "b", "a", "a", "b"]
    state = {
        ("a", 0): resp("a", "r1", 0),
        ("a", 1): resp("a", "r1", 1),
        ("a", 2): resp("a", "r1", 2),
        ("b", 0): resp("b", "r1", 0),
        ("b", 1): resp("b", "r1", 1),
    }
    assert proj.view() == state

    proj.data(["b", "a", "b", "a"])  # one "a" fewer, reordered
    assert proj.run(tag="r2") == []
    del state[("a", 2)]
    assert proj.view() == state
    assert proj.record().run["removed"] == 1

    proj.data(["a", "a", "b", "a", "b", "a", "b"])  # two "a" and one "b" more
    assert proj.run(tag="r3") == ["a", "b"]  # the third "a" comes back from history
    state.update({("a", 2): resp("a", "r1", 2), ("a", 3): resp("a", "r3", 0), ("b", 2): resp("b", "r3", 0)})
    assert proj.view() == state

    # one occurrence of "c" fails: only that one is evaluated again
    proj.data(["c", "a", "c", "a", "b", "c", "a", "b", "a", "b"])
    assert proj.run(tag="r4", fail=("c.1",)) == ["c", "c", "c"]
    state.update({("c", 0): resp("c", "r4", 0), ("c", 1): ERR, ("c", 2): resp("c", "r4", 2)})
    assert proj.view() == state
    assert proj.run(tag="r5", fail=("c",)) == ["c"]  # still failing
    assert proj.view() == state
    assert proj.run(tag="r6") == ["c"]
    state[("c", 1)] = resp("c", "r6", 0)
    assert proj.view() == state
    assert len(proj.view()) == 10 == proj.record().total

    # the item with the error is removed with one copy: the last occurrence goes
    proj.data(["c", "c", "a", "a", "a", "a", "b", "b", "b"])
    assert proj.run(tag="r7") == []
    del state[("c", 2)]
    assert proj.view() == state


# -- 3. errors -----------------------------------------------------------------------------------


def test_errors_are_retried_and_replaced_never_kept_twice(proj: Project) -> None:
    data = qs(*range(10))
    proj.data(data)
    assert proj.run(tag="r1", fail=("q1", "q3", "q5", "q8")) == data
    state = {p: resp(p, "r1") for p in data}
    state.update(dict.fromkeys(qs(1, 3, 5, 8), ERR))
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.status, ev.done, ev.errors) == ("completed", 6, 4)  # the evaluation ran to its end
    assert read_head(Store(proj.store), "x").manifest.status == "failed"  # type: ignore[union-attr]

    # q1 and q5 heal, q3 stays an error, q8 (an error) left the dataset: it is not retried
    data = [p for p in data if p != "q8"]
    proj.data(data)
    assert proj.run(tag="r2", fail=("q3",)) == qs(1, 3, 5)
    state.update({"q1": resp("q1", "r2"), "q5": resp("q5", "r2"), "q3": ERR})
    del state["q8"]
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.done, ev.errors, ev.total) == (8, 1, 9)
    assert ev.run == {"evaluated": 3, "reused": 6, "errors": 1, "added": 0, "removed": 1}
    # the run's own table holds exactly what it evaluated
    parts = load_parts(Store(proj.store), ev.entries)
    assert [len(p.rows) for p in parts] == [6, 3]

    assert proj.run(tag="r3", fail=("q3",)) == ["q3"]  # an error again: replaced again
    assert plain(proj.view()) == state
    parts = load_parts(Store(proj.store), proj.record().entries)
    assert [(p.length, len(p.rows)) for p in parts] == [(10, 6), (3, 2), (1, 1)]  # the old error row is gone

    random.Random(3).shuffle(data)
    proj.data(data)
    assert proj.run(tag="r4") == ["q3"]
    state["q3"] = resp("q3", "r4")
    assert plain(proj.view()) == state
    head = read_head(Store(proj.store), "x").manifest
    assert head is not None and head.status == "completed"
    assert proj.run(tag="r5") == []


# -- 4. --samples and --shard ----------------------------------------------------------------------


def test_samples_then_full_run_evaluates_each_item_once(proj: Project) -> None:
    data = qs(*range(12))
    proj.data(data)
    assert proj.run("--samples", "4", tag="r1", fail=("q2",)) == qs(0, 1, 2, 3)
    state = {p: resp(p, "r1") for p in qs(0, 1, 3)} | {"q2": ERR}
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.total, ev.done, ev.errors) == (12, 3, 1)
    assert read_head(Store(proj.store), "x").manifest.status == "interrupted"  # type: ignore[union-attr]

    assert proj.run("--samples", "4", tag="r2", fail=("q2",)) == ["q2"]  # only the error
    assert plain(proj.view()) == state

    # reordered: the first 3 are q11, q0, q5; q0 is done
    data = ["q11", "q0", "q5", *[p for p in data if p not in ("q11", "q0", "q5")]]
    proj.data(data)
    assert proj.run("--samples", "3", tag="r3") == ["q11", "q5"]
    state.update({"q11": resp("q11", "r3"), "q5": resp("q5", "r3")})
    assert plain(proj.view()) == state  # q1, q2, q3 beyond the 3 are kept

    # q1 leaves the dataset: a --samples run reads part of it, and keeps q1
    data.remove("q1")
    proj.data(data)
    assert proj.run("--samples", "2", tag="r4") == []
    assert plain(proj.view()) == state

    # the full run: the error and every item never evaluated, once; q1 goes
    assert proj.run(tag="r5") == [p for p in data if p not in state or state[p] == ERR]
    state = {p: state.get(p, resp(p, "r5")) for p in data}
    state["q2"] = resp("q2", "r5")
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.total, ev.done, ev.errors) == (11, 11, 0)
    assert proj.run(tag="r6") == []
    assert proj.run("--samples", "20", tag="r7") == []  # more than the dataset: all of it, done


def shard_of(ev: EvaluationRecord, prompts: list[str], shards: int) -> dict[str, int]:
    """Which shard (1-based) each (first-occurrence) prompt falls in."""
    out = {}
    for p in prompts:
        key = sample_key(ev.fingerprint, ev.params_digest, encode((p, p.upper())), 0)
        (out[p],) = [i for i in range(1, shards + 1) if in_shard(key, (i, shards))]
    return out


def test_two_shards_into_one_store_then_a_full_run_evaluates_nothing(proj: Project) -> None:
    data = qs(*range(16))
    proj.data(data)
    one = proj.run("--shard", "1/2", tag="s1")
    ev = proj.record()
    where = shard_of(ev, data, 2)
    assert one == [p for p in data if where[p] == 1] and 0 < len(one) < 16
    assert plain(proj.view()) == {p: resp(p, "s1") for p in one}
    assert (ev.total, ev.done) == (16, len(one))

    two = proj.run("--shard", "2/2", tag="s2")
    assert two == [p for p in data if where[p] == 2]
    state = {p: resp(p, "s1" if where[p] == 1 else "s2") for p in data}
    assert plain(proj.view()) == state
    head = read_head(Store(proj.store), "x").manifest
    assert head is not None and head.status == "completed" and head.shard == "2/2"

    before = read_head(Store(proj.store), "x").manifest_id
    assert proj.run(tag="full") == []
    assert read_head(Store(proj.store), "x").manifest_id == before  # nothing changed, nothing written
    assert plain(proj.view()) == state

    # more items, one failing in each shard: each shard evaluates its own new items only,
    # leaves the other shard's error alone, and the full run retries the two errors
    more = qs(*range(16, 30))
    where.update(shard_of(ev, more, 2))
    bad = [next(p for p in more if where[p] == 1), next(p for p in more if where[p] == 2)]
    data = more[::2] + data + more[1::2]
    proj.data(data)
    assert proj.run("--shard", "1/2", tag="s3", fail=tuple(bad)) == [
        p for p in data if p in more and where[p] == 1
    ]
    assert proj.run("--shard", "2/2", tag="s4", fail=tuple(bad)) == [
        p for p in data if p in more and where[p] == 2
    ]
    state.update({p: ERR if p in bad else resp(p, "s3" if where[p] == 1 else "s4") for p in more})
    assert plain(proj.view()) == state
    assert proj.run("--shard", "1/2", tag="s5", fail=tuple(bad)) == [bad[0]]
    assert proj.run(tag="full2") == [p for p in data if p in bad]
    state.update({p: resp(p, "full2") for p in bad})
    assert plain(proj.view()) == state
    assert proj.run(tag="full3") == []


# -- 5. a run killed with SIGKILL --------------------------------------------------------------------


def test_killed_runs_are_recovered_nothing_lost_nothing_evaluated_twice(proj: Project) -> None:
    data = qs(*range(20))
    proj.data(data)
    calls = proj.killed_run(tag="k1", fail=("q2", "q5"), hang="q12")
    assert calls == qs(*range(13))  # q12 was in flight
    assert proj.journals()

    shown = show(proj.store, "x")  # the next command seals the dead run's journal
    assert "Status: Interrupted" in shown and "Samples: 10/20" in shown and "Errors: 2" in shown, shown
    assert not proj.journals()
    state = {p: resp(p, "k1") for p in qs(*range(12))} | {"q2": ERR, "q5": ERR}
    assert plain(proj.view()) == state

    # killed again: q1 and q3 left the dataset, two items are new, q2 heals, q5 fails again
    data = ["q20", "q2", "q5", "q4", "q13", "q14", "q0", *qs(*range(6, 12)), *qs(*range(15, 20)), "q21"]
    proj.data(data)
    calls = proj.killed_run(tag="k2", fail=("q5",), hang="q14")
    assert calls == ["q20", "q2", "q5", "q13", "q14"]

    # the next run seals the journal first (its view record drops q1 and q3, its results
    # replace the errors of q2 and q5), then evaluates what is left
    assert proj.run(tag="r3") == ["q5", "q14", *qs(15, 16, 17, 18, 19), "q21"]
    assert not proj.journals()
    state = {p: state[p] for p in data if p in state}
    state.update({p: resp(p, "k2") for p in ("q20", "q2", "q13")})
    state.update({p: resp(p, "r3") for p in ("q5", "q14", *qs(15, 16, 17, 18, 19), "q21")})
    assert plain(proj.view()) == state
    assert len(state) == len(data) == proj.record().total

    # the history keeps the recovered run: interrupted, with q5's error, before the last run
    store = Store(proj.store)
    last = read_head(store, "x").manifest
    assert last is not None and last.parent is not None
    recovered = load_manifest(store, last.parent)
    assert recovered.status == "interrupted"
    (ev,) = recovered.evaluations
    view = load_view(store, ev)
    held = {view.result(i)["item"][0]: view.flags[i] for i in range(len(view))}
    assert sorted(held) == sorted(["q20", "q2", "q5", "q4", "q13", "q0", *qs(*range(6, 12))])
    assert [p for p, f in held.items() if f != FLAG_OK] == ["q5"]


# -- 6. --rerun-changed ----------------------------------------------------------------------------


def test_rerun_changed_starts_a_new_line_that_reuses_only_equal_keys(proj: Project) -> None:
    data = qs(*range(8))
    proj.data(data)
    assert proj.run(tag="r1", fail=("q2",)) == data
    old = proj.view()
    assert proj.record().line == 1

    proj.write("eval_upper.py", EVAL_V2)
    assert proj.run(tag="r2", ret=1) == []  # refused before evaluating anything
    assert proj.view() == old

    assert proj.run("--rerun-changed", "--samples", "3", tag="r2") == qs(0, 1, 2)
    state = {p: resp(p, "r2") for p in qs(0, 1, 2)}
    assert plain(proj.view()) == state
    ev = proj.record()
    assert (ev.line, ev.total, ev.done, ev.errors) == (2, 8, 3, 0)

    # the new line goes on without the flag; nothing of line 1 is reused
    data = data[::-1]
    proj.data(data)
    assert proj.run(tag="r3") == [p for p in data if p not in state]
    state.update({p: resp(p, "r3") for p in data if p not in state})
    assert plain(proj.view()) == state
    assert proj.record().line == 2

    # back to the first code: a third line, which reuses line 1's finished results (same keys)
    # and evaluates only its error again
    proj.write("eval_upper.py", EVAL)
    assert proj.run("--rerun-changed", tag="r4") == ["q2"]
    assert plain(proj.view()) == {p: resp(p, "r4" if p == "q2" else "r1") for p in data}
    assert proj.record().line == 3
    assert proj.record().run["earlier"] == 7
    assert proj.run(tag="r5") == []


def test_a_killed_rerun_changed_run_goes_on_in_its_new_line(proj: Project) -> None:
    data = qs(*range(10))
    proj.data(data)
    assert proj.run(tag="r1") == data
    proj.write("eval_upper.py", EVAL_V2)
    assert proj.killed_run("--rerun-changed", tag="k", hang="q4") == qs(0, 1, 2, 3, 4)
    # the next run, without the flag, seals the dead run (line 2) and goes on with it
    assert proj.run(tag="r2") == qs(*range(4, 10))
    assert plain(proj.view()) == {p: resp(p, "k" if p in qs(0, 1, 2, 3) else "r2") for p in data}
    assert proj.record().line == 2


# -- 7. stores copied together ---------------------------------------------------------------------


def test_shards_in_two_stores_copied_together_join_into_one_view(proj: Project, tmp_path: Path) -> None:
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    data = qs(*range(14))
    proj.data(data)
    one = proj.run("--shard", "1/2", f"--store={a}", tag="a")
    where = shard_of(proj.record(store=a), data, 2)
    bad = next(p for p in data if where[p] == 2)
    two = proj.run("--shard", "2/2", f"--store={b}", tag="b", fail=(bad,))
    assert sorted(one + two) == sorted(data) and not set(one) & set(two)

    copy_into(b, a)
    assert Store(a).refs.read("x").diverged  # type: ignore[union-attr]
    shown = show(a, "x")  # joins the two lines
    assert "Samples: 13/14" in shown, shown
    state = {p: ERR if p == bad else resp(p, "a" if where[p] == 1 else "b") for p in data}
    assert plain(proj.view(store=a)) == state
    state_a = Store(a).refs.read("x")
    assert state_a is not None and not state_a.diverged and state_a.head.op == "merge"

    assert proj.run(f"--store={a}", tag="c") == [bad]
    state[bad] = resp(bad, "c")
    assert plain(proj.view(store=a)) == state
    assert proj.run(f"--store={a}", tag="d") == []


def test_lines_copied_together_keep_every_item_once_and_ok_wins(proj: Project, tmp_path: Path) -> None:
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    data = qs(*range(10))
    proj.data(data)
    assert proj.run(f"--store={a}", tag="a", fail=("q1", "q2")) == data
    proj.data([*data, "q10"])
    assert proj.run(f"--store={b}", tag="b", fail=("q2", "q3")) == [*data, "q10"]

    copy_into(b, a)
    show(a, "x")
    view = plain(proj.view(store=a))
    assert sorted(view) == sorted([*data, "q10"])
    assert view["q1"] == resp("q1", "b") and view["q3"] == resp("q3", "a")  # ok over error
    assert view["q2"] == ERR and view["q10"] == resp("q10", "b")
    for p in qs(0, *range(4, 10)):  # ok in both lines: either, once
        assert view[p] in (resp(p, "a"), resp(p, "b"))

    assert proj.run(f"--store={a}", tag="c") == ["q2"]  # data.json is b's: q10 is there
    view["q2"] = resp("q2", "c")
    assert plain(proj.view(store=a)) == view
    copy_into(a, b)  # and back: b's line is an ancestor of a's, nothing to join
    assert plain(proj.view(store=b)) == view


def test_lines_from_a_common_ancestor_join_by_item_and_occurrence(proj: Project, tmp_path: Path) -> None:
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    base = ["a", "q1", "q2", "a", "q3", "q4"]
    proj.data(base)
    assert proj.run(f"--store={a}", tag="r0", fail=("q2", "q3")) == base
    copy_into(a, b)  # b starts from a's experiment

    # a: q2 heals, q1 leaves, a third "a"; b: q3 heals, one "a" leaves, q5 comes
    proj.data(["a", "q2", "a", "q3", "q4", "a"])
    assert proj.run(f"--store={a}", tag="ra", fail=("q3",)) == ["q2", "q3", "a"]
    proj.data(["a", "q1", "q2", "q3", "q4", "q5"])
    assert proj.run(f"--store={b}", tag="rb", fail=("q2",)) == ["q2", "q3", "q5"]

    copy_into(b, a)
    show(a, "x")
    view = proj.view(store=a)
    assert view == {
        ("a", 0): resp("a", "r0", 0),
        ("a", 1): resp("a", "r0", 1),
        ("a", 2): resp("a", "ra", 0),
        ("q1", 0): resp("q1", "r0"),  # a dropped it, b still holds it: the union keeps it
        ("q2", 0): resp("q2", "ra"),  # ok in a, an error in b
        ("q3", 0): resp("q3", "rb"),  # an error in a, ok in b
        ("q4", 0): resp("q4", "r0"),
        ("q5", 0): resp("q5", "rb"),
    }
    # the next run reads the dataset against the joined view: nothing to evaluate, q1 goes
    proj.data(["a", "q2", "a", "q3", "q4", "a", "q5"])
    assert proj.run(f"--store={a}", tag="rc") == []
    del view[("q1", 0)]
    assert proj.view(store=a) == view


# -- diff pairs samples by item and occurrence ---------------------------------------------------


def test_diff_pairs_resumed_views_by_item_and_occurrence(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 2)
    data = [*qs(*range(10)), "q0"]
    proj.data(data[:4])
    proj.run(tag="x1", fail=("q6",))
    proj.data(data[::-1])
    proj.run(tag="x2", fail=("q6",))
    proj.data(data)
    proj.run(tag="x3")  # q6 heals: x is spread over many tables
    assert len(load_parts(Store(proj.store), proj.record().entries)) > 3
    other = [*qs(*range(12, 4, -1)), "q0", "q0", "q0"]
    proj.data(other)
    proj.run(tag="y1", experiment="y", fail=("q6",))

    report = diff_experiments(Store(proj.store), "x", "y")
    (d,) = report.evaluations
    assert (len(d.pairs), d.only_a, d.only_b) == (7, 4, 4)  # q0 twice, q5..q9 in both
    paired = {(d.table_a.item(ia)[0], d.table_a.occurrences[ia]) for ia, _ in d.pairs}  # type: ignore[union-attr]
    assert paired == {("q0", 0), ("q0", 1), *((p, 0) for p in qs(5, 6, 7, 8, 9))}
    for ia, ib in d.pairs:  # a pair is one sample: the same item and occurrence on both sides
        assert d.table_a.items[ia] == d.table_b.items[ib]  # type: ignore[union-attr]
        assert d.table_a.occurrences[ia] == d.table_b.occurrences[ib]  # type: ignore[union-attr]
    changed = list(changed_samples(Store(proj.store), report))
    assert [(c["item"]["prompt"], c["direction"]) for c in changed] == [("q6", "regressed")]


def test_a_dead_run_sealed_after_lines_were_copied_in_keeps_the_ok_results(
    proj: Project, tmp_path: Path
) -> None:
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    data = qs(*range(8))
    proj.data(data)
    assert proj.run(f"--store={a}", tag="a", fail=("q3",)) == data
    assert proj.run(f"--store={b}", tag="b") == data  # b's line is newer
    # on machine a, a run retries q3 (an error again) and dies in its next call
    proj.data([*data, "q8"])
    assert proj.killed_run(f"--store={a}", tag="k", fail=("q3",), hang="q8") == ["q3", "q8"]
    assert proj.journals(store=a)

    copy_into(b, a)  # b's results arrive before anything sealed the journal
    show(a, "x")  # seals the journal and joins the lines
    assert not proj.journals(store=a)
    view = plain(proj.view(store=a))
    assert sorted(view) == sorted(data)
    assert view["q3"] == resp("q3", "b")  # b holds an ok result: it wins over both errors


def test_a_dead_run_sealed_after_another_line_was_copied_in_keeps_that_line(
    proj: Project, tmp_path: Path
) -> None:
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    data = qs(*range(6))
    proj.data(data)
    assert proj.run(f"--store={a}", tag="a", fail=("q3",)) == data
    assert proj.run(f"--store={b}", tag="b") == data
    proj.write("eval_upper.py", EVAL_V2)
    assert proj.run(f"--store={b}", "--rerun-changed", tag="b2") == data  # b: line 2, new code
    proj.write("eval_upper.py", EVAL)
    proj.data([*data, "q8"])
    assert proj.killed_run(f"--store={a}", tag="k", fail=("q3",), hang="q8") == ["q3", "q8"]

    copy_into(b, a)
    show(a, "x")
    assert not proj.journals(store=a)
    store = Store(a)
    state = store.refs.read("x")
    assert state is not None
    lines = {}
    for h in state.heads:
        assert h.manifest is not None
        (ev,) = load_manifest(store, h.manifest).evaluations
        view = load_view(store, ev)
        lines[ev.line] = {view.item(i)[0]: view.result(i)["response"] or ERR for i in range(len(view))}
    # two lines of other code are never joined: both stay, each with its own samples
    assert lines == {
        1: {p: ERR if p == "q3" else resp(p, "a") for p in data},
        2: {p: resp(p, "b2") for p in data},
    }


# -- 8. doteval.storage --------------------------------------------------------------------------


def test_save_session_dropping_results_evaluates_exactly_those_again(proj: Project) -> None:
    data = qs(*range(10))
    proj.data(data)
    assert proj.run(tag="r1", fail=("q4",)) == data
    storage = get_storage_backend(proj.store)
    session = storage.load_session("x")
    assert session is not None and len(session["results"]) == 10
    session["results"] = [r for r in session["results"] if r["item"][0] not in ("q1", "q7")]
    storage.save_session("x", session)

    state = {p: resp(p, "r1") for p in data if p not in ("q1", "q7")} | {"q4": ERR}
    assert plain(proj.view()) == state
    assert proj.run(tag="r2") == qs(1, 4, 7)
    state.update({p: resp(p, "r2") for p in qs(1, 4, 7)})
    assert plain(proj.view()) == state
    assert proj.run(tag="r3") == []

    # a checkpoint of nothing: everything again
    session = storage.load_session("x")
    assert session is not None
    session["results"] = []
    storage.save_session("x", session)
    assert proj.view() == {}
    assert proj.record().entries is None
    assert proj.run(tag="r4") == data
    assert plain(proj.view()) == {p: resp(p, "r4") for p in data}

    # duplicates: dropping one occurrence re-evaluates that occurrence only
    proj.data([*data, "q0", "q0"])
    assert proj.run(tag="r5") == ["q0", "q0"]
    session = storage.load_session("x")
    assert session is not None
    keys = [r["sample_key"] for r in session["results"] if r["item"][0] == "q0"]
    assert len(set(keys)) == 3
    dropped = next(r for r in session["results"] if r["response"] == resp("q0", "r5", 0))
    session["results"] = [r for r in session["results"] if r is not dropped]
    storage.save_session("x", session)
    assert proj.run(tag="r6") == ["q0"]
    view = proj.view()
    assert view[("q0", 1)] == resp("q0", "r6") and view[("q0", 2)] == resp("q0", "r5", 1)
    assert len(view) == 12


# -- 9. a view over many tables ------------------------------------------------------------------


def test_a_view_over_many_small_tables_resumes_exactly(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 3)
    rng = random.Random(9)
    data = qs(*range(20))
    proj.data(data)
    assert proj.run(tag="r1", fail=("q1", "q6", "q11")) == data
    state = {p: ERR if p in qs(1, 6, 11) else resp(p, "r1") for p in data}
    assert plain(proj.view()) == state
    parts = load_parts(Store(proj.store), proj.record().entries)
    assert [p.length for p in parts] == [3] * 6 + [2]

    data = [p for p in data if p not in ("q0", "q10")] + qs(20, 21, 22, 23)
    rng.shuffle(data)
    proj.data(data)
    expected = [p for p in data if p in qs(1, 6, 11, 20, 21, 22, 23)]
    assert proj.run(tag="r2", fail=("q6", "q22")) == expected
    state = {p: state.get(p, "") for p in data}
    state.update({p: ERR if p in ("q6", "q22") else resp(p, "r2") for p in expected})
    assert plain(proj.view()) == state

    data = [p for p in data if p not in qs(2, 3, 4, 21)]
    rng.shuffle(data)
    proj.data(data)
    assert proj.run(tag="r3") == [p for p in data if p in ("q6", "q22")]
    state = {p: state[p] for p in data}
    state.update({p: resp(p, "r3") for p in ("q6", "q22")})
    assert plain(proj.view()) == state

    ev = proj.record()
    parts = load_parts(Store(proj.store), ev.entries)
    assert len(parts) >= 8 and all(p.length <= 3 for p in parts)
    assert any(len(p.rows) < p.length for p in parts)  # rows cleared in the middle of tables
    assert sum(len(p.rows) for p in parts) == len(data) == ev.total == ev.done

    # the same through gc (which repacks) and a last resume
    collect_garbage(Store(proj.store), prune=0.0)
    assert plain(proj.view()) == state
    rng.shuffle(data)
    proj.data(data)
    assert proj.run(tag="r4") == []
    assert plain(proj.view()) == state


# -- every kind of change at random, against an oracle ----------------------------------------------

WORLD = types.SimpleNamespace(data=[], calls=[], seen={}, fail=set(), fail_calls=set(), tag="", stop_at=None)


def _model(prompt: str) -> Result:
    WORLD.calls.append(prompt)
    k = WORLD.seen.get(prompt, 0)
    WORLD.seen[prompt] = k + 1
    if WORLD.stop_at is not None and len(WORLD.calls) > WORLD.stop_at:
        raise SystemExit("killed")  # never recorded: the sample in flight
    if prompt in WORLD.fail or (prompt, k) in WORLD.fail_calls:
        raise ValueError(f"no answer for {prompt}")
    response = f"{prompt.upper()}#{WORLD.tag}.{k}"
    return Result(True, prompt=prompt, response=response)


WORLD.model = _model


def make_eval() -> Any:
    # Built in a function: a module-level @foreach would be collected by the doteval plugin.
    @foreach("prompt,expected", [(p, p.upper()) for p in WORLD.data])
    def eval_oracle(prompt: str, expected: str) -> Result:
        return WORLD.model(prompt)

    return eval_oracle


NODE = "eval_oracle.py::eval_oracle"


def lib_run(store: Store, name: str, **options: Any) -> tuple[Any, bool]:
    """One run through ``ExperimentRun`` as the plugin drives it; its dry-run plan, and
    whether it was killed (its journal is left behind, its lock released)."""
    WORLD.calls, WORLD.seen = [], {}
    run = ExperimentRun(store, RunOptions(experiment=name, **options))
    run.open()
    spec = get_spec(make_eval())
    assert spec is not None
    prepared = run.prepare(NODE, spec)
    params = params_fingerprint({})
    try:
        plan = run.plan(prepared, params)
        run.run_evaluation(prepared, {}, params)
    except SystemExit:
        assert run.recorder is not None and run.recorder.journal is not None
        run.recorder.journal.close()  # what the kernel does for a killed process
        assert run._transaction is not None
        run._transaction.close()  # the kernel drops a dead process's lock
        return plan, True
    except BaseException:
        run.close()
        raise
    run.close()
    return plan, False


def tokens(data: list[str]) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    out = []
    for p in data:
        out.append((p, seen.get(p, 0)))
        seen[p] = seen.get(p, 0) + 1
    return out


POOL = [f"p{i}" for i in range(24)]
STEPS = itertools.count(1)


class Oracle:
    """One experiment, run again and again over a dataset changed at random; ``state`` is
    what its view must hold: (prompt, occurrence) -> response, or ERR."""

    def __init__(self, store: Store, rng: random.Random, data: list[str], name: str = "o") -> None:
        self.store, self.rng, self.data, self.name = store, rng, data, name
        WORLD.data = data
        spec = get_spec(make_eval())
        assert spec is not None
        self.fingerprint = code_fingerprint(spec.func, columns=spec.columns, options=spec.options).digest
        self.params_digest = params_fingerprint({}).digest
        self.state: dict[tuple[str, int], str] = {}
        # every ok result the experiment's history holds since the last save_session, with
        # the step that made it: a run reuses the newest for a sample its view lacks
        self.history: dict[tuple[str, int], tuple[int, str]] = {}
        self.kinds: dict[str, int] = {}

    def count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def change_data(self) -> None:
        rng, data = self.rng, self.data
        if rng.random() < 0.5:
            rng.shuffle(data)
        for _ in range(rng.randint(0, 4)):
            data.insert(rng.randint(0, len(data)), rng.choice(POOL))  # duplicates too
        for _ in range(rng.randint(0, 3)):
            if data:
                data.pop(rng.randrange(len(data)))

    def in_shard(self, t: tuple[str, int], shard: tuple[int, int]) -> bool:
        item = encode((t[0], t[0].upper()))
        return in_shard(sample_key(self.fingerprint, self.params_digest, item, t[1]), shard)

    def step(self, tag: str, *, kills: bool = True, check_store: bool = False) -> None:
        """Change the dataset, run once (in full, --samples, --shard; killed or not), and
        check the calls made, the dry-run plan and the view."""
        rng = self.rng
        self.change_data()
        WORLD.data = self.data
        WORLD.fail = set(rng.sample(POOL, 3))
        WORLD.fail_calls = {(rng.choice(POOL), rng.randint(0, 2)) for _ in range(2)}
        WORLD.tag = tag
        WORLD.stop_at = None

        toks = tokens(self.data)
        options: dict[str, Any] = {}
        selected, complete = toks, True
        mode = rng.random()
        if mode < 0.2:
            k = rng.randint(0, len(toks) + 1)
            options["samples"] = k
            selected, complete = toks[:k], k >= len(toks)
        elif mode < 0.4:
            n = rng.randint(2, 3)
            shard = (rng.randint(1, n), n)
            options["shard"] = shard
            selected, complete = [t for t in toks if self.in_shard(t, shard)], False
        lacking = [t for t in selected if self.state.get(t, ERR) == ERR]
        need = [t for t in lacking if t not in self.history]
        killed_after = None
        if kills and need and rng.random() < 0.2:
            killed_after = WORLD.stop_at = rng.randrange(len(need))

        plan, killed = lib_run(self.store, self.name, **options)
        assert killed == (killed_after is not None), tag
        self.count(
            "killed"
            if killed
            else "samples"
            if "samples" in options
            else "shard"
            if "shard" in options
            else "full"
        )

        # the model was called for exactly the samples without an ok result, in dataset order
        called = need if killed_after is None else need[: killed_after + 1]
        assert WORLD.calls == [p for p, _ in called], tag
        assert (plan.evaluate, plan.retry, plan.reuse) == (
            len(need),
            sum(1 for t in need if t in self.state),
            len(selected) - len(need),
        ), tag
        assert plan.dropped == (sum(1 for t in self.state if t not in set(toks)) if complete else 0), tag

        for t in lacking:
            if t in self.history:
                self.state[t] = self.history[t][1]
        step = next(STEPS)  # one count for every oracle: which result is newer
        seen: dict[str, int] = {}
        for t in need if killed_after is None else need[:killed_after]:
            k = seen.get(t[0], 0)
            seen[t[0]] = k + 1
            failed = t[0] in WORLD.fail or (t[0], k) in WORLD.fail_calls
            self.state[t] = ERR if failed else resp(t[0], tag, k)
            if not failed:
                self.history[t] = (step, self.state[t])
        if complete:  # items that left the dataset leave the view (also when the run was killed)
            self.state = {t: self.state[t] for t in toks if t in self.state}

        journals = self.store.root / "journals" / self.name
        if killed:
            assert list(journals.glob("*.journal"))
            if rng.random() < 0.5:
                self.count("sealed by the next run")
                return  # the next run seals it, after the dataset changed again
            seal_dead(self.store.root, self.name)  # the next writer seals the dead run
            assert not list(journals.glob("*.journal"))
        if self.state or read_head(self.store, self.name).manifest is not None:
            assert view_of(self.store.root, self.name, check_store=check_store) == self.state, tag
            if complete and not killed:
                assert current(self.store, self.name).total == len(toks), tag

    def checkpoint(self) -> None:
        """save_session without a few results: the view forgets exactly those."""
        storage = get_storage_backend(self.store.root)
        session = storage.load_session(self.name)
        assert session is not None
        drop = set(self.rng.sample(sorted(self.state), self.rng.randint(1, min(3, len(self.state)))))
        view = load_view(self.store, current(self.store, self.name))
        keys = {view.key(i).hex() for i in range(len(view)) if (view.item(i)[0], view.occurrences[i]) in drop}
        session["results"] = [r for r in session["results"] if r["sample_key"] not in keys]
        storage.save_session(self.name, session)
        self.state = {t: r for t, r in self.state.items() if t not in drop}
        self.history = {t: (0, r) for t, r in self.state.items() if r != ERR}  # what the save kept
        assert view_of(self.store.root, self.name, check_store=False) == self.state
        self.count("save_session")


def test_random_changes_and_runs_match_an_oracle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 4)
    rng = random.Random(20240611)
    oracle = Oracle(Store(tmp_path / "store"), rng, rng.sample(POOL, 10))
    for step in range(60):
        oracle.step(f"t{step}", check_store=step % 10 == 9)
        journals = oracle.store.root / "journals" / oracle.name
        if oracle.state and not list(journals.glob("*.journal")) and rng.random() < 0.1:
            oracle.checkpoint()
    kinds = ("full", "samples", "shard", "killed", "save_session", "sealed by the next run")
    assert all(oracle.kinds.get(k, 0) >= 2 for k in kinds), oracle.kinds
    report = fsck(oracle.store)
    assert report.ok, [p.to_json() for p in report.problems]


def test_random_lines_copied_together_join_as_a_union(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 3)
    rng = random.Random(77)
    joined = 0
    for trial in range(8):
        root = tmp_path / f"trial{trial}"
        a = Oracle(Store(root / "a"), rng, rng.sample(POOL, 8))
        for i in range(rng.randint(1, 2)):
            a.step(f"c{trial}.{i}", kills=False)
        copy_into(root / "a", root / "b")  # b starts from a's experiment
        b = Oracle(Store(root / "b"), rng, list(a.data))
        b.state, b.history = dict(a.state), dict(a.history)
        sides = {"a": a, "b": b}
        for i in range(rng.randint(2, 5)):
            side = rng.choice("ab")
            sides[side].step(f"{side}{trial}.{i}", kills=False)

        copy_into(root / "b", root / "a")
        a.store = Store(root / "a")  # see test_a_store_kept_open_across_a_copy_finds_its_own_packs
        refs = a.store.refs.read("o")
        assert refs is not None
        diverged = refs.diverged
        b_head = b.store.refs.read("o")
        assert b_head is not None
        seal_dead(a.store.root, "o")  # the next writer joins the lines
        view = view_of(a.store.root, "o")
        if not diverged:  # one side did not move: the other is its descendant
            assert view == (b.state if refs.head.id == b_head.head.id else a.state), trial
            continue
        joined += 1
        assert sorted(view) == sorted(set(a.state) | set(b.state)), trial
        for t, got in view.items():
            oks = [s.state[t] for s in (a, b) if s.state.get(t, ERR) != ERR]
            assert got in oks if oks else got == ERR, (trial, t, got, oks)
        # the joined view resumes like any other: a run over a's dataset, with both histories
        a.state = view
        a.history = {
            t: max(a.history.get(t, (-1, "")), b.history.get(t, (-1, ""))) for t in {*a.history, *b.history}
        }
        a.step(f"after{trial}", kills=False, check_store=True)
    assert joined >= 4


def test_a_journal_sealed_again_after_a_crash_in_its_seal_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "TABLE_ROWS", 3)
    store = Store(tmp_path / "store")
    WORLD.data = [f"p{i}" for i in range(8)]
    WORLD.fail, WORLD.fail_calls, WORLD.tag, WORLD.stop_at = {"p2"}, set(), "t1", None
    lib_run(store, "o")
    assert len(WORLD.calls) == 8

    WORLD.data = ["p8", *[p for p in WORLD.data if p != "p1"], "p9"]
    WORLD.tag, WORLD.stop_at = "t2", 2  # p8, then p2 (an error again), then killed in p9
    assert lib_run(store, "o")[1]
    assert WORLD.calls == ["p8", "p2", "p9"]
    (journal,) = (store.root / "journals" / "o").glob("*.journal")
    saved = journal.read_bytes()

    seal_dead(store.root, "o")
    expected = {(p, 0): resp(p, "t1") for p in ("p0", "p3", "p4", "p5", "p6", "p7")}
    expected.update({("p2", 0): ERR, ("p8", 0): resp("p8", "t2")})
    assert view_of(store.root, "o") == expected
    # a crash after the seal's ref record and before the journal's removal: sealed again
    journal.write_bytes(saved)
    seal_dead(store.root, "o")
    assert not journal.exists()
    assert view_of(store.root, "o") == expected

    WORLD.fail, WORLD.tag, WORLD.stop_at = set(), "t3", None
    assert not lib_run(store, "o")[1]
    assert WORLD.calls == ["p2", "p9"]
    expected.update({("p2", 0): resp("p2", "t3"), ("p9", 0): resp("p9", "t3")})
    assert view_of(store.root, "o") == expected


def test_a_store_kept_open_across_a_copy_finds_its_own_packs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    store = Store(a)  # a long-lived process: a notebook, a service
    WORLD.fail, WORLD.fail_calls, WORLD.stop_at = set(), set(), None
    WORLD.data, WORLD.tag = ["p0", "p1", "p2"], "t1"
    lib_run(store, "o")
    copy_into(a, b)  # b: a copy of a, folder times kept
    WORLD.data, WORLD.tag = ["p0", "p1", "p2", "p3"], "t2"
    lib_run(store, "o")  # a new pack in a
    copy_into(b, a)  # b copied back into a: a/packs gets b/packs' time, the one this Store saw
    WORLD.data, WORLD.tag = ["p0", "p1", "p2", "p3", "p4"], "t3"
    lib_run(store, "o")
    assert WORLD.calls == ["p4"]
