"""Comparing experiments (doteval._operations.diff) on stores built by driving the runner directly.

``build_stores`` writes the experiments that this file, ``test_cli_inspect.py``
and ``test_cli_compare.py`` read (each module builds its own copy once). Every
number the diff reports is checked against a computation done here from the
exported samples, not from the diff's own tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from doteval import Result, exact_match, foreach
from doteval._objects import Store
from doteval._operations.diff import changed_samples, diff_experiments
from doteval._operations.export import iter_rows
from doteval._operations.stats import mcnemar_exact
from doteval._repository.history import resolve
from doteval._repository.manifest import Manifest
from doteval._running.experiment_run import ExperimentRun, RunOptions
from doteval._running.fingerprint import params_fingerprint
from doteval._running.foreach import get_spec
from doteval._running.retries import RetryPolicy
from doteval.errors import ExperimentNotFoundError

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("diff")

# ---------------------------------------------------------------- building stores

NODE = "evals/eval_qa.py::eval_qa"
OTHER_NODE = "evals/eval_other.py::eval_other"
MODEL_A = {"name": "m-a"}
MODEL_B = {"name": "m-b"}


def rows(indices: Iterable[int]) -> list[tuple[str, str]]:
    """Dataset items ``("q<i>", "A<i>")``: the right answer to ``q<i>`` is ``A<i>``."""
    return [(f"q{i}", f"A{i}") for i in indices]


class Model:
    """A deterministic model: right on the items in ``right``, raising for those in ``fail``."""

    def __init__(self, right: Iterable[int], fail: dict[int, type[Exception]] | None = None) -> None:
        self.right = set(right)
        self.fail = dict(fail or {})
        self.calls = 0

    def generate(self, prompt: str) -> str:
        self.calls += 1
        i = int(prompt[1:])
        if i in self.fail:
            raise self.fail[i](f"model failed on {prompt}")
        return f"A{i}" if i in self.right else "wrong"


def eval_v1(dataset: list[tuple[str, str]]) -> Any:
    @foreach("prompt,expected", dataset)
    def eval_qa(prompt, expected, model):
        response = model.generate(prompt)
        return Result(exact_match(response, expected), prompt=prompt, response=response)

    return eval_qa


def eval_v2(dataset: list[tuple[str, str]]) -> Any:
    """The same evaluation with one line changed (a code change)."""

    @foreach("prompt,expected", dataset)
    def eval_qa(prompt, expected, model):
        response = model.generate(prompt).strip()
        return Result(exact_match(response, expected), prompt=prompt, response=response)

    return eval_qa


def record(
    store: Store,
    experiment: str,
    evaluation: Any,
    model: Model,
    *,
    params: dict[str, Any],
    node: str = NODE,
    **options: Any,
) -> Manifest | None:
    """One run of one evaluation into ``experiment``; ``params`` are what the store records."""
    run = ExperimentRun(store, RunOptions(experiment=experiment, retry=RetryPolicy(max_retries=0), **options))
    run.open()
    try:
        spec = get_spec(evaluation)
        assert spec is not None
        prepared = run.prepare(node, spec)
        run.run_evaluation(prepared, fixtures={"model": model}, params=params_fingerprint({"model": params}))
    finally:
        manifest = run.close()
    return manifest


# Items of A (q0..q19, right on 0..13) and of B (q0, q1 replaced by q20, q21; q22 added;
# right on 4..22). Over the 18 shared items (q2..q19): A right on q2..q13, B on q4..q19.
A_ITEMS = list(range(20))
B_ITEMS = [20, 21, *range(2, 20), 22]
A_RIGHT = set(range(14))
B_RIGHT = set(range(4, 23))
ERROR_TYPES = {2: ValueError, 5: ValueError, 7: RuntimeError}


def build_stores(path: Path) -> Path:
    """Every experiment the inspection and comparison tests read.

    - ``two``: 10 items, then the same 12 items later (``two~1`` is the first run);
      its two runs enclose all the others in time, so ``log`` interleaves them.
    - ``A``, ``B``: see ``A_ITEMS`` / ``B_ITEMS``; B also has changed code and params.
    - ``errs``: 10 items, 3 errors (2 ``ValueError``, 1 ``RuntimeError``).
    - ``chg``: new evaluation, code change, params change (both with --rerun-changed),
      then 2 items dropped.
    - ``fixed``: 1 error, then the same run again with the error gone.
    - ``far``: items no other experiment has, under another node id.
    - ``good`` / ``bad``: the same 20 items, right on all / on 5 of them.
    """
    store = Store(path)
    with pytest.MonkeyPatch.context() as mp:
        # Manifests then record no commit of whatever repository the tests run in.
        mp.setattr("doteval._repository.run_journal.git_commit", lambda cwd=None: None)
        record(store, "two", eval_v1(rows(range(10))), Model(range(10)), params=MODEL_A)
        record(store, "A", eval_v1(rows(A_ITEMS)), Model(A_RIGHT), params=MODEL_A)
        record(store, "B", eval_v2(rows(B_ITEMS)), Model(B_RIGHT), params=MODEL_B)
        record(store, "errs", eval_v1(rows(range(10))), Model(range(10), ERROR_TYPES), params=MODEL_A)
        record(store, "chg", eval_v1(rows(range(5))), Model(range(5)), params=MODEL_A)
        record(store, "chg", eval_v2(rows(range(5))), Model(range(5)), params=MODEL_A, rerun_changed=True)
        record(store, "chg", eval_v2(rows(range(5))), Model(range(5)), params=MODEL_B, rerun_changed=True)
        record(store, "chg", eval_v2(rows(range(3))), Model(range(5)), params=MODEL_B)
        record(store, "fixed", eval_v1(rows(range(6))), Model(range(6), {1: ValueError}), params=MODEL_A)
        record(store, "fixed", eval_v1(rows(range(6))), Model(range(6)), params=MODEL_A)
        record(
            store, "far", eval_v1(rows(range(100, 105))), Model(range(200)), params=MODEL_A, node=OTHER_NODE
        )
        record(store, "good", eval_v1(rows(range(20))), Model(range(20)), params=MODEL_A)
        record(store, "bad", eval_v1(rows(range(20))), Model(range(5)), params=MODEL_A)
        record(store, "two", eval_v1(rows(range(12))), Model(range(12)), params=MODEL_A)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(build_stores(tmp_path_factory.mktemp("diff") / "store"))


# ---------------------------------------------------------------- an independent computation


def exported_scores(store: Store, spec: str) -> dict[str, bool | None]:
    """prompt -> exact_match of each sample of ``spec`` (None for an error), read through export."""
    out: dict[str, bool | None] = {}
    for row in iter_rows(store, resolve(store, spec)):
        out[row["item"]["prompt"]] = None if row["status"] == "error" else row["scores"]["exact_match"]
    return out


def by_hand(store: Store, a: str, b: str) -> dict[str, Any]:
    sa, sb = exported_scores(store, a), exported_scores(store, b)
    common = [p for p in sa if p in sb]
    both = [p for p in common if sa[p] is not None and sb[p] is not None]
    improved = sorted(p for p in both if not sa[p] and sb[p])
    regressed = sorted(p for p in both if sa[p] and not sb[p])
    return {
        "paired": len(common),
        "only_a": len(sa) - len(common),
        "only_b": len(sb) - len(common),
        "n": len(both),
        "a": sum(bool(sa[p]) for p in both) / len(both) if both else None,
        "b": sum(bool(sb[p]) for p in both) / len(both) if both else None,
        "improved": improved,
        "regressed": regressed,
        "unchanged": len(both) - len(improved) - len(regressed),
    }


def prompts(indices: Iterable[int]) -> list[str]:
    return sorted(f"q{i}" for i in indices)


# ---------------------------------------------------------------- pairing and metrics


def test_a_and_b_pair_by_item_and_every_number_matches_a_hand_computation(store: Store) -> None:
    report = diff_experiments(store, "A", "B")
    assert [e.name for e in report.evaluations] == [NODE]
    assert report.only_in_a == [] and report.only_in_b == []
    d = report.evaluations[0]
    hand = by_hand(store, "A", "B")
    # The design of the fixture, and the hand computation from the exported rows, agree.
    assert hand["improved"] == prompts(range(14, 20))
    assert hand["regressed"] == prompts([2, 3])
    assert (hand["paired"], hand["only_a"], hand["only_b"], hand["unchanged"]) == (18, 2, 3, 10)

    assert (len(d.pairs), d.only_a, d.only_b) == (hand["paired"], hand["only_a"], hand["only_b"])
    [m] = d.metrics
    assert (m.score, m.metric) == ("exact_match", "accuracy")
    c = m.comparison
    assert c.n == hand["n"] == 18
    assert c.mean_a == pytest.approx(hand["a"]) == pytest.approx(12 / 18)
    assert c.mean_b == pytest.approx(hand["b"]) == pytest.approx(16 / 18)
    assert c.delta == pytest.approx(hand["b"] - hand["a"]) == pytest.approx(4 / 18)
    assert (c.improved, c.regressed, c.unchanged) == (6, 2, 10)
    assert c.binary
    # Exact McNemar on 2 pairs 1 -> 0 and 6 pairs 0 -> 1: 2 * P(X <= 2), X ~ Bin(8, 1/2).
    assert c.p_value == mcnemar_exact(2, 6) == 2 * (1 + 8 + 28) / 2**8
    assert c.ci_low <= c.delta <= c.ci_high
    assert -1 <= c.ci_low < 0 < c.ci_high <= 1  # 6 vs 2 of 18 is not conclusive
    assert (c.confidence, c.resamples) == (0.95, 2000)
    assert not m.significant and not m.regressed
    assert report.regressions == [] and not report.nothing_in_common


def test_the_diff_reads_no_result_and_changed_samples_reads_only_the_changed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real_get = store.objects.get_bytes

    def counting_get(object_id: str, **kwargs: Any) -> Any:
        reads.append(object_id)
        return real_get(object_id, **kwargs)

    monkeypatch.setattr(store.objects, "get_bytes", counting_get)
    report = diff_experiments(store, "A", "B")
    # Manifests, views, sample tables and code objects (the code differs): no result.
    details = {p.details_id for d in report.evaluations for t in (d.table_a, d.table_b) for p in t.parts}
    assert reads and not details & set(reads)
    reads.clear()
    listed = list(changed_samples(store, report))
    assert len(listed) == 8 and sorted(reads) == sorted(details)  # each side's results once


def test_changed_samples_are_exactly_the_items_whose_score_moved(store: Store) -> None:
    report = diff_experiments(store, "A", "B")
    listed = list(changed_samples(store, report))
    assert sorted(s["item"]["prompt"] for s in listed) == prompts([2, 3, *range(14, 20)])
    for s in listed:
        i = int(s["item"]["prompt"][1:])
        assert s["item"] == {"prompt": f"q{i}", "expected": f"A{i}"}
        assert s["evaluation"] == NODE
        assert s["direction"] == ("regressed" if i in (2, 3) else "improved")
        assert s["a"]["scores"] == {"exact_match": i in A_RIGHT}
        assert s["b"]["scores"] == {"exact_match": i in B_RIGHT}
        assert s["a"]["response"] == (f"A{i}" if i in A_RIGHT else "wrong")
        assert s["b"]["response"] == (f"A{i}" if i in B_RIGHT else "wrong")
        assert s["a"]["error"] is None and s["b"]["error"] is None
        assert s["a"]["key"] != s["b"]["key"]  # other code and params: other keys, same item

    worse = list(changed_samples(store, report, regressions_only=True))
    assert sorted(s["item"]["prompt"] for s in worse) == prompts([2, 3])
    assert {s["direction"] for s in worse} == {"regressed"}


def test_errored_samples_are_left_out_of_the_metric_but_listed_as_changes(store: Store) -> None:
    # errs (q0..q9, errors on q2, q5, q7) against A (right on q0..q13).
    report = diff_experiments(store, "errs", "A")
    d = report.evaluations[0]
    assert (len(d.pairs), d.only_a, d.only_b) == (10, 0, 10)
    c = d.metrics[0].comparison
    hand = by_hand(store, "errs", "A")
    assert c.n == hand["n"] == 7
    assert (c.improved, c.regressed, c.unchanged) == (0, 0, 7)
    assert c.delta == 0 and c.p_value == 1.0
    fixed_now = list(changed_samples(store, report))
    assert sorted(s["item"]["prompt"] for s in fixed_now) == prompts(ERROR_TYPES)
    assert {s["direction"] for s in fixed_now} == {"improved"}
    assert {s["a"]["error"]["type"] for s in fixed_now} == {"ValueError", "RuntimeError"}
    assert list(changed_samples(store, report, regressions_only=True)) == []

    back = diff_experiments(store, "A", "errs")
    worse = list(changed_samples(store, back, regressions_only=True))
    assert sorted(s["item"]["prompt"] for s in worse) == prompts(ERROR_TYPES)
    assert all(s["b"]["error"] and s["b"]["scores"] == {} for s in worse)


def test_a_significant_regression_and_the_reverse_improvement(store: Store) -> None:
    report = diff_experiments(store, "good", "bad")
    [m] = report.evaluations[0].metrics
    c = m.comparison
    assert (c.n, c.improved, c.regressed, c.unchanged) == (20, 0, 15, 5)
    assert c.delta == pytest.approx(-0.75)
    assert c.p_value == mcnemar_exact(15, 0) == 2 / 2**15
    assert c.ci_high < 0
    assert m.significant and m.regressed
    assert [(e.name, x.score) for e, x in report.regressions] == [(NODE, "exact_match")]

    reverse = diff_experiments(store, "bad", "good")
    [r] = reverse.evaluations[0].metrics
    assert r.significant and not r.regressed and r.comparison.delta == pytest.approx(0.75)
    assert reverse.regressions == []


def test_experiments_with_nothing_in_common(store: Store) -> None:
    report = diff_experiments(store, "A", "far")
    assert report.nothing_in_common
    # One evaluation on each side under different node ids: compared as one renamed evaluation.
    [d] = report.evaluations
    assert d.name == f"{NODE} vs {OTHER_NODE}"
    assert (len(d.pairs), d.only_a, d.only_b) == (0, 20, 5)
    [m] = d.metrics
    assert m.comparison.n == 0 and m.comparison.p_value is None and not m.significant
    assert report.regressions == []
    assert list(changed_samples(store, report)) == []
    doc = report.to_json()
    json.dumps(doc, allow_nan=False)  # no NaN leaks into JSON
    metric = doc["evaluations"][0]["metrics"][0]
    assert metric["a"] is None and metric["b"] is None and metric["delta"] is None
    assert metric["ci"] == [None, None]
    assert doc["nothing_in_common"] is True


def test_code_and_params_differences_are_reported(store: Store) -> None:
    d = diff_experiments(store, "A", "B").evaluations[0]
    assert d.code_changed
    assert "-    response = model.generate(prompt)" in d.code
    assert "+    response = model.generate(prompt).strip()" in d.code
    assert d.params == ["model.name: 'm-a' -> 'm-b'"]
    doc = d.to_json()
    assert doc["code_changed"] is True and doc["code_diff"] == d.code
    assert doc["params_changed"] == ["model.name: 'm-a' -> 'm-b'"]

    same = diff_experiments(store, "A", "A").evaluations[0]
    assert not same.code_changed and same.code == [] and same.params == []
    c = same.metrics[0].comparison
    assert (c.n, c.improved, c.regressed, c.unchanged, c.delta, c.p_value) == (20, 0, 0, 20, 0, 1.0)
    assert (c.ci_low, c.ci_high) == (0, 0)


def test_revisions_of_one_experiment_compare(store: Store) -> None:
    report = diff_experiments(store, "two~1", "two")
    assert report.a.label.startswith("two@") and report.b.label == "two"
    d = report.evaluations[0]
    assert (len(d.pairs), d.only_a, d.only_b) == (10, 0, 2)
    assert not d.code_changed and d.params == []
    assert d.metrics[0].comparison.delta == 0


def test_the_bootstrap_seed_makes_the_interval_reproducible(store: Store) -> None:
    first = diff_experiments(store, "A", "B", seed=7).evaluations[0].metrics[0].comparison
    again = diff_experiments(store, "A", "B", seed=7).evaluations[0].metrics[0].comparison
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert diff_experiments(store, "A", "B", seed=7).seed == 7
    assert math.isfinite(first.ci_low) and math.isfinite(first.ci_high)


def test_unknown_experiment_is_a_not_found_error(store: Store) -> None:
    with pytest.raises(ExperimentNotFoundError, match="no experiment named 'nope'"):
        diff_experiments(store, "A", "nope")
