"""The reference article's claims, as data: statement, the cells each needs, the rule that decides
it (thresholds stated), and the evidence it prints.

A verdict is computed from whatever cells a run folder holds (results.csv + meta.json); it never
runs anything. Verdicts: holds, does not hold, holds only partly (with the condition that limits
it), no measurable difference (the difference is inside the repeats' noise), or not measured (with
why). Noise: with ≥ 2 repeats on both sides two cells differ only when their intervals from
harness.aggregate (95% for ≥ 6 repeats, else min–max) do not overlap; with one repeat on a side
there is no interval, and a difference under NOISE_MARGIN counts as noise.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import aggregate

HOLDS = "holds"
FAILS = "does not hold"
PARTLY = "holds only partly"
NO_DIFF = "no measurable difference"
NOT_MEASURED = "not measured"
VERDICTS = (HOLDS, FAILS, PARTLY, NO_DIFF, NOT_MEASURED)

NOISE_MARGIN = 0.10  # single-repeat cells: the validity check's own ±10% tolerance
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
        self.summary = s

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


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    needs: str  # the cells, in words
    rule: str   # how the verdict is decided, thresholds included
    runs: Callable[[int], list[dict]]  # cores → Config overrides that produce the cells
    decide: Callable[[Run], Verdict]


# ---------------------------------------------------------------------------------- comparisons


def fmt(v: float, unit: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{text} {unit}".rstrip()


def label(cell: pd.Series, *extra: str) -> str:
    """`correct-async /io W=1 U=32` plus any named knobs (`loop=asyncio`)."""
    parts = [f"{cell['target']} /{cell['scenario']} W={cell['workers']} U={cell['users']}"]
    parts += [f"{k}={_plain(cell[k])}" for k in extra]
    return " ".join(parts)


def _plain(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def health_text(cell: pd.Series) -> str:
    """The cell's /health figure, saying when it is a max for lack of samples for a p99."""
    text = fmt(cell["health_ms"], "ms")
    return text + " (max: too few probe samples for a p99)" if bool(cell.get("health_is_max")) else text


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


def compare(a: pd.Series, b: pd.Series, col: str) -> int:
    """+1 if a's `col` is measurably above b's, -1 if below, 0 if the difference is inside the noise."""
    va, vb = float(a[col]), float(b[col])
    if not (math.isfinite(va) and math.isfinite(vb)):
        return 0
    if int(a["repeats"]) >= 2 and int(b["repeats"]) >= 2:
        if a[f"{col}_lo"] > b[f"{col}_hi"]:
            return 1
        if a[f"{col}_hi"] < b[f"{col}_lo"]:
            return -1
        return 0
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
    cases, evidence, cells = [], [], []
    for a, b in found:
        d = compare(a, b, "rps")
        case = case_of(a, b)
        cases.append((HOLDS if d > 0 else FAILS if d < 0 else NO_DIFF, case))
        evidence.append(f"{case}: {name_a(a)} {measure(a, 'rps', 'rps')} vs {name_b(b)} "
                        f"{measure(b, 'rps', 'rps')} ({fmt(ratio(a['rps'], b['rps']))}×)")
        cells += [label(a, *extra), label(b, *extra)]
    return combine(claim, cases, evidence, cells)


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


# --------------------------------------------------------------------------------- the claims


def decide_1(run: Run) -> Verdict:
    return blocking_io("1", run, "io", "a blocking HTTP client", ignore=("pool_size",))


def decide_1b(run: Run) -> Verdict:
    # fake-async's synchronous psycopg pool has no driver choice: pair across DB_DRIVER.
    return blocking_io("1b", run, "db", "a synchronous database driver", ignore=("pool_size", "db_driver"))


def blocking_io(claim: str, run: Run, scenario: str, what: str, ignore: tuple[str, ...]) -> Verdict:
    """correct-async against fake-async on one I/O scenario: clearly more rps, and a /health that
    does not stall with it."""
    found = pairs(run, dict(target="correct-async", scenario=scenario),
                  dict(target="fake-async", scenario=scenario), ignore=ignore)
    if not found:
        return not_measured(claim, f"the run has no fake-async and correct-async /{scenario} cells with "
                            "equal knobs")
    cases, evidence, cells = [], [], []
    for good, bad in found:
        r, h = ratio(good["rps"], bad["rps"]), ratio(bad["health_ms"], good["health_ms"])
        faster = compare(good, bad, "rps") > 0 and r >= CLEAR_RATIO
        stalled = compare(bad, good, "health_ms") > 0 and h >= CLEAR_RATIO
        outcome = HOLDS if faster and stalled else PARTLY if faster or stalled else FAILS
        case = f"W={good['workers']} U={good['users']}"
        cases.append((outcome, case))
        evidence.append(f"{case}: correct-async {measure(good, 'rps', 'rps')} vs fake-async ({what}) "
                        f"{measure(bad, 'rps', 'rps')} ({fmt(r)}×); /health p99 "
                        f"{health_text(good)} vs {health_text(bad)} "
                        f"({fmt(h)}×)")
        cells += [label(good), label(bad)]
    return combine(claim, cases, evidence, cells)


def decide_2(run: Run) -> Verdict:
    io = run.cells(target="correct-async", scenario="io")
    if io.empty:
        return not_measured("2", "the run has no correct-async /io cells")
    io = io[io["fanout"] >= 2]
    if io.empty:
        return not_measured("2", "FANOUT is 1: there is nothing to gather")
    # Unsaturated, and with enough connections that no request waits for one (claim 9's effect).
    calm = io[(io["efficiency"] >= UNSATURATED)
              & (io["workers"] * (io["http_connections"] // io["fanout"]) >= io["users"])]
    if calm.empty:
        worst = io.sort_values("efficiency").iloc[-1]
        return not_measured("2", f"every correct-async /io cell ran below {UNSATURATED:.0%} of its ceiling "
                            f"(best {fmt(100 * worst['efficiency'])}%), so its latency is queueing, not the "
                            "gather; run it with few users (bench.py claims uses 4)")
    cases, evidence, cells = [], [], []
    for _, c in calm.iterrows():
        slowest, total = float(c["io_ms"]), float(c["io_ms"] * c["fanout"])
        mid = (slowest + total) / 2
        outcome = HOLDS if c["p50_ms"] < mid else FAILS
        case = f"W={c['workers']} U={c['users']}"
        cases.append((outcome, case))
        evidence.append(f"{case}: p50 {measure(c, 'p50_ms', 'ms')}; one call {fmt(slowest, 'ms')}, "
                        f"{c['fanout']} in sequence {fmt(total, 'ms')} (midpoint {fmt(mid, 'ms')}); "
                        f"{fmt(100 * c['efficiency'])}% of ceiling")
        cells.append(label(c))
    return combine("2", cases, evidence, cells)


def decide_3(run: Run) -> Verdict:
    cpu = run.cells(target="correct-async", scenario="cpu")
    if cpu.empty:
        return not_measured("3", "the run has no correct-async /cpu cells")
    cases, evidence, cells = [], [], []
    for _, c in cpu.iterrows():
        share = ratio(c["health_ms"], c["p50_ms"])
        outcome = HOLDS if share >= STALL_SHARE else FAILS
        case = label(c, "cpu_kind")
        cases.append((outcome, f"W={c['workers']} {c['cpu_kind']}"))
        evidence.append(f"{case}: /health p99 {measure(c, 'health_ms', 'ms')} vs /cpu p50 "
                        f"{fmt(c['p50_ms'], 'ms')} ({fmt(100 * share)}%)")
        cells.append(case)
    contrast = _one_per_right(pairs(run, dict(target="process-pool", scenario="cpu"),
                                    dict(target="correct-async", scenario="cpu"), ignore=("pool_size",)),
                              run.cores)
    for pp, _ in contrast:
        evidence.append(f"for contrast, process-pool (pool {_plain(pp['pool_size'])}) /cpu "
                        f"W={pp['workers']}: /health p99 {health_text(pp)}")
    return combine("3", cases, evidence, cells)


def _need_cores(run: Run, claim: str, n: int = 2) -> Verdict | None:
    if run.cores is None:
        return not_measured(claim, "meta.json does not say how many cores the run had")
    if run.cores < n:
        return not_measured(claim, f"needs ≥ {n} cores (the run had {run.cores})")
    return None


def decide_4(run: Run) -> Verdict:
    if (v := _need_cores(run, "4")) is not None:
        return v
    found = [(p, t) for p, t in pairs(run, dict(target="process-pool", scenario="cpu", cpu_kind="python"),
                                      dict(target="thread-pool", scenario="cpu", cpu_kind="python"),
                                      ignore=("pool_size",))
             if p["workers"] < run.cores and (p["pool_size"] or 1) >= 2]
    found = _one_per_right(found, run.cores)
    if not found:
        return not_measured("4", "needs process-pool and thread-pool /cpu (python) cells with fewer workers "
                            "than cores and a process pool of ≥ 2")
    return rps_duel("4", found, lambda p, t: f"W={p['workers']}",
                    lambda p: f"process-pool (pool {_plain(p['pool_size'])})",
                    lambda t: f"thread-pool (pool {_plain(t['pool_size'])})")


def _one_per_right(found: list[tuple[pd.Series, pd.Series]], cores: int | None) -> list[tuple]:
    """When a pool sweep gives several left cells for one right cell, keep the left cell with the most
    repeats (then the pool closest to the core count): one comparison per right cell."""
    best: dict[str, tuple[pd.Series, pd.Series]] = {}
    for left, right in found:
        key = label(right, "pool_size", "cpu_kind", "loop", "http_connections")
        rank = (int(left["repeats"]), -abs(float(left["pool_size"] or 0) - (cores or 0)))
        if key not in best or rank > (int(best[key][0]["repeats"]),
                                      -abs(float(best[key][0]["pool_size"] or 0) - (cores or 0))):
            best[key] = (left, right)
    return list(best.values())


def _cores_busy(cell: pd.Series, suffix: str = "") -> float:
    """CPU work done per second, in cores: rps × CPU_MS (calibrated work, so comparable across kinds)."""
    return float(cell[f"rps{suffix}"]) * float(cell["cpu_ms"]) / 1000


def decide_4b(run: Run) -> Verdict:
    if (v := _need_cores(run, "4b")) is not None:
        return v
    cases, evidence, cells = [], [], []
    for target in ("thread-pool", "mixed"):
        for nat, py in pairs(run, dict(target=target, scenario="cpu", cpu_kind="native"),
                             dict(target=target, scenario="cpu", cpu_kind="python")):
            more = compare(nat, py, "rps") > 0
            parallel = _cores_busy(nat, "_lo" if nat["repeats"] >= 2 else "") > 1 + NOISE_MARGIN / 2
            outcome = HOLDS if more and parallel else PARTLY if more else FAILS
            case = f"{target} W={nat['workers']} pool {_plain(nat['pool_size'])}"
            cases.append((outcome, case))
            evidence.append(f"{case}: native {measure(nat, 'rps', 'rps')} = {fmt(_cores_busy(nat))} cores of "
                            f"work vs python {measure(py, 'rps', 'rps')} = {fmt(_cores_busy(py))} cores")
            cells += [label(nat, "cpu_kind"), label(py, "cpu_kind")]
    if not cases:
        return not_measured("4b", "needs thread-pool or mixed /cpu cells with both --cpu-kind native and "
                            "python")
    return combine("4b", cases, evidence, cells,
                   f"threads did work on more than one core (> {1 + NOISE_MARGIN / 2:g}) only when it "
                   "released the GIL")


def decide_5(run: Run) -> Verdict:
    found = pairs(run, dict(target="blocking-future", scenario="cpu"),
                  dict(target="process-pool", scenario="cpu"))  # equal pools: the article's cpu_count()
    if not found:
        return not_measured("5", "the run has no blocking-future and process-pool /cpu cells with equal "
                            "knobs")
    cases, evidence, cells = [], [], []
    for bf, pp in found:
        h = ratio(bf["health_ms"], pp["health_ms"])
        stalled = compare(bf, pp, "health_ms") > 0 and h >= CLEAR_RATIO
        not_faster = compare(bf, pp, "rps") <= 0
        outcome = HOLDS if stalled and not_faster else PARTLY if stalled else FAILS
        case = f"W={bf['workers']} {bf['cpu_kind']}"
        cases.append((outcome, case))
        evidence.append(f"{case}: /health p99 {measure(bf, 'health_ms', 'ms')} (blocking-future) vs "
                        f"{measure(pp, 'health_ms', 'ms')} (process-pool), {fmt(h)}×; rps "
                        f"{fmt(bf['rps'])} vs {fmt(pp['rps'])}")
        cells += [label(bf), label(pp)]
    return combine("5", cases, evidence, cells)


# Targets whose /cpu work runs inside the uvicorn worker (its core count is the worker count).
INLINE_CPU = ("correct-async", "fake-async", "thread-pool", "mixed")


def decide_6(run: Run) -> Verdict:
    if (v := _need_cores(run, "6")) is not None:
        return v
    k = run.cores
    assert k is not None  # _need_cores refused a run without a core count
    cases, evidence, cells = [], [], []
    for target in INLINE_CPU:
        cpu = run.cells(target=target, scenario="cpu", cpu_kind="python")
        by_w = {int(w): c for w, c in zip(cpu["workers"], (r for _, r in cpu.iterrows()), strict=True)}
        if not {1, k, 2 * k} <= set(by_w):
            continue
        one, at_k, over = by_w[1], by_w[k], by_w[2 * k]
        gain = compare(at_k, one, "rps") > 0
        more = ratio(over["rps"], at_k["rps"])
        # "Adds nothing": not measurably more, or measurably but by less than WORTHWHILE_GAIN.
        adds = compare(over, at_k, "rps") > 0 and more > 1 + WORTHWHILE_GAIN
        outcome = HOLDS if gain and not adds else PARTLY if not adds else FAILS
        cases.append((outcome, target))
        line = (f"{target} /cpu: W=1 {measure(one, 'rps', 'rps')}; W={k} {measure(at_k, 'rps', 'rps')}; "
                f"W={2 * k} {measure(over, 'rps', 'rps')}")
        line += f"; W={2 * k} ÷ W={k} = {fmt(more)}×"
        share = run.extra_median(at_k, "worker_share_max")
        if math.isfinite(share) and share > 1 / k + UNEVEN_SHARE:
            line += (f" (uneven accept at W={k}: the busiest worker served {share:.0%} of requests, "
                     "so fewer than all cores worked)")
        evidence.append(line)
        cells += [label(one), label(at_k), label(over)]
    if not cases:
        return not_measured("6", f"needs /cpu cells (python) of one target at W = 1, {k} and {2 * k}")
    return combine("6", cases, evidence, cells)


def decide_7(run: Run) -> Verdict:
    found = []
    for target in ("correct-async", "process-pool", "mixed", "fake-async", "thread-pool", "blocking-future"):
        found += pairs(run, dict(target=target, loop="uvloop"), dict(target=target, loop="asyncio"))
    if not found:
        return not_measured("7", "the run has no asyncio cells to set against uvloop ones "
                            "(bench.py claims runs both)")
    return rps_duel("7", found, lambda uv, _: f"{uv['target']} /{uv['scenario']} W={uv['workers']}",
                    lambda _: "uvloop", lambda _: "asyncio", extra=("loop",))


def _sweeps(run: Run, knob: str, min_values: int) -> list[pd.DataFrame]:
    """Groups of cells that differ only in `knob`, with at least `min_values` values of it."""
    s = run.cells()
    keys = [c for c in aggregate.CELL_COLUMNS if c != knob]
    out = []
    for _, g in s.groupby(keys, dropna=False, sort=True):
        if g[knob].nunique() >= min_values:
            out.append(g.sort_values(knob))
    return out


def decide_8(run: Run) -> Verdict:
    groups = _sweeps(run, "pool_size", 3)
    if not groups:
        return not_measured("8", "the run has no pool sweep (cells differing only in pool size, ≥ 3 sizes)")
    # older results read with the column present but empty (harness.schema): measured = has values
    memory = "target_rss_mb" in run.rows.columns and run.rows["target_rss_mb"].notna().any()
    cases, evidence, cells = [], [], []
    for g in groups:
        rows = [r for _, r in g.iterrows()]
        best = max(rows, key=lambda r: r["rps"])
        knee = next(r for r in rows if compare(r, best, "rps") >= 0)  # smallest pool not below the best
        last = rows[-1]
        past = compare(last, knee, "rps")
        name = f"{g['target'].iloc[0]} /{g['scenario'].iloc[0]} W={g['workers'].iloc[0]}"
        sizes = "; ".join(f"pool {_plain(r['pool_size'])}: {fmt(r['rps'])} rps" for r in rows)
        line = f"{name}: {sizes}; knee at pool {_plain(knee['pool_size'])}"
        if memory:
            m_knee, m_last = run.extra_median(knee, "target_rss_mb"), run.extra_median(last, "target_rss_mb")
            grows = ratio(m_last, m_knee) >= MEMORY_GROWTH
            line += (f"; memory {fmt(m_knee, 'MB')} at the knee, {fmt(m_last, 'MB')} at pool "
                     f"{_plain(last['pool_size'])}")
        else:
            grows = None
        if knee is last:
            outcome = FAILS  # throughput still rising at the largest pool tried
        elif past > 0:
            outcome = FAILS
        elif grows is None:
            outcome = PARTLY
        else:
            outcome = HOLDS if grows else PARTLY
        cases.append((outcome, name))
        evidence.append(line)
        cells += [label(r, "pool_size") for r in rows]
    v = combine("8", cases, evidence, cells)
    if v.verdict == PARTLY and not memory:
        return Verdict("8", PARTLY, "throughput stopped growing past the knee, but this run has no "
                       "target_rss_mb column, so the cost side (memory) was not measured", evidence, cells)
    return v


def decide_9(run: Run) -> Verdict:
    groups = [g for g in _sweeps(run, "http_connections", 2) if g["scenario"].iloc[0] in ("io", "mixed")]
    if not groups:
        return not_measured("9", "the run has no connection-pool sweep (cells differing only in "
                            "--http-connections)")
    cases, evidence, cells = [], [], []
    for g in groups:
        small, large = g.iloc[0], g.iloc[-1]
        slower = (compare(small, large, "p50_ms") > 0
                  and ratio(small["p50_ms"], large["p50_ms"]) >= CLEAR_RATIO)
        outcome = HOLDS if slower else FAILS
        name = f"{small['target']} /{small['scenario']} W={small['workers']} U={small['users']}"
        wire = float(small["io_ms"])  # a gathered request is on the wire for about one call
        cases.append((outcome, name))
        evidence.append(
            f"{name}: {_plain(small['http_connections'])} connections: {measure(small, 'rps', 'rps')}, p50 "
            f"{fmt(small['p50_ms'], 'ms')} (≈ {fmt(small['p50_ms'] - wire, 'ms')} waiting for a connection); "
            f"{_plain(large['http_connections'])} connections: {fmt(large['rps'], 'rps')}, p50 "
            f"{fmt(large['p50_ms'], 'ms')}; /health p99 {health_text(small)} vs "
            f"{health_text(large)}")
        cells += [label(small, "http_connections"), label(large, "http_connections")]
    return combine("9", cases, evidence, cells)


def decide_9b(run: Run) -> Verdict:
    groups = [g for g in _sweeps(run, "db_pool", 2) if g["scenario"].iloc[0] == "db"]
    if not groups:
        return not_measured("9b", "the run has no database pool sweep (db cells differing only in "
                            "--db-pool)")
    cases, evidence, cells = [], [], []
    for g in groups:
        small, large = g.iloc[0], g.iloc[-1]
        slower = (compare(small, large, "p50_ms") > 0
                  and ratio(small["p50_ms"], large["p50_ms"]) >= CLEAR_RATIO)
        wait = run.extra_median(small, "db_pool_wait_p50_ms")
        lag = run.extra_median(small, "loop_lag_p99_ms")
        at_pool = ratio(wait, float(small["p50_ms"])) >= POOL_SHARE  # the queue is at the pool...
        loop_free = ratio(lag, float(small["p50_ms"])) < LOOP_SHARE  # ...and not on the event loop
        outcome = HOLDS if slower and at_pool and loop_free else PARTLY if slower else FAILS
        name = f"{small['target']} /db W={small['workers']} U={small['users']}"
        cases.append((outcome, name))
        evidence.append(
            f"{name}: pool {_plain(small['db_pool'])}: {measure(small, 'rps', 'rps')}, p50 "
            f"{fmt(small['p50_ms'], 'ms')} of which {fmt(wait, 'ms')} (median) waiting for a connection, "
            f"loop lag p99 {fmt(lag, 'ms')}; pool {_plain(large['db_pool'])}: {fmt(large['rps'], 'rps')}, "
            f"p50 {fmt(large['p50_ms'], 'ms')}, pool wait p50 "
            f"{fmt(run.extra_median(large, 'db_pool_wait_p50_ms'), 'ms')}")
        cells += [label(small, "db_pool"), label(large, "db_pool")]
    return combine("9b", cases, evidence, cells)


def fast_health_ms(cell: pd.Series) -> float:
    return max(FAST_HEALTH_MIN_MS, 2 * float(cell["cpu_ms"]))


def decide_10(run: Run) -> Verdict:
    found = pd.concat([run.cells(target="mixed", scenario="cpu"),
                       run.cells(target="mixed", scenario="mixed")])
    if found.empty:
        return not_measured("10", "the run has no cells of the two-stage mixed target on /cpu or /mixed")
    by_kind: dict[str, list[bool]] = {}
    evidence, cells = [], []
    for _, c in found.iterrows():
        limit = fast_health_ms(c)
        fast = float(c["health_ms"]) <= limit
        by_kind.setdefault(str(c["cpu_kind"]), []).append(fast)
        evidence.append(f"{label(c, 'cpu_kind')}: /health p99 {measure(c, 'health_ms', 'ms')} "
                        f"({'fast' if fast else 'slow'}: limit {fmt(limit, 'ms')})")
        cells.append(label(c, "cpu_kind"))
    kinds = {k: all(v) for k, v in by_kind.items()}
    if all(kinds.values()):
        return Verdict("10", HOLDS, "", evidence, cells)
    if not any(kinds.values()):
        cond = "" if "native" in kinds else "native (GIL-releasing) work was not measured"
        return Verdict("10", FAILS, cond, evidence, cells)
    fast_kinds = [k for k, v in kinds.items() if v]
    return Verdict("10", PARTLY, f"neighbours stayed fast only with {', '.join(fast_kinds)} CPU work "
                   "(it releases the GIL); pure-Python work starves the event loop", evidence, cells)


def _runs_1(cores: int) -> list[dict]:
    # fake-async /io at one worker is slow (≈ 6.7 rps): a 5 s window is stretched to get 100 requests.
    return [dict(targets=["fake-async"], scenarios=["io"], duration=5.0, warmup=2.0),
            dict(targets=["correct-async"], scenarios=["io"], repeat=3)]


REGISTRY: list[Claim] = [
    Claim("1", "async only helps when the I/O itself is non-blocking: an async def route calling a "
          "blocking client gains nothing and stalls its neighbours",
          "fake-async and correct-async /io at equal knobs",
          f"holds when correct-async serves ≥ {CLEAR_RATIO:g}× fake-async's rps and fake-async's /health "
          f"p99 is ≥ {CLEAR_RATIO:g}× correct-async's, both measurably; one of the two: partly",
          _runs_1, decide_1),
    Claim("1b", "a synchronous database driver inside async def makes async def meaningless",
          "fake-async (sync psycopg pool in async def) and correct-async (asyncpg pool) /db at equal "
          "knobs",
          f"as claim 1, on the database: holds when correct-async serves ≥ {CLEAR_RATIO:g}× fake-async's rps "
          f"and fake-async's /health p99 is ≥ {CLEAR_RATIO:g}× correct-async's, both measurably; one of "
          "the two: partly",
          lambda cores: [dict(targets=["fake-async"], scenarios=["db"], duration=5.0, warmup=2.0),
                         dict(targets=["correct-async"], scenarios=["db"])], decide_1b),
    Claim("2", "gathering independent upstream calls costs about the slowest call, not their sum",
          "correct-async /io cells that are not saturated (few users)",
          f"in cells at ≥ {UNSATURATED:.0%} of their ceiling and not short of connections, holds when the "
          "/io p50 is below the midpoint between one call (IO_MS) and FANOUT calls in sequence "
          "(FANOUT × IO_MS)",
          lambda cores: [dict(targets=["correct-async"], scenarios=["io"], users=[4])], decide_2),
    Claim("3", "CPU work inside async def stalls the event loop for every request, not just its own",
          "correct-async /cpu",
          f"holds when /health p99 is ≥ {STALL_SHARE:.0%} of the /cpu endpoint's p50 (the cheap endpoint "
          "waits as long as the work)",
          lambda cores: [dict(targets=["correct-async"], scenarios=["cpu"], workers=[1, cores, 2 * cores],
                              repeat=3)], decide_3),
    Claim("4", "for pure-Python CPU work a process pool beats a thread pool (the GIL)",
          "process-pool and thread-pool /cpu, python work, fewer workers than cores (W=1), ≥ 2 cores",
          "holds when the process pool's rps is measurably higher; inside the noise: no measurable "
          "difference",
          lambda cores: [dict(targets=["thread-pool", "process-pool"], scenarios=["cpu"], repeat=3)],
          decide_4),
    Claim("4b", "but for work that releases the GIL (--cpu-kind native) threads do help",
          "thread-pool or mixed /cpu with native and with python work, ≥ 2 cores",
          f"holds when native work gets measurably more rps than python work and its work rate "
          f"(rps × CPU_MS) exceeds {1 + NOISE_MARGIN / 2:g} cores, i.e. threads ran in parallel",
          lambda cores: [dict(targets=["mixed"], scenarios=["cpu"], cpu_kind=["python", "native"],
                              repeat=2)], decide_4b),
    Claim("5", "the article's own /process (future.result() inside async def) blocks the event loop",
          "blocking-future and process-pool /cpu at equal knobs",
          f"holds when blocking-future's /health p99 is measurably and ≥ {CLEAR_RATIO:g}× process-pool's, "
          "and its rps is not measurably higher; only the /health part: partly",
          lambda cores: [dict(targets=["blocking-future", "process-pool"], scenarios=["cpu"], repeat=3)],
          decide_5),
    Claim("6", "uvicorn workers ≈ cores; more workers than cores adds nothing for CPU-bound work",
          "/cpu (python) of one in-worker CPU target at W = 1, cores and 2 × cores, ≥ 2 cores",
          "holds when W = cores is measurably above W = 1 and W = 2 × cores adds nothing over "
          f"W = cores (not measurably more, or by less than {WORTHWHILE_GAIN:.0%}); only the second part: "
          "partly",
          lambda cores: [dict(targets=["correct-async"], scenarios=["cpu"], workers=[1, cores, 2 * cores],
                              repeat=3)], decide_6),
    Claim("7", "uvloop improves throughput",
          "the same cells under --loop uvloop and --loop asyncio",
          "holds when uvloop's rps is measurably higher; inside the noise: no measurable difference",
          lambda cores: [dict(targets=["correct-async"], scenarios=["io"], loop=["uvloop", "asyncio"],
                              repeat=3)], decide_7),
    Claim("8", "bigger thread and process pools are not always better: past the knee they add memory, "
          "not throughput",
          "a pool sweep: cells differing only in pool size (≥ 3 sizes)",
          "the knee is the smallest pool not measurably below the best rps; holds when the largest pool "
          f"is not measurably above the knee and its memory (target_rss_mb) is ≥ {MEMORY_GROWTH - 1:.0%} "
          "higher; flat throughput without a memory column: partly; still rising: does not hold",
          lambda cores: [dict(targets=["process-pool"], scenarios=["cpu"],
                              pool_size={"process-pool": sorted({1, cores, 2 * cores, 4 * cores})})],
          decide_8),
    Claim("9", "an exhausted connection pool queues requests end to end",
          "a connection-pool sweep: async /io cells differing only in --http-connections",
          f"holds when the smallest pool's p50 is measurably and ≥ {CLEAR_RATIO:g}× the largest pool's",
          lambda cores: [dict(targets=["correct-async"], scenarios=["io"], http_connections=[6, 100])],
          decide_9),
    Claim("9b", "with a database, the bottleneck is often not the event loop but queueing for an "
          "exhausted connection pool",
          "a database pool sweep: correct-async /db cells differing only in --db-pool",
          f"holds when the smallest pool's p50 is measurably and ≥ {CLEAR_RATIO:g}× the largest pool's, "
          f"its median wait for a connection is ≥ {POOL_SHARE:.0%} of its p50 and its worst loop lag p99 "
          f"under {LOOP_SHARE:.0%} of it; only the slowdown: partly",
          lambda cores: [dict(targets=["correct-async"], scenarios=["db"], users=[16], db_pool=[2, 8])],
          decide_9b),
    Claim("10", "the two-stage pattern (async fetch, compute in a ThreadPoolExecutor) keeps neighbouring "
          "endpoints fast",
          "the mixed target's /cpu (or /mixed) with python and with native work",
          f"fast = /health p99 ≤ max({FAST_HEALTH_MIN_MS:g} ms, 2 × CPU_MS); holds when fast for every CPU "
          "kind measured, partly when only for some",
          lambda cores: [dict(targets=["mixed"], scenarios=["cpu"], cpu_kind=["python", "native"],
                              repeat=2)], decide_10),
]

BY_ID = {c.id: c for c in REGISTRY}


# ---------------------------------------------------------------------------------- run & output


def load_run(run_dir: Path) -> Run:
    """The run folder's results (schema dtypes) and meta.json (empty when missing or unreadable)."""
    import json

    rows = aggregate.load_results(run_dir / "results.csv")
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return Run(aggregate.summarize(rows), rows, meta if isinstance(meta, dict) else {})


def decide(run: Run) -> list[Verdict]:
    out = []
    for claim in REGISTRY:
        try:
            out.append(claim.decide(run))
        except (KeyError, ValueError, TypeError) as exc:  # a damaged or foreign run folder
            out.append(not_measured(claim.id, f"its cells could not be read ({type(exc).__name__}: {exc})"))
    return out


def decide_run(run_dir: Path) -> list[Verdict]:
    return decide(load_run(Path(run_dir)))


CSV_COLUMNS = ["claim", "statement", "verdict", "condition", "evidence", "cells", "rule"]


def write_csv(verdicts: list[Verdict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for v in verdicts:
            claim = BY_ID[v.claim]
            w.writerow({"claim": v.claim, "statement": claim.statement, "verdict": v.verdict,
                        "condition": v.condition, "evidence": " | ".join(v.evidence),
                        "cells": "; ".join(dict.fromkeys(v.cells)), "rule": claim.rule})


def format_table(verdicts: list[Verdict], width: int = 110) -> str:
    """The verdict table for the terminal: claim, verdict, statement; then condition and evidence."""
    lines = [f"{'claim':<6}{'verdict':<26}statement", "-" * width]
    for v in verdicts:
        claim = BY_ID[v.claim]
        lines.append(f"{v.claim:<6}{v.verdict:<26}" + textwrap.shorten(claim.statement, width - 32))
        for text in ([v.condition] if v.condition else []) + v.evidence:
            lines += textwrap.wrap(text, width, initial_indent=" " * 8, subsequent_indent=" " * 10)
    return "\n".join(lines)

