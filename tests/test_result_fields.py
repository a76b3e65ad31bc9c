"""One function maps a stored result record to the fields a user sees (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

from doteval import Result, Score
from doteval._repository.results import RESULT_FIELDS, result_fields

PACKAGE = Path(__file__).resolve().parent.parent / "doteval"


def _stored(result: Result, **extra: object) -> dict[str, object]:
    return {**result.to_record(), **extra}


def test_every_field_of_a_stored_record():
    record = _stored(
        Result(Score("exact_match", True), prompt="2+2?", response="4", metadata={"model": "toy"}),
        item=("2+2?", "4"),
        duration=0.5,
        attempts=2,
    )
    assert result_fields(record, ["prompt", "expected"]) == {
        "item": {"prompt": "2+2?", "expected": "4"},
        "prompt": "2+2?",
        "response": "4",
        "scores": {"exact_match": True},
        "error": None,
        "metadata": {"model": "toy"},
        "duration": 0.5,
        "attempts": 2,
    }
    assert list(result_fields(record)) == list(RESULT_FIELDS)


def test_without_columns_the_item_stays_as_stored_and_fields_choose_and_order():
    record = _stored(Result.from_exception(ValueError("boom")), item=("a", 1))
    out = result_fields(record, fields=("error", "item", "scores"))
    assert list(out) == ["error", "item", "scores"]
    assert out["item"] == ("a", 1)
    assert out["scores"] == {}
    assert out["error"]["type"] == "ValueError" and out["error"]["message"] == "boom"


def test_an_old_record_reads_with_its_missing_fields_empty():
    out = result_fields({"scores": [{"name": "s", "value": 1, "metrics": []}]}, ["q"])
    assert out == {
        "item": {},
        "prompt": None,
        "response": None,
        "scores": {"s": 1},
        "error": None,
        "metadata": {},
        "duration": None,
        "attempts": None,  # written before doteval counted attempts
    }


def test_no_other_module_writes_the_projection_of_scores():
    projection = re.compile(r"""\[["']name["']\]\s*:\s*\w+\[["']value["']\]""")
    writers = sorted(
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if projection.search(p.read_text(encoding="utf-8"))
    )
    assert writers == ["doteval/_repository/results.py"]
