"""A changed constant or helper is named and shown as a diff: at the run's refusal,
by ``--dry-run`` and by ``doteval diff`` (issue 11, item 6)."""

from __future__ import annotations

import re

import pytest
from test_report import cli as _cli
from test_run_resume import Project, output

EVAL = '''
from doteval import foreach
from doteval.evaluators import exact_match

import wording

TEMPLATE = """You are a careful assistant.
Answer the question: {q}
Reply with one word."""

DATA = [("q0", "Q0"), ("q1", "Q1")]


@foreach("q,expected", DATA)
def eval_tpl(q, expected, model):
    prompt = TEMPLATE.format(q=q) + wording.SUFFIX
    return exact_match(model.generate(q), expected)
'''

WORDING = 'SUFFIX = "!"\n'


def _diff_block(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\s*(---|\+\+\+|@@|[-+ ])", line)]


@pytest.fixture
def proj(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    p = Project(pytester, monkeypatch)
    p.write("wording.py", WORDING)
    p.write("eval_tpl.py", EVAL)
    return p


def _change_template(proj: Project) -> None:
    proj.write("eval_tpl.py", EVAL.replace("Reply with one word.", "Reply with one word, in capitals."))
    proj.write("wording.py", 'SUFFIX = "?"\n')


def _assert_named_diffs(out: str) -> None:
    assert "--- constant eval_tpl.TEMPLATE (before)" in out, out
    assert "+++ constant eval_tpl.TEMPLATE (now)" in out, out
    assert re.search(r"^\s*-Reply with one word\.(\"\"\")?$", out, re.M), out
    assert re.search(r"^\s*\+Reply with one word, in capitals\.(\"\"\")?$", out, re.M), out
    assert "--- constant wording.SUFFIX (before)" in out, out
    assert re.search(r"^\s*-SUFFIX = '!'$", out, re.M), out
    assert re.search(r"^\s*\+SUFFIX = '\?'$", out, re.M), out
    assert "no readable diff" not in out and "no source recorded" not in out


def test_a_changed_template_is_shown_when_the_run_refuses_and_by_dry_run(proj: Project) -> None:
    args = ("eval_tpl.py", "--experiment", "tpl")
    assert proj.run(*args).ret == 0
    _change_template(proj)

    refused = proj.run(*args)
    assert refused.ret != 0
    _assert_named_diffs(output(refused))

    dry = proj.run(*args, "--dry-run")
    _assert_named_diffs(output(dry))


def test_diff_names_the_changed_constants(proj: Project) -> None:
    assert proj.run("eval_tpl.py", "--experiment", "before").ret == 0
    _change_template(proj)
    assert proj.run("eval_tpl.py", "--experiment", "after").ret == 0
    code, out = _cli("diff", "before", "after")
    assert code == 0, out
    _assert_named_diffs(out)
    code, out = _cli("diff", "before", "after", "--json")
    assert "--- constant eval_tpl.TEMPLATE (before)" in out


def test_a_code_record_from_before_constants_were_kept_says_so() -> None:
    from doteval._repository.changes import explain_code_change

    old = {"type": "code", "v": 1, "sources": {"m.f": "def f(): ...\n"}}
    new = {**old, "constants": {"m.T": "T = 'x'\n"}}
    [line] = explain_code_change(old, new)
    assert "constant" in line and "recorded before" in line


def test_a_large_constant_is_named_by_size_and_digest_not_copied() -> None:
    from doteval._objects.encoding import encode
    from doteval._running.fingerprint import MAX_CONSTANT_TEXT, constant_text

    big = list(range(MAX_CONSTANT_TEXT))
    text = constant_text("TABLE", big, encode(big))
    assert text.startswith("TABLE = <list, ") and len(text) < 100
    assert constant_text("T", 0.123456789, encode(0.123456789)) == "T = 0.123456789\n"


def test_changed_foreach_columns_and_options_are_named() -> None:
    from doteval._repository.changes import explain_code_change
    from doteval._running.fingerprint import code_fingerprint

    def evaluate(q, a):
        return q == a

    before = code_fingerprint(evaluate, columns=["q", "a"], options={})
    now = code_fingerprint(evaluate, columns=["q", "answer"], options={"batch": 2})
    lines = explain_code_change(before.document(), now.document())
    assert "--- @foreach columns (before)" in lines
    assert "+columns = ('q', 'answer')" in lines
    assert "+++ @foreach options (now)" in lines
    assert "+options = {'batch': 2}" in lines
