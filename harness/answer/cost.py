"""The answer's tie rule: among the patterns within the noise of the best throughput, the cheapest wins.

- *Within noise*: with ≥ TEST_REPEATS repeats on both sides, the exact permutation test
  (harness.answer.significance) finds no difference at 5%; otherwise (one repeat, or too few for the
  test to show anything) the stated margin: at least 95% of the best's throughput.
- *Cheapest*: fewest processes (uvicorn workers, plus each worker's process pool), then least memory
  (peak RSS of the target tree). Memory within MEMORY_MARGIN counts as the same cost: RSS moves by a
  few percent between repeats.
- Same cost: the lower /health wins when it is clearly lower (HEALTH_RATIO×, above HEALTH_FLOOR_MS);
  else it is a true tie, the only case the answer says "cannot decide".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.answer import recommend, significance

MEMORY_MARGIN = 0.10  # RSS within 10% is the same cost
HEALTH_RATIO = 2.0  # /health at least this many times lower is a difference a neighbour feels
HEALTH_FLOOR_MS = 10.0  # below this, /health figures are alike whatever their ratio


def _smallest_testable(level: float = significance.LEVEL) -> int:
    n = 2
    while significance.smallest_p(n, n) > level:
        n += 1
    return n


TEST_REPEATS = _smallest_testable()  # 4: 4 vs 4 repeats can reach p ≈ 0.03
MAX_REPEATS = significance.RECOMMENDED_REPEATS  # the hinge repeats stop at 5, as bench.py claims does
RULE_TEXT = (f"ties: within the noise of the best rps (permutation test with ≥ {TEST_REPEATS} repeats, else "
             f"{1 - recommend.NEAR_BEST:.0%}), the cheapest wins: fewest processes, then least memory")


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def processes(cell: pd.Series) -> int:
    """Processes the configuration runs: its workers, and each worker's process pool."""
    import targets

    workers = _num(cell.get("workers"))
    workers = 1 if math.isnan(workers) else int(workers)
    record = targets.TARGETS.get(str(cell.get("target")))
    pool = _num(cell.get("pool_size"))
    if getattr(record, "pool_kind", "none") == "processes" and not math.isnan(pool):
        return workers * (1 + int(pool))
    return workers


def memory_mb(cell: pd.Series) -> float:
    return _num(cell.get(recommend.MEMORY))


def cost_text(cell: pd.Series) -> str:
    """`1 process and 168 MB`."""
    n, mem = processes(cell), memory_mb(cell)
    head = f"{n} process{'es' if n != 1 else ''}"
    return head if math.isnan(mem) else f"{head} and {mem:.0f} MB"


def _runs(cell: pd.Series) -> list[float]:
    runs = cell.get("rps_runs")
    return [float(v) for v in runs] if isinstance(runs, tuple | list) else []


@dataclass(frozen=True)
class Noise:
    inside: bool
    why: str  # `0.97×, one repeat: within 5%` or `0.97×, p = 0.4 (5 vs 5 repeats)`


def noise(best: pd.Series, other: pd.Series) -> Noise:
    """Whether `other`'s throughput cannot be told from `best`'s, and on what that rests."""
    ratio = f"{float(other['rps']) / float(best['rps']):.2f}×"
    a, b = _runs(best), _runs(other)
    if min(len(a), len(b)) >= TEST_REPEATS:
        test = significance.test(a, b)
        return Noise(test.direction() == 0, f"{ratio}, {test.words()}")
    few = "one repeat" if min(len(a), len(b), int(other["repeats"]), int(best["repeats"])) <= 1 \
        else f"{min(len(a), len(b))} repeats, too few for the test"
    inside = bool(float(other["rps"]) >= recommend.NEAR_BEST * float(best["rps"]))
    return Noise(inside, f"{ratio}, {few}: {'within' if inside else 'beyond'} "
                         f"{1 - recommend.NEAR_BEST:.0%}")


def _health(cell: pd.Series) -> float:
    return recommend.health_figure(cell)[0]


def same_cost(a: pd.Series, b: pd.Series) -> bool:
    if processes(a) != processes(b):
        return False
    ma, mb = memory_mb(a), memory_mb(b)
    if math.isnan(ma) or math.isnan(mb):
        return math.isnan(ma) and math.isnan(mb)
    return abs(ma - mb) <= MEMORY_MARGIN * max(ma, mb)


def health_alike(a: pd.Series, b: pd.Series) -> bool:
    ha, hb = _health(a), _health(b)
    if math.isnan(ha) or math.isnan(hb) or max(ha, hb) <= HEALTH_FLOOR_MS:
        return True
    return max(ha, hb) < HEALTH_RATIO * max(min(ha, hb), 1e-9)


def cost_key(cell: pd.Series) -> tuple[float, float, float]:
    """Sort key, cheapest first: processes, memory (unmeasured last), then /health."""
    mem, health = memory_mb(cell), _health(cell)
    return (processes(cell), math.inf if math.isnan(mem) else mem, math.inf if math.isnan(health) else health)
