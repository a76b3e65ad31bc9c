"""Which samples a metric covers, said next to its value (issue 11, item 12).

Errored samples are left out of a metric (the original doteval counted them as
wrong: 0.25 where doteval says 0.5); the run summary and ``show`` say so.
"""

from __future__ import annotations

import re

import pytest
from test_run_resume import Project, output

EVAL = """
from doteval import foreach
from doteval.evaluators import exact_match

DATA = [("q0", "Q0"), ("q1", "wrong"), ("q2", "Q2"), ("q3", "Q3")]


@foreach("q,expected", DATA)
def eval_cov(q, expected, model):
    if q in ("q2", "q3"):
        raise RuntimeError("the model is down")
    return exact_match(model.generate(q), expected)
"""


def test_summary_and_show_say_errors_are_not_scored(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = Project(pytester, monkeypatch)
    proj.write("eval_cov.py", EVAL)
    out = output(proj.run("eval_cov.py", "--experiment", "cov", "--max-retries", "0"))
    assert re.search(r"exact_match\.accuracy\s+0\.5\s+2 of 4 samples; 2 errors not scored", out), out
    _code, shown = proj.show("cov")
    assert re.search(r"exact_match\.accuracy\s+0\.5\s+2 of 4 samples; 2 errors not scored", shown), shown


def test_coverage_words() -> None:
    from doteval._repository.scores import coverage

    assert coverage(2, done=2, errors=2, total=4) == "2 of 4 samples; 2 errors not scored"
    assert coverage(None, done=4, errors=0, total=4) == "4 of 4 samples"
    assert coverage(1, done=1, errors=0, total=1) == "1 of 1 sample"
    assert coverage(3, done=4, errors=1, total=10) == (
        "3 of 10 samples; 1 error not scored, 1 without this score, 5 not run yet"
    )


def test_the_run_summary_fits_the_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # COLUMNS is the width (docs/reference/cli.md, "Output width"); a metrics table wider
    # than that is printed as lines, not cut and not wider than the terminal.
    proj = Project(pytester, monkeypatch)
    monkeypatch.setenv("COLUMNS", "60")
    proj.write("eval_cov.py", EVAL)
    lines = proj.run("eval_cov.py", "--experiment", "cov", "--max-retries", "0").outlines
    start = lines.index("doteval summary")
    end = next(i for i, line in enumerate(lines) if line.startswith("Experiment 'cov'"))
    table = lines[start + 1 : end]
    assert table and all(len(line) <= 60 for line in table), table
    expected = "eval_cov.py::eval_cov exact_match.accuracy: 0.5 (2 of 4 samples; 2 errors not scored)"
    assert "".join("".join(table).split()) == expected.replace(" ", "")
