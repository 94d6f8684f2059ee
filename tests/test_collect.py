"""collect: a recorded cell's raw output → the tidy row; percentiles checked independently."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.answer import aggregate
from harness.data import store
from harness.data.matrix import build_cells, make_config
from harness.data.schema import COLUMNS
from harness.judge import collect
from harness.run.cell import base_row, failed_row, finish_row

GOLDEN = Path(__file__).parent / "data" / "golden_cell"
# The recorded cell: correct-async, /io, 2 workers, 32 users, warm-up 2 s, window 5 s.
WARMUP, DURATION = 2.0, 5.0


def golden_window() -> tuple[float, float]:
    start = json.loads((GOLDEN / "requests.csv.start").read_text())["t"]
    return start + WARMUP, start + WARMUP + DURATION


def raw_rows(t0: float, t1: float) -> list[dict]:
    """Independent reading of requests.csv with the csv module (no pandas, no numpy)."""
    with open(GOLDEN / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if t0 <= float(r["start"]) + float(r["ms"]) / 1000 < t1]


def test_golden_cell_matches_independent_computation():
    t0, t1 = golden_window()
    row = collect.collect_cell(GOLDEN, t0, t1)
    inside = raw_rows(t0, t1)
    work = [r for r in inside if r["name"] != "health"]
    health = [r for r in inside if r["name"] == "health"]
    assert row["requests"] == len(work) == 319
    assert row["failures"] == sum(r["ok"] == "0" for r in work) == 0
    assert row["rps"] == pytest.approx(sum(r["ok"] == "1" for r in work) / DURATION)
    ms = sorted(float(r["ms"]) for r in work)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    assert row["p50_ms"] == pytest.approx(statistics.median(ms))
    assert row["p90_ms"] == pytest.approx(cuts[89])
    assert row["p95_ms"] == pytest.approx(cuts[94])
    assert row["p99_ms"] == pytest.approx(cuts[98])
    assert row["max_ms"] == pytest.approx(ms[-1])
    assert math.isnan(row["p999_ms"])  # 319 requests cannot support a p99.9
    assert row["health_requests"] == len(health)
    assert row["health_max_ms"] == pytest.approx(max(float(r["ms"]) for r in health))


def test_golden_cell_probe_figures():
    t0, t1 = golden_window()
    row = collect.collect_cell(GOLDEN, t0, t1)
    assert row["workers_seen"] == 2
    served, p99s, p50s, maxes = {}, [], [], []
    for path in (GOLDEN / "metrics").glob("worker-*.jsonl"):
        recs = [json.loads(x) for x in path.read_text().splitlines()]
        ticks = [r for r in recs if "lag_ms" in r]
        before = [r for r in ticks if r["t"] < t0]
        inside = [r for r in ticks if t0 <= r["t"] < t1]
        served[path.name] = inside[-1]["work"] - (before[-1]["work"] if before else 0)
        lags = [x for r in inside for x in r["lag_ms"]]  # this old recording has no lag_t: flush time
        p99s.append(statistics.quantiles(lags, n=100, method="inclusive")[98])
        p50s.append(statistics.median(lags))
        maxes.append(max(lags))
    assert row["worker_share_max"] == pytest.approx(max(served.values()) / sum(served.values()))
    assert 0.5 <= row["worker_share_max"] <= 1.0
    # Per worker, then the worst worker: never one pool of every worker's samples.
    assert row["loop_lag_p99_ms"] == pytest.approx(max(p99s))
    assert row["loop_lag_p50_ms"] == pytest.approx(max(p50s))
    assert row["loop_lag_max_ms"] >= max(maxes)
    assert math.isnan(row["pool_busy_max"])  # correct-async has no pool


def test_locust_own_count_covers_at_least_the_window():
    # Locust's JSON counts warm-up too: never fewer requests than our window.
    t0, t1 = golden_window()
    stats = json.loads((GOLDEN / "locust.json").read_text())
    locust_work = sum(s["num_requests"] for s in stats if s["name"] == "work")
    assert locust_work >= collect.collect_cell(GOLDEN, t0, t1)["requests"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_latency_stats_equal_exact_order_statistics(seed):
    ms = np.random.default_rng(seed).lognormal(3, 1, size=2345)
    out = collect.latency_stats(ms)
    cuts = statistics.quantiles(ms.tolist(), n=1000, method="inclusive")
    assert out["p50_ms"] == pytest.approx(cuts[499])
    assert out["p99_ms"] == pytest.approx(cuts[989])
    assert out["p999_ms"] == pytest.approx(cuts[998])
    assert out["max_ms"] == ms.max()


def test_latency_stats_refuse_unsupported_percentiles():
    out = collect.latency_stats(np.arange(50, dtype=float))
    assert not math.isnan(out["p95_ms"]) and math.isnan(out["p99_ms"]) and math.isnan(out["p999_ms"])
    assert all(math.isnan(v) for v in collect.latency_stats(np.array([])).values())


def test_min_samples():
    assert collect.min_samples(99) == 100
    assert collect.min_samples(99.9) == 1000
    assert collect.min_samples(50) == 2


def _golden_cell():
    cfg = make_config("default", targets=["correct-async"], scenarios=["io"], workers=[2], users=[32])
    return build_cells(cfg, cores=2)[0]


def test_tidy_row_has_every_schema_column_and_round_trips(tmp_path):
    cell = _golden_cell()
    t0, t1 = golden_window()
    raw = tmp_path / "raw" / cell.cell_id
    raw.mkdir(parents=True)
    row = base_row(cell, raw, tmp_path)
    row.update(collect.collect_cell(GOLDEN, t0, t1))
    # what run_cell measures from outside with psutil (harness.judge.resources)
    row.update(target_cpu_pct=150.0, locust_cpu_pct=20.0, locust_cpu_max_pct=20.0, upstream_cpu_pct=5.0,
               worker_cpu_max_pct=80.0,
               worker_cpu_min_pct=60.0, pool_cpu_pct=0.0, worker_thread_cpu_pct=0.5, worker_busy_threads=0,
               machine_cpu_pct=176.0, target_rss_mb=120.0, ctx_switches_per_req=3.0)
    row = finish_row(row, cell, upstream_capacity_rps=19000.0)
    assert set(COLUMNS) <= set(row)
    assert row["bound_by"] == "unexplained" and not row["profiled"]
    assert row["status"] == "ok"
    # Recorded with the old single-connection probe: it reached only one of the two busy workers.
    assert row["valid"] is False
    assert row["invalid_reason"] == "/health reached only worker 2, not busy worker 1"
    assert row["efficiency"] == pytest.approx(row["rps"] / cell.ceiling_rps)
    results = tmp_path / "results.csv"
    store.append_row(results, row)
    store.append_row(results, failed_row(base_row(cell, raw, tmp_path), "LaunchError: boom"))
    df = aggregate.load_results(results)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert list(df["status"]) == ["ok", "failed"]
    assert df.loc[1, "error"] == "LaunchError: boom" and not df.loc[1, "valid"]
    assert store.done_keys(results) == {cell.key}  # the failed row has the same identity
    assert cell.key[:4] == ("correct-async", "io", 2, 32) and cell.key[-1] == 1


def test_validity_reasons():
    cell = _golden_cell()
    t0, t1 = golden_window()
    row = {**cell.params(), **collect.collect_cell(GOLDEN, t0, t1), "locust_cpu_pct": 95.0}
    row = finish_row(row, cell, upstream_capacity_rps=300.0)
    assert not row["valid"]
    assert "load generator saturated" in row["invalid_reason"]
    assert "upstream demand" in row["invalid_reason"]  # 63.8 rps × 3 calls > 150
    few = finish_row({**cell.params(), "rps": 10.0, "requests": 50, "workers_seen": 1,
                      "locust_cpu_pct": 10.0}, cell, None)
    assert "only 50 requests" in few["invalid_reason"] and "1 of 2 workers" in few["invalid_reason"]


def test_a_censored_p99_is_recorded_as_the_bound_it_exceeds():
    """Failures reaching the p99 leave it empty; p99_lower_ms is what it is known to exceed: the
    failures' recorded times (a timeout's is the client timeout) or the largest success."""
    ok = np.linspace(100.0, 900.0, 94)
    timeouts = np.full(6, 10_000.0)  # 6% timed out at a 10 s client timeout
    assert math.isnan(collect.latency_stats(ok, failed=6)["p99_ms"])
    assert collect.p99_lower(ok, timeouts) == pytest.approx(10_000.0)
    # A fast failure (a 500 after 2 ms) still sorts above every success: the bound is the largest one.
    assert collect.p99_lower(ok, np.full(6, 2.0)) == pytest.approx(900.0)
    # Not censored: no failure, or too few to reach the p99 (it is a number then, not a bound).
    assert math.isnan(collect.p99_lower(ok, np.array([])))
    many = np.linspace(1.0, 500.0, 1000)
    assert math.isfinite(collect.latency_stats(many, failed=2)["p99_ms"])
    assert math.isnan(collect.p99_lower(many, np.full(2, 10_000.0)))


def test_open_loop_window_bounds_a_censored_p99_from_the_intended_send_time():
    """Open loop at overload: the queue is in the bound too (failures late to be sent count their wait)."""
    n_ok, n_bad = 90, 10
    start = np.arange(n_ok + n_bad) * 0.05
    records = pd.DataFrame({
        "start": start + 2.0,  # every request was sent 2 s after its intended time
        "ms": [200.0] * n_ok + [10_000.0] * n_bad, "name": "io", "ok": [1] * n_ok + [0] * n_bad,
        "worker": np.nan, "intended": start})
    records["end"] = records["start"] + records["ms"] / 1000
    row = collect.window_stats(records, 0.0, 1000.0)
    assert math.isnan(row["p99_ms"]) and row["fail_ratio"] == pytest.approx(0.1)
    assert row["p99_lower_ms"] == pytest.approx(12_000.0)  # 10 s timeout + 2 s in the queue
