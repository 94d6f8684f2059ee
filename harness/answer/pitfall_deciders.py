"""Deciders of the two claims added last: the article's own HTTP client (httpx.AsyncClient) against
aiohttp on the same correct-async /io cells (claim 11), and its fourth pitfall, silent blocking: a
blocking route as users grow (claim 12). Same shape as harness.answer.deciders.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.answer.chart_data import Panel, Threshold, noise_rule, point, value_point, with_chart
from harness.answer.evidence import (
    CLEAR_RATIO,
    FAILS,
    HOLDS,
    PARTLY,
    UNSATURATED,
    WORTHWHILE_GAIN,
    Run,
    Verdict,
    combine,
    compare,
    fmt,
    label,
    measure,
    not_measured,
    pairs,
    ratio,
    test_note,
)

# Locust's client timeout: drive.start_locust's timeout_s, which no knob changes (BENCH_TIMEOUT).
CLIENT_TIMEOUT_S = 10.0
NO_SERVER_TIMEOUT = ("no target offers a server-side request timeout: uvicorn has none for a request in "
                     "progress, and DB_POOL_TIMEOUT bounds only the wait for a database connection, so "
                     "what a server-side timeout would change was not measured")


def decide_11(run: Run) -> Verdict:
    """httpx against aiohttp in correct-async /io at equal knobs: is the client the limit?"""
    found = pairs(run, dict(target="correct-async", scenario="io", http_client="httpx"),
                  dict(target="correct-async", scenario="io", http_client="aiohttp"))
    if not found:
        return not_measured("11", "the run has no correct-async /io cells with --http-client httpx and "
                            "aiohttp at equal knobs")
    rps = Panel("rps, against the analytic ceiling", "requests/s", [])
    cpu = Panel("busiest worker's CPU", "% of a core", [])
    cases, evidence, cells = [], [], []
    for hx, ah in found:
        case = f"W={hx['workers']} U={hx['users']}"
        eff_hx, eff_ah = float(hx["efficiency"]), float(ah["efficiency"])
        faster = compare(ah, hx, "rps") > 0 and ratio(ah["rps"], hx["rps"]) > 1 + WORTHWHILE_GAIN
        short = eff_hx < UNSATURATED  # httpx leaves the pattern well short of its ceiling
        # The claim is that the client is not the limit; aiohttp doing clearly better where httpx
        # fell short says it is.
        outcome = FAILS if faster and short else HOLDS if not faster and not short else PARTLY
        cases.append((outcome, case))
        cpu_hx = run.extra_median(hx, "worker_cpu_max_pct")
        cpu_ah = run.extra_median(ah, "worker_cpu_max_pct")
        evidence.append(f"{case}: httpx {measure(hx, 'rps', 'rps')} = {fmt(100 * eff_hx)}% of ceiling, "
                        f"busiest worker CPU {fmt(cpu_hx, '%')}; aiohttp {measure(ah, 'rps', 'rps')} = "
                        f"{fmt(100 * eff_ah)}% of ceiling, CPU {fmt(cpu_ah, '%')} "
                        f"({fmt(ratio(ah['rps'], hx['rps']))}×)" + test_note(ah, hx, "rps", "rps"))
        cells += [label(hx, "http_client"), label(ah, "http_client")]
        xh, xa = f"httpx\n{case}", f"aiohttp\n{case}"
        rps.points += [point(hx, "rps", xh, "httpx"), point(ah, "rps", xa, "aiohttp")]
        rps.thresholds += [Threshold(UNSATURATED * float(hx["ceiling_rps"]), f"{UNSATURATED:.0%} of ceiling",
                                     (xh, xa)),
                           # "clearly more": by more than WORTHWHILE_GAIN (the line) and measurably
                           # (the permutation test over the bar; single repeats: the line is beyond
                           # the 10% margin)
                           Threshold(float(hx["rps"]) * (1 + WORTHWHILE_GAIN),
                                     f"> {WORTHWHILE_GAIN:.0%} above httpx", (xa,))]
        noise_rule(rps, ah, hx, "rps", "", xa)
        cpu.points += [value_point(cpu_hx, xh, "httpx", hollow=not bool(hx["valid"])),
                       value_point(cpu_ah, xa, "aiohttp", hollow=not bool(ah["valid"]))]
    v = combine("11", cases, evidence, cells)
    if v.verdict == FAILS:
        v = Verdict("11", FAILS, f"the client is the limit: aiohttp served clearly more on the same cells, "
                    f"where httpx stayed below {UNSATURATED:.0%} of the ceiling", v.evidence, v.cells)
    return with_chart(v, rps, cpu)


def decide_12(run: Run) -> Verdict:
    """A blocking route (fake-async /io) as users grow: silent until the client timeout."""
    groups = [g for g in _user_sweeps(run) if len(g) >= 3]
    if not groups:
        return not_measured("12", "needs fake-async /io cells differing only in users (≥ 3 values)")
    cases, evidence, cells, panels, unreached = [], [], [], [], []
    for g in groups:
        rows = [r for _, r in g.iterrows()]
        fails = [run.extra_median(r, "fail_ratio") for r in rows]
        outcome, line, never_loud = _silent_case(rows, fails)
        unreached.append(never_loud)
        name = f"fake-async /io W={rows[0]['workers']}"
        cases.append((outcome, name))
        evidence.append(f"{name}: {line}")
        cells += [label(r) for r in rows]
        panels += _silent_panels(rows, fails, name)
    evidence.append(f"server-side timeout: {NO_SERVER_TIMEOUT}")
    v = combine("12", cases, evidence, cells)
    if v.verdict == PARTLY and all(unreached):
        v = Verdict("12", PARTLY, "latency and loop lag grew with 0 failures, but no cell reached the "
                    f"{CLIENT_TIMEOUT_S:g} s client timeout, so the failure never became visible",
                    v.evidence, v.cells)
    return with_chart(v, *panels)


def _user_sweeps(run: Run) -> list[pd.DataFrame]:
    from harness.answer import aggregate

    s = run.cells(target="fake-async", scenario="io")
    keys = [c for c in aggregate.CELL_COLUMNS if c != "users"]
    return [g.sort_values("users") for _, g in s.groupby(keys, dropna=False, sort=True)
            if g["users"].nunique() >= 3]


# Where a cell's outcome is not a matter of noise: its expected queue (users / the ceiling, Little's
# law at the pattern's own limit) well inside the client timeout, or past it. In between, a cell is
# evidence only. "Well inside" is a tenth of the timeout, not a half or a quarter: a blocked loop does
# not serve its queue in order, so one request's wait runs far past the mean (fake-async /io, one
# worker, 2026-12-07: U=12, a 1.8 s mean, had 2.7% time out at 10 s in 1 of 3 runs on a busy machine;
# U=32, 4.8 s, failed 0% in one run and 20-24% in others).
SILENT_QUEUE = CLIENT_TIMEOUT_S / 10
LOUD_QUEUE = CLIENT_TIMEOUT_S
UNREACHED = f"; no cell's queue reached the {CLIENT_TIMEOUT_S:g} s client timeout"


def expected_queue_s(r: pd.Series) -> float:
    """The mean wait a closed loop of `users` builds at the cell's analytic ceiling (measured rps
    when the ceiling is unknown)."""
    ceiling = float(r.get("ceiling_rps", math.nan))
    rate = ceiling if math.isfinite(ceiling) and ceiling > 0 else float(r.get("rps", math.nan))
    return float(r["users"]) / rate if math.isfinite(rate) and rate > 0 else math.nan


def _band(q: float) -> str:
    if not math.isfinite(q):
        return "unknown"
    return "silent" if q <= SILENT_QUEUE else "timeout" if q >= LOUD_QUEUE else "between"


def _silent_case(rows: list[pd.Series], fails: list[float]) -> tuple[str, str, bool]:
    """(outcome, evidence, whether it stayed silent with no cell reaching the timeout) of one user
    sweep. The cells whose expected queue stays ≤ a tenth of the client timeout must be silent (0
    failures) with p50 and loop lag p99 growing ≥ CLEAR_RATIO between the first two or more of
    them; the cells whose queue reaches the timeout must fail. Cells in between are shown and read
    by nothing."""
    queues = [expected_queue_s(r) for r in rows]
    figures = "; ".join(
        f"U={r['users']} (queue ≈ {fmt(q, 's')}, {_band(q)}): {fmt(r['rps'])} rps, "
        f"p50 {fmt(r['p50_ms'], 'ms')}, loop lag p99 {fmt(r['loop_lag_p99_ms'], 'ms')}, "
        f"{fmt(100 * f if math.isfinite(f) else f)}% failed"
        for r, f, q in zip(rows, fails, queues, strict=True))
    quiet = [(r, f) for r, f, q in zip(rows, fails, queues, strict=True) if _band(q) == "silent"]
    loud = [(r, f) for r, f, q in zip(rows, fails, queues, strict=True) if _band(q) == "timeout"]
    margins = (f"silent below a queue of {fmt(SILENT_QUEUE, 's')}, timed out from {fmt(LOUD_QUEUE, 's')}; "
               "cells in between are evidence only")
    if len(quiet) < 2:
        return PARTLY, figures + f"; fewer than two cells well inside the timeout ({margins}): " \
            "growth unshown", False
    if any(f > 0 for _, f in quiet):
        return FAILS, figures + f"; failures came before latency grew (not silent; {margins})", False
    a, b = quiet[0][0], quiet[-1][0]
    grows = (compare(b, a, "p50_ms") > 0 and ratio(b["p50_ms"], a["p50_ms"]) >= CLEAR_RATIO
             and ratio(b["loop_lag_p99_ms"], a["loop_lag_p99_ms"]) >= CLEAR_RATIO)
    if not grows:
        return FAILS, figures + f"; p50 and loop lag did not grow ≥ {CLEAR_RATIO:g}× while silent", False
    if not loud:
        return PARTLY, figures + UNREACHED, True
    failing = [r for r, f in loud if f > 0]
    if len(failing) < len(loud):
        return PARTLY, figures + f"; a cell whose queue passed the {CLIENT_TIMEOUT_S:g} s client timeout " \
            "had no failure", False
    past = ", ".join(f"U={r['users']}" for r in failing)
    return HOLDS, figures + "; silent while the queue stayed short, failing past the " \
        f"{CLIENT_TIMEOUT_S:g} s client timeout ({past}; {margins})", False


def _silent_panels(rows: list[pd.Series], fails: list[float], name: str) -> list[Panel]:
    lat = Panel("p50 and loop lag p99 as users grow", "ms", [], kind="line", xlabel="users",
                thresholds=[Threshold(1000 * CLIENT_TIMEOUT_S, "client timeout")])
    failed = Panel("failed requests", "% of requests", [], kind="line", xlabel="users")
    for r, f in zip(rows, fails, strict=True):
        u, x = float(r["users"]), f"U={r['users']}"
        lat.points += [point(r, "p50_ms", x, "p50", xval=u),
                       point(r, "loop_lag_p99_ms", x, "loop lag p99", xval=u)]
        failed.points.append(value_point(100 * f, x, name, xval=u, hollow=not bool(r["valid"])))
    return [lat, failed]
