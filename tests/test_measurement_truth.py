"""The figures a multi-worker or failing cell reports, built from constructed raw files: each test
here fails on the measuring core as it was before per-worker figures, censored latencies, honest
resume and measured CPU ceilings."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.calibrate import judge
from harness.data import store
from harness.data.matrix import build_cells, make_config
from harness.judge import collect, validity
from harness.run import sweep
from harness.run.cell import finish_row
from targets.probe import HEARTBEAT_S, WorkerProbe

T0, T1 = 1_000.0, 1_010.0  # a 10 s window


def write_worker(metrics: Path, pid: int, beats: list[tuple[float, float]], work: tuple[int, int],
                 health: tuple[int, int] = (0, 0), stalled_ms: float = 0.0) -> None:
    """A probe file: one record before the window (the counters' start) and records every 0.25 s
    inside it, each holding the heartbeats (wake time, lag) that fell in its interval."""
    metrics.mkdir(parents=True, exist_ok=True)
    lines = [{"pid": pid, "t": T0 - 0.1, "lag_ms": [], "lag_t": [], "stalled_ms": 0.0,
              "work": work[0], "health": health[0], "pool_busy": None}]
    flushes = np.arange(T0 + 0.25, T1 + 0.3, 0.25)  # the worker writes on past the window's end
    for i, t in enumerate(flushes):
        mine = [(w, lag) for w, lag in beats if t - 0.25 <= w < t]
        done = t >= T1 - 0.25  # the counters reach their end value by the window's last record
        stall = stalled_ms if i == len(flushes) - 1 else 0.0
        lines.append({"pid": pid, "t": float(t), "lag_ms": [lag for _, lag in mine],
                      "lag_t": [w for w, _ in mine], "stalled_ms": stall,
                      "work": work[1] if done else work[0], "health": health[1] if done else health[0],
                      "pool_busy": None})
    (metrics / f"worker-{pid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def idle_beats(n: int) -> list[tuple[float, float]]:
    return [(T0 + (i + 0.5) * (T1 - T0) / n, 0.5) for i in range(n)]


def stalled_beats() -> list[tuple[float, float]]:
    """A loop blocked for ~2.46 s at a time: four heartbeats in 10 s."""
    return [(T0 + 2.5 * (i + 1) - 0.01, 2460.0) for i in range(4)]


# ------------------------------------------------------------------------ 1. loop lag per worker

def test_idle_worker_does_not_hide_a_stalled_one(tmp_path):
    write_worker(tmp_path, 101, idle_beats(934), work=(0, 0))
    write_worker(tmp_path, 102, stalled_beats(), work=(0, 74))
    row, workers = collect.probe_stats(tmp_path, T0, T1)
    pooled = np.percentile([0.5] * 934 + [2460.0] * 4, 99)
    assert pooled < 5  # what one pool of samples said: the stall vanishes
    assert row["loop_lag_p99_ms"] == pytest.approx(2460.0)
    assert row["loop_lag_p50_ms"] == pytest.approx(2460.0)
    # Time-weighted: 4 × 2.46 s of the 10 s window, not 4 samples of 938.
    assert row["loop_blocked_pct_max"] == pytest.approx(98.4, abs=0.5)
    by_pid = {w["pid"]: w for w in workers}
    assert by_pid[101]["loop_blocked_pct"] == pytest.approx(934 * 0.5 / 10_000 * 100, rel=0.01)
    assert by_pid[102]["work_served"] == 74 and by_pid[101]["work_served"] == 0
    assert row["worker_share_max"] == 1.0


def test_a_stall_still_open_at_the_window_end_counts(tmp_path):
    # The loop blocks from T1 - 1.5 s and never wakes before the last flush: no heartbeat logs it.
    write_worker(tmp_path, 7, [(w, lag) for w, lag in idle_beats(400) if w < T1 - 1.5], work=(0, 10),
                 stalled_ms=1_750.0)
    row, _ = collect.probe_stats(tmp_path, T0, T1)
    assert row["loop_blocked_pct_max"] == pytest.approx(15.0 + 340 * 0.5 / 100, abs=0.3)


def test_stalled_ms_excludes_the_heartbeats_own_sleep(tmp_path):
    """An idle loop one millisecond into its 10 ms heartbeat sleep is not stalled at all (it used to
    report up to HEARTBEAT_S of stall, the +10 ms bias of loop_lag_max_ms)."""
    probe = WorkerProbe(str(tmp_path))
    probe.path.parent.mkdir(parents=True, exist_ok=True)
    probe._due = time.perf_counter() + HEARTBEAT_S - 0.001
    probe._flush()
    probe._due = time.perf_counter() - 0.5  # a loop half a second past its heartbeat
    probe._flush()
    first, second = (json.loads(x) for x in probe.path.read_text().splitlines())
    assert first["stalled_ms"] == 0.0
    assert 500 <= second["stalled_ms"] < 600


# ----------------------------------------------------------------------- 2. the probe and workers

def worker_frame(shares: list[float], health: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"worker": range(1, len(shares) + 1), "work_share": shares, "health_served": health})


def test_uneven_connections_and_a_probe_on_the_idle_worker_are_flagged():
    reasons = validity.worker_reasons(worker_frame([0.0, 1.0], [170, 0]), 2)
    assert reasons == ["connections uneven: worker 2 served 100% of requests (even is 50%); "
                       "/health reached only worker 1, not busy worker 2"]


def test_even_spread_with_a_probe_on_every_worker_is_not_flagged():
    assert validity.worker_reasons(worker_frame([0.52, 0.48], [120, 118]), 2) == []
    assert validity.worker_reasons(worker_frame([1.0], [50]), 1) == []  # one worker cannot be uneven


def test_uneven_connections_under_uvicorns_shared_socket_name_the_remedy():
    reasons = validity.worker_reasons(worker_frame([0.0, 1.0], [1, 1]), 2, launch="uvicorn")
    assert reasons == ["connections uneven: worker 2 served 100% of requests (even is 50%); uvicorn's shared "
                       "socket, try --launch reuseport"]


def test_uneven_threshold_scales_with_workers():
    assert validity.worker_reasons(worker_frame([0.36, 0.22, 0.21, 0.21], [1, 1, 1, 1]), 4) == []
    flagged = validity.worker_reasons(worker_frame([0.40, 0.20, 0.20, 0.20], [1, 1, 1, 1]), 4)
    assert flagged and flagged[0].startswith("connections uneven: worker 1 served 40%")


def records(rows: list[tuple[float, float, str, int, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["start", "ms", "name", "ok", "worker"])
    df["end"] = df["start"] + df["ms"] / 1000
    return df


def test_health_figures_are_the_worst_probed_worker():
    fast = [(T0 + i * 0.05, 1.0 + (i % 7) * 0.1, "health", 1, 101) for i in range(150)]
    slow = [(T0 + i * 2.0, 1_900.0 + i, "health", 1, 102) for i in range(4)]
    row = collect.window_stats(records(fast + slow), T0, T1)
    assert row["health_requests"] == 154
    assert row["health_min_samples"] == 4
    assert math.isnan(row["health_p99_ms"])  # the stalled worker's 4 samples cannot give a p99
    assert row["health_max_ms"] == pytest.approx(1_903.0)
    assert row["health_p50_ms"] == pytest.approx(1_901.5)  # its median, not the pooled one (~1.3 ms)
    enough = [(T0 + i * 0.05, 40.0 + i % 5, "health", 1, 102) for i in range(150)]
    both = collect.window_stats(records(fast + enough), T0, T1)
    assert both["health_p99_ms"] == pytest.approx(np.percentile([40.0 + i % 5 for i in range(150)], 99))


# --------------------------------------------------------------------------- 3. censored latencies

def test_failures_leave_the_percentiles_they_reach_empty():
    ok = [(T0 + i * 0.01, 1000.0 + i, "work", 1, None) for i in range(380)]
    timeouts = [(T0 + i * 0.01, 10_010.0, "work", 0, None) for i in range(620)]
    row = collect.window_stats(records(ok + timeouts), T0 - 20, T1 + 20)
    assert row["fail_ratio"] == pytest.approx(0.62)
    for col in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"):
        assert math.isnan(row[col]), f"{col} = {row[col]}: a timeout posing as a latency"
    few = collect.latency_stats(np.arange(1.0, 996.0), failed=5)  # 0.5% failed: p99 is still known
    assert few["p99_ms"] == pytest.approx(990.01)  # rank 0.99 × 999 = 989.01: between 990 and 991
    assert math.isnan(few["p999_ms"]) and math.isnan(few["max_ms"])


def test_fail_ratio_above_one_percent_makes_the_cell_invalid():
    cell = build_cells(make_config("default", targets=["fake-async"], scenarios=["io"], workers=[1],
                                   users=[60], io_ms=100), cores=2)[0]
    row = finish_row({**cell.params(), "rps": 9.1, "requests": 240, "failures": 149, "fail_ratio": 0.62,
                      "workers_seen": 1, "locust_cpu_pct": 5.0}, cell, None)
    assert not row["valid"]
    assert row["invalid_reason"].startswith("62% of requests failed (> 1%)")


# ------------------------------------------------------------------------------ 4. honest resume

def test_resume_refuses_another_machine_and_records_a_changed_commit(tmp_path, capsys):
    meta = sweep.new_meta(tmp_path, "default", {})
    sweep.check_same_machine(meta)  # the same machine resumes
    other = json.loads(json.dumps(meta))
    other["sessions"][0]["cores_available"] = 64
    with pytest.raises(store.RunFolderError, match="cores"):
        sweep.check_same_machine(other)
    other = json.loads(json.dumps(meta))
    other["sessions"][0]["cpu_model"] = "Imaginary CPU 9000"
    with pytest.raises(store.RunFolderError, match="CPU model"):
        sweep.check_same_machine(other)
    meta["sessions"][0]["git_commit"] = "0" * 40
    now = sweep.resume_session(meta)
    assert now["session"] == 2 and len(meta["sessions"]) == 2
    assert "commit changed since session 1" in capsys.readouterr().out


def test_resume_refuses_a_results_file_with_other_columns(tmp_path):
    old_format = "target,scenario,workers,users,repeat,status\nfake-async,io,1,4,1,ok\n"
    (tmp_path / "results.csv").write_text(old_format)
    with pytest.raises(store.RunFolderError, match="another version"):
        store.check_columns(tmp_path / "results.csv")
    store.append_row(tmp_path / "fresh.csv", {"target": "fake-async"})
    store.check_columns(tmp_path / "fresh.csv")  # our own header passes


def test_sessions_each_keep_their_calibration(tmp_path, monkeypatch):
    speeds = iter([[100.0] * 100, [70.0] * 100])
    monkeypatch.setattr(sweep.cpu_work, "speed_samples", lambda *a, **k: next(speeds))
    meta = sweep.new_meta(tmp_path, "default", {})
    sweep.calibrate_cpu(meta, "python")
    sweep.resume_session(meta)
    sweep.calibrate_cpu(meta, "python")
    assert meta["cpu_units_per_ms"] == 100.0  # every cell of the run does the same work
    assert [s["cpu_units_per_ms"] for s in meta["sessions"]] == [100.0, 70.0]


# ------------------------------------------------------------------------------- 5. CPU ceilings

def cpu_cell():
    return build_cells(make_config("default", targets=["fake-async"], scenarios=["cpu"], workers=[1],
                                   users=[4], cpu_ms=50), cores=2)[0]


def test_rows_carry_the_nominal_and_the_measured_cpu_ceiling():
    cell = cpu_cell()
    row = finish_row({**cell.params(), "rps": 16.0, "requests": 200, "workers_seen": 1, "fail_ratio": 0.0,
                      "cpu_cost_ms": 62.5, "locust_cpu_pct": 5.0}, cell, None, cores=2)
    assert cell.ceiling_rps == pytest.approx(20.0)  # 1 / 50 ms
    assert row["ceiling_cpu_rps"] == pytest.approx(16.0)  # 1 / 62.5 ms
    assert row["efficiency"] == pytest.approx(0.8)
    assert row["efficiency_cpu"] == pytest.approx(1.0)


@pytest.mark.parametrize("cost,rps,target_cpu,passed,why", [
    (51.0, 18.9, 99.0, True, "CPU at 98%"),
    (80.0, 12.0, 99.0, False, "too noisy"),          # the CPU itself ran at 62% of its calibration
    (51.0, 13.1, 67.0, False, "got 67% of a core"),  # busy loops beside it took the core away
])
def test_calibrate_cpu_cell_checks_the_cpu_instead_of_dividing_it_out(cost, rps, target_cpu, passed, why):
    cell = cpu_cell()
    row = finish_row({**cell.params(), "rps": rps, "requests": 200, "workers_seen": 1, "fail_ratio": 0.0,
                      "cpu_cost_ms": cost, "locust_cpu_pct": 5.0, "target_cpu_pct": target_cpu}, cell, None,
                     cores=2)
    ok, _, _, note = judge("one worker computing", cell, row)
    assert ok is passed
    assert why in note


def test_chart_footnote_counts_the_samples_of_a_health_max():
    from harness.answer import aggregate
    from harness.data.schema import COLUMNS
    from harness.present import plot

    base = {c: "" for c in COLUMNS}
    base.update(target="fake-async", scenario="io", users=8, loop="uvloop", io_ms=50, cpu_ms=20, fanout=3,
                cpu_kind="python", http_client="httpx", http_connections=100, launch="uvicorn", probe=True,
                status="ok", valid=True, repeat=1, ceiling_rps=13.3, rps=13.0, health_max_ms=2100.0,
                health_min_samples=7)
    healthy = {**base, "target": "correct-async", "workers": 2, "health_p99_ms": 9.0,
               "health_min_samples": 120}
    summary = aggregate.summarize(aggregate.coerce(pd.DataFrame([{**base, "workers": 2}, healthy])))
    notes = plot._footnotes(summary, "workers", [])
    assert notes == ["▲ /health max shown where a worker's probe got < 100 samples (a p99 needs 100): "
                     "fake-async @ 2 workers n=7"]
