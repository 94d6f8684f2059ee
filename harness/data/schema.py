"""The tidy result format: one row per (cell, repeat) in results.csv, plus meta.json.

Parameters come first, then measures. Plotting, reporting, recommending and comparing read only
these columns, through `read_results`, which also reads older files.

Versions (columns are only ever added, so an older file reads with the newer columns empty):

  1  the first format: parameters, latency percentiles, /health, probe, CPU, ceiling, validity
  2  per-worker loop lag (worst worker) and loop_blocked_pct_max; health_* from the worst probed
     worker with health_min_samples; censored percentiles (failures leave them empty); cpu_cost_ms,
     ceiling_cpu_rps, efficiency_cpu; session (meta.json "sessions"); what limited the cell
     (BOTTLENECK_COLUMNS)
  3  the cost of a configuration: target_rss_mb (peak RSS of the target tree over the window, pool
     children included) and ctx_switches_per_req (voluntary + involuntary context switches of the
     tree per request)
  4  open loop (rate, arrivals; dropped, service_p50_ms, service_p99_ms) and load processes
     (load_processes, locust_cpu_max_pct)
  5  the db scenario: its knobs (db_queries, db_ms, db_pool, db_pool_timeout, db_driver) and
     DB_COLUMNS (pool wait p50/p99 and busy connections measured in the workers, busy backends in
     pg_stat_activity, the server's CPU)
  6  p99_lower_ms: when failures reach the p99 (left empty), the bound it is known to exceed (the
     p99 with each failure at its recorded time, i.e. the client timeout, or the largest success)
  7  diagnosis (docs/diagnosis.md): the thread_tokens knob; fail_top (the most frequent failure
     and its share); STALL_COLUMNS (the call site that stalled the loop, from the probe's stack
     samples) and the default thread limiter's tokens (busy at most, total, share of the window full)
  8  the ASGI server (server: uvicorn, gunicorn, gunicorn-asgi, granian, hypercorn); older files ran
     uvicorn and read with server = uvicorn
  9  APP_POOL_COLUMNS: the app's own SQLAlchemy pools seen through their events from the wrapper
     (targets/pool_events.py): capacity (pool_size + max_overflow), the share of the window all of
     it was out, the p99 of each request's wait from its arrival to its first checkout
 10  app_pool_hold_p50_ms: the median time a checkout held its connection (checkout to checkin)
 11  app_error: when work requests failed with 5xx, the exception the app raised and its innermost
     frame in the app's code, from the worker's log (harness/judge/app_errors.py)
 12  WAIT_COLUMNS: where the requests in flight waited, from the wait sampler's samples
     (harness/judge/wait_profile.py): the largest wait and its share of request time, the share
     waiting for a pool or a lock and its site in the app's code, the samples it rests on

Adding a column: add it below, add a version to HISTORY, bump SCHEMA_VERSION. A results column
that is a knob comes from the knob table (harness/data/knobs.py), so adding a cell knob adds a version.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.data import knobs

SCHEMA_VERSION = 12

# The parameters: the axes, every cell knob of the table (harness/data/knobs.py), the repeat.
PARAM_COLUMNS = knobs.PARAM_COLUMNS

LATENCY_STATS = ["p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]

MEASURE_COLUMNS = [
    "status", "error",
    "requests", "failures", "fail_ratio", "rps",
    *LATENCY_STATS, "p99_lower_ms",
    "health_requests", "health_min_samples", *(f"health_{s}" for s in LATENCY_STATS),
    "loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms", "loop_blocked_pct_max",
    "workers_seen", "worker_share_max", "pool_busy_max", "cpu_stage_ms", "cpu_cost_ms",
    "dropped", "service_p50_ms", "service_p99_ms",
    "target_cpu_pct", "locust_cpu_pct", "locust_cpu_max_pct", "upstream_cpu_pct",
    "target_rss_mb", "ctx_switches_per_req",
    "ceiling_rps", "efficiency", "ceiling_cpu_rps", "efficiency_cpu", "valid", "invalid_reason",
    "warmup_s", "duration_s", "started_at", "session", "raw_dir",
]

# What limited the cell (harness/judge/bottleneck.py) and the per-process CPU it rests on; with
# --profile, py-spy's evidence (the flame graph's path in the run folder).
BOTTLENECK_COLUMNS = [
    "worker_cpu_max_pct", "worker_cpu_min_pct", "pool_cpu_pct", "worker_thread_cpu_pct", "machine_cpu_pct",
    "worker_busy_threads", "bound_by", "bound_detail", "profiled", "profile_svg",
]
MEASURE_COLUMNS += BOTTLENECK_COLUMNS

# The db scenario (harness/run/database.py, targets/db.py): pool waits and busy connections measured in
# the workers, busy backends in pg_stat_activity, the server's CPU.
DB_COLUMNS = ["db_pool_wait_p50_ms", "db_pool_wait_p99_ms", "db_pool_busy_max", "db_active_max", "db_cpu_pct"]
MEASURE_COLUMNS += DB_COLUMNS

# Diagnosis (harness/judge/failures.py, harness/judge/stalls.py): why requests failed, where the
# loop stalled, and whether `def` routes waited for a thread token.
STALL_COLUMNS = ["stall_site", "stall_samples", "thread_tokens_busy_max", "thread_tokens_total",
                 "thread_tokens_full_pct"]
MEASURE_COLUMNS += ["fail_top", *STALL_COLUMNS]

# The app's own SQLAlchemy pools (targets/pool_events.py, harness/judge/collect.py).
APP_POOL_COLUMNS = ["app_pool_size", "app_pool_full_pct", "app_pool_wait_p99_ms"]
MEASURE_COLUMNS += [*APP_POOL_COLUMNS, "app_pool_hold_p50_ms"]
MEASURE_COLUMNS += ["app_error"]  # the app's own exception behind 5xx (harness/judge/app_errors.py)
# Where requests waited (targets/wait_sampler.py, harness/judge/wait_profile.py).
WAIT_COLUMNS = ["wait_top", "wait_top_pct", "wait_lock_pct", "wait_site", "wait_samples"]
MEASURE_COLUMNS += WAIT_COLUMNS

COLUMNS = PARAM_COLUMNS + MEASURE_COLUMNS

# Columns each version added, in the order they appeared.
HISTORY: dict[int, list[str]] = {
    1: [
        "target", "scenario", "workers", "users", "loop", "pool_size", "io_ms", "cpu_ms", "fanout",
        "cpu_kind", "http_client", "http_connections", "launch", "probe", "repeat",
        "status", "error", "requests", "failures", "fail_ratio", "rps", *LATENCY_STATS,
        "health_requests", *(f"health_{s}" for s in LATENCY_STATS),
        "loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms",
        "workers_seen", "worker_share_max", "pool_busy_max", "cpu_stage_ms",
        "target_cpu_pct", "locust_cpu_pct", "upstream_cpu_pct",
        "ceiling_rps", "efficiency", "valid", "invalid_reason",
        "warmup_s", "duration_s", "started_at", "raw_dir",
    ],
    2: ["health_min_samples", "loop_blocked_pct_max", "cpu_cost_ms", "ceiling_cpu_rps", "efficiency_cpu",
        "session", *BOTTLENECK_COLUMNS],
    3: ["target_rss_mb", "ctx_switches_per_req"],
    4: ["rate", "arrivals", "load_processes", "dropped", "service_p50_ms", "service_p99_ms",
        "locust_cpu_max_pct"],
    5: ["db_queries", "db_ms", "db_pool", "db_pool_timeout", "db_driver", *DB_COLUMNS],
    6: ["p99_lower_ms"],
    7: ["thread_tokens", "fail_top", *STALL_COLUMNS],
    8: ["server"],
    9: APP_POOL_COLUMNS,
    10: ["app_pool_hold_p50_ms"],
    11: ["app_error"],
    12: WAIT_COLUMNS,
}
ADDED_IN = {v: cols for v, cols in HISTORY.items() if v > 1}
# Columns a results.csv of version 1 lacks: such files load with them empty.
OPTIONAL_COLUMNS = [c for cols in ADDED_IN.values() for c in cols]


def row_number(row: dict, key: str) -> float:
    """A results row's figure as a float; NaN when it is missing or not a number (an empty CSV cell)."""
    try:
        return float(row.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def row_text(row: dict, key: str) -> str:
    """A results row's text; "" when it is missing or an empty CSV cell (read back as NaN)."""
    value = row.get(key)
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def columns_of(version: int) -> list[str]:
    """Every column a results.csv of `version` has."""
    return [c for v in sorted(HISTORY) if v <= version for c in HISTORY[v]]


class ResultsFormatError(ValueError):
    """results.csv cannot be read as any known version of the format (one-line reason)."""


def _meta_version(csv: Path) -> int | None:
    try:
        meta = json.loads((csv.parent / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    return version if isinstance(version, int) else None


def file_version(csv: Path, header: list[str]) -> int:
    """The file's version: meta.json's beside it, else the oldest version that has every column.

    Raises ResultsFormatError for a version this harness does not know (a newer harness wrote it).
    """
    version = _meta_version(csv)
    if version is not None:
        if version not in HISTORY:
            raise ResultsFormatError(f"{csv} has schema version {version}, which this harness does not "
                                     f"know (it reads versions {min(HISTORY)}–{max(HISTORY)})")
        return version
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ResultsFormatError(f"{csv} has column(s) {', '.join(unknown)} of a schema version this "
                                 f"harness does not know (it reads versions {min(HISTORY)}–{max(HISTORY)})")
    return next(v for v in sorted(HISTORY) if set(header) <= set(columns_of(v)))


def read_results(csv: Path) -> pd.DataFrame:
    """results.csv of any known version as raw values with every current column (newer ones empty).

    Raises ResultsFormatError naming any first-format column it lacks.
    """
    raw = pd.read_csv(csv, keep_default_na=True)
    file_version(csv, list(raw.columns))  # refuses a version this harness does not know
    # Only the first format's columns are required: harnesses in between wrote some later columns
    # before their version existed, and every later column reads empty when absent.
    missing = [c for c in columns_of(1) if c not in raw.columns]
    if missing:
        raise ResultsFormatError(f"results are missing column(s): {', '.join(missing)}")
    if "server" not in raw.columns:  # before version 8 every target ran under uvicorn
        raw["server"] = "uvicorn"
    for col in COLUMNS:
        if col not in raw.columns:
            raw[col] = float("nan")  # added after this file's version: empty
    extra = [c for c in raw.columns if c not in COLUMNS]
    return raw[COLUMNS + extra]
