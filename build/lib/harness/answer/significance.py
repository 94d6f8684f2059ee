"""Does group B differ from group A? One exact test for `bench.py compare` and the claims.

An exact two-sided permutation test (every split enumerated, as scipy.stats.permutation_test does) on the
difference of the groups' log means, i.e. of their geometric means: throughput and latency are ratio
data. Its level is true at any n, unlike a percentile bootstrap (with 3 against 3 that one calls a
difference 1 time in 10 when there is none).

The repeats bound the smallest p-value: with n_a against n_b there are C(n_a + n_b, n_a) splits, and
the observed one is at best the most extreme of them on one side, so p ≥ 2 / C(n_a + n_b, n_a)
(0.1 at 3 vs 3, ≈ 0.008 at 5 vs 5). When that bound is above the level, no data can show a
difference, and the verdict says so instead of "no difference".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy.stats import permutation_test

LEVEL = 0.05  # two-sided
RECOMMENDED_REPEATS = 5  # 5 vs 5: smallest p ≈ 0.008, room below 5% for a real difference


@dataclass(frozen=True)
class Test:
    """The outcome for B against A: p, the smallest p these repeats allow, and the sign of B − A."""

    p: float
    min_p: float
    n_a: int
    n_b: int
    sign: int  # +1: B's (geometric) mean above A's, -1 below, 0 equal

    def direction(self, level: float = LEVEL) -> int:
        """+1 / -1 when B is significantly above / below A at `level`, else 0."""
        return self.sign if self.p <= level else 0

    def can_show(self, level: float = LEVEL) -> bool:
        return self.min_p <= level

    def words(self, level: float = LEVEL) -> str:
        """`p = 0.008 (5 vs 5)`, or why these repeats cannot show a difference at `level`."""
        if not self.can_show(level):
            return too_few(self.n_a, self.n_b, level)
        return f"p = {self.p:.2g} ({self.n_a} vs {self.n_b} repeats)"


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact permutation test can give with these group sizes."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def repeats_needed(level: float = LEVEL) -> int:
    """Repeats a side to suggest: RECOMMENDED_REPEATS, or more if even that cannot reach `level`."""
    n = RECOMMENDED_REPEATS
    while smallest_p(n, n) > level:
        n += 1
    return n


def too_few(n_a: int, n_b: int, level: float = LEVEL) -> str:
    return (f"{n_a} vs {n_b} repeats cannot show a difference at {level:.0%}: "
            f"use --repeat {repeats_needed(level)}")


EXACT_LIMIT = 200_000  # splits enumerated by hand (10 vs 10); beyond, scipy's Monte Carlo test
MONTE_CARLO_RESAMPLES = 99_999


@lru_cache(maxsize=64)
def _splits(n_a: int, n_b: int) -> np.ndarray:
    """Every way to choose A's members from the pooled sample: a (C(n_a+n_b, n_a), n_a + n_b) 0/1
    matrix, cached because the error-rate test runs thousands of tests at the same sizes."""
    n = n_a + n_b
    out = np.zeros((math.comb(n, n_a), n))
    for row, members in enumerate(combinations(range(n), n_a)):
        out[row, list(members)] = 1.0
    return out


def _exact_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact p of mean(y) − mean(x) over every split, as scipy.stats.permutation_test
    computes it (2 × the smaller tail, capped at 1; ties within a relative 1e-12 count as equal)."""
    pooled = np.concatenate([x, y])
    n_a, n_b = len(x), len(y)
    sum_a = _splits(n_a, n_b) @ pooled
    null = (pooled.sum() - sum_a) / n_b - sum_a / n_a
    observed = float(np.mean(y) - np.mean(x))
    tol = 1e-12 * max(1.0, abs(observed))
    above = np.count_nonzero(null >= observed - tol) / len(null)
    below = np.count_nonzero(null <= observed + tol) / len(null)
    return float(min(1.0, 2 * min(above, below)))


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(b, axis=axis) - np.mean(a, axis=axis)


def _monte_carlo_p(x: np.ndarray, y: np.ndarray) -> float:
    res = permutation_test((x, y), _mean_difference, permutation_type="independent",
                           n_resamples=MONTE_CARLO_RESAMPLES, vectorized=True, alternative="two-sided",
                           rng=np.random.default_rng(0))
    return float(res.pvalue)


def test(a: object, b: object) -> Test:
    """Permutation test of B against A (exact up to EXACT_LIMIT splits). NaNs are dropped;
    non-positive values make the test run on the plain means (a log is undefined there)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n_a, n_b = len(x), len(y)
    if n_a < 1 or n_b < 1:
        return Test(1.0, 1.0, n_a, n_b, 0)
    if (x > 0).all() and (y > 0).all():
        x, y = np.log(x), np.log(y)
    diff = float(np.mean(y) - np.mean(x))
    sign = 0 if diff == 0 else (1 if diff > 0 else -1)
    if sign == 0:
        return Test(1.0, smallest_p(n_a, n_b), n_a, n_b, sign)
    exact = math.comb(n_a + n_b, n_a) <= EXACT_LIMIT
    p = _exact_p(x, y) if exact else _monte_carlo_p(x, y)
    return Test(p, smallest_p(n_a, n_b), n_a, n_b, sign)
