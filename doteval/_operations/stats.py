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
* depend on anything but its arguments, or give different numbers on different
  machines. The bootstrap draws from ``random.Random(seed)`` only through
  ``random()`` and ``getrandbits()``, the raw Mersenne Twister output (Python
  promises ``random()``'s sequence across versions; ``getrandbits`` has given
  the same bits throughout Python 3), never through helpers such as
  ``choices()`` or ``randrange()`` whose algorithms Python may change. No float
  is ever summed: values are converted to exact integers (every finite float
  is an integer times a power of two), summed exactly, and each mean is the
  correctly rounded quotient, so the result cannot depend on summation order,
  on ``sum()`` changing its float algorithm (it did in Python 3.12) or on the
  platform. (The exceptions are libm's ``log``/``exp``, which ``math.lgamma``
  also uses and which are not correctly rounded everywhere: the binomial
  sampler compares a uniform draw with such a value, so a draw landing within
  an ulp of the boundary, probability around 1e-16 per draw, could be decided
  differently; and McNemar p-values above 1000 discordant pairs may differ in
  their last digits.)
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
from operator import itemgetter

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

# Block size of the resampling bootstrap: indices within a block are single bytes.
_BLOCK = 256
# Digit size for exact block sums: 256 values below 2**53 sum below 2**61, inside
# the machine word CPython's sum() adds ints in without allocating.
_CHUNK_BITS = 53

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
    a: Sequence[float | bool | None],
    b: Sequence[float | bool | None],
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
    d: list[float] = []
    for x, y in zip(a, b):
        fx = _as_finite(x)
        if fx is None:
            continue
        fy = _as_finite(y)
        if fy is None:
            continue
        diff = fy - fx
        if not math.isfinite(diff):  # e.g. 1e308 - -1e308: no usable difference
            continue
        xs.append(fx)
        ys.append(fy)
        d.append(diff)

    n = len(xs)
    if n == 0:
        nan = math.nan
        low, high, used, method = bootstrap_mean_ci([], seed=seed, resamples=resamples, confidence=confidence)
        return PairedComparison(
            n=0, mean_a=nan, mean_b=nan, delta=nan, ci_low=low, ci_high=high,
            confidence=confidence, resamples=used, method=method, binary=False,
            improved=0, regressed=0, unchanged=0, p_value=None,
        )  # fmt: skip

    improved = sum(1 for v in d if v > 0)
    regressed = sum(1 for v in d if v < 0)
    unchanged = n - improved - regressed
    # {0.0, 1.0} also matches the ints 0/1 and True/False (they were converted).
    binary = set(xs).issubset((0.0, 1.0)) and set(ys).issubset((0.0, 1.0))

    low, high, used, method = bootstrap_mean_ci(d, seed=seed, resamples=resamples, confidence=confidence)
    return PairedComparison(
        n=n,
        mean_a=_exact_mean(xs),
        mean_b=_exact_mean(ys),
        # The mean of the differences rather than mean_b - mean_a (equal up to
        # rounding): it is the statistic bootstrapped, computed the same way
        # (correctly rounded), so a resample that draws the observed sample
        # gives exactly delta, and a constant difference gives [delta, delta].
        delta=_exact_mean(d),
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
    ``"resample"`` otherwise (every resample draws ``len(d)`` indices, so the
    number of resamples is cut to ``min(resamples, max(200, 20_000_000 // len(d)))``).
    Both draw exactly the distribution of an ordinary bootstrap. Empty ``d``
    gives ``(nan, nan, 0, "multinomial")``.
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
    values: list[float] = []
    for v in d:
        f = _as_finite(v)
        if f is None:
            raise UsageError(f"bootstrap_mean_ci needs finite real numbers, got {v!r}")
        values.append(f)
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
        scaled, exp = _scaled_ints(distinct)
        means = []
        for _ in range(resamples):
            drawn = _multinomial(n, observed, rng)
            means.append(_scaled_mean(sum(c * s for c, s in zip(drawn, scaled)), exp, n))
        return means, METHOD_MULTINOMIAL

    used = min(resamples, max(MIN_REDUCED_RESAMPLES, RESAMPLE_DRAW_BUDGET // n))
    sampler = _BlockResampler(values)
    return [sampler.resample_mean(rng) for _ in range(used)], METHOD_RESAMPLE


class _BlockResampler:
    """Means of ordinary bootstrap resamples of many distinct values, fast in pure Python.

    Drawing n indices one at a time with ``rng.random()`` and adding up the
    values costs a few hundred ns per draw in CPython: several seconds for the
    20 million draws of the largest diffs. Instead the values are sorted and
    cut into blocks of 256 (the last one shorter): the numbers of draws falling
    in each block are Multinomial(n, block sizes / n) (one conditional binomial
    per block), and the draws within a block are uniform random bytes, made by
    one ``getrandbits`` call per resample and gathered 256 at a time with one
    ``itemgetter`` call. The drawn multiset of values has exactly the
    distribution of n uniform draws; sorting only decides which values share a
    block (and makes the result independent of the order of the samples).

    Sums are exact: each block holds its values as integer multiples of one
    power of two (the smallest the block needs), so a block's sum is an integer
    sum on CPython's machine-word fast path, and block sums are combined as
    integers. Sorted neighbours have similar magnitudes, so a block's integers
    almost always fit in 53 bits; a block that needs more (values spanning
    many binades) is split into 53-bit chunks.
    """

    def __init__(self, values: list[float]) -> None:
        n = len(values)
        self.n = n
        ordered = sorted(values)
        bounds = [(lo, min(lo + _BLOCK, n)) for lo in range(0, n, _BLOCK)]
        scaled = [_scaled_ints(ordered[lo:hi]) for lo, hi in bounds]
        self.exp = min(exp for _, exp in scaled)
        # Per block: (shift to the common scale 2**self.exp, chunk lists with
        # sum(chunk[i] << (_CHUNK_BITS * j)) == the block's i-th scaled value).
        self.blocks = [(exp - self.exp, _chunks(ints)) for ints, exp in scaled]
        self.weights = [hi - lo for lo, hi in bounds]
        # Index bytes for the short last block (if any): mask a uniform byte to
        # the bits its size needs, then drop values >= size (rejection keeps the
        # survivors exactly uniform, and at least half survive).
        self.tail = n % _BLOCK
        bits = (self.tail - 1).bit_length() if self.tail else 0
        self.tail_mask = bytes(b & ((1 << bits) - 1) for b in range(256))
        self.tail_reject = bytes(range(self.tail, 1 << bits))

    def resample_mean(self, rng: random.Random) -> float:
        return _scaled_mean(self.resample_total(rng), self.exp, self.n)

    def resample_total(self, rng: random.Random) -> int:
        """The exact sum of one resample, in units of ``2**self.exp``."""
        counts = _multinomial(self.n, self.weights, rng)
        in_full = self.n - (counts[-1] if self.tail else 0)
        # One index byte per draw, block after block: full blocks take raw
        # bytes, the short last block its own rejection-sampled ones.
        pool = rng.getrandbits(8 * in_full).to_bytes(in_full, "little")
        if self.tail:
            pool += self._tail_indices(counts[-1], rng)
        total = 0
        pos = 0
        for (shift, chunks), k in zip(self.blocks, counts):
            if k == 0:
                continue
            if k == 1:  # itemgetter with one item returns the item, not a tuple
                i = pool[pos]
                block_sum = sum(chunk[i] << (_CHUNK_BITS * j) for j, chunk in enumerate(chunks))
            else:
                get = itemgetter(*pool[pos : pos + k])
                if len(chunks) == 1:
                    block_sum = sum(get(chunks[0]))
                else:
                    block_sum = sum(sum(get(chunk)) << (_CHUNK_BITS * j) for j, chunk in enumerate(chunks))
            total += block_sum << shift
            pos += k
        return total

    def _tail_indices(self, count: int, rng: random.Random) -> bytes:
        """``count`` independent uniform indices into the short last block, as bytes."""
        out = b""
        while len(out) < count:
            size = 2 * (count - len(out)) + 16  # expected to be enough in one round
            raw = rng.getrandbits(8 * size).to_bytes(size, "little")
            out += raw.translate(self.tail_mask).translate(None, self.tail_reject)
        return out[:count]


def _chunks(ints: list[int]) -> list[list[int]]:
    """Split signed integers into lists of _CHUNK_BITS-bit digits, least significant first.

    The low digits are unsigned and the top one keeps the sign (``>>`` floors),
    so ``sum(chunks[j][i] << (_CHUNK_BITS * j)) == ints[i]``. Every digit is at
    most 2**53 in size, so 256 of them sum within a 64-bit machine word.
    """
    width = max((abs(v).bit_length() for v in ints), default=0)
    count = max(1, -(-width // _CHUNK_BITS))
    mask = (1 << _CHUNK_BITS) - 1
    out = [[(v >> (_CHUNK_BITS * j)) & mask for v in ints] for j in range(count - 1)]
    out.append([v >> (_CHUNK_BITS * (count - 1)) for v in ints] if count > 1 else ints)
    return out


def _scaled_ints(values: Sequence[float]) -> tuple[list[int], int]:
    """``(ints, exp)`` with ``values[i] == ints[i] * 2**exp`` exactly (finite floats).

    Every finite float is an odd integer times a power of two; scaling all of
    them to the smallest power present turns sums of floats into exact sums of
    integers.
    """
    ratios = list(map(float.as_integer_ratio, values))  # denominators are powers of two
    den = max(map(itemgetter(1), ratios), default=1)
    return [p * (den // q) for p, q in ratios], 1 - den.bit_length()


def _scaled_mean(total: int, exp: int, n: int) -> float:
    """``total * 2**exp / n`` correctly rounded: int / int true division rounds once."""
    return (total << exp) / n if exp >= 0 else total / (n << -exp)


def _exact_mean(values: Sequence[float]) -> float:
    """The mean of ``values`` correctly rounded (no intermediate rounding at all)."""
    scaled, exp = _scaled_ints(values)
    return _scaled_mean(sum(scaled), exp, len(values))


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
    if isinstance(p, bool) or not isinstance(p, int | float) or not (0.0 <= p <= 1.0):  # also rejects nan
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
    # underflows. k < n/2, so the ratios are below 1 and the terms shrink: stop
    # once they no longer change the sum.
    rel_sum = 0.0
    term = 1.0
    i = k
    while True:
        rel_sum += term
        if i == 0 or term < rel_sum * 1e-17:
            break
        term *= i / (total - i + 1)
        i -= 1
    return min(1.0, math.exp(_log_binomial_pmf_half(total, k) + math.log(2.0 * rel_sum)))


def _log_binomial_pmf_half(n: int, k: int) -> float:
    """log P(X = k) for X ~ Binomial(n, 1/2), accurate to ~1e-14 for any n.

    The obvious lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1) - n log 2 subtracts
    numbers of size n log n and loses their absolute error (1e-10 at n = 50 000).
    Loader's saddle-point form ("Fast and accurate computation of binomial
    probabilities", 2000; what R and scipy use) only adds small terms:
    log pmf = stirlerr(n) - stirlerr(k) - stirlerr(n-k) - bd0(k, n/2) - bd0(n-k, n/2)
    + log(n / (2 pi k (n-k))) / 2.
    """
    if k == 0 or k == n:
        return -n * math.log(2.0)
    half = n / 2.0
    return (
        _stirlerr(n)
        - _stirlerr(k)
        - _stirlerr(n - k)
        - _bd0(k, half)
        - _bd0(n - k, half)
        + 0.5 * math.log(n / (2.0 * math.pi * k * (n - k)))
    )


def _stirlerr(n: int) -> float:
    """log(n!) - log(sqrt(2 pi n) (n/e)**n), the error of Stirling's formula, n >= 1."""
    if n <= 15:
        # Small n: direct; the cancellation costs at most ~1e-15 absolute.
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - 0.5 * math.log(2.0 * math.pi)
    # Asymptotic series 1/(12n) - 1/(360n^3) + 1/(1260n^5) - ...; the number of
    # terms kept is Loader's (enough for double precision at each range).
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    nn = float(n) * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, m: float) -> float:
    """x log(x/m) + m - x (the deviance term), without cancellation when x is near m."""
    if abs(x - m) < 0.1 * (x + m):
        # Series in v = (x - m) / (x + m): 2x * sum(v**(2j+1) / (2j+1)) - (x - m) collapses to this.
        v = (x - m) / (x + m)
        s = (x - m) * v
        ej = 2.0 * x * v
        v2 = v * v
        j = 1
        while True:
            ej *= v2
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
            j += 1
    return x * math.log(x / m) + m - x


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
