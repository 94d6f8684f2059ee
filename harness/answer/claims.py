"""The registry of the reference article's claims: each claim's statement, the cells it needs (and
the sweeps that produce them), the rule that decides it (thresholds stated) and its decider.

A verdict is computed from whatever cells a run folder holds (results.csv + meta.json); it never
runs anything. Verdicts: holds, does not hold, holds only partly (with the condition that limits
it), no measurable difference (inside the repeats' noise), or not measured (with why). The
deciders are in harness.answer.deciders; the noise rule and thresholds in harness.answer.evidence.
"""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.answer import aggregate, significance
from harness.answer.deciders import (
    decide_1,
    decide_1b,
    decide_2,
    decide_3,
    decide_4,
    decide_4b,
    decide_5,
    decide_6,
    decide_7,
    decide_8,
    decide_9,
    decide_9b,
    decide_10,
)
from harness.answer.evidence import (
    CLEAR_RATIO,
    FAST_HEALTH_MIN_MS,
    LOOP_SHARE,
    MEMORY_GROWTH,
    NOISE_MARGIN,
    POOL_SHARE,
    STALL_SHARE,
    UNSATURATED,
    WORTHWHILE_GAIN,
    Run,
    Verdict,
    not_measured,
)
from harness.answer.pitfall_deciders import CLIENT_TIMEOUT_S, decide_11, decide_12
from harness.answer.server_claim import decide_server
from harness.data import prog


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    needs: str  # the cells, in words
    rule: str   # how the verdict is decided, thresholds included
    runs: Callable[[int], list[dict]]  # cores → Config overrides that produce the cells
    decide: Callable[[Run], Verdict]
    preset: str = ""  # a claim whose cells `bench.py claims` does not run: the preset that does


def _runs_1(cores: int) -> list[dict]:
    # fake-async /io at one worker is slow (≈ 6.7 rps): a 5 s window is stretched to get 100 requests.
    return [dict(targets=["fake-async"], scenarios=["io"], duration=5.0, warmup=2.0),
            dict(targets=["correct-async"], scenarios=["io"], repeat=3)]


# Repeats of the cells whose verdict hinges on a difference tested on repeats (claims 4, 4b, 5, 6, 7):
# 3 vs 3 cannot reach p ≤ 5% in the exact test (smallest p 0.1), 5 vs 5 can (≈ 0.008). Claims 3 and
# 10 read thresholds within a cell; claims 1, 1b, 9 and 9b need a ≥ 2× ratio and claim 8 is a sweep of
# single repeats, both against a one-repeat cell (the 10% margin rule, no test). Claim 11 sets one
# aiohttp repeat against claim 7's five httpx ones (the same cell): the margin rule too, as five
# aiohttp repeats (+33 s) do not fit the 10-minute budget.
DIFF_REPEATS = significance.RECOMMENDED_REPEATS


def _runs_12(cores: int) -> list[dict]:
    # The decider reads only cells whose expected queue (users / the ≈ 6.7 rps ceiling) is clearly
    # inside the 10 s client timeout (U=2: 0.3 s, U=6: 0.9 s, both ≤ 1 s) or past it (U=96: 14 s);
    # claim 1's U=32 cell (4.8 s) is shown, not read: it failed 0% in one run and 24% in another.
    # Unstretched windows keep the run in budget. At U=96 the users time out together, in waves one
    # 10 s client timeout apart: a window shorter than that misses or catches a wave by phase (a 5 s
    # window after an 11 s warm-up saw 0 of 82 timeouts, 2026-12-04), so its window spans the first
    # wave and more than one timeout period.
    return [dict(targets=["fake-async"], scenarios=["io"], users=[2, 6], duration=5.0, warmup=2.0,
                 adapt_window=False),
            dict(targets=["fake-async"], scenarios=["io"], users=[96], duration=12.0, warmup=2.0,
                 adapt_window=False)]


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
          lambda cores: [dict(targets=["thread-pool", "process-pool"], scenarios=["cpu"],
                              repeat=DIFF_REPEATS)],
          decide_4),
    Claim("4b", "but for work that releases the GIL (--cpu-kind native) threads do help",
          "thread-pool or mixed /cpu with native and with python work, ≥ 2 cores",
          f"holds when native work gets measurably more rps than python work and its work rate "
          f"(rps × CPU_MS) exceeds {1 + NOISE_MARGIN / 2:g} cores, i.e. threads ran in parallel",
          lambda cores: [dict(targets=["mixed"], scenarios=["cpu"], cpu_kind=["python", "native"],
                              repeat=DIFF_REPEATS)], decide_4b),
    Claim("5", "the article's own /process (future.result() inside async def) blocks the event loop",
          "blocking-future and process-pool /cpu at equal knobs",
          f"holds when blocking-future's /health p99 is measurably and ≥ {CLEAR_RATIO:g}× process-pool's, "
          "and its rps is not measurably higher; only the /health part: partly",
          lambda cores: [dict(targets=["blocking-future", "process-pool"], scenarios=["cpu"],
                              repeat=DIFF_REPEATS)],
          decide_5),
    Claim("6", "uvicorn workers ≈ cores; more workers than cores adds nothing for CPU-bound work",
          "/cpu (python) of one in-worker CPU target at W = 1, cores and 2 × cores, ≥ 2 cores",
          "holds when W = cores is measurably above W = 1 and W = 2 × cores adds nothing over "
          f"W = cores (not measurably more, or by less than {WORTHWHILE_GAIN:.0%}); only the second part: "
          "partly",
          lambda cores: [dict(targets=["correct-async"], scenarios=["cpu"], workers=[1, cores, 2 * cores],
                              repeat=DIFF_REPEATS)], decide_6),
    Claim("7", "uvloop improves throughput",
          "the same cells under --loop uvloop and --loop asyncio",
          "holds when uvloop's rps is measurably higher; inside the noise: no measurable difference",
          lambda cores: [dict(targets=["correct-async"], scenarios=["io"], loop=["uvloop", "asyncio"],
                              repeat=DIFF_REPEATS)], decide_7),
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
    Claim("11", "the article's async client, httpx.AsyncClient, is not what limits async /io: with it "
          "the pattern reaches its ceiling",
          "correct-async /io with --http-client httpx and aiohttp at equal knobs",
          "does not hold (the client is the limit) when aiohttp serves measurably and "
          f"> {WORTHWHILE_GAIN:.0%} more rps while httpx stays below {UNSATURATED:.0%} of the ceiling; "
          f"holds when httpx reaches {UNSATURATED:.0%} and aiohttp is not clearly faster; otherwise partly",
          lambda cores: [dict(targets=["correct-async"], scenarios=["io"], http_client=["httpx", "aiohttp"],
                              repeat=1)], decide_11),
    Claim("12", "blocking calls fail silently (the fourth pitfall): nothing fails while latency grows, "
          "until a client timeout makes the failure visible",
          "a blocking route (fake-async /io) at ≥ 3 user counts, one worker",
          "read only where the outcome is not noise, by the expected queue users / ceiling: holds when the "
          f"cells whose queue stays ≤ {CLIENT_TIMEOUT_S / 10:g} s have 0 failures while p50 and loop lag p99 "
          f"grow ≥ {CLEAR_RATIO:g}×, and the cells whose queue passes the {CLIENT_TIMEOUT_S:g} s client "
          "timeout fail; no failure there: partly; failures first or no growth: does not hold",
          _runs_12, decide_12),
]

# Not the article's claim but the deployment question beside it, decided from
# `bench.py run --preset servers`. `bench.py claims` runs none of its cells: a one-repeat cut of two
# servers sits inside this machine's noise (docs/servers.md), and its 4 cells pushed the claims plan
# past its budget once claims 11 and 12 came; a claims run shows it as not measured.
REGISTRY.append(Claim(
    "21", "the server matters only where the framework's own cost dominates",
    "the same cells under uvicorn and another --server: /health, and cells near their ceiling "
    f"(fake-async /io, process-pool /cpu): {prog.name()} run --preset servers",
    "work-bound = the cell's ceiling is at most half of uvicorn's /health rps at that W (without one: "
    f"uvicorn's cell at ≥ {UNSATURATED:.0%} of its ceiling); the rest framework-bound; holds when "
    "some server's rps differs measurably from uvicorn's on a framework-bound cell and on no work-bound "
    "one; a work-bound difference: does not hold (partly if framework-bound ones differ too); none: "
    "no measurable difference",
    lambda cores: [], decide_server, preset="servers"))

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

