"""Evaluations the suite drives through the library directly (no pytest).

``drive`` runs one evaluation of one experiment exactly as the pytest plugin
does (``ExperimentRun``: open, prepare, run_evaluation, close), which is the
fast way to build large stores: no collection, no pytest startup. The eval
functions live in this file so that doteval can fingerprint their source.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench.data import arithmetic_answer, chat_response
from doteval import Result, foreach
from doteval._objects import Store
from doteval._running.experiment_run import EvaluationOutcome, ExperimentRun, RunOptions
from doteval._running.fingerprint import params_fingerprint
from doteval._running.foreach import get_spec
from doteval.evaluators import exact_match


@foreach("prompt,expected", [])
def eval_arith(prompt, expected):
    response = arithmetic_answer(prompt)
    return Result(exact_match(response, expected), prompt=prompt, response=response)


@foreach("prompt,expected", [])
def eval_arith_v2(prompt, expected):
    # a "new model" for diff: right more often than eval_arith
    response = arithmetic_answer(prompt)
    if len(prompt) % 4 == 0:
        response = str(eval(prompt[8:-1]))
    return Result(exact_match(response, expected), prompt=prompt, response=response)


@foreach("prompt,topic", [])
def eval_chat(prompt, topic):
    response = chat_response(prompt)
    return Result(
        scores={"mentions_topic": topic in response, "length": len(response)},
        prompt=prompt,
        response=response,
    )


EVALS = {"arith": eval_arith, "arith_v2": eval_arith_v2, "chat": eval_chat}
NODE_IDS = {
    "arith": "eval_bench.py::eval_arith",
    "arith_v2": "eval_bench.py::eval_arith",  # same evaluation, new code: diff pairs them
    "chat": "eval_bench.py::eval_chat",
}


def drive(
    store: Store | Path | str,
    experiment: str,
    which: str,
    items: list[Any],
    *,
    samples: int | None = None,
    rerun_changed: bool = False,
) -> EvaluationOutcome:
    """One run of one evaluation into ``store``, the way the pytest plugin runs it."""
    st = store if isinstance(store, Store) else Store(Path(store))
    spec = get_spec(EVALS[which])
    assert spec is not None
    spec = dataclasses.replace(spec, dataset=items)
    options = RunOptions(
        experiment=experiment,
        samples=samples,
        rerun_changed=rerun_changed,
        command=["python", "-m", "bench", experiment],
    )
    run = ExperimentRun(st, options)
    run.open()
    try:
        prepared = run.prepare(NODE_IDS[which], spec)
        outcome = run.run_evaluation(prepared, {}, params_fingerprint({}))
    finally:
        run.close()
    return outcome
