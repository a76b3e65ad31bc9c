"""doteval: LLM evaluations under pytest, kept in a resumable, content-addressed store.

    from doteval import foreach, Result
    from doteval.evaluators import exact_match

    @foreach("prompt,expected", dataset)
    def eval_math(prompt, expected, model):
        response = model.generate(prompt)
        return Result(exact_match(response, expected), prompt=prompt, response=response)

Run it with ``pytest eval_math.py --experiment NAME`` (or ``doteval run``);
running the same command again resumes where it stopped.

Importing doteval never imports typer or rich: those belong to the CLI.
"""

from __future__ import annotations

from doteval._repository.results import Result, Score
from doteval._running.call_cache import cached
from doteval._running.foreach import foreach
from doteval._running.retries import is_transient
from doteval._version import __version__ as __version__
from doteval.errors import DotevalError
from doteval.evaluators import evaluator, exact_match, numeric_match, valid_json
from doteval.metrics import accuracy, count, mean, metric, std

__all__ = [
    "DotevalError",
    "Result",
    "Score",
    "accuracy",
    "cached",
    "count",
    "evaluator",
    "exact_match",
    "foreach",
    "is_transient",
    "mean",
    "metric",
    "numeric_match",
    "std",
    "valid_json",
]
