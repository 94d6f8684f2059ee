"""Raw per-cell outputs → one tidy row (plus a per-worker table kept in the raw folder).

Latencies: exact per-request times from requests.csv (no Locust bucketing), over the measured
window only — a request belongs to the window when it *completes* inside it. Throughput counts
successful completions per second of the window.

A failed request (a timeout, an error status) has no latency to report: it counts as slower than
every success, so a percentile that failures reach into is left empty rather than set to the
client's timeout. Worker-side figures come from the probe files and are computed per worker; the
row reports the worst worker, because averaging an idle worker with a stalled one hides the stall.

Why one module over 300 lines: it reads every raw file of one cell (requests, probe lines per worker,
thread tokens, stall stacks, load workers) against the same window; each file has its own reader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.data.schema import LATENCY_STATS
from harness.judge import resources, stalls, wait_profile

NAN = float("nan")
HEALTH = "health"
NOT_WORK = {HEALTH, "health-discover"}  # the probe's requests; everything else is work
QUANTILES = {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99, "p999_ms": 99.9}
WORKERS_FILE = "workers.csv"


def min_samples(q: float) -> int:
    """Fewest samples for which percentile q rests on at least one sample in its tail."""
    return math.ceil(round(100 / (100 - q), 6))


def latency_stats(ok_ms: np.ndarray, failed: int = 0, prefix: str = "") -> dict:
    """Exact percentiles (linear interpolation between order statistics) and max.

    Failures sort above every success (their latency is unknown, and at least as bad), so a
    percentile whose rank reaches them is NaN, as is one whose tail holds no sample (p99 of 50).
    """
    out = {f"{prefix}{k}": NAN for k in LATENCY_STATS}
    n = len(ok_ms) + failed
    if len(ok_ms) == 0:
        return out
    ranked = np.concatenate([np.sort(ok_ms), np.full(failed, np.inf)])
    for col, q in QUANTILES.items():
        if n >= min_samples(q):
            with np.errstate(invalid="ignore"):
                value = float(np.percentile(ranked, q))
            out[f"{prefix}{col}"] = value if math.isfinite(value) else NAN
    out[f"{prefix}max_ms"] = float(ok_ms.max()) if failed == 0 else NAN
    return out


def p99_lower(ok_ms: np.ndarray, failed_ms: np.ndarray) -> float:
    """The bound a censored p99 is known to exceed (NaN when the p99 is not censored by failures).

    A failed request's true latency is at least the time it was recorded failing (a timeout: the
    client's timeout), and, since failures sort above every success, at least the largest success.
    The p99 with every failure at its recorded time is therefore a lower bound, and so is the largest
    success; the larger of the two is reported.
    """
    n = len(ok_ms) + len(failed_ms)
    if len(failed_ms) == 0 or n < min_samples(99):
        return NAN
    ranked = np.concatenate([np.sort(ok_ms), np.full(len(failed_ms), np.inf)])
    with np.errstate(invalid="ignore"):
        if math.isfinite(float(np.percentile(ranked, 99))):
            return NAN  # the failures do not reach the p99: it is a number, not a bound
    recorded = float(np.percentile(np.concatenate([ok_ms, failed_ms]), 99))
    return max(recorded, float(ok_ms.max()) if len(ok_ms) else 0.0)


DROPPED = "dropped"  # open loop: a send that could not start (the in-flight bound was reached)


def read_records(path: Path) -> pd.DataFrame:
    """requests.csv: start, ms (service time), name, ok, worker (/health) and, in open loop, the
    intended send time."""
    df = pd.read_csv(path, dtype={"start": float, "ms": float, "name": str, "ok": int, "intended": float})
    if "worker" not in df.columns:  # recorded before the probe named the worker it reached
        df["worker"] = np.nan
    if "intended" not in df.columns:  # closed loop (or recorded before the open loop existed)
        df["intended"] = np.nan
    df["end"] = df["start"] + df["ms"] / 1000
    return df


def _split(rows: pd.DataFrame) -> tuple[np.ndarray, int]:
    return rows.loc[rows["ok"] == 1, "ms"].to_numpy(), int((rows["ok"] == 0).sum())


def health_by_worker(health: pd.DataFrame) -> dict[int, dict]:
    """Each probed worker's /health figures, by pid (requests with no known worker are left out)."""
    out = {}
    for pid, rows in health.dropna(subset=["worker"]).groupby("worker"):
        ok_ms, failed = _split(rows)
        out[int(pid)] = {"health_requests": len(rows), **latency_stats(ok_ms, failed, prefix="health_")}
    return out


def worst(values: list[float]) -> float:
    """The worst of the workers' figures; unknown if any worker's is unknown (it may be the worst)."""
    if not values or any(math.isnan(v) for v in values):
        return NAN
    return max(values)


def window_stats(records: pd.DataFrame, t0: float, t1: float) -> dict:
    """Work and health figures for requests completing in [t0, t1)."""
    dropped = records[records["name"] == DROPPED]
    records = records[records["name"] != DROPPED]
    inside = records[(records["end"] >= t0) & (records["end"] < t1)]
    work = inside[~inside["name"].isin(NOT_WORK)]
    health = inside[inside["name"] == HEALTH]
    ok_ms, failed = _split(work)
    seconds = t1 - t0
    row: dict[str, Any] = {
        "requests": int(len(work)),
        "failures": failed,
        # Successful completions per second of the window (goodput: a fast 500 is not throughput).
        "rps": len(ok_ms) / seconds,
        "health_requests": int(len(health)),
    }
    row["fail_ratio"] = row["failures"] / row["requests"] if row["requests"] else NAN
    open_loop = "intended" in work.columns and bool(work["intended"].notna().any())
    if open_loop:
        intended = work.loc[work["ok"] == 1, "intended"].to_numpy()
        # Open loop: latency counts from the intended send time, so time spent waiting to be sent
        # (a stalled server, a busy generator) is in the percentiles: no coordinated omission.
        late = (work.loc[work["ok"] == 1, "start"].to_numpy() - intended) * 1000
        ok_from_intended = ok_ms + np.clip(np.nan_to_num(late), 0, None)
        row.update(latency_stats(ok_from_intended, failed))
        bad = work[work["ok"] == 0]
        bad_late = np.clip(np.nan_to_num((bad["start"] - bad["intended"]).to_numpy() * 1000), 0, None)
        row["p99_lower_ms"] = p99_lower(ok_from_intended, bad["ms"].to_numpy() + bad_late)
        service = latency_stats(ok_ms, failed)
        row.update(service_p50_ms=service["p50_ms"], service_p99_ms=service["p99_ms"])
        row["dropped"] = int(((dropped["start"] >= t0) & (dropped["start"] < t1)).sum())
    else:
        row.update(latency_stats(ok_ms, failed))
        row["p99_lower_ms"] = p99_lower(ok_ms, work.loc[work["ok"] == 0, "ms"].to_numpy())
        row.update(service_p50_ms=NAN, service_p99_ms=NAN, dropped=NAN)
    per_worker = health_by_worker(health)
    if per_worker:
        # The worst probed worker: a neighbour request unlucky enough to land there waits this long.
        for stat in LATENCY_STATS:
            row[f"health_{stat}"] = worst([w[f"health_{stat}"] for w in per_worker.values()])
        row["health_min_samples"] = min(w["health_requests"] for w in per_worker.values())
    else:  # records without worker ids: one probe, one pool of samples
        h_ok, h_failed = _split(health)
        row.update(latency_stats(h_ok, h_failed, prefix="health_"))
        row["health_min_samples"] = len(health)
    row["_health_by_worker"] = per_worker
    return row


def _blocked_ms(ends: np.ndarray, lags: np.ndarray, t0: float, t1: float) -> float:
    """Milliseconds of [t0, t1) during which the loop was past a heartbeat's due time.

    A heartbeat that woke at `end` with lag `lag` means the loop could not run it during
    [end - lag, end]: time-weighted, so a 2 s stall counts 2 s, not one sample.
    """
    starts = ends - lags / 1000
    overlap = np.clip(np.minimum(ends, t1) - np.maximum(starts, t0), 0, None)
    return float(overlap.sum() * 1000)


def _worker_probe(lines: list[dict], t0: float, t1: float) -> dict | None:
    """One worker's probe records → its figures over the window (None if it never reported)."""
    beats = [r for r in lines if "lag_ms" in r]
    inside = [r for r in beats if t0 <= r["t"] < t1]
    if not inside:
        return None
    ends: list[float] = []
    lags: list[float] = []
    timed = all("lag_t" in r for r in beats)
    for r in beats:  # every record: a stall straddling t0 or t1 is clipped to the window
        ends.extend(r["lag_t"] if timed else [r["t"]] * len(r["lag_ms"]))  # old files: the flush time
        lags.extend(r["lag_ms"])
    ends_a = np.asarray(ends, dtype=np.float64)
    lags_a = np.clip(np.asarray(lags, dtype=np.float64), 0, None)
    in_window = (ends_a >= t0) & (ends_a < t1)
    window_lags = lags_a[in_window]
    blocked = NAN
    if timed:  # without each heartbeat's own time the blocked intervals cannot be placed
        blocked = _blocked_ms(ends_a, lags_a, t0, t1)
        # A loop still blocked when the probe last wrote has not logged that lag as a heartbeat yet.
        last = beats[-1]
        blocked += _blocked_ms(np.array([last["t"]]), np.array([last["stalled_ms"]]), t0, t1)
    stalled_max = max(r["stalled_ms"] for r in inside)
    before = [r for r in beats if r["t"] < t0]
    start = before[-1] if before else {"work": 0, "health": 0}
    return {
        "pid": inside[-1]["pid"],
        "lag_samples": int(in_window.sum()),
        "loop_lag_p50_ms": float(np.percentile(window_lags, 50)) if len(window_lags) else NAN,
        "loop_lag_p99_ms": float(np.percentile(window_lags, 99)) if len(window_lags) else NAN,
        "loop_lag_max_ms": max(float(window_lags.max()) if len(window_lags) else 0.0, stalled_max),
        "loop_blocked_pct": 100 * blocked / ((t1 - t0) * 1000),
        "work_served": inside[-1]["work"] - start["work"],
        "health_served": inside[-1]["health"] - start["health"],
        "pool_busy": max((r["pool_busy"] for r in inside if r.get("pool_busy") is not None), default=NAN),
        "cpu_ms": [x for r in inside for x in r.get("cpu_ms", [])],
        "cpu_time_ms": [x for r in inside for x in r.get("cpu_time_ms", [])],
        # written only by workers with a database pool (targets/db.py)
        "db_wait_ms": [x for r in inside for x in r.get("db_wait_ms", [])],
        "db_busy": max((r["db_busy"] for r in inside if "db_busy" in r), default=NAN),
        **_tokens(inside),
        **_app_pool(inside),
        "stalls": [x for r in inside for x in r.get("_stalls", ())],
        "waits": [x for r in inside for x in r.get("_waits", ())],
    }


def _app_pool(inside: list[dict]) -> dict:
    """The app's own SQLAlchemy pools in one worker (targets/pool_events.py): their capacity, the share
    of the window every connection was out, and each request's wait for its first connection."""
    timed = [r for r in inside if "app_pool_span_ms" in r]
    span = sum(r["app_pool_span_ms"] for r in timed)
    sizes = [r["app_pool_size"] for r in timed if r.get("app_pool_size") is not None]
    return {"app_pool_size": max(sizes, default=NAN),
            "app_pool_full_pct": 100 * sum(r["app_pool_full_ms"] for r in timed) / span
            if span and sizes else NAN,
            "app_pool_wait_ms": [x for r in timed for x in r.get("app_pool_wait_ms", [])],
            "app_pool_hold_ms": [x for r in timed for x in r.get("app_pool_hold_ms", [])]}


def _resolve_stacks(lines: list[dict]) -> None:
    """Each record's stall samples by stack ("path\tkind\tstack" → n) under "_stalls".

    The probe writes a stack once per file ("stacks": id → stack) and its id after that; a file
    of an earlier probe keys "stalls" by the stack itself. A second start of the probe in one process
    defines its ids again, so they are read in the file's order."""
    stacks: dict[str, str] = {}
    for r in lines:
        stacks.update(r.get("stacks") or {})
        for field in ("stalls", "waits"):  # the wait sampler's samples share the stack table
            # an id whose stack was lost (a full disk) is dropped
            r["_" + field] = [(stacks[k] if k in stacks else k, n) for k, n in (r.get(field) or {}).items()
                              if k in stacks or "\t" in k]


def read_probe_file(path: Path) -> list[dict]:
    """A worker's probe records; a line that is not JSON (cut short by a full disk, or by a worker
    killed mid-write) is skipped, not fatal."""
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append(record)
    _resolve_stacks(lines)
    return lines


def _tokens(inside: list[dict]) -> dict:
    """anyio's default thread limiter in one worker: tokens busy at most, its size, and the share of
    heartbeats that found every token taken (a `def` route waiting for a thread)."""
    timed = [r for r in inside if "tokens_total" in r]
    beats = sum(r["tokens_beats"] for r in timed)
    return {"tokens_busy": max((r["tokens_busy"] for r in timed), default=NAN),
            "tokens_total": max((r["tokens_total"] for r in timed), default=NAN),
            "tokens_full_pct": 100 * sum(r["tokens_full"] for r in timed) / beats if beats else NAN}


def _known_max(values) -> float:
    known = [v for v in values if v == v]
    return max(known) if known else NAN


def probe_stats(metrics_dir: Path, t0: float, t1: float,
                app_dir: str | None = None) -> tuple[dict, list[dict]]:
    """The workers' probe files over the window → (row figures, one dict per worker); a stall site's
    file is named from `app_dir` (--app-dir) when under it."""
    workers = []
    for path in sorted(metrics_dir.glob("worker-*.jsonl")):
        figures = _worker_probe(read_probe_file(path), t0, t1)
        if figures is not None:
            workers.append(figures)
    total = sum(w["work_served"] for w in workers)
    cpu_ms = [x for w in workers for x in w.pop("cpu_ms")]
    cpu_time_ms = [x for w in workers for x in w.pop("cpu_time_ms")]
    db_waits = np.asarray([x for w in workers for x in w.pop("db_wait_ms")], dtype=float)
    app_waits = np.asarray([x for w in workers for x in w.pop("app_pool_wait_ms")], dtype=float)
    app_holds = np.asarray([x for w in workers for x in w.pop("app_pool_hold_ms")], dtype=float)
    samples = [x for w in workers for x in w.pop("stalls")]
    waits = wait_profile.reduce((x for w in workers for x in w.pop("waits")), app_dir)
    for w in workers:
        w["work_share"] = w["work_served"] / total if total else NAN
    row = {
        # The worst worker's figures: pooling samples would let an idle worker's thousand quick
        # heartbeats outvote a stalled worker's handful of slow ones.
        "loop_lag_p50_ms": max((w["loop_lag_p50_ms"] for w in workers), default=NAN),
        "loop_lag_p99_ms": max((w["loop_lag_p99_ms"] for w in workers), default=NAN),
        "loop_lag_max_ms": max((w["loop_lag_max_ms"] for w in workers), default=NAN),
        "loop_blocked_pct_max": worst([w["loop_blocked_pct"] for w in workers]),
        "workers_seen": len(workers),
        "worker_share_max": max(w["work_share"] for w in workers) if total else NAN,
        "pool_busy_max": max((w["pool_busy"] for w in workers), default=NAN),
        # How long the CPU stage took in the workers (wall: includes waiting for the GIL or a core;
        # not measured inside process pools) and how much CPU time it cost the computing thread.
        "cpu_stage_ms": float(np.median(cpu_ms)) if cpu_ms else NAN,
        "cpu_cost_ms": float(np.median(cpu_time_ms)) if cpu_time_ms else NAN,
        # Time /db requests waited for a pooled connection, and the most checked out in one worker.
        "db_pool_wait_p50_ms": float(np.percentile(db_waits, 50)) if len(db_waits) else NAN,
        "db_pool_wait_p99_ms": float(np.percentile(db_waits, 99)) if len(db_waits) else NAN,
        "db_pool_busy_max": max((w["db_busy"] for w in workers), default=NAN),
        "thread_tokens_busy_max": _known_max(w["tokens_busy"] for w in workers),
        "thread_tokens_total": _known_max(w["tokens_total"] for w in workers),
        "thread_tokens_full_pct": _known_max(w["tokens_full_pct"] for w in workers),
        "app_pool_size": _known_max(w["app_pool_size"] for w in workers),
        "app_pool_full_pct": _known_max(w["app_pool_full_pct"] for w in workers),
        "app_pool_wait_p99_ms": float(np.percentile(app_waits, 99)) if len(app_waits) else NAN,
        "app_pool_hold_p50_ms": float(np.percentile(app_holds, 50)) if len(app_holds) else NAN,
    }
    found = stalls.reduce(samples, t1 - t0, len(workers), app_dir)
    row.update(stall_site=found.site, stall_samples=found.samples, _stalls=found, **waits.row(), _waits=waits)
    return row, workers


def worker_table(workers: list[dict], health: dict[int, dict]) -> pd.DataFrame:
    """Per-worker figures, numbered 1..W by pid, with what the /health probe saw on each."""
    rows = []
    for i, w in enumerate(sorted(workers, key=lambda w: w["pid"]), 1):
        h = health.get(w["pid"], {})
        rows.append({"worker": i, **w, "probe_requests": h.get("health_requests", NAN),
                     "probe_p50_ms": h.get("health_p50_ms", NAN), "probe_p99_ms": h.get("health_p99_ms", NAN),
                     "probe_max_ms": h.get("health_max_ms", NAN)})
    return pd.DataFrame(rows)


def app_error(raw_dir: Path, app_dir: str | None = None) -> str:
    """What the app raised when any work request answered 5xx, even behind a more frequent 400
    (from the worker's log, its paths shown from --app-dir); '' when none did."""
    from harness.judge import app_errors, failures

    server_errors = any(k.startswith("5") and n > 0 for k, n in failures.counts(raw_dir)[0].items())
    return app_errors.top(raw_dir, app_dir) if server_errors else ""


def collect_cell(raw_dir: Path, t0: float, t1: float, app_dir: str | None = None) -> dict:
    """Every measure a cell's raw folder yields for the window [t0, t1); the per-worker table is in
    row["_workers"] (the cell writes it to raw/<cell>/workers.csv)."""
    row = window_stats(read_records(raw_dir / "requests.csv"), t0, t1)
    info = raw_dir / "requests.csv.info"  # load workers: records that never reached the master
    if info.exists():
        row.update(load_worker_stats(json.loads(info.read_text()), t0, t1))
    health = row.pop("_health_by_worker")
    probe_row, workers = probe_stats(raw_dir / "metrics", t0, t1, app_dir)
    from harness.judge import failures  # failures reads NOT_WORK from here

    row["fail_top"] = failures.fail_top(raw_dir)
    row["app_error"] = app_error(raw_dir, app_dir)
    found = probe_row.pop("_stalls")
    waits = probe_row.pop("_waits")
    row.update(probe_row)
    row["_workers"] = worker_table(workers, health)
    write_stalls(raw_dir, found)
    wait_profile.write(raw_dir, waits)
    return row


def write_stalls(raw_dir: Path, found: stalls.Stalls) -> None:
    """The stall samples in the raw folder: folded stacks (a flame graph of stalls only) and sites."""
    if not found.samples:
        return
    with open(raw_dir / stalls.FOLDED_FILE, "w") as fh:
        fh.writelines(f"{';'.join(frames)} {n}\n" for frames, n in found.folded)
    pd.DataFrame(found.sites, columns=["path", "site", "samples"]).to_csv(raw_dir / stalls.SITES_FILE,
                                                                          index=False)


def load_worker_stats(info: dict, t0: float, t1: float) -> dict:
    """From requests.csv.info (written by the Locust master): records lost on the way, and the
    busiest load worker's CPU over the window by its own samples, which is the only CPU figure of
    a load worker on another machine (the remote ones' clocks moved onto the master's)."""
    workers = info.get("workers") or {}
    pcts = [resources.window_cpu_pct(w.get("cpu") or [], t0, t1,
                                     shift=w.get("clock_offset_s", 0.0) if w.get("remote") else 0.0)
            for w in workers.values()]
    pcts = [p for p in pcts if p == p]
    return {"records_lost": info.get("records_lost", 0), "load_workers": info.get("load_workers", 0),
            "remote_load_workers": info.get("remote_load_workers", 0),
            "load_worker_cpu_max_pct": max(pcts, default=float("nan"))}
