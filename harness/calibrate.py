"""`bench.py calibrate` — can I trust this machine?

A few cells whose ceilings are exact (the pattern, not the framework, is the limit), measured
against those ceilings. Efficiency outside [0.90, 1.05] means this machine (or this harness) adds
a bias you should know before reading any chart: exit code 1.

The CPU cell checks the CPU first: the CPU time the worker spent per request (`cpu_cost_ms`) must
be within 1/0.85 of the calibrated CPU_MS, or the machine is too noisy and the cell fails. Only
then is its ceiling, 1 / C, taken with the measured C, so a CPU that runs slower than calibrated
cannot pass by being divided out, and a worker starved of its core fails.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.data import store
from harness.data.matrix import Cell, ConfigError, build_cells, make_config
from harness.run.sweep import new_meta, run_cells, say

LOW, HIGH = 0.90, 1.05
MIN_CPU_SPEED = 0.85  # the CPU time a request costs may exceed its calibrated CPU_MS by at most 1/0.85

# (why this cell's ceiling is exact, config overrides). Light loads, so the CPU is never the limit,
# and 100 ms waits / 50 ms of CPU, so the ~2 ms a request spends in uvicorn, FastAPI, httpx and
# Locust stays small next to the modelled cost.
CASES = [
    ("one blocked worker: W / L", dict(targets=["fake-async"], scenarios=["io"], workers=[1], users=[8],
                                       fanout=1, io_ms=100)),
    # SO_REUSEPORT spreads the connections; uvicorn's one shared socket can hand all 9 of them to
    # one worker (seen here: 9.7 of 20 rps), and then the cell measures accept, not the pattern.
    ("two blocked workers: W / L", dict(targets=["fake-async"], scenarios=["io"], workers=[2], users=[8],
                                        fanout=1, io_ms=100, launch="reuseport")),
    ("4 threads < 16 users: W·P / L", dict(targets=["thread-pool"], scenarios=["io"], workers=[1],
                                           users=[16], pool_size=4, fanout=1, io_ms=100)),
    ("8 users, async wait: U / L", dict(targets=["correct-async"], scenarios=["io"], workers=[1],
                                        users=[8], fanout=1, io_ms=100)),
    ("one worker computing: 1 / C", dict(targets=["fake-async"], scenarios=["cpu"], workers=[1],
                                         users=[4], cpu_ms=50)),
]


def calibration_cells(duration: float) -> list[tuple[str, Cell]]:
    out = []
    for why, overrides in CASES:
        cfg = make_config("default", duration=duration, warmup=1.5, **overrides)
        out += [(why, cell) for cell in build_cells(cfg)]
    return out


def judge(why: str, cell: Cell, row: dict) -> tuple[bool, float, float, str]:
    """(passed, ceiling, efficiency, note) for one measured calibration cell.

    A CPU cell first checks the CPU itself: the CPU time the worker spent per request against the
    calibrated CPU_MS. Below MIN_CPU_SPEED the machine is too noisy to calibrate, and the cell fails
    rather than dividing the slowness out. Its ceiling then uses that measured cost, so what is left
    is the pattern: one worker computing one request at a time.
    """
    ceiling, note = cell.ceiling_rps, why
    if cell.scenario == "cpu":
        cost = row.get("cpu_cost_ms", math.nan)
        if not math.isfinite(cost) or cost <= 0:
            return False, ceiling, row["rps"] / ceiling, note + "; the worker measured no CPU cost"
        speed = cell.cpu_ms / cost
        ceiling = row.get("ceiling_cpu_rps", ceiling)
        note += f"; CPU at {speed:.0%} of its calibrated speed ({cost:.1f} ms of CPU a request)"
        eff = row["rps"] / ceiling
        if speed < MIN_CPU_SPEED:
            return False, ceiling, eff, note + f": below {MIN_CPU_SPEED:.0%}, this machine is too noisy now"
        if eff < LOW:
            note += (f"; the worker process got {row['target_cpu_pct']:.0f}% of a core: something else "
                     "is using the CPU")
    eff = row["rps"] / ceiling
    ok = math.isfinite(eff) and LOW <= eff <= HIGH
    if not ok:
        note += f"; efficiency outside [{LOW:.2f}, {HIGH:.2f}]"
    return ok, ceiling, eff, note


def calibrate(out: Path | None = None, duration: float = 6.0) -> int:
    if not 1 <= duration <= 600:
        raise ConfigError(f"--duration {duration} is out of range: must be between 1 and 600")
    run_dir = out or store.results_dir() / store.new_run_id("calibrate")
    store.prepare_run_dir(run_dir, resume=False)
    cases = calibration_cells(duration)
    meta = new_meta(run_dir, "calibrate", {"cases": [c for _, c in CASES]})
    say(f"calibration: {len(cases)} cells with exact ceilings → {run_dir}")
    rows = run_cells([cell for _, cell in cases], run_dir, meta)
    say("")
    say(f"{'cell':<42} {'measured':>9} {'ceiling':>8} {'effic.':>7} {'locust cpu':>10}  verdict")
    bad = 0
    locust_max = 0.0
    for (why, cell), row in zip(cases, rows, strict=True):
        name = f"{cell.target} /{cell.scenario} W={cell.workers} U={cell.users}"
        if row["status"] != "ok":
            bad += 1
            say(f"{name:<42} FAILED: {row['error']}")
            continue
        ok, ceiling, eff, note = judge(why, cell, row)
        bad += not ok
        locust_max = max(locust_max, row["locust_cpu_pct"])
        verdict = "ok" if ok else "FAILED"
        say(f"{name:<42} {row['rps']:>9.1f} {ceiling:>8.1f} {eff:>7.3f} "
            f"{row['locust_cpu_pct']:>9.0f}%  {verdict}  ({note})")
    say(f"load generator headroom: peak Locust CPU {locust_max:.0f}% of one core "
        f"({100 - locust_max:.0f}% left)")
    say("calibration PASSED: this machine's measurements track the analytic ceilings" if not bad else
        f"calibration FAILED: {bad} cell(s) off their ceiling — read the charts with care")
    return 1 if bad else 0
