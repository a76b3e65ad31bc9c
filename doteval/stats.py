"""Paired statistics for comparing two experiments sample by sample.

``doteval diff A B`` lines up the samples of two experiments and asks whether B
is better than A on a score. This module answers that question for one score:
it takes the two aligned columns of values and returns a ``PairedComparison``
with the mean difference, a paired-bootstrap confidence interval for it, the
counts of improved / regressed / unchanged samples and, for 0/1 scores, the
exact McNemar p-value.

What this module must never do:

* import numpy or scipy (or anything outside the standard library). doteval is
  installed next to whatever the user evaluates and must stay light; the tests
  use scipy only as an independent reference.
* depend on anything but its arguments. The bootstrap draws from
  ``random.Random(seed)``, and only through ``Random.random()`` -- the one
  method whose output Python promises not to change between versions -- and
  every sum is ``math.fsum`` (correctly rounded, so independent of the order in
  which a platform or a Python version adds floats). The same inputs and seed
  give the same interval on every machine. (The one theoretical exception: the
  binomial sampler compares a uniform draw with a value computed by libm's
  ``log``/``lgamma``; a draw landing within one ulp of that boundary, which has
  probability around 1e-16 per draw, could be decided differently by a libm
  that rounds differently.)
* raise on empty input. A diff of two experiments that share no scored sample
  is a normal, reportable outcome, so it gives ``n == 0`` and ``nan``.
"""

from __future__ import annotations

import math
import numbers
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from doteval.errors import UsageError

__all__ = [
    "PairedComparison",
    "binomial",
    "bootstrap_mean_ci",
    "compare_paired",
    "mcnemar_exact",
]

# The multinomial bootstrap costs O(K) per resample for K distinct differences;
# above this many it stops paying for its per-value binomial draws.
MULTINOMIAL_MAX_DISTINCT = 64
# Budget of index draws for the plain resampling bootstrap: resamples * n stays
# under this, so a diff of 100 000 samples still finishes in about a second.
RESAMPLE_DRAW_BUDGET = 20_000_000
# Never cut the resampling bootstrap below this many resamples: fewer would make
# the 2.5% / 97.5% percentiles too noisy to print.
MIN_REDUCED_RESAMPLES = 200
# Exact integer McNemar up to this many discordant pairs; beyond it big-integer
# binomial coefficients get slow and the float recurrence is as accurate.
MCNEMAR_EXACT_MAX = 1000
# Below this mean, the binomial sampler inverts the CDF (expected n*p steps);
# from it on BTRS is valid (Hörmann requires n*p >= 10) and O(1).
BTRS_MIN_MEAN = 10.0

METHOD_MULTINOMIAL = "multinomial"
METHOD_RESAMPLE = "resample"


@dataclass(frozen=True)
class PairedComparison:
    """How B compares with A on one score, over the samples both have a value for.

    ``delta`` is ``mean_b - mean_a``, computed as the mean of the per-pair
    differences (the statistic the interval is about). With ``n == 0`` every
    float is ``nan``, ``binary`` is False and ``p_value`` is None.
    """

    n: int
    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    method: str
    binary: bool
    improved: int
    regressed: int
    unchanged: int
    p_value: float | None


def compare_paired(
    a: Sequence[float | bool],
    b: Sequence[float | bool],
    *,
    seed: int = 0,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare two aligned columns of score values: pair ``i`` is ``(a[i], b[i])``.

    A pair is used only when both values are real numbers (bools count as 1/0)
    and finite: ``None`` is a sample that produced no value, and a ``nan`` or
    infinite value would turn every mean and the interval into ``nan``. Other
    values (strings, lists) are skipped the same way, since they have no mean.

    Raises ``UsageError`` if the columns differ in length or an option is out of
    range; never for empty or all-missing columns.
    """
    _check_options(seed=seed, resamples=resamples, confidence=confidence)
    if isinstance(a, str | bytes) or isinstance(b, str | bytes):
        raise UsageError("compare_paired takes two sequences of numbers, not strings")
    if len(a) != len(b):
        raise UsageError(
            f"compare_paired needs aligned columns, got {len(a)} values for A and {len(b)} for B"
        )

    xs: list[float] = []
    ys: list[float] = []
    for x, y in zip(a, b):
        fx = _as_finite(x)
        if fx is None:
            continue
        fy = _as_finite(y)
        if fy is None:
            continue
        xs.append(fx)
        ys.append(fy)

    n = len(xs)
    if n == 0:
        nan = math.nan
        low, high, used, method = bootstrap_mean_ci([], seed=seed, resamples=resamples, confidence=confidence)
        return PairedComparison(
            n=0, mean_a=nan, mean_b=nan, delta=nan, ci_low=low, ci_high=high,
            confidence=confidence, resamples=used, method=method, binary=False,
            improved=0, regressed=0, unchanged=0, p_value=None,
        )  # fmt: skip

    d = [y - x for x, y in zip(xs, ys)]
    improved = sum(1 for v in d if v > 0)
    regressed = sum(1 for v in d if v < 0)
    unchanged = n - improved - regressed
    # {0.0, 1.0} also matches the ints 0/1 and True/False (they were converted).
    binary = set(xs).issubset((0.0, 1.0)) and set(ys).issubset((0.0, 1.0))

    low, high, used, method = bootstrap_mean_ci(d, seed=seed, resamples=resamples, confidence=confidence)
    return PairedComparison(
        n=n,
        mean_a=math.fsum(xs) / n,
        mean_b=math.fsum(ys) / n,
        # The mean of the differences rather than mean_b - mean_a (equal up to
        # rounding): it is the statistic bootstrapped, so when every resample
        # gives the same mean the interval is exactly [delta, delta].
        delta=math.fsum(d) / n,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        resamples=used,
        method=method,
        binary=binary,
        improved=improved,
        regressed=regressed,
        unchanged=unchanged,
        # For 0/1 pairs, b < a is exactly a 1 -> 0 pair and b > a a 0 -> 1 pair.
        p_value=mcnemar_exact(regressed, improved) if binary else None,
    )


def bootstrap_mean_ci(
    d: Sequence[float], *, seed: int, resamples: int, confidence: float
) -> tuple[float, float, int, str]:
    """Percentile bootstrap interval for the mean of ``d``.

    Returns ``(low, high, resamples_used, method)``. ``method`` is
    ``"multinomial"`` when ``d`` has at most 64 distinct values (each resample's
    counts of those values are drawn directly, O(K) per resample) and
    ``"resample"`` otherwise (indices drawn one by one, with the number of
    resamples cut so that resamples * len(d) stays within a fixed budget).
    Empty ``d`` gives ``(nan, nan, 0, "multinomial")``.
    """
    _check_options(seed=seed, resamples=resamples, confidence=confidence)
    means, method = _bootstrap_means(d, seed=seed, resamples=resamples)
    if not means:
        return math.nan, math.nan, 0, method
    means.sort()
    tail = (1.0 - confidence) / 2.0
    return _percentile(means, tail), _percentile(means, 1.0 - tail), len(means), method


def _bootstrap_means(d: Sequence[float], *, seed: int, resamples: int) -> tuple[list[float], str]:
    """The (unsorted) bootstrap means of ``d`` and the method that drew them."""
    values = [float(v) for v in d]
    if not all(map(math.isfinite, values)):
        raise UsageError("bootstrap_mean_ci needs finite values (no nan or infinity)")
    n = len(values)
    rng = random.Random(seed)
    if n == 0:
        return [], METHOD_MULTINOMIAL

    counts = Counter(values)
    if len(counts) <= MULTINOMIAL_MAX_DISTINCT:
        # A bootstrap resample is n draws with replacement; all that matters for
        # its mean is how many times each distinct value was drawn, and those
        # counts are Multinomial(n, c_k / n). Sorting the values makes the result
        # independent of the order of the samples.
        distinct = sorted(counts)
        observed = [counts[v] for v in distinct]
        means = []
        for _ in range(resamples):
            drawn = _multinomial(n, observed, rng)
            means.append(math.fsum(c * v for c, v in zip(drawn, distinct)) / n)
        return means, METHOD_MULTINOMIAL

    used = min(resamples, max(MIN_REDUCED_RESAMPLES, RESAMPLE_DRAW_BUDGET // n))
    means = []
    draw = rng.random
    for _ in range(used):
        # The same draws rng.choices(values, k=n) makes, written out because only
        # Random.random() is promised to stay the same across Python versions.
        means.append(math.fsum([values[int(draw() * n)] for _ in range(n)]) / n)
    return means, METHOD_RESAMPLE


def _multinomial(trials: int, weights: list[int], rng: random.Random) -> list[int]:
    """Counts of a Multinomial(trials, weights / sum(weights)) draw.

    Drawn as successive conditional binomials: given the counts of the first
    categories, the next one is Binomial(trials left, its share of the weight
    left). The probabilities are ratios of integers, so they never exceed 1.
    """
    out = [0] * len(weights)
    left = trials
    weight_left = sum(weights)
    for k in range(len(weights) - 1):
        if left == 0:
            break
        w = weights[k]
        x = binomial(left, w / weight_left, rng)
        out[k] = x
        left -= x
        weight_left -= w
    out[-1] += left
    return out


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default, Hyndman & Fan type 7)."""
    h = q * (len(sorted_values) - 1)
    i = math.floor(h)
    j = min(i + 1, len(sorted_values) - 1)
    lo, hi = sorted_values[i], sorted_values[j]
    # Clamped: rounding in the interpolation must not step outside [lo, hi].
    return min(max(lo + (h - i) * (hi - lo), lo), hi)


def binomial(n: int, p: float, rng: random.Random) -> int:
    """Draw from Binomial(n, p) using only ``rng.random()``.

    For ``n * min(p, 1-p) >= 10``: BTRS, transformed rejection with squeeze
    (W. Hörmann, "The generation of binomial random variates", J. Statist.
    Comput. Simul. 46, 1993), O(1) expected time for any n. Below that: CDF
    inversion by sequential search, expected O(n * p) < 10 steps.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UsageError(f"binomial n must be an integer >= 0, got {n!r}")
    if not (0.0 <= p <= 1.0):  # also rejects nan
        raise UsageError(f"binomial p must be in [0, 1], got {p!r}")
    if n == 0 or p == 0.0:
        return 0
    if p == 1.0:
        return n
    if p > 0.5:
        # Both methods assume p <= 1/2 (BTRS's constants were fitted for it).
        return n - binomial(n, 1.0 - p, rng)
    if n * p < BTRS_MIN_MEAN:
        return _binomial_inversion(n, p, rng)
    return _binomial_btrs(n, p, rng)


def _binomial_inversion(n: int, p: float, rng: random.Random) -> int:
    """Sequential-search inversion: walk the pmf until it exceeds a uniform draw.

    Uses pmf(k+1) = pmf(k) * (n - k) / (k + 1) * p / q. Only called with
    n * p < 10 and p <= 1/2, so pmf(0) = q**n >= about exp(-14) does not underflow.
    """
    q = 1.0 - p
    ratio = p / q
    first = q**n
    while True:
        u = rng.random()
        k = 0
        pmf = first
        while u > pmf:
            u -= pmf
            k += 1
            if k > n:
                break
            pmf *= ratio * (n - k + 1) / k
        # Rounding can leave u above the total mass; redraw rather than loop forever.
        if k <= n:
            return k


def _binomial_btrs(n: int, p: float, rng: random.Random) -> int:
    """Hörmann's BTRS for p <= 1/2 and n * p >= 10."""
    q = 1.0 - p
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    m = math.floor((n + 1) * p)  # the mode
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        if us <= 0.0:  # u == -0.5 exactly: the transform below would divide by zero
            continue
        k = math.floor((2.0 * a / us + b) * u + c)
        # The hat covers values outside 0..n, which have probability zero; the
        # squeeze never accepts them, but checking first costs nothing.
        if k < 0 or k > n:
            continue
        # Squeeze: inside this region the hat is known to be under the pmf.
        if us >= 0.07 and v <= v_r:
            return k
        v = v * alpha / (a / (us * us) + b)
        if v <= 0.0:  # log(0) is -inf, below any log-pmf: accept
            return k
        # Accept if v is under the pmf, both relative to the mode, in log space.
        if math.log(v) <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` pairs 1 -> 0 and ``c`` pairs 0 -> 1.

    Under the null each discordant pair goes either way with probability 1/2, so
    the p-value is ``min(1, 2 * P(X <= min(b, c)))`` with X ~ Binomial(b + c, 1/2);
    1.0 when there is no discordant pair.
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"mcnemar_exact {name} must be an integer >= 0, got {value!r}")
    total = b + c
    k = min(b, c)
    if total == 0 or 2 * k >= total:
        # b == c: the tail holds at least half the mass, so twice it is >= 1.
        return 1.0
    if total <= MCNEMAR_EXACT_MAX:
        # Exact: 2 * sum(C(n, i)) / 2**n, one correctly rounded int division.
        tail = sum(math.comb(total, i) for i in range(k + 1))
        return min(1.0, tail / 2 ** (total - 1))
    # Large n: sum the tail downwards from its largest term, pmf(k), using
    # pmf(i - 1) = pmf(i) * i / (n - i + 1), relative to pmf(k) so nothing
    # underflows; only log pmf(k) goes through lgamma. k < n/2, so the ratios are
    # below 1 and the terms shrink: stop once they no longer change the sum.
    log_pmf_k = math.lgamma(total + 1) - math.lgamma(k + 1) - math.lgamma(total - k + 1) - total * math.log(2)
    rel_sum = 0.0
    term = 1.0
    i = k
    while True:
        rel_sum += term
        if i == 0 or term < rel_sum * 1e-17:
            break
        term *= i / (total - i + 1)
        i -= 1
    log_tail = log_pmf_k + math.log(rel_sum)
    return min(1.0, math.exp(log_tail + math.log(2)))


def _as_finite(value: object) -> float | None:
    """``value`` as a float if it is a finite real number (bools count), else None."""
    # Exact-type fast path first: this runs once per sample of a 100 000-sample diff.
    if type(value) is float:
        return value if math.isfinite(value) else None
    if not isinstance(value, numbers.Real):  # also covers int and bool; numpy scalars, Fraction
        return None
    try:
        f = float(value)
    except (OverflowError, ValueError):  # an int too large for a float is not a usable score
        return None
    return f if math.isfinite(f) else None


def _check_options(*, seed: int, resamples: int, confidence: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be an integer, got {seed!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise UsageError(f"resamples must be an integer >= 1, got {resamples!r}")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not (0.0 < confidence < 1.0)
    ):
        raise UsageError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
