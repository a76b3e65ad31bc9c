"""Tests for doteval.evaluators: the @evaluator decorator and the built-ins."""

from __future__ import annotations

import asyncio

import pytest

from doteval._repository.results import Score
from doteval.errors import UsageError
from doteval.evaluators import _parse_number, evaluator, exact_match, numeric_match, valid_json
from doteval.metrics import accuracy, count, mean


def test_bare_evaluator_defaults_to_accuracy_and_the_function_name() -> None:
    @evaluator
    def contains_paris(response: str) -> bool:
        """Docstring kept."""
        return "paris" in response.lower()

    assert contains_paris("It is Paris.") == Score("contains_paris", True, (accuracy,))
    assert contains_paris("Lyon").value is False
    assert contains_paris.__name__ == "contains_paris"
    assert contains_paris.__doc__ == "Docstring kept."


def test_evaluator_with_metrics_list_single_and_names() -> None:
    @evaluator(metrics=[mean, count])
    def length(response: str) -> int:
        return len(response)

    @evaluator(metrics=mean)
    def half(x: float) -> float:
        return x / 2

    @evaluator(metrics="count", name="renamed")
    def anything(x: object) -> object:
        return x

    assert length("abcd") == Score("length", 4, (mean, count))
    assert half(x=3) == Score("half", 1.5, (mean,))
    assert anything("v") == Score("renamed", "v", (count,))
    assert length.metrics == (mean, count)  # type: ignore[attr-defined]
    assert anything.score_name == "renamed"  # type: ignore[attr-defined]


def test_evaluator_with_unknown_metric_name_fails_at_decoration() -> None:
    with pytest.raises(UsageError, match="unknown metric"):

        @evaluator(metrics="nope_not_registered")
        def f() -> bool:
            return True


def test_evaluator_returning_a_score_is_left_alone() -> None:
    @evaluator
    def judge() -> Score:
        return Score("custom", 0.5, mean)

    assert judge() == Score("custom", 0.5, (mean,))


def test_async_evaluator() -> None:
    @evaluator(metrics=mean)
    async def slow_len(response: str) -> int:
        await asyncio.sleep(0)
        return len(response)

    assert asyncio.run(slow_len("abc")) == Score("slow_len", 3, (mean,))


def test_exact_match_strips_and_compares_strings() -> None:
    assert exact_match(" Paris\n", "Paris") == Score("exact_match", True, (accuracy,))
    assert exact_match(42, "42").value is True
    assert exact_match("paris", "Paris").value is False


@pytest.mark.parametrize(
    ("response", "expected", "ok"),
    [
        ("The answer is 42.", 42, True),
        ("The answer is 42.", "42", True),
        ("I think 3 apples, so 7 in total", "7", True),
        ("I think 3 apples, so 7 in total", "3", False),
        ("Total: 1,000 items", 1000, True),
        ("Total: $1,234.50", "1234.5", True),
        ("It is -17 degrees", -17, True),
        ("x = -0.5", "-.5", True),
        ("0.1 + 0.2 = 0.30000000000000004", 0.3, True),
        ("about 3.14", 3.14159, False),
        ("GPT-4 says 12", 12, True),
        ("3-5", 5, True),
        ("1e3", 1000, True),
        ("no number here", 0, False),
        ("42", "no number", False),
        (42, 42.0, True),
        (None, 0, False),
        (True, 1, False),
    ],
)
def test_numeric_match(response: object, expected: object, ok: bool) -> None:
    s = numeric_match(response, expected)
    assert s.name == "numeric_match"
    assert s.metrics == (accuracy,)
    assert s.value is ok


def test_numeric_match_tolerance() -> None:
    assert numeric_match("about 3.14", 3.14159, tolerance=0.01).value is True
    with pytest.raises(UsageError, match="tolerance"):
        numeric_match("1", 1, tolerance=-1)


def test_parse_number() -> None:
    assert _parse_number("The answer is 42.") == 42.0
    assert _parse_number("-1,000,000.25") == -1000000.25
    assert _parse_number("nothing") is None
    assert _parse_number([1]) is None


@pytest.mark.parametrize(
    ("response", "ok"),
    [
        ('{"a": [1, 2, null]}', True),
        ("[]", True),
        ("  3 ", True),
        (b'{"a": 1}', True),
        ("{'a': 1}", False),
        ('{"a": 1', False),
        ("NaN", False),
        ('{"x": Infinity}', False),
        ("", False),
        ({"a": 1}, False),
        (None, False),
    ],
)
def test_valid_json(response: object, ok: bool) -> None:
    s = valid_json(response)
    assert s == Score("valid_json", ok, (accuracy,))


# -- the original doteval's API (release 0.22) ----------------------------------


def test_a_call_renames_its_score_with_name() -> None:
    assert exact_match("4", "4", name="answer_match") == Score("answer_match", True, (accuracy,))
    assert numeric_match("4", 4, name="num").name == "num"
    assert valid_json("{}", name="js").name == "js"

    @evaluator
    def labelled(response: str, name: str) -> bool:  # its own ``name`` wins
        return name == "x"

    assert labelled("a", name="x") == Score("labelled", True, (accuracy,))
    with pytest.raises(UsageError):
        exact_match("a", "a", name="")


def test_an_async_evaluator_is_renamed_too() -> None:
    @evaluator
    async def judge(response: str) -> bool:
        return True

    assert asyncio.run(judge("a", name="judged")).name == "judged"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("1 234", "1234"),
        ("1 234 567.89", "1234567.89"),
        ("1  234", "1234"),
        ("-1,234.5", "-1234.5"),
        ("-1 234", -1234),
        ("1 234,567", "1234567"),
        ("1,234 567", "1234567"),
        (" 1,234.50 ", "1234.5"),
        ("1.234e3", "1,234"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        (float("inf"), float("inf")),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("The answer is 1,000.", "1000"),
    ],
)
def test_numeric_match_reads_separators_signs_and_inf(response: object, expected: object) -> None:
    assert numeric_match(response, expected).value is True


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("- 1 234", "-1234"),
        ("-42", "42"),
        ("nan", "nan"),
        ("12a3", "123"),
        ("", "0"),
        (None, None),
        ("3, 5", "35"),
    ],
)
def test_numeric_match_refuses_what_the_original_refuses(response: object, expected: object) -> None:
    assert numeric_match(response, expected).value is False


def test_builtins_fill_score_metadata_which_equality_ignores() -> None:
    s = numeric_match("42", "42")
    assert s.metadata == {"result": "42", "expected": "42"}
    assert s == Score("numeric_match", True, (accuracy,))
    assert valid_json('{"t": 1}').metadata == {"result": '{"t": 1}'}
    assert valid_json("{}", {"type": "object"}).metadata["schema"] == {"type": "object"}
    assert Score("x", 1, (), {"why": "y"}).metadata == {"why": "y"}


def test_valid_json_reads_any_value_as_its_text() -> None:
    assert valid_json(123).value is True
    assert valid_json({"already": "dict"}).value is False  # str() of a dict is not JSON
    assert valid_json(None).value is False
    assert valid_json("").value is False


_PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "number"}},
    "required": ["name", "age"],
}


def test_valid_json_checks_a_schema() -> None:
    assert valid_json('{"name": "J", "age": 30, "city": "NYC"}', _PERSON).value is True
    assert valid_json('{"name": "J"}', _PERSON).value is False
    assert valid_json('{"name": "J", "age": "thirty"}', _PERSON).value is False
    assert valid_json('["a"]', _PERSON).value is False
    assert valid_json("{invalid}", {"type": "object"}).value is False
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "code": {"type": "string", "minLength": 3, "maxLength": 10, "pattern": "^[A-Z]"},
            "status": {"enum": ["active", "inactive"]},
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}},
            },
        },
        "additionalProperties": False,
    }
    assert valid_json('{"id": 1, "code": "ABC1", "status": "active", "items": [{"price": 1}]}', schema).value
    for bad in [
        '{"id": 1.5}',
        '{"id": true}',
        '{"code": "AB"}',
        '{"code": "abc"}',
        '{"status": "done"}',
        '{"items": []}',
        '{"items": [{"price": -1}]}',
        '{"other": 1}',
    ]:
        assert valid_json(bad, schema).value is False, bad
    refs = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    assert valid_json("[1, 2]", refs).value is True
    assert valid_json("[1, 2.5]", refs).value is False
    assert valid_json("1", {"anyOf": [{"type": "string"}, {"type": "integer"}]}).value is True
    assert valid_json("1", {"not": {"type": "integer"}}).value is False


def test_valid_json_refuses_a_schema_keyword_it_would_not_check() -> None:
    with pytest.raises(UsageError, match="dependentRequired"):
        valid_json("{}", {"dependentRequired": {"a": ["b"]}})
