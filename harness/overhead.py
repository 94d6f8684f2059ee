"""`bench.py overhead` — what the in-worker probe costs: /health throughput with it on and off.

On and off cells alternate (on, off, on, off, ...) so slow drifts of a noisy machine hit both
alike; the verdict compares medians. Goal: ≤ 2 % fewer requests/s with the probe on.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from harness import store
from harness.matrix import ConfigError, build_cells, make_config
from harness.sweep import new_meta, run_cells, say

GOAL = 0.02


def measure_overhead(out: Path | None = None, repeat: int = 3, users: int = 16,
                     duration: float = 5.0, target: str = "correct-async") -> int:
    if not 1 <= repeat <= 20:
        raise ConfigError(f"--repeat {repeat} is out of range: must be between 1 and 20")
    cfg_on = make_config("default", targets=[target], scenarios=["health"], workers=[1], users=[users],
                         duration=duration, warmup=1.5, repeat=repeat, adapt_window=False)
    cfg_off = replace(cfg_on, probe=False)
    cells = [c for pair in zip(build_cells(cfg_on), build_cells(cfg_off), strict=True) for c in pair]
    run_dir = out or store.ROOT / "results" / store.new_run_id("overhead")
    store.prepare_run_dir(run_dir, resume=False)
    meta = new_meta(run_dir, "overhead", cfg_on.knobs())
    say(f"probe overhead: {target} /health, {users} users, {repeat} × (probe on, probe off) → {run_dir}")
    rows = run_cells(cells, run_dir, meta, measure_upstream=False)
    rps = {flag: [r["rps"] for r in rows if r["probe"] is flag and r["status"] == "ok"]
           for flag in (True, False)}
    if not rps[True] or not rps[False]:
        say("overhead: not enough successful cells to compare")
        return 1
    on, off = statistics.median(rps[True]), statistics.median(rps[False])
    cost = 1 - on / off
    say(f"/health rps, probe on : {', '.join(f'{x:.0f}' for x in rps[True])} (median {on:.0f})")
    say(f"/health rps, probe off: {', '.join(f'{x:.0f}' for x in rps[False])} (median {off:.0f})")
    say(f"probe overhead: {cost:+.1%} of /health throughput (goal ≤ {GOAL:.0%}) → "
        f"{'within goal' if cost <= GOAL else 'ABOVE GOAL'}")
    return 0 if cost <= GOAL else 1
