"""The tidy result format: one row per (cell, repeat) in results.csv, plus meta.json.

Parameters come first, then measures. Plotting and reporting read only these columns.
"""

from __future__ import annotations

from harness import knobs

SCHEMA_VERSION = 2
# 1: first format.
# 2: per-worker loop lag (worst worker) and loop_blocked_pct_max; health_* from the worst probed
#    worker with health_min_samples; censored percentiles (failures leave them empty); cpu_cost_ms,
#    ceiling_cpu_rps, efficiency_cpu; session (meta.json "sessions"); what limited the cell
#    (BOTTLENECK_COLUMNS).

# The parameters: the axes, every cell knob of the table (harness/knobs.py), the repeat.
PARAM_COLUMNS = knobs.PARAM_COLUMNS

LATENCY_STATS = ["p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]

MEASURE_COLUMNS = [
    "status", "error",
    "requests", "failures", "fail_ratio", "rps",
    *LATENCY_STATS,
    "health_requests", "health_min_samples", *(f"health_{s}" for s in LATENCY_STATS),
    "loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms", "loop_blocked_pct_max",
    "workers_seen", "worker_share_max", "pool_busy_max", "cpu_stage_ms", "cpu_cost_ms",
    "target_cpu_pct", "locust_cpu_pct", "upstream_cpu_pct",
    "ceiling_rps", "efficiency", "ceiling_cpu_rps", "efficiency_cpu", "valid", "invalid_reason",
    "warmup_s", "duration_s", "started_at", "session", "raw_dir",
]

# What limited the cell (harness/bottleneck.py) and the per-process CPU it rests on; with
# --profile, py-spy's evidence (the flame graph's path in the run folder).
BOTTLENECK_COLUMNS = [
    "worker_cpu_max_pct", "worker_cpu_min_pct", "pool_cpu_pct", "worker_thread_cpu_pct", "machine_cpu_pct",
    "worker_busy_threads", "bound_by", "bound_detail", "profiled", "profile_svg",
]
MEASURE_COLUMNS += BOTTLENECK_COLUMNS

COLUMNS = PARAM_COLUMNS + MEASURE_COLUMNS

# Columns each version added: a results.csv from before them still loads, with them empty.
ADDED_IN = {
    2: ["health_min_samples", "loop_blocked_pct_max", "cpu_cost_ms", "ceiling_cpu_rps", "efficiency_cpu",
        "session", *BOTTLENECK_COLUMNS],
}
OPTIONAL_COLUMNS = [c for cols in ADDED_IN.values() for c in cols]
