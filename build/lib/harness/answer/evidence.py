"""What every claim's decider shares: the run folder's cells (`Run`), the verdict words and
`Verdict`, the thresholds the rules state, the noise rule that says whether two cells differ
(`compare`), and the helpers that turn cells into evidence text.

Noise: with ≥ 2 repeats on both sides two cells differ only when the exact permutation test of
harness.answer.significance (the one `bench.py compare` uses) gives p ≤ 5% on their repeats; when the
repeats cannot reach 5% (3 vs 3: smallest p 0.1) they do not differ, and the evidence says so in
compare's words. (Non-overlapping min–max ranges, the old rule, fired 1 time in 10 with 3 vs 3 and no
difference.) With one repeat on a side there is no test, and a difference under NOISE_MARGIN counts as
noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.answer import aggregate, significance

if TYPE_CHECKING:  # chart_data imports this module
    from harness.answer.chart_data import Chart

HOLDS = "holds"
FAILS = "does not hold"
PARTLY = "holds only partly"
NO_DIFF = "no measurable difference"
NOT_MEASURED = "not measured"
VERDICTS = (HOLDS, FAILS, PARTLY, NO_DIFF, NOT_MEASURED)

NOISE_MARGIN = 0.10  # single-repeat cells: the validity check's own ±10% tolerance
NOISE_COLUMNS = ("rps", "p50_ms", "p99_ms", "health_ms")  # what deciders compare, per repeat
CLEAR_RATIO = 2.0    # "clearly faster/slower": a factor of 2
STALL_SHARE = 0.5    # /health p99 ≥ half the work endpoint's p50 → the cheap endpoint waits with it
UNSATURATED = 0.7    # a cell at ≥ 70% of its ceiling is not queueing behind its own CPU
FAST_HEALTH_MIN_MS = 20.0  # /health is "fast" below max(this, 2 × CPU_MS)
WORTHWHILE_GAIN = 0.10  # claim 6: more workers "add nothing" unless they add more than 10%
UNEVEN_SHARE = 0.15  # a worker share this far above 1/W means uvicorn's accept left a core idle
MEMORY_GROWTH = 1.10  # memory "grows" when the largest pool uses ≥ 10% more than the knee
POOL_SHARE = 0.5  # claim 9b: the queue is at the pool when the median wait for it is ≥ half the p50
LOOP_SHARE = 0.1  # ... and not on the event loop when its worst lag p99 is under a tenth of the p50


# ------------------------------------------------------------------------------------- the data


@dataclass
class Run:
    """What a run folder holds: the per-cell summary, the raw rows and meta.json."""

    summary: pd.DataFrame
    rows: pd.DataFrame
    meta: dict

    def __post_init__(self) -> None:
        # `health_ms`: the /health p99 of the worst probed worker, or its max where a stalled worker
        # answered too few probes for a p99 (the harness leaves that p99 empty; the max is then the
        # honest evidence of the stall, and the evidence text says which it is).
        s = self.summary.copy()
        for suffix in ("", "_lo", "_hi"):
            p99 = s.get(f"health_p99_ms{suffix}", pd.Series(math.nan, index=s.index))
            top = s.get(f"health_max_ms{suffix}", pd.Series(math.nan, index=s.index))
            s[f"health_ms{suffix}"] = p99.where(p99.notna(), top)
        s["health_is_max"] = s["health_ms"].notna() & s.get(
            "health_p99_ms", pd.Series(math.nan, index=s.index)).isna()
        self.summary = _with_repeat_values(s, self.rows)

    @property
    def cores(self) -> int | None:
        value = self.meta.get("cores_available") or self.meta.get("cpu_count")
        return int(value) if value else None

    def cells(self, **params: object) -> pd.DataFrame:
        """Cells with at least one measured repeat whose parameters equal `params`."""
        s = self.summary[self.summary["repeats"] > 0]
        for key, value in params.items():
            s = s[s[key] == value]
        return s

    def extra_median(self, cell: pd.Series, column: str) -> float:
        """Median over the ok repeats of `cell` of a measure the summary does not carry."""
        if column not in self.rows.columns:
            return math.nan
        r = self.rows[self.rows["status"] == "ok"]
        for key in aggregate.CELL_COLUMNS:
            value = cell[key]
            r = r[r[key].isna()] if pd.isna(value) else r[r[key] == value]
        vals = pd.to_numeric(r[column], errors="coerce").dropna()
        return float(vals.median()) if len(vals) else math.nan


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str
    condition: str = ""  # the limiting condition (partly), the reason (not measured), or a summary
    evidence: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    chart: Chart | None = None  # the cells the rule read, with its thresholds (harness.answer.chart_data)


# ---------------------------------------------------------------------------------- comparisons


def fmt(v: float, unit: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{text} {unit}".rstrip()


def label(cell: pd.Series, *extra: str) -> str:
    """`correct-async /io W=1 U=32` plus any named knobs (`loop=asyncio`)."""
    parts = [f"{cell['target']} /{cell['scenario']} W={cell['workers']} U={cell['users']}"]
    parts += [f"{k}={plain(cell[k])}" for k in extra]
    return " ".join(parts)


def plain(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def health_text(cell: pd.Series) -> str:
    """'p99 12 ms', or, where a worker answered too few probes for a p99, 'max 711 ms (n=9, too few for
    a p99)': a max is called a max."""
    text = fmt(cell["health_ms"], "ms")
    if not bool(cell.get("health_is_max")):
        return f"p99 {text}"
    n = cell.get("health_min_samples", math.nan)
    count = f"n={plain(n)}, " if isinstance(n, int | float) and not math.isnan(n) else ""
    return f"max {text} ({count}too few for a p99)"


def measure(cell: pd.Series, col: str, unit: str = "") -> str:
    """`187 rps [180–195, 3 repeats]` or `187 rps (1 repeat)`, flagged when the cell is untrusted."""
    n = int(cell["repeats"])
    text = health_text(cell) if col == "health_ms" else fmt(cell[col], unit)
    lo, hi = cell.get(f"{col}_lo", math.nan), cell.get(f"{col}_hi", math.nan)
    if n >= 2 and math.isfinite(lo) and math.isfinite(hi):
        text += f" [{fmt(lo)}–{fmt(hi)}, {n} repeats]"
    else:
        text += f" ({n} repeat{'s' if n != 1 else ''})"
    if not bool(cell["valid"]):
        text += f" (untrusted: {cell['invalid_reason']})"
    return text


def _with_repeat_values(summary: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Add `<col>_values` (the ok repeats' values, a tuple) per NOISE_COLUMNS column: the noise
    rule tests repeats, not summaries. `health_ms` per repeat is its p99, or its max without one."""
    s = summary.copy()
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows.iloc[0:0]
    ok = ok.copy()
    if "health_p99_ms" in ok.columns:
        top = ok["health_max_ms"] if "health_max_ms" in ok.columns else math.nan
        ok["health_ms"] = ok["health_p99_ms"].where(ok["health_p99_ms"].notna(), top)
    groups = {_norm(k if isinstance(k, tuple) else (k,)): g for k, g in
              ok.groupby(aggregate.CELL_COLUMNS, dropna=False)} if len(ok) else {}
    for col in NOISE_COLUMNS:
        values = []
        for _, cell in s.iterrows():
            g = groups.get(_key(cell))
            if g is None or col not in g.columns:
                values.append(())
                continue
            values.append(tuple(pd.to_numeric(g[col], errors="coerce").dropna()))
        s[f"{col}_values"] = values
    return s


def _key(cell: pd.Series) -> tuple:
    return _norm(tuple(cell[c] for c in aggregate.CELL_COLUMNS))


def _norm(key: tuple) -> tuple:
    return tuple(None if pd.isna(v) else v for v in key)  # NaN != NaN would miss the lookup


def repeat_test(a: pd.Series, b: pd.Series, col: str) -> significance.Test | None:
    """The permutation test of a's repeats of `col` against b's (None below 2 repeats a side)."""
    va, vb = a.get(f"{col}_values", ()), b.get(f"{col}_values", ())
    if len(va) < 2 or len(vb) < 2:
        return None
    return significance.test(vb, va)  # sign +1: a above b


def noise_words(a: pd.Series, b: pd.Series, col: str) -> str:
    """What the noise rule rests on, in compare's words: `p = 0.008 (5 vs 5 repeats)`, or `3 vs 3
    repeats cannot show a difference at 5%: use --repeat 5`; "" without repeats on both sides."""
    t = repeat_test(a, b, col)
    return t.words() if t is not None else ""


def test_note(a: pd.Series, b: pd.Series, col: str, name: str) -> str:
    """`; rps: p = 0.008 (5 vs 5 repeats)` for evidence text, "" when the cells have no repeats to test
    (the 10% margin rule decided)."""
    words = noise_words(a, b, col)
    return f"; {name}: {words}" if words else ""


def compare(a: pd.Series, b: pd.Series, col: str) -> int:
    """+1 if a's `col` is measurably above b's, -1 if below, 0 if the difference is inside the noise."""
    va, vb = float(a[col]), float(b[col])
    if not (math.isfinite(va) and math.isfinite(vb)):
        return 0
    if int(a["repeats"]) >= 2 and int(b["repeats"]) >= 2:
        t = repeat_test(a, b, col)
        return t.direction() if t is not None else 0  # no values: nothing to test on, so no claim
    if vb <= 0:
        return 1 if va > 0 else 0
    ratio = va / vb
    if ratio > 1 + NOISE_MARGIN:
        return 1
    if ratio < 1 / (1 + NOISE_MARGIN):
        return -1
    return 0


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def pairs(run: Run, a: dict, b: dict, ignore: tuple[str, ...] = ()) -> list[tuple[pd.Series, pd.Series]]:
    """Cells matching `a` paired with cells matching `b` that agree on every other parameter
    (except those in `ignore`, e.g. each target's own pool size)."""
    left, right = run.cells(**a), run.cells(**b)
    keys = [c for c in aggregate.CELL_COLUMNS if c not in set(a) | set(b) | set(ignore)]
    out = []
    for _, x in left.iterrows():
        for _, y in right.iterrows():
            if all(_same(x[k], y[k]) for k in keys):
                out.append((x, y))
    return out


def _same(x: object, y: object) -> bool:
    if pd.isna(x) and pd.isna(y):
        return True
    return x == y


def rps_duel(claim: str, found: list[tuple[pd.Series, pd.Series]], case_of: Callable[[Any, Any], str],
             name_a: Callable[[Any], str], name_b: Callable[[Any], str],
             extra: tuple[str, ...] = ()) -> Verdict:
    """A claim that the first cell of each pair serves more rps than the second: per pair, holds /
    fails / inside the noise, with both figures and their ratio as evidence."""
    cases, evidence, cells, untestable = [], [], [], []
    for a, b in found:
        d = compare(a, b, "rps")
        case = case_of(a, b)
        cases.append((HOLDS if d > 0 else FAILS if d < 0 else NO_DIFF, case))
        test = noise_words(a, b, "rps")
        t = repeat_test(a, b, "rps")
        if t is not None and not t.can_show():
            untestable.append(test)
        evidence.append(f"{case}: {name_a(a)} {measure(a, 'rps', 'rps')} vs {name_b(b)} "
                        f"{measure(b, 'rps', 'rps')} ({fmt(ratio(a['rps'], b['rps']))}×"
                        + (f"; {test})" if test else ")"))
        cells += [label(a, *extra), label(b, *extra)]
    verdict = combine(claim, cases, evidence, cells)
    if verdict.verdict == NO_DIFF and untestable and not verdict.condition:
        # Not "no difference": these repeats could not have shown one (3 vs 3: smallest p 0.1).
        return Verdict(claim, NO_DIFF, "; ".join(dict.fromkeys(untestable)), evidence, cells)
    return verdict


def combine(claim: str, cases: list[tuple[str, str]], evidence: list[str], cells: list[str],
            what: str = "") -> Verdict:
    """One verdict from per-case outcomes [(outcome, case label)]: all hold → holds; none hold and
    every case is inside the noise → no measurable difference; none hold → does not hold; else
    holds only partly, naming the cases where it holds."""
    outcomes = [o for o, _ in cases]
    if all(o == HOLDS for o in outcomes):
        return Verdict(claim, HOLDS, what, evidence, cells)
    if all(o == NO_DIFF for o in outcomes):
        return Verdict(claim, NO_DIFF, what, evidence, cells)
    if not any(o in (HOLDS, PARTLY) for o in outcomes):
        return Verdict(claim, FAILS, what, evidence, cells)
    held = [c for o, c in cases if o == HOLDS]
    other = [f"{c} ({o})" for o, c in cases if o != HOLDS]
    cond = (f"holds for {', '.join(held)}; not for {', '.join(other)}" if held
            else "; ".join(c for _, c in cases))
    return Verdict(claim, PARTLY, cond, evidence, cells)


def not_measured(claim: str, why: str) -> Verdict:
    return Verdict(claim, NOT_MEASURED, why)
