"""Raw per-cell outputs → one tidy row.

Latencies: exact per-request times from requests.csv (no Locust bucketing), over the measured
window only — a request belongs to the window when it *completes* inside it. Throughput counts
successful completions per second of the window. Worker-side figures come from the probe files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import LATENCY_STATS

NAN = float("nan")
HEALTH = "health"
QUANTILES = {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99, "p999_ms": 99.9}


def min_samples(q: float) -> int:
    """Fewest samples for which percentile q rests on at least one sample in its tail."""
    return math.ceil(round(100 / (100 - q), 6))


def latency_stats(ms: np.ndarray, prefix: str = "", strict: bool = True) -> dict:
    """Exact percentiles (linear interpolation between order statistics) and max.

    strict: a percentile whose tail holds no sample (p99 of 50 requests) is NaN, not a guess.
    """
    out = {f"{prefix}{k}": NAN for k in LATENCY_STATS}
    if len(ms) == 0:
        return out
    for col, q in QUANTILES.items():
        if not strict or len(ms) >= min_samples(q):
            out[f"{prefix}{col}"] = float(np.percentile(ms, q))
    out[f"{prefix}max_ms"] = float(ms.max())
    return out


def read_records(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"start": float, "ms": float, "name": str, "ok": int})
    df["end"] = df["start"] + df["ms"] / 1000
    return df


def window_stats(records: pd.DataFrame, t0: float, t1: float) -> dict:
    """Work and health figures for requests completing in [t0, t1)."""
    inside = records[(records["end"] >= t0) & (records["end"] < t1)]
    work = inside[inside["name"] != HEALTH]
    health = inside[inside["name"] == HEALTH]
    ok = work[work["ok"] == 1]
    seconds = t1 - t0
    row = {
        "requests": int(len(work)),
        "failures": int((work["ok"] == 0).sum()),
        # Successful completions per second of the window (goodput: a fast 500 is not throughput).
        "rps": len(ok) / seconds,
        "health_requests": int(len(health)),
    }
    row["fail_ratio"] = row["failures"] / row["requests"] if row["requests"] else NAN
    row.update(latency_stats(work["ms"].to_numpy()))
    # The probe sends ~10 req/s: a short window holds tens of samples, so its high percentiles
    # are close to its maximum. Reported anyway, with health_requests beside them.
    row.update(latency_stats(health["ms"].to_numpy(), prefix="health_", strict=False))
    return row


def probe_stats(metrics_dir: Path, t0: float, t1: float) -> dict:
    """Merge the workers' probe files over the window."""
    lags: list[float] = []
    cpu_ms: list[float] = []
    stalled_max = 0.0
    served: dict[int, int] = {}
    pool_max: float = NAN
    seen = 0
    for path in sorted(metrics_dir.glob("worker-*.jsonl")):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        before = [r for r in lines if "lag_ms" in r and r["t"] < t0]
        inside = [r for r in lines if "lag_ms" in r and t0 <= r["t"] < t1]
        if not inside:
            continue
        seen += 1
        for r in inside:
            lags.extend(r["lag_ms"])
            cpu_ms.extend(r.get("cpu_ms", []))
            stalled_max = max(stalled_max, r["stalled_ms"])
            if r.get("pool_busy") is not None:
                pool_max = r["pool_busy"] if math.isnan(pool_max) else max(pool_max, r["pool_busy"])
        start_count = before[-1]["work"] if before else 0
        served[inside[-1]["pid"]] = inside[-1]["work"] - start_count
    total = sum(served.values())
    arr = np.asarray(lags, dtype=float)
    return {
        "loop_lag_p50_ms": float(np.percentile(arr, 50)) if len(arr) else NAN,
        "loop_lag_p99_ms": float(np.percentile(arr, 99)) if len(arr) else NAN,
        # A loop still blocked at the window's end has not logged that lag yet: the writer thread's
        # `stalled_ms` covers it.
        "loop_lag_max_ms": max(float(arr.max()) if len(arr) else 0.0, stalled_max) if seen else NAN,
        "workers_seen": seen,
        "worker_share_max": max(served.values()) / total if total else NAN,
        "pool_busy_max": pool_max,
        # How long the CPU stage really took in the workers (not measured inside process pools):
        # CPU_MS is the least it costs; a busy or slowed host makes it more.
        "cpu_stage_ms": float(np.median(cpu_ms)) if cpu_ms else NAN,
    }


def collect_cell(raw_dir: Path, t0: float, t1: float) -> dict:
    """Every measure a cell's raw folder yields for the window [t0, t1)."""
    row = window_stats(read_records(raw_dir / "requests.csv"), t0, t1)
    row.update(probe_stats(raw_dir / "metrics", t0, t1))
    return row
