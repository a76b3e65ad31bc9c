"""Tests for doteval._operations.stats: paired comparison, bootstrap, McNemar, binomial sampler.

Statistical tests use fixed seeds, so they are deterministic: a failure is a
change in behaviour, never bad luck. Tolerances are still set from the Monte
Carlo error (several standard errors), so that a correct change of algorithm
would pass them and only the pinned values would need updating.

scipy is used only as an independent reference (doteval._operations.stats itself must never
import it); the comparisons skip when scipy is not installed.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import doteval._operations.stats as stats_module
from doteval._operations.stats import (
    PairedComparison,
    binomial,
    bootstrap_mean_ci,
    compare_paired,
    mcnemar_exact,
)
from doteval.errors import UsageError

# ---------------------------------------------------------------- test data
# Built from Random.random() only (the one generator output Python promises to
# keep across versions), so the pinned numbers below do not move with Python.


def binary_pair(n: int, seed: int, p_a: float = 0.55, p_b: float = 0.65) -> tuple[list[float], list[float]]:
    """Pass/fail scores as bools (the way evaluators return them)."""
    r = random.Random(seed)
    a: list[float] = [r.random() < p_a for _ in range(n)]
    b: list[float] = [r.random() < p_b for _ in range(n)]
    return a, b


def continuous_pair(n: int, seed: int, shift: float = 0.02) -> tuple[list[float], list[float]]:
    """Scores in [0, 1] with three decimals (like a graded score) and B shifted by ``shift``."""
    r = random.Random(seed)
    a = [round(r.random(), 3) for _ in range(n)]
    b = [round(min(1.0, max(0.0, x + shift + (r.random() - 0.5) * 0.3)), 3) for x in a]
    return a, b


def standard_error(d: list[float]) -> float:
    return statistics.pstdev(d) / math.sqrt(len(d))


# ---------------------------------------------------------------- compare_paired


def test_hand_computed_binary_case() -> None:
    # pairs: (1,1) same, (1,0) regressed, (0,1) improved, (0,1) improved, (1,1) same
    result = compare_paired([1, 1, 0, 0, 1], [1, 0, 1, 1, 1])
    assert result.n == 5
    assert result.binary is True
    assert (result.improved, result.regressed, result.unchanged) == (2, 1, 2)
    assert result.mean_a == pytest.approx(0.6)
    assert result.mean_b == pytest.approx(0.8)
    assert result.delta == pytest.approx(0.2)
    # McNemar with b = 1 (1 -> 0) and c = 2 (0 -> 1): 2 * P(Bin(3, 1/2) <= 1) = 2 * 4/8.
    assert result.p_value == mcnemar_exact(1, 2) == 1.0
    assert result.method == "multinomial"
    assert result.resamples == 2000
    assert result.confidence == 0.95
    assert result.ci_low <= result.delta <= result.ci_high


def test_bools_ints_and_floats_are_the_same_scores() -> None:
    as_bools = compare_paired([True, True, False, False, True], [True, False, True, True, True])
    as_floats = compare_paired([1.0, 1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0, 1.0])
    assert as_bools == as_floats


def test_empty_input_gives_nan_not_an_error() -> None:
    result = compare_paired([], [])
    assert result.n == 0
    for value in (result.mean_a, result.mean_b, result.delta, result.ci_low, result.ci_high):
        assert math.isnan(value)
    assert result.p_value is None
    assert result.binary is False
    assert (result.improved, result.regressed, result.unchanged) == (0, 0, 0)
    assert result.resamples == 0


def test_pairs_without_two_finite_numbers_are_skipped() -> None:
    a = [1, None, 0, math.nan, 1.0, "yes", 0, math.inf]
    b = [1, 1, None, 0, 0.0, 1, 1, 1]
    result = compare_paired(a, b)  # type: ignore[arg-type]  # a string is not a score
    # used: (1, 1), (1.0, 0.0), (0, 1)
    assert result.n == 3
    assert (result.improved, result.regressed, result.unchanged) == (1, 1, 1)
    assert result.mean_a == pytest.approx(2 / 3)
    assert result.binary is True
    assert compare_paired([None, "x"], [1, 2]).n == 0  # type: ignore[list-item]


def test_non_binary_values_give_no_p_value() -> None:
    result = compare_paired([0.0, 0.5, 1.0], [1.0, 1.0, 0.25])
    assert result.binary is False
    assert result.p_value is None
    assert (result.improved, result.regressed, result.unchanged) == (2, 1, 0)
    assert compare_paired([0, 1, 2], [0, 1, 1]).binary is False


def test_delta_is_the_mean_of_the_differences_correctly_rounded() -> None:
    a, b = continuous_pair(1000, seed=3)
    result = compare_paired(a, b)
    exact = sum((Fraction(y) - Fraction(x) for x, y in zip(a, b)), Fraction(0)) / len(a)
    # Each b_i - a_i is rounded once, then the mean of those floats is exact.
    exact_of_floats = sum((Fraction(y - x) for x, y in zip(a, b)), Fraction(0)) / len(a)
    assert result.delta == float(exact_of_floats)
    assert result.delta == pytest.approx(float(exact), rel=1e-12)
    assert result.mean_a == float(sum(map(Fraction, a), Fraction(0)) / len(a))
    assert result.mean_b == float(sum(map(Fraction, b), Fraction(0)) / len(b))
    assert result.delta == pytest.approx(result.mean_b - result.mean_a, rel=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "kwargs"),
    [
        ([1, 0], [1], {}),
        ([1], [1], {"resamples": 0}),
        ([1], [1], {"resamples": 2.5}),
        ([1], [1], {"confidence": 1.0}),
        ([1], [1], {"confidence": 0.0}),
        ([1], [1], {"confidence": math.nan}),
        ([1], [1], {"seed": "0"}),
        ("10", "01", {}),
    ],
)
def test_bad_arguments_are_usage_errors(a: list[int], b: list[int], kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        compare_paired(a, b, **kwargs)  # type: ignore[arg-type]


def test_fixed_seed_binary_result_is_pinned() -> None:
    # Pinned: any change to the bootstrap, the multinomial draw or the binomial
    # sampler changes these numbers. If the change is intended, re-pin them.
    a, b = binary_pair(500, seed=7)
    result = compare_paired(a, b, seed=123)
    assert result == PairedComparison(
        n=500, mean_a=0.588, mean_b=0.672, delta=0.084,
        ci_low=0.028, ci_high=0.142, confidence=0.95, resamples=2000,
        method="multinomial", binary=True, improved=135, regressed=93,
        unchanged=272, p_value=0.006494941022553702,
    )  # fmt: skip


def test_fixed_seed_continuous_result_is_pinned() -> None:
    a, b = continuous_pair(600, seed=8)
    result = compare_paired(a, b, seed=123)
    assert result == PairedComparison(
        n=600, mean_a=0.5141883333333334, mean_b=0.528715, delta=0.01452666666666667,
        ci_low=0.008253791666666673, ci_high=0.021332416666666666, confidence=0.95,
        resamples=2000, method="resample", binary=False, improved=327, regressed=268,
        unchanged=5, p_value=None,
    )  # fmt: skip


def test_same_seed_same_result_and_seed_matters() -> None:
    a, b = continuous_pair(400, seed=11)
    first = compare_paired(a, b, seed=5)
    assert compare_paired(a, b, seed=5) == first
    assert compare_paired(a, b, seed=6) != first
    x, y = binary_pair(400, seed=11)
    assert compare_paired(x, y, seed=5) == compare_paired(x, y, seed=5)
    assert compare_paired(x, y, seed=5) != compare_paired(x, y, seed=6)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_result_does_not_depend_on_the_order_of_the_pairs(kind: str) -> None:
    a, b = binary_pair(700, seed=4) if kind == "binary" else continuous_pair(700, seed=4)
    pairs = list(zip(a, b))
    random.Random(0).shuffle(pairs)
    shuffled_a = [x for x, _ in pairs]
    shuffled_b = [y for _, y in pairs]
    assert compare_paired(shuffled_a, shuffled_b, seed=1) == compare_paired(a, b, seed=1)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_interval_contains_delta(kind: str) -> None:
    a, b = binary_pair(300, seed=21) if kind == "binary" else continuous_pair(300, seed=21)
    result = compare_paired(a, b, seed=2)
    assert result.ci_low < result.delta < result.ci_high


def test_large_shift_excludes_zero() -> None:
    a, b = binary_pair(400, seed=5, p_a=0.4, p_b=0.8)
    result = compare_paired(a, b)
    assert 0.0 < result.ci_low < result.delta < result.ci_high
    assert result.p_value is not None and result.p_value < 1e-6

    a, b = continuous_pair(400, seed=5, shift=-0.2)
    result = compare_paired(a, b)
    assert result.ci_low < result.delta < result.ci_high < 0.0


def test_no_real_difference_includes_zero() -> None:
    a, b = binary_pair(400, seed=9, p_a=0.6, p_b=0.6)
    result = compare_paired(a, b)
    assert result.ci_low < 0.0 < result.ci_high
    a, b = continuous_pair(400, seed=9, shift=0.0)
    result = compare_paired(a, b)
    assert result.ci_low < 0.0 < result.ci_high


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_identical_experiments_give_a_zero_width_interval(kind: str) -> None:
    a, _ = binary_pair(250, seed=1) if kind == "binary" else continuous_pair(250, seed=1)
    result = compare_paired(a, list(a))
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.unchanged == 250
    assert result.p_value == (1.0 if kind == "binary" else None)


def test_constant_difference_gives_exactly_delta() -> None:
    # Every resample draws the same value: the interval must be [delta, delta]
    # exactly, with no rounding difference between the two computations.
    for a, b in [([1.0, 2.0, 3.0] * 30, [1.5, 2.5, 3.5] * 30), ([0.0, 0.125] * 45, [0.1, 0.225] * 45)]:
        assert len({y - x for x, y in zip(a, b)}) == 1  # the difference really is constant
        result = compare_paired(a, b)
        assert result.ci_low == result.delta == result.ci_high
        assert result.delta == b[0] - a[0]


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.99])
def test_higher_confidence_gives_a_wider_interval(confidence: float) -> None:
    a, b = continuous_pair(500, seed=13)
    narrow = compare_paired(a, b, seed=3, confidence=confidence)
    wide = compare_paired(a, b, seed=3, confidence=(1 + confidence) / 2)
    assert wide.ci_low <= narrow.ci_low <= narrow.ci_high <= wide.ci_high
    assert narrow.confidence == confidence


def test_binary_data_takes_the_multinomial_path_at_full_size() -> None:
    a, b = binary_pair(100_000, seed=17)
    result = compare_paired(a, b)
    assert result.method == "multinomial"
    assert result.resamples == 2000
    assert result.ci_low < result.delta < result.ci_high


def test_large_continuous_data_takes_the_resample_path_with_fewer_resamples() -> None:
    a, b = continuous_pair(100_000, seed=17)
    result = compare_paired(a, b)
    assert result.method == "resample"
    # max(200, min(2000, 20_000_000 // 100_000))
    assert result.resamples == 200
    assert result.ci_low < result.delta < result.ci_high


def test_resample_count_is_kept_when_small_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = continuous_pair(1000, seed=2)
    assert compare_paired(a, b, resamples=3000).resamples == 3000
    # A request below the 200 floor is honoured, never raised.
    assert compare_paired(a, b, resamples=50).resamples == 50
    # With a smaller draw budget: max(200, min(2000, 400_000 // n)).
    monkeypatch.setattr(stats_module, "RESAMPLE_DRAW_BUDGET", 400_000)
    assert compare_paired(a, b).resamples == 400
    low, high, used, method = bootstrap_mean_ci(
        [i / 4000 for i in range(4000)], seed=0, resamples=2000, confidence=0.95
    )
    assert (used, method) == (200, "resample")
    assert low < 0.5 < high


def test_sixty_four_distinct_values_is_still_multinomial() -> None:
    d = [i % 64 for i in range(1000)]
    assert bootstrap_mean_ci(d, seed=0, resamples=10, confidence=0.9)[3] == "multinomial"
    d = [i % 65 for i in range(1000)]
    assert bootstrap_mean_ci(d, seed=0, resamples=10, confidence=0.9)[3] == "resample"


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_mean_ci_empty_and_bad_values() -> None:
    low, high, used, method = bootstrap_mean_ci([], seed=0, resamples=100, confidence=0.95)
    assert math.isnan(low) and math.isnan(high)
    assert (used, method) == (0, "multinomial")
    with pytest.raises(UsageError):
        bootstrap_mean_ci([1.0, math.nan], seed=0, resamples=100, confidence=0.95)
    with pytest.raises(UsageError):
        bootstrap_mean_ci([1.0, "2"], seed=0, resamples=100, confidence=0.95)  # type: ignore[list-item]


@pytest.mark.parametrize(
    "d",
    [
        pytest.param([-1.0] * 30 + [0.0] * 50 + [1.0] * 20, id="multinomial-3-values"),
        pytest.param([float(i % 7) ** 2 for i in range(333)], id="multinomial-7-values"),
        pytest.param([(i * 0.7919) % 1.0 for i in range(100)], id="resample-tail-only"),
        pytest.param([(i * 0.7919) % 1.0 - 0.3 for i in range(512)], id="resample-full-blocks"),
        pytest.param([((i * 0.7919) % 1.0) ** 3 for i in range(1000)], id="resample-blocks-and-tail"),
    ],
)
def test_bootstrap_means_have_the_bootstrap_distribution(d: list[float]) -> None:
    # The bootstrap distribution of the mean has mean mean(d) and variance
    # pvariance(d) / n. Check both within 5 standard errors of their estimates.
    means, method = stats_module._bootstrap_means(d, seed=42, resamples=4000)
    assert method == ("multinomial" if len(set(d)) <= 64 else "resample")
    r = len(means)
    n = len(d)
    target_var = statistics.pvariance(d) / n
    assert statistics.fmean(means) == pytest.approx(statistics.fmean(d), abs=5 * math.sqrt(target_var / r))
    # Sample variance of r nearly-normal draws: relative standard error sqrt(2 / (r - 1)).
    assert statistics.variance(means) == pytest.approx(target_var, rel=5 * math.sqrt(2 / (r - 1)))


def test_resample_path_draws_every_value_equally_often() -> None:
    # Powers of two 2**(9i) make a resample's exact total spell out how often
    # each distinct value was drawn, 9 bits per value (counts stay below 512).
    # 114 distinct values x 3 copies = 342: one full block of 256 plus a tail
    # of 86, and integers of 1000+ bits, so blocks are split into many chunks.
    distinct = 114
    d = [2.0 ** (9 * i) for i in range(distinct)] * 3
    n = len(d)
    sampler = stats_module._BlockResampler(d)
    assert sampler.exp == 0 and sampler.weights == [256, 86]
    assert all(len(chunks) > 1 for _, chunks in sampler.blocks)
    rng = random.Random(12)
    rounds = 1000
    totals = [0] * distinct
    for _ in range(rounds):
        total = sampler.resample_total(rng)
        counts = [(total >> (9 * i)) & 511 for i in range(distinct)]
        assert total == sum(c << (9 * i) for i, c in enumerate(counts))  # nothing above the top value
        assert sum(counts) == n  # every resample has exactly n draws
        totals = [t + c for t, c in zip(totals, counts)]
    # Each value is drawn 3 * rounds times on average; the chi-square statistic
    # of the totals has mean distinct - 1 and sd sqrt(2 (distinct - 1)).
    expected = 3 * rounds
    chi2 = sum((t - expected) ** 2 / expected for t in totals)
    assert chi2 < (distinct - 1) + 5 * math.sqrt(2 * (distinct - 1))


@pytest.mark.parametrize("forced", [[1, 599, 0], [0, 599, 1], [0, 600, 0], [1, 0, 599], [300, 299, 1]])
def test_resample_path_blocks_with_zero_or_one_draw(
    monkeypatch: pytest.MonkeyPatch, forced: list[int]
) -> None:
    # A full block gets ~Poisson(256) draws, so 0 or 1 draws (each its own
    # branch) never happen by chance: force the counts per block, and check the
    # total is exactly the sum of the values at the drawn indices.
    d = [i / 7 for i in range(600)]  # blocks of 256, 256 and 88
    sampler = stats_module._BlockResampler(d)
    monkeypatch.setattr(stats_module, "_multinomial", lambda trials, weights, rng: list(forced))
    blocks = [sorted(d)[0:256], sorted(d)[256:512], sorted(d)[512:600]]
    for seed in range(10):
        # The index bytes, laid out as the resampler lays them out.
        rng = random.Random(seed)
        in_full = 600 - forced[-1]
        pool = rng.getrandbits(8 * in_full).to_bytes(in_full, "little") + sampler._tail_indices(
            forced[-1], rng
        )
        expected = Fraction(0)
        pos = 0
        for block, k in zip(blocks, forced):
            assert all(i < len(block) for i in pool[pos : pos + k])
            expected += sum((Fraction(block[i]) for i in pool[pos : pos + k]), Fraction(0))
            pos += k
        total = sampler.resample_total(random.Random(seed))
        assert Fraction(total) * Fraction(2) ** sampler.exp == expected


def test_resample_path_sums_exactly_across_many_binades() -> None:
    # Values from 1e-300 to 1e300 force multi-chunk blocks; a zero-width
    # distribution check is impossible, so check the resampler reproduces the
    # exact mean when it draws the full sample (counts all 1) and stays finite.
    d = [(-1.0) ** i * 10.0 ** (i % 601 - 300) for i in range(700)]
    sampler = stats_module._BlockResampler(d)
    for _shift, chunks in sampler.blocks:
        for i in range(len(chunks[0])):
            value = sum(chunk[i] << (stats_module._CHUNK_BITS * j) for j, chunk in enumerate(chunks))
            assert abs(value) < 2 ** (53 * len(chunks))
    assert any(len(chunks) > 1 for _, chunks in sampler.blocks)
    low, high, _, method = bootstrap_mean_ci(d, seed=0, resamples=300, confidence=0.95)
    assert method == "resample"
    assert math.isfinite(low) and math.isfinite(high) and low <= high


def test_exact_mean_helpers_are_exact() -> None:
    values = [0.1, 1e-300, -3.5e250, 7.0, 2.0**-1074, 1e16, -1e16, 0.3]
    scaled, exp = stats_module._scaled_ints(values)
    assert [Fraction(s) * Fraction(2) ** exp for s in scaled] == [Fraction(v) for v in values]
    expected = sum(map(Fraction, values), Fraction(0)) / len(values)
    assert stats_module._exact_mean(values) == float(expected)
    # Where naive float summation loses everything:
    assert stats_module._exact_mean([1e16, 1.0, -1e16, 1.0]) == 0.5
    for ints in ([0], [2**60, -(2**60) - 1, 5], [-(2**200) + 3, 2**150, -1]):
        chunks = stats_module._chunks(ints)
        rebuilt = [
            sum(c[i] << (stats_module._CHUNK_BITS * j) for j, c in enumerate(chunks))
            for i in range(len(ints))
        ]
        assert rebuilt == ints


def test_percentile_matches_numpy_linear_interpolation() -> None:
    np = pytest.importorskip("numpy")
    values = sorted(random.Random(3).random() for _ in range(37))
    for q in (0.0, 0.025, 0.1, 0.5, 0.975, 1.0):
        assert stats_module._percentile(values, q) == pytest.approx(
            float(np.percentile(values, q * 100)), rel=1e-15
        )


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_interval_agrees_with_scipy_paired_percentile_bootstrap(kind: str) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    np = pytest.importorskip("numpy")
    a, b = binary_pair(400, seed=31) if kind == "binary" else continuous_pair(400, seed=31)
    ours = compare_paired(a, b, seed=0, resamples=4000)
    assert ours.method == ("multinomial" if kind == "binary" else "resample")

    theirs = scipy_stats.bootstrap(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        lambda x, y, axis=-1: np.mean(y - x, axis=axis),
        paired=True,
        vectorized=True,
        method="percentile",
        confidence_level=0.95,
        n_resamples=10_000,
        rng=np.random.default_rng(0),
    ).confidence_interval
    # Monte Carlo error of a 2.5% / 97.5% percentile from R resamples is about
    # 2.7 * se / sqrt(R) (se: standard error of the mean): ~0.045 se for ours,
    # less for scipy's. 0.25 se is more than 5 of those standard deviations,
    # yet far tighter than a wrong method (a missing pairing, a biased sampler)
    # would give: those move the endpoints by a large fraction of se.
    d = [float(y) - float(x) for x, y in zip(a, b)]
    tolerance = 0.25 * standard_error(d)
    assert ours.ci_low == pytest.approx(theirs.low, abs=tolerance)
    assert ours.ci_high == pytest.approx(theirs.high, abs=tolerance)


@settings(max_examples=150, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from([0, 1, True, False, 0.0, 1.0]), st.sampled_from([0, 1, True, False, 0.0, 1.0])
        ),
        min_size=1,
        max_size=300,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_binary_properties(pairs: list[tuple[float, float]], seed: int) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    result = compare_paired(a, b, seed=seed)
    assert result.n == len(pairs)
    assert result.binary is True
    assert result.method == "multinomial"
    assert result.improved + result.regressed + result.unchanged == result.n
    assert result.ci_low <= result.delta <= result.ci_high
    assert result.ci_low >= -1.0 and result.ci_high <= 1.0
    assert result.p_value is not None and 0.0 <= result.p_value <= 1.0
    assert result.p_value == mcnemar_exact(result.regressed, result.improved)


# ---------------------------------------------------------------- McNemar


def test_mcnemar_known_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 9) == 0.021484375 == 2 * 11 / 1024
    assert mcnemar_exact(9, 1) == 0.021484375
    assert mcnemar_exact(0, 1) == 1.0
    assert mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(0, 10) == 2 / 1024
    assert mcnemar_exact(0, 5000) == 0.0  # 2**-4999 underflows


@pytest.mark.parametrize(
    ("b", "c"),
    [(1, 9), (3, 40), (10, 20), (100, 130), (450, 560), (400, 600), (500, 501), (0, 1001), (10, 995),
     (600, 700), (24_900, 25_100), (24_000, 26_000), (25_000, 25_000), (3, 49_997), (300_000, 301_000)],
)  # fmt: skip
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = scipy_stats.binomtest(min(b, c), b + c, 0.5).pvalue
    # Both sides are accurate to ~1e-13 relative; a wrong formula (one-sided,
    # off-by-one tail, mid-p) is off by far more.
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_mcnemar_large_n_path_agrees_with_exact_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [(b, c) for b in (0, 1, 5, 30, 200, 450) for c in (1, 17, 60, 480, 550)]
    exact = {case: mcnemar_exact(*case) for case in cases}
    monkeypatch.setattr(stats_module, "MCNEMAR_EXACT_MAX", 0)
    for case, value in exact.items():
        assert mcnemar_exact(*case) == pytest.approx(value, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("b", "c"), [(-1, 2), (1.0, 2), (True, 2), (2, "3")])
def test_mcnemar_rejects_bad_counts(b: object, c: object) -> None:
    with pytest.raises(UsageError):
        mcnemar_exact(b, c)  # type: ignore[arg-type]


# ---------------------------------------------------------------- binomial sampler


def test_binomial_edge_cases() -> None:
    rng = random.Random(0)
    assert binomial(0, 0.3, rng) == 0
    assert binomial(10, 0.0, rng) == 0
    assert binomial(10, 1.0, rng) == 10
    assert binomial(10**12, 1.0, rng) == 10**12
    assert all(
        0 <= binomial(n, p, rng) <= n for n in (1, 2, 19, 20, 21, 1000) for p in (1e-9, 0.01, 0.5, 0.99)
    )
    for n, p in [(-1, 0.5), (1.5, 0.5), (True, 0.5), (10, -0.1), (10, 1.1), (10, math.nan), (10, "0.5")]:
        with pytest.raises(UsageError):
            binomial(n, p, rng)  # type: ignore[arg-type]


def test_binomial_fixed_seed_draws_are_pinned() -> None:
    rng = random.Random(2024)
    draws = [
        binomial(n, p, rng)
        for n, p in [(1000, 0.3), (1000, 0.3), (20, 0.1), (10**9, 0.5), (50, 0.9), (7, 0.5)]
    ]
    assert draws == [299, 291, 2, 500010182, 47, 5]


@pytest.mark.parametrize(
    ("n", "p", "method"),
    [(20, 0.5, "btrs"), (100, 0.3, "btrs"), (1000, 0.9, "btrs"), (19, 0.5, "inversion"), (500, 0.01, "inversion"),
     (50, 0.95, "inversion"), (10**6, 0.001, "btrs")],
)  # fmt: skip
def test_binomial_chooses_btrs_from_mean_ten(
    monkeypatch: pytest.MonkeyPatch, n: int, p: float, method: str
) -> None:
    calls: Counter[str] = Counter()
    btrs, inversion = stats_module._binomial_btrs, stats_module._binomial_inversion

    def counting_btrs(n: int, p: float, rng: random.Random) -> int:
        calls["btrs"] += 1
        assert p <= 0.5
        return btrs(n, p, rng)

    def counting_inversion(n: int, p: float, rng: random.Random) -> int:
        calls["inversion"] += 1
        assert p <= 0.5
        return inversion(n, p, rng)

    monkeypatch.setattr(stats_module, "_binomial_btrs", counting_btrs)
    monkeypatch.setattr(stats_module, "_binomial_inversion", counting_inversion)
    binomial(n, p, random.Random(0))
    assert calls == {method: 1}


BINOMIAL_CASES = [
    (20, 0.5),  # BTRS at its lower limit n*p = 10
    (100, 0.3),
    (1000, 0.9),  # symmetry: 1000 - Bin(1000, 0.1)
    (10**6, 0.01),
    (10**9, 0.4),
    (50, 0.05),  # inversion
    (7, 0.2),
    (30, 0.97),  # inversion through symmetry
    (1, 0.3),
]


@pytest.mark.parametrize(("n", "p"), BINOMIAL_CASES)
def test_binomial_mean_and_variance(n: int, p: float) -> None:
    rng = random.Random(n + int(p * 1000))
    draws = 20_000
    xs = [binomial(n, p, rng) for _ in range(draws)]
    mean = n * p
    var = n * p * (1 - p)
    # Fourth central moment of the binomial, for the standard error of the variance.
    mu4 = var * (1 + 3 * (n - 2) * p * (1 - p))
    assert statistics.fmean(xs) == pytest.approx(mean, abs=5 * math.sqrt(var / draws))
    assert statistics.pvariance(xs) == pytest.approx(var, abs=5 * math.sqrt((mu4 - var**2) / draws))


@pytest.mark.parametrize(("n", "p"), BINOMIAL_CASES)
def test_binomial_goodness_of_fit_against_scipy(n: int, p: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    np = pytest.importorskip("numpy")
    dist = scipy_stats.binom(n, p)
    rng = random.Random(1000 + n)
    draws = 20_000
    counts = Counter(binomial(n, p, rng) for _ in range(draws))

    # Cells between the integer 2.5%, 5%, ..., 97.5% quantiles (the tails go in
    # the first and last cell), then neighbours merged until each expects at
    # least 5 draws. Cell j holds the draws x with cuts[j-1] < x <= cuts[j].
    cuts = sorted({int(dist.ppf(i / 40)) for i in range(1, 40)})
    cdf = [float(dist.cdf(c)) for c in cuts]
    expected_cells = [e * draws for e in np.diff([0.0, *cdf, 1.0])]
    observed_cells = [0] * (len(cuts) + 1)
    for x, count in counts.items():
        observed_cells[bisect.bisect_left(cuts, x)] += count
    cells: list[tuple[float, float]] = []  # (observed, expected)
    observed, expected = 0.0, 0.0
    for o, e in zip(observed_cells, expected_cells):
        observed, expected = observed + o, expected + e
        if expected >= 5:
            cells.append((observed, expected))
            observed, expected = 0.0, 0.0
    if expected > 0 or observed > 0:  # leftover tail: fold into the last cell
        last_o, last_e = cells.pop()
        cells.append((last_o + observed, last_e + expected))
    assert sum(o for o, _ in cells) == draws
    assert len(cells) >= 2

    chi2 = sum((o - e) ** 2 / e for o, e in cells)
    p_value = float(scipy_stats.chi2.sf(chi2, len(cells) - 1))
    # Fixed seeds: this either always passes or always fails. 1e-3 keeps a
    # correct sampler well clear while a wrong constant in BTRS (which skews
    # the shape) fails by orders of magnitude.
    assert p_value > 1e-3, (n, p, chi2, len(cells))


class LatticeRandom(random.Random):
    """A stand-in rng whose random() walks a Fibonacci lattice in the unit square.

    Pair i of calls is lattice point j = 7919 * i mod N: (j + 1/2) / N and
    frac((j * g + 1/2) / N), with N, g consecutive Fibonacci numbers. Over one
    pass the points fill the square far more evenly than random ones (error
    ~log(N)/N instead of 1/sqrt(N)); the stride keeps consecutive pairs apart,
    so a run of rejections does not sweep one corner.
    """

    def __init__(self, size: int, generator: int) -> None:
        super().__init__(0)
        self.size, self.generator = size, generator
        self.index = 0
        self.second = False

    def random(self) -> float:
        j = (self.index * 7919) % self.size
        if self.second:
            self.second = False
            self.index += 1
            return ((j * self.generator) % self.size + 0.5) / self.size
        self.second = True
        return (j + 0.5) / self.size


@pytest.mark.parametrize(("n", "p"), [(20, 0.5), (100, 0.3), (1000, 0.1)])
def test_btrs_output_distribution_on_a_lattice(n: int, p: float) -> None:
    # Feed BTRS one pass over a 196 418-point lattice instead of random pairs:
    # the histogram of accepted values is then a near-exact integral of the
    # algorithm's output distribution. Its total variation distance from the
    # binomial is ~2e-4 for the correct algorithm; errors too small for any
    # affordable chi-square test (a squeeze constant off by 0.07, the hat
    # shifted by half a unit or scaled by 10%) give 1e-3 to 1e-2.
    rng = LatticeRandom(196_418, 121_393)
    draws = Counter[int]()
    while rng.index < rng.size - 100:
        draws[stats_module._binomial_btrs(n, p, rng)] += 1
    total = sum(draws.values())
    pmf = {k: math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)}
    tv = 0.5 * sum(abs(draws.get(k, 0) / total - pmf[k]) for k in range(n + 1))
    assert tv < 5e-4


def test_multinomial_counts_sum_and_match_their_means() -> None:
    rng = random.Random(5)
    weights = [5, 1, 94, 256, 3]
    total = sum(weights)
    trials = 1000
    sums = [0] * len(weights)
    rounds = 2000
    for _ in range(rounds):
        counts = stats_module._multinomial(trials, weights, rng)
        assert sum(counts) == trials and min(counts) >= 0
        sums = [s + c for s, c in zip(sums, counts)]
    for s, w in zip(sums, weights):
        p = w / total
        assert s / rounds == pytest.approx(trials * p, abs=5 * math.sqrt(trials * p * (1 - p) / rounds))
