"""The deciders: one function per claim of the article, each reading only the cells its claim
needs from a finished run folder and returning a Verdict with its evidence.

Why one module over 300 lines: it holds thirteen small deciders of one shape; the rules they share
(noise, thresholds, evidence text) live in harness.answer.evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.answer import aggregate
from harness.answer.chart_data import Panel, Threshold, noise_rule, point, value_point, with_chart
from harness.answer.evidence import (
    CLEAR_RATIO,
    FAILS,
    FAST_HEALTH_MIN_MS,
    HOLDS,
    LOOP_SHARE,
    MEMORY_GROWTH,
    NOISE_MARGIN,
    PARTLY,
    POOL_SHARE,
    STALL_SHARE,
    UNEVEN_SHARE,
    UNSATURATED,
    WORTHWHILE_GAIN,
    Run,
    Verdict,
    combine,
    compare,
    fmt,
    health_text,
    label,
    measure,
    not_measured,
    pairs,
    plain,
    ratio,
    rps_duel,
    test_note,
)
from harness.data import prog


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
    rps = Panel("rps", "requests/s", [])
    health = Panel("/health (the neighbour)", "ms", [])
    for good, bad in found:
        r, h = ratio(good["rps"], bad["rps"]), ratio(bad["health_ms"], good["health_ms"])
        faster = compare(good, bad, "rps") > 0 and r >= CLEAR_RATIO
        stalled = compare(bad, good, "health_ms") > 0 and h >= CLEAR_RATIO
        outcome = HOLDS if faster and stalled else PARTLY if faster or stalled else FAILS
        case = f"W={good['workers']} U={good['users']}"
        cases.append((outcome, case))
        xg, xb = _x("correct-async", case, len(found)), _x("fake-async", case, len(found))
        rps.points.extend([point(good, "rps", xg, "correct-async"), point(bad, "rps", xb, "fake-async")])
        rps.thresholds.append(Threshold(CLEAR_RATIO * float(bad["rps"]), f"≥ {CLEAR_RATIO:g}× fake-async",
                                        (xg,)))
        health.points.extend([point(good, "health_ms", xg, "correct-async"),
                              point(bad, "health_ms", xb, "fake-async")])
        health.thresholds.append(Threshold(CLEAR_RATIO * float(good["health_ms"]),
                                           f"≥ {CLEAR_RATIO:g}× correct-async", (xb,)))
        evidence.append(f"{case}: correct-async {measure(good, 'rps', 'rps')} vs fake-async ({what}) "
                        f"{measure(bad, 'rps', 'rps')} ({fmt(r)}×); /health "
                        f"{health_text(good)} vs {health_text(bad)} "
                        f"({fmt(h)}×)" + test_note(good, bad, "rps", "rps")
                        + test_note(bad, good, "health_ms", "/health"))
        cells += [label(good), label(bad)]
    return with_chart(combine(claim, cases, evidence, cells), rps, health)


def _x(name: str, case: str, n: int) -> str:
    """A bar's label: the name alone when the chart has one case, else with the case."""
    return name if n == 1 else f"{name}\n{case}"


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
                            f"gather; run it with few users ({prog.name()} claims uses 4)")
    cases, evidence, cells = [], [], []
    panel = Panel("/io p50 against one call and the sum", "ms", [])
    # A claims run has several calm cells at one W and U (claim 7's loops, claim 11's client): each
    # bar names the knobs that tell them apart.
    differ = [k for k in ("loop", "http_client", "http_connections", "io_ms", "fanout", "server")
              if k in calm.columns and calm[k].nunique(dropna=False) > 1]
    for _, c in calm.iterrows():
        slowest, total = float(c["io_ms"]), float(c["io_ms"] * c["fanout"])
        mid = (slowest + total) / 2
        outcome = HOLDS if c["p50_ms"] < mid else FAILS
        case = f"W={c['workers']} U={c['users']}"
        cases.append((outcome, case))
        x = "\n".join([case, *(str(c[k]) if isinstance(c[k], str) else f"{k}={plain(c[k])}" for k in differ)])
        panel.points.append(point(c, "p50_ms", x, "correct-async"))
        panel.thresholds += [Threshold(mid, "holds below: midpoint", (x,)),
                             Threshold(total, f"{c['fanout']} calls in sequence", (x,))]
        named = "".join(f" {k}={plain(c[k])}" for k in differ)
        evidence.append(f"{case}{named}: p50 {measure(c, 'p50_ms', 'ms')}; one call {fmt(slowest, 'ms')}, "
                        f"{c['fanout']} in sequence {fmt(total, 'ms')} (midpoint {fmt(mid, 'ms')}); "
                        f"{fmt(100 * c['efficiency'])}% of ceiling")
        cells.append(label(c, *differ))
    return with_chart(combine("2", cases, evidence, cells), panel)


def decide_3(run: Run) -> Verdict:
    cpu = run.cells(target="correct-async", scenario="cpu")
    if cpu.empty:
        return not_measured("3", "the run has no correct-async /cpu cells")
    cases, evidence, cells = [], [], []
    panel = Panel("/cpu p50 and the neighbour's /health", "ms", [])
    for _, c in cpu.iterrows():
        share = ratio(c["health_ms"], c["p50_ms"])
        outcome = HOLDS if share >= STALL_SHARE else FAILS
        case = label(c, "cpu_kind")
        cases.append((outcome, f"W={c['workers']} {c['cpu_kind']}"))
        short = f"W={c['workers']}" + ("" if c["cpu_kind"] == "python" else f" {c['cpu_kind']}")
        panel.points += [point(c, "p50_ms", f"{short}\n/cpu p50", "/cpu p50"),
                         point(c, "health_ms", f"{short}\n/health", "/health")]
        panel.thresholds.append(Threshold(STALL_SHARE * float(c["p50_ms"]),
                                          f"≥ {STALL_SHARE:.0%} of /cpu p50", (f"{short}\n/health",)))
        evidence.append(f"{case}: /health {measure(c, 'health_ms', 'ms')} vs /cpu p50 "
                        f"{fmt(c['p50_ms'], 'ms')} ({fmt(100 * share)}%)")
        cells.append(case)
    contrast = _one_per_right(pairs(run, dict(target="process-pool", scenario="cpu"),
                                    dict(target="correct-async", scenario="cpu"), ignore=("pool_size",)),
                              run.cores)
    for pp, _ in contrast:
        evidence.append(f"for contrast, process-pool (pool {plain(pp['pool_size'])}) /cpu "
                        f"W={pp['workers']}: /health {health_text(pp)}")
    return with_chart(combine("3", cases, evidence, cells), panel)


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
    v = rps_duel("4", found, lambda p, t: f"W={p['workers']}",
                 lambda p: f"process-pool (pool {plain(p['pool_size'])})",
                 lambda t: f"thread-pool (pool {plain(t['pool_size'])})")
    return with_chart(v, duel_panel(found, lambda p, t: f"W={p['workers']}",
                                    lambda p: f"process-pool\npool {plain(p['pool_size'])}",
                                    lambda t: f"thread-pool\npool {plain(t['pool_size'])}"))


def duel_panel(found: list[tuple[pd.Series, pd.Series]], case_of: Callable[[Any, Any], str],
               name_a: Callable[[Any], str], name_b: Callable[[Any], str]) -> Panel:
    """rps bars of each pair, the first cell's bar marked with where it becomes measurably higher."""
    panel = Panel("rps", "requests/s", [])
    for a, b in found:
        case = case_of(a, b)
        xa, xb = _x(name_a(a), case, len(found)), _x(name_b(b), case, len(found))
        panel.points += [point(a, "rps", xa, name_a(a).split("\n")[0]),
                         point(b, "rps", xb, name_b(b).split("\n")[0])]
        noise_rule(panel, a, b, "rps", "measurably above", xa)
    return panel


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
    rps = Panel("rps", "requests/s", [])
    work = Panel("CPU work done (rps × CPU_MS)", "cores", [],
                 [Threshold(1 + NOISE_MARGIN / 2, f"> {1 + NOISE_MARGIN / 2:g} cores: parallel")])
    for target in ("thread-pool", "mixed"):
        for nat, py in pairs(run, dict(target=target, scenario="cpu", cpu_kind="native"),
                             dict(target=target, scenario="cpu", cpu_kind="python")):
            more = compare(nat, py, "rps") > 0
            parallel = _cores_busy(nat, "_lo" if nat["repeats"] >= 2 else "") > 1 + NOISE_MARGIN / 2
            outcome = HOLDS if more and parallel else PARTLY if more else FAILS
            case = f"{target} W={nat['workers']} pool {plain(nat['pool_size'])}"
            cases.append((outcome, case))
            xn, xp = f"native\n{target}", f"python\n{target}"
            rps.points += [point(nat, "rps", xn, "native"), point(py, "rps", xp, "python")]
            noise_rule(rps, nat, py, "rps", "measurably above", xn)
            work.points += [value_point(_cores_busy(nat), xn, "native", hollow=not bool(nat["valid"])),
                            value_point(_cores_busy(py), xp, "python", hollow=not bool(py["valid"]))]
            evidence.append(f"{case}: native {measure(nat, 'rps', 'rps')} = {fmt(_cores_busy(nat))} cores of "
                            f"work vs python {measure(py, 'rps', 'rps')} = {fmt(_cores_busy(py))} cores"
                            + test_note(nat, py, "rps", "rps"))
            cells += [label(nat, "cpu_kind"), label(py, "cpu_kind")]
    if not cases:
        return not_measured("4b", "needs thread-pool or mixed /cpu cells with both --cpu-kind native and "
                            "python")
    return with_chart(combine("4b", cases, evidence, cells,
                              f"threads did work on more than one core (> {1 + NOISE_MARGIN / 2:g}) only "
                              "when it released the GIL"), rps, work)


def decide_5(run: Run) -> Verdict:
    found = pairs(run, dict(target="blocking-future", scenario="cpu"),
                  dict(target="process-pool", scenario="cpu"))  # equal pools: the article's cpu_count()
    if not found:
        return not_measured("5", "the run has no blocking-future and process-pool /cpu cells with equal "
                            "knobs")
    cases, evidence, cells = [], [], []
    health = Panel("/health (the neighbour)", "ms", [])
    rps = Panel("rps", "requests/s", [])
    for bf, pp in found:
        h = ratio(bf["health_ms"], pp["health_ms"])
        stalled = compare(bf, pp, "health_ms") > 0 and h >= CLEAR_RATIO
        not_faster = compare(bf, pp, "rps") <= 0
        outcome = HOLDS if stalled and not_faster else PARTLY if stalled else FAILS
        case = f"W={bf['workers']} {bf['cpu_kind']}"
        cases.append((outcome, case))
        xb, xp = _x("blocking-future", case, len(found)), _x("process-pool", case, len(found))
        health.points += [point(bf, "health_ms", xb, "blocking-future"),
                          point(pp, "health_ms", xp, "process-pool")]
        health.thresholds.append(Threshold(CLEAR_RATIO * float(pp["health_ms"]),
                                           f"≥ {CLEAR_RATIO:g}× process-pool", (xb,)))
        rps.points += [point(bf, "rps", xb, "blocking-future"), point(pp, "rps", xp, "process-pool")]
        noise_rule(health, bf, pp, "health_ms", "", xb)  # its ≥ 2× line lies beyond the margin
        noise_rule(rps, bf, pp, "rps", "not above this", xb)
        evidence.append(f"{case}: /health {measure(bf, 'health_ms', 'ms')} (blocking-future) vs "
                        f"{measure(pp, 'health_ms', 'ms')} (process-pool), {fmt(h)}×; rps "
                        f"{fmt(bf['rps'])} vs {fmt(pp['rps'])}" + test_note(bf, pp, "health_ms", "/health")
                        + test_note(bf, pp, "rps", "rps"))
        cells += [label(bf), label(pp)]
    return with_chart(combine("5", cases, evidence, cells), health, rps)


# Targets whose /cpu work runs inside the uvicorn worker (its core count is the worker count).
INLINE_CPU = ("correct-async", "fake-async", "thread-pool", "mixed")


def decide_6(run: Run) -> Verdict:
    if (v := _need_cores(run, "6")) is not None:
        return v
    k = run.cores
    assert k is not None  # _need_cores refused a run without a core count
    cases, evidence, cells = [], [], []
    panel = Panel("/cpu rps against uvicorn workers", "requests/s", [], kind="line", xlabel="workers",
                  marks=[(float(k), f"{k} = cores")])
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
        panel.points += [point(c, "rps", f"W={w}", target, xval=float(w)) for w, c in
                         ((1, one), (k, at_k), (2 * k, over))]
        panel.thresholds.append(Threshold(float(at_k["rps"]) * (1 + WORTHWHILE_GAIN),
                                          f"W={2 * k} adds > {WORTHWHILE_GAIN:.0%} above this"))
        noise_rule(panel, at_k, one, "rps", f"W={k} measurably above W=1", f"W={k}", versus="W=1")
        # the +10% line above is the margin line too; with repeats the test decides
        noise_rule(panel, over, at_k, "rps", "", f"W={2 * k}", versus=f"W={k}")
        line = (f"{target} /cpu: W=1 {measure(one, 'rps', 'rps')}; W={k} {measure(at_k, 'rps', 'rps')}; "
                f"W={2 * k} {measure(over, 'rps', 'rps')}")
        line += f"; W={2 * k} ÷ W={k} = {fmt(more)}×"
        line += (test_note(at_k, one, "rps", f"W={k} vs W=1")
                 + test_note(over, at_k, "rps", f"W={2 * k} vs W={k}"))
        share = run.extra_median(at_k, "worker_share_max")
        if math.isfinite(share) and share > 1 / k + UNEVEN_SHARE:
            line += (f" (uneven accept at W={k}: the busiest worker served {share:.0%} of requests, "
                     "so fewer than all cores worked)")
        evidence.append(line)
        cells += [label(one), label(at_k), label(over)]
    if not cases:
        return not_measured("6", f"needs /cpu cells (python) of one target at W = 1, {k} and {2 * k}")
    return with_chart(combine("6", cases, evidence, cells), panel)


def decide_7(run: Run) -> Verdict:
    found = []
    for target in ("correct-async", "process-pool", "mixed", "fake-async", "thread-pool", "blocking-future"):
        found += pairs(run, dict(target=target, loop="uvloop"), dict(target=target, loop="asyncio"))
    if not found:
        return not_measured("7", "the run has no asyncio cells to set against uvloop ones "
                            f"({prog.name()} claims runs both)")
    case = lambda uv, _: f"{uv['target']} /{uv['scenario']} W={uv['workers']}"  # noqa: E731
    v = rps_duel("7", found, case, lambda _: "uvloop", lambda _: "asyncio", extra=("loop",))
    return with_chart(v, duel_panel(found, case, lambda _: "uvloop", lambda _: "asyncio"))


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
    # older results read with the column present but empty (harness.data.schema): measured = has values
    memory = "target_rss_mb" in run.rows.columns and run.rows["target_rss_mb"].notna().any()
    cases, evidence, cells = [], [], []
    rps = Panel("rps against pool size", "requests/s", [], kind="line", xlabel="pool size")
    mem = Panel("target memory (RSS)", "MB", [], kind="line", xlabel="pool size")
    for g in groups:
        rows = [r for _, r in g.iterrows()]
        best = max(rows, key=lambda r: r["rps"])
        knee = next(r for r in rows if compare(r, best, "rps") >= 0)  # smallest pool not below the best
        last = rows[-1]
        past = compare(last, knee, "rps")
        name = f"{g['target'].iloc[0]} /{g['scenario'].iloc[0]} W={g['workers'].iloc[0]}"
        rps.points += [point(r, "rps", f"pool {plain(r['pool_size'])}", name, xval=float(r["pool_size"]))
                       for r in rows]
        rps.marks.append((float(knee["pool_size"]), "knee"))
        if knee is not last:
            noise_rule(rps, last, knee, "rps", "largest pool measurably above the knee",
                       f"pool {plain(last['pool_size'])}", versus="the knee")
        sizes = "; ".join(f"pool {plain(r['pool_size'])}: {fmt(r['rps'])} rps" for r in rows)
        line = f"{name}: {sizes}; knee at pool {plain(knee['pool_size'])}"
        if knee is not last:
            line += test_note(last, knee, "rps", f"pool {plain(last['pool_size'])} vs the knee")
        if memory:
            m_knee, m_last = run.extra_median(knee, "target_rss_mb"), run.extra_median(last, "target_rss_mb")
            grows = ratio(m_last, m_knee) >= MEMORY_GROWTH
            mem.points += [value_point(run.extra_median(r, "target_rss_mb"), f"pool {plain(r['pool_size'])}",
                                       name, xval=float(r["pool_size"]), hollow=not bool(r["valid"]))
                           for r in rows]
            mem.marks.append((float(knee["pool_size"]), "knee"))
            mem.thresholds.append(Threshold(MEMORY_GROWTH * m_knee,
                                            f"+{MEMORY_GROWTH - 1:.0%} over the knee"))
            line += (f"; memory {fmt(m_knee, 'MB')} at the knee, {fmt(m_last, 'MB')} at pool "
                     f"{plain(last['pool_size'])}")
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
        v = Verdict("8", PARTLY, "throughput stopped growing past the knee, but this run has no "
                    "target_rss_mb column, so the cost side (memory) was not measured", evidence, cells)
    return with_chart(v, rps, mem)


def decide_9(run: Run) -> Verdict:
    groups = [g for g in _sweeps(run, "http_connections", 2) if g["scenario"].iloc[0] in ("io", "mixed")]
    if not groups:
        return not_measured("9", "the run has no connection-pool sweep (cells differing only in "
                            "--http-connections)")
    cases, evidence, cells = [], [], []
    panel = Panel("p50 against the HTTP connection pool", "ms", [])
    for g in groups:
        small, large = g.iloc[0], g.iloc[-1]
        slower = (compare(small, large, "p50_ms") > 0
                  and ratio(small["p50_ms"], large["p50_ms"]) >= CLEAR_RATIO)
        outcome = HOLDS if slower else FAILS
        case = f"{small['target']} W={small['workers']}"
        xs = _x(f"{plain(small['http_connections'])} connections", case, len(groups))
        xl = _x(f"{plain(large['http_connections'])} connections", case, len(groups))
        panel.points += [point(small, "p50_ms", xs, "small pool"), point(large, "p50_ms", xl, "large pool")]
        panel.thresholds.append(Threshold(CLEAR_RATIO * float(large["p50_ms"]),
                                          f"≥ {CLEAR_RATIO:g}× the large pool's", (xs,)))
        name = f"{small['target']} /{small['scenario']} W={small['workers']} U={small['users']}"
        wire = float(small["io_ms"])  # a gathered request is on the wire for about one call
        cases.append((outcome, name))
        evidence.append(
            f"{name}: {plain(small['http_connections'])} connections: {measure(small, 'rps', 'rps')}, p50 "
            f"{fmt(small['p50_ms'], 'ms')} (≈ {fmt(small['p50_ms'] - wire, 'ms')} waiting for a connection); "
            f"{plain(large['http_connections'])} connections: {fmt(large['rps'], 'rps')}, p50 "
            f"{fmt(large['p50_ms'], 'ms')}; /health {health_text(small)} vs "
            f"{health_text(large)}" + test_note(small, large, "p50_ms", "p50"))
        cells += [label(small, "http_connections"), label(large, "http_connections")]
    return with_chart(combine("9", cases, evidence, cells), panel)


def decide_9b(run: Run) -> Verdict:
    groups = [g for g in _sweeps(run, "db_pool", 2) if g["scenario"].iloc[0] == "db"]
    if not groups:
        return not_measured("9b", "the run has no database pool sweep (db cells differing only in "
                            "--db-pool)")
    cases, evidence, cells = [], [], []
    panel = Panel("where the small pool's requests wait", "ms", [])
    for g in groups:
        small, large = g.iloc[0], g.iloc[-1]
        slower = (compare(small, large, "p50_ms") > 0
                  and ratio(small["p50_ms"], large["p50_ms"]) >= CLEAR_RATIO)
        wait = run.extra_median(small, "db_pool_wait_p50_ms")
        lag = run.extra_median(small, "loop_lag_p99_ms")
        ps, pl, p50 = plain(small["db_pool"]), plain(large["db_pool"]), float(small["p50_ms"])
        bars = (f"p50\npool {ps}", f"p50\npool {pl}", f"pool wait\npool {ps}", f"loop lag p99\npool {ps}")
        hollow = not bool(small["valid"])
        panel.points += [point(small, "p50_ms", bars[0], "p50"), point(large, "p50_ms", bars[1], "p50"),
                         value_point(wait, bars[2], "pool wait", hollow=hollow),
                         value_point(lag, bars[3], "loop lag", hollow=hollow)]
        panel.thresholds += [
            Threshold(CLEAR_RATIO * float(large["p50_ms"]), f"≥ {CLEAR_RATIO:g}× pool {pl}", (bars[0],)),
            Threshold(POOL_SHARE * p50, f"≥ {POOL_SHARE:.0%} of p50", (bars[2],)),
            Threshold(LOOP_SHARE * p50, f"< {LOOP_SHARE:.0%} of p50", (bars[3],))]
        at_pool = ratio(wait, float(small["p50_ms"])) >= POOL_SHARE  # the queue is at the pool...
        loop_free = ratio(lag, float(small["p50_ms"])) < LOOP_SHARE  # ...and not on the event loop
        outcome = HOLDS if slower and at_pool and loop_free else PARTLY if slower else FAILS
        name = f"{small['target']} /db W={small['workers']} U={small['users']}"
        cases.append((outcome, name))
        evidence.append(
            f"{name}: pool {plain(small['db_pool'])}: {measure(small, 'rps', 'rps')}, p50 "
            f"{fmt(small['p50_ms'], 'ms')} of which {fmt(wait, 'ms')} (median) waiting for a connection, "
            f"loop lag p99 {fmt(lag, 'ms')}; pool {plain(large['db_pool'])}: {fmt(large['rps'], 'rps')}, "
            f"p50 {fmt(large['p50_ms'], 'ms')}, pool wait p50 "
            f"{fmt(run.extra_median(large, 'db_pool_wait_p50_ms'), 'ms')}"
            + test_note(small, large, "p50_ms", "p50"))
        cells += [label(small, "db_pool"), label(large, "db_pool")]
    return with_chart(combine("9b", cases, evidence, cells), panel)


def fast_health_ms(cell: pd.Series) -> float:
    return max(FAST_HEALTH_MIN_MS, 2 * float(cell["cpu_ms"]))


def decide_10(run: Run) -> Verdict:
    found = pd.concat([run.cells(target="mixed", scenario="cpu"),
                       run.cells(target="mixed", scenario="mixed")])
    if found.empty:
        return not_measured("10", "the run has no cells of the two-stage mixed target on /cpu or /mixed")
    by_kind: dict[str, list[bool]] = {}
    evidence, cells = [], []
    panel = Panel("/health beside the two-stage /cpu", "ms", [])
    for _, c in found.iterrows():
        limit = fast_health_ms(c)
        x = f"{c['cpu_kind']}\n/{c['scenario']} W={c['workers']}"
        panel.points.append(point(c, "health_ms", x, str(c["cpu_kind"])))
        panel.thresholds.append(Threshold(limit, "fast below", (x,)))
        fast = float(c["health_ms"]) <= limit
        by_kind.setdefault(str(c["cpu_kind"]), []).append(fast)
        evidence.append(f"{label(c, 'cpu_kind')}: /health {measure(c, 'health_ms', 'ms')} "
                        f"({'fast' if fast else 'slow'}: limit {fmt(limit, 'ms')})")
        cells.append(label(c, "cpu_kind"))
    kinds = {k: all(v) for k, v in by_kind.items()}
    if all(kinds.values()):
        return with_chart(Verdict("10", HOLDS, "", evidence, cells), panel)
    if not any(kinds.values()):
        cond = "" if "native" in kinds else "native (GIL-releasing) work was not measured"
        return with_chart(Verdict("10", FAILS, cond, evidence, cells), panel)
    fast_kinds = [k for k, v in kinds.items() if v]
    return with_chart(Verdict("10", PARTLY, f"neighbours stayed fast only with {', '.join(fast_kinds)} CPU "
                              "work (it releases the GIL); pure-Python work starves the event loop",
                              evidence, cells), panel)
