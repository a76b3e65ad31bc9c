"""Tests for doteval.metrics: the registry and the built-in metrics."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doteval.errors import UsageError
from doteval.metrics import (
    Metric,
    _metric_ref,
    accuracy,
    count,
    get_metric,
    mean,
    metric,
    registered_metrics,
    std,
)


def test_accuracy_is_the_fraction_of_true_values_skipping_none() -> None:
    assert accuracy([True, False, True, True]) == 0.75
    assert accuracy([True, None, False, None]) == 0.5
    assert accuracy([1, 0, 1, 1.0]) == 0.75


def test_accuracy_rejects_values_outside_zero_one() -> None:
    with pytest.raises(UsageError, match="accuracy"):
        accuracy([True, 3])


def test_mean_std_count_against_hand_computed_values() -> None:
    assert mean([1, 2, 3, 4]) == 2.5
    assert std([1, 2, 3, 4]) == pytest.approx(1.2909944487358056, rel=1e-15)
    assert std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.138089935299395)
    assert count([1, None, "x", 0, False]) == 4
    assert mean([True, False]) == 0.5


def test_std_of_one_value_is_zero() -> None:
    assert std([5.0]) == 0.0
    assert std([None, 5.0, None]) == 0.0


@pytest.mark.parametrize("m", [accuracy, mean, std])
def test_empty_or_all_none_gives_nan(m: Metric) -> None:
    assert math.isnan(m([]))
    assert math.isnan(m([None, None]))


def test_count_of_nothing_is_zero() -> None:
    assert count([]) == 0
    assert count([None]) == 0


def test_non_numbers_are_a_usage_error_naming_the_metric_and_type() -> None:
    with pytest.raises(UsageError, match=r"'mean'.*str"):
        mean([1, "two"])


def test_metrics_accept_any_iterable() -> None:
    assert mean(x for x in (1, 2, 3)) == 2.0


def test_get_metric_returns_the_builtins_by_name() -> None:
    assert get_metric("accuracy") is accuracy
    assert get_metric("std") is std
    assert {"accuracy", "mean", "std", "count"} <= set(registered_metrics())


def test_get_metric_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no_such_metric"):
        get_metric("no_such_metric")


def test_bare_decorator_registers_under_the_function_name() -> None:
    @metric
    def _test_median(values: list[float]) -> float:
        return float(statistics.median(v for v in values if v is not None))

    assert isinstance(_test_median, Metric)
    assert _test_median.name == "_test_median"
    assert get_metric("_test_median") is _test_median
    assert _test_median([3, 1, 2]) == 2.0


def test_named_decorator_registers_under_the_given_name() -> None:
    @metric(name="_test_max")
    def anything(values: list[float]) -> float:
        return float(max(values))

    assert anything.name == "_test_max"
    assert get_metric("_test_max")([1, 5, 2]) == 5.0


def test_redefining_a_user_metric_replaces_it() -> None:
    @metric(name="_test_redefined")
    def first(values: list[float]) -> float:
        return 1.0

    @metric(name="_test_redefined")
    def second(values: list[float]) -> float:
        return 2.0

    assert get_metric("_test_redefined")([]) == 2.0


def test_builtin_names_cannot_be_taken_over() -> None:
    with pytest.raises(UsageError, match="built-in"):

        @metric(name="accuracy")
        def fake(values: list[float]) -> float:
            return 1.0

    assert get_metric("accuracy") is accuracy


def test_metrics_compare_by_name() -> None:
    assert Metric("mean") == mean
    assert hash(Metric("mean")) == hash(mean)


def test_placeholder_keeps_its_name_and_resolves_once_registered() -> None:
    ref = _metric_ref("_test_late")
    assert ref.name == "_test_late"
    assert not ref.available
    with pytest.raises(UsageError, match="_test_late"):
        ref([1.0])

    @metric(name="_test_late")
    def late(values: list[float]) -> float:
        return 42.0

    assert ref.available
    assert ref([1.0]) == 42.0


def test_metric_ref_of_a_known_name_is_the_metric() -> None:
    assert _metric_ref("mean") is mean


@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=2))
def test_builtins_agree_with_statistics_module(values: list[float | None]) -> None:
    present = [v for v in values if v is not None]
    assert count(values) == len(present)
    if len(present) >= 2:
        assert mean(values) == pytest.approx(statistics.fmean(present), abs=1e-6)
        assert std(values) == pytest.approx(statistics.stdev(present), rel=1e-6, abs=1e-6)
