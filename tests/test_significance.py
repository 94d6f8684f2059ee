"""The verdicts' error rate under no difference, and compare and the claims agreeing (no servers)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap, permutation_test

from harness.answer import aggregate, compare, evidence, significance
from harness.data import schema
from tests.run_folders import row

PAIRS = 2000
LEVEL = 0.05
# Binomial margin: 3 standard errors of a share LEVEL over PAIRS trials (≈ 1.5 points).
MARGIN = 3 * math.sqrt(LEVEL * (1 - LEVEL) / PAIRS)
SPREAD = compare.Spread(1.10, "assumed")


def _samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PAIRS pairs of n-repeat groups drawn from one distribution (rps ~ N(100, 5))."""
    rng = np.random.default_rng(seed)
    return rng.normal(100, 5, (PAIRS, n)), rng.normal(100, 5, (PAIRS, n))


def _cell(values: np.ndarray) -> pd.Series:
    lo, hi, _ = aggregate.median_interval(values)
    return pd.Series({"rps": float(np.median(values)), "rps_lo": lo, "rps_hi": hi,
                      "repeats": len(values), "rps_values": tuple(values)})


def compare_share(n: int, seed: int = 19) -> float:
    """Share of equal pairs `bench.py compare` calls faster or slower (the word only: no interval)."""
    a, b = _samples(n, seed)
    words = [compare.verdict(x, y, True, SPREAD, effect=False).verdict for x, y in zip(a, b, strict=True)]
    return float(np.mean([w in ("faster", "slower") for w in words]))


def claims_share(n: int, seed: int = 91) -> float:
    """Share of equal pairs the claims' noise rule calls different."""
    a, b = _samples(n, seed)
    return float(np.mean([evidence.compare(_cell(x), _cell(y), "rps") != 0
                          for x, y in zip(a, b, strict=True)]))


@pytest.mark.parametrize("n", [3, 5, 8])
def test_compare_verdict_error_rate_is_at_most_its_level(n: int) -> None:
    share = compare_share(n)
    assert share <= LEVEL + MARGIN, f"{share:.1%} of equal pairs called different at n={n}"


@pytest.mark.parametrize("n", [3, 5, 8])
def test_claims_noise_rule_error_rate_is_at_most_its_level(n: int) -> None:
    share = claims_share(n)
    assert share <= LEVEL + MARGIN, f"{share:.1%} of equal pairs called different at n={n}"


def _old_bootstrap_says_different(a: np.ndarray, b: np.ndarray) -> bool:
    """compare's earlier verdict: the 95% percentile bootstrap interval of the ratio of
    medians (4,000 resamples) excludes 1."""
    ci = bootstrap((b, a), lambda y, x, axis=-1: np.median(y, axis=axis) / np.median(x, axis=axis),
                   n_resamples=4000, method="percentile", vectorized=True, confidence_level=0.95,
                   rng=np.random.default_rng(0))
    return bool(ci.confidence_interval.low > 1 or ci.confidence_interval.high < 1)


def _old_ranges_apart(a: np.ndarray, b: np.ndarray) -> bool:
    """The claims' earlier noise rule: the repeat intervals (min–max below 6 repeats) do not
    overlap."""
    x, y = _cell(a), _cell(b)
    return bool(x["rps_lo"] > y["rps_hi"] or x["rps_hi"] < y["rps_lo"])


@pytest.mark.parametrize("old_rule", [_old_bootstrap_says_different, _old_ranges_apart])
def test_the_error_rate_test_fails_the_old_rules_at_three_repeats(old_rule) -> None:
    """The check above can fail: the rules it replaced call about 1 equal pair in 10 different at
    3 vs 3 (2 of the 20 orderings put one group wholly above the other), over the level + margin."""
    a, b = _samples(3, 19)
    share = float(np.mean([old_rule(x, y) for x, y in zip(a, b, strict=True)]))
    assert share > LEVEL + MARGIN
    assert share == pytest.approx(0.1, abs=0.02)


def test_the_test_still_sees_a_real_difference_at_five_repeats() -> None:
    # A 15% shift at sd 5% must be found nearly always, else a test that never fires would pass.
    rng = np.random.default_rng(5)
    a, b = rng.normal(100, 5, (300, 5)), rng.normal(115, 5, (300, 5))
    found = np.mean([compare.verdict(x, y, True, SPREAD, effect=False).verdict == "faster"
                     for x, y in zip(a, b, strict=True)])
    assert found > 0.9


def test_exact_p_matches_scipy_and_the_smallest_p() -> None:
    rng = np.random.default_rng(1)
    for n_a, n_b in [(3, 3), (3, 5), (5, 5), (4, 6)]:
        x, y = rng.normal(100, 5, n_a), rng.normal(103, 5, n_b)
        ref = permutation_test((np.log(x), np.log(y)), lambda u, v, axis: np.mean(v, axis=axis)
                               - np.mean(u, axis=axis), permutation_type="independent",
                               n_resamples=np.inf, vectorized=True).pvalue
        assert significance.test(x, y).p == pytest.approx(ref)
    assert significance.smallest_p(3, 3) == pytest.approx(0.1)
    assert significance.smallest_p(5, 5) == pytest.approx(2 / 252)
    t = significance.test([100.0, 101, 102], [200.0, 201, 202])
    assert t.p == pytest.approx(0.1) and t.direction() == 0 and not t.can_show()
    assert t.words() == "3 vs 3 repeats cannot show a difference at 5%: use --repeat 5"


@pytest.mark.parametrize("b_values", [[112.0, 109, 115, 111, 113], [101.0, 99, 103, 98, 100],
                                      [112.0, 109, 115]])
def test_compare_and_claims_agree_on_one_pair_of_cells(b_values: list[float]) -> None:
    a_values = [100.0, 103, 97, 101, 99]
    rows = [row(target="correct-async", scenario="io", rps=v, repeat=i, loop="uvloop")
            for i, v in enumerate(a_values)]
    rows += [row(target="correct-async", scenario="io", rps=v, repeat=i, loop="asyncio")
             for i, v in enumerate(b_values)]
    df = aggregate.coerce(pd.DataFrame(rows, columns=schema.COLUMNS))
    run = evidence.Run(aggregate.summarize(df), df, {})
    s = run.summary
    a, b = s[s["loop"] == "uvloop"].iloc[0], s[s["loop"] == "asyncio"].iloc[0]
    v = compare.verdict(np.array(a_values), np.array(b_values), True, SPREAD)
    by_compare = {"faster": 1, "slower": -1}.get(v.verdict, 0)
    assert evidence.compare(b, a, "rps") == by_compare
    t = evidence.repeat_test(b, a, "rps")
    assert t is not None and t.p == pytest.approx(v.p)
    words = evidence.noise_words(b, a, "rps")
    assert (words in v.verdict) if v.verdict.startswith("cannot") else words.startswith(f"p = {v.p:.2g}")


def error_rates() -> list[str]:
    """The figures docs/significance.md quotes: share of equal pairs called different, per rule and n,
    by the rules today and by the two they replaced (same seeds as the tests above)."""
    lines = []
    for n in (3, 5, 8):
        old_compare = float(np.mean([_old_bootstrap_says_different(x, y)
                                     for x, y in zip(*_samples(n, 19), strict=True)]))
        old_claims = float(np.mean([_old_ranges_apart(x, y) for x, y in zip(*_samples(n, 91), strict=True)]))
        lines.append(f"n={n}: compare {old_compare:.2%} -> {compare_share(n):.2%}; "
                     f"claims {old_claims:.2%} -> {claims_share(n):.2%}")
    return lines


if __name__ == "__main__":  # .venv/bin/python -m tests.test_significance
    print(f"{PAIRS} pairs of equal groups (N(100, 5)); nominal level {LEVEL:.0%}, "
          f"test limit {LEVEL + MARGIN:.2%}")
    print("\n".join(error_rates()))
