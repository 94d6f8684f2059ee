"""`bench.py overhead` — what the in-worker probe costs: /health with it on and off.

On and off cells alternate (on, off, on, off, ...) so slow drifts of a noisy machine hit both
alike; medians are compared. The verdict uses the target's CPU per request (psutil), because on a
small machine Locust saturates before the target does and throughput then measures Locust; for
a CPU-bound server throughput is 1 / (CPU per request), so the two say the same. Goal: ≤ 2 %.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from harness.data import store
from harness.data.matrix import ConfigError, build_cells, make_config
from harness.run.sweep import new_meta, run_cells, say

GOAL = 0.02


def measure_overhead(out: Path | None = None, repeat: int = 3, users: int = 16,
                     duration: float = 5.0, target: str = "correct-async") -> int:
    if not 1 <= repeat <= 20:
        raise ConfigError(f"--repeat {repeat} is out of range: must be between 1 and 20")
    cfg_on = make_config("default", targets=[target], scenarios=["health"], workers=[1], users=[users],
                         duration=duration, warmup=1.5, repeat=repeat, adapt_window=False)
    cfg_off = cfg_on.replace(probe=False)
    cells = [c for pair in zip(build_cells(cfg_on), build_cells(cfg_off), strict=True) for c in pair]
    run_dir = out or store.results_dir() / store.new_run_id("overhead")
    store.prepare_run_dir(run_dir, resume=False)
    meta = new_meta(run_dir, "overhead", cfg_on.knobs())
    say(f"probe overhead: {target} /health, {users} users, {repeat} × (probe on, probe off) → {run_dir}")
    rows = run_cells(cells, run_dir, meta, measure_upstream=False)
    ok = [r for r in rows if r["status"] == "ok" and r["rps"] > 0]
    stats = {}
    for flag in (True, False):
        mine = [r for r in ok if r["probe"] is flag]
        if not mine:
            say("overhead: not enough successful cells to compare")
            return 1
        # CPU the target spends per request (µs): what the probe adds, whatever limits throughput.
        stats[flag] = (statistics.median(r["rps"] for r in mine),
                       statistics.median(10_000 * r["target_cpu_pct"] / r["rps"] for r in mine))
    (rps_on, cpu_on), (rps_off, cpu_off) = stats[True], stats[False]
    saturated = any("load generator saturated" in r["invalid_reason"] for r in ok)
    say(f"/health, probe on : median {rps_on:.0f} rps, {cpu_on:.0f} µs of target CPU per request")
    say(f"/health, probe off: median {rps_off:.0f} rps, {cpu_off:.0f} µs of target CPU per request")
    say(f"throughput with the probe: {rps_on / rps_off - 1:+.1%}"
        + ("  (Locust saturated its core, so throughput shows Locust's limit, not the target's)"
           if saturated else ""))
    cost = cpu_on / cpu_off - 1
    say(f"probe overhead: {cost:+.1%} target CPU per request (goal ≤ {GOAL:.0%}) → "
        f"{'within goal' if cost <= GOAL else 'ABOVE GOAL'}")
    return 0 if cost <= GOAL else 1
