"""Tests for doteval.evaluators: the @evaluator decorator and the built-ins."""

from __future__ import annotations

import asyncio

import pytest

from doteval.errors import UsageError
from doteval.evaluators import evaluator, exact_match, numeric_match, parse_number, valid_json
from doteval.metrics import accuracy, count, mean
from doteval.results import Score


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
    assert parse_number("The answer is 42.") == 42.0
    assert parse_number("-1,000,000.25") == -1000000.25
    assert parse_number("nothing") is None
    assert parse_number([1]) is None


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
