"""Open loop (--rate): latency from the intended send time, service time kept, dropped sends counted.

The proof: a worker frozen with SIGSTOP for 1 s in the middle of the window. Open loop keeps
scheduling sends through the stall, so its p99 shows the second; closed-loop users simply stop
sending while they wait, and the stall all but vanishes from their percentiles.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.data.matrix import ConfigError, build_cells, make_config
from harness.judge import collect
from harness.run.cell import Upstream, run_cell
from tests.conftest import leftover_children


def _records(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["start", "ms", "name", "ok", "intended"])
    df["end"] = df["start"] + df["ms"] / 1000
    df["worker"] = np.nan
    return df


def test_latency_counts_from_the_intended_time_and_drops_are_counted():
    # 200 sends intended every 10 ms; each served in 5 ms, but the last 20 started 500 ms late.
    rows = [(100 + i / 100 + (0.5 if i >= 180 else 0), 5.0, "work", 1, 100 + i / 100) for i in range(200)]
    rows += [(101.0, 0.0, "dropped", 0, 101.0), (99.0, 0.0, "dropped", 0, 99.0)]  # one in, one before
    row = collect.window_stats(_records(rows), 100.0, 103.0)
    assert row["requests"] == 200 and row["dropped"] == 1
    assert row["service_p99_ms"] == pytest.approx(5.0)
    assert row["p99_ms"] == pytest.approx(505.0) and row["p50_ms"] == pytest.approx(5.0)


def test_closed_loop_rows_keep_service_columns_empty():
    rows = [(100 + i / 100, 5.0, "work", 1, np.nan) for i in range(150)]
    row = collect.window_stats(_records(rows), 100.0, 103.0)
    assert row["p99_ms"] == pytest.approx(5.0)
    assert np.isnan(row["service_p99_ms"]) and np.isnan(row["dropped"])


def test_rate_is_swept_and_replaces_users():
    cfg = make_config("default", targets=["correct-async"], scenarios=["io"], workers=[1], users=[8, 16],
                      rate=[50, 100], arrivals="poisson")
    cells = build_cells(cfg, cores=2)
    assert [(c.rate, c.users) for c in cells] == [(50, 0), (100, 0)]
    assert cells[0].cell_id == "correct-async_io_w1_u0_rate50.0_r1" and cells[0].key != cells[1].key
    assert cells[0].params()["arrivals"] == "poisson" and cells[0].duration_s >= 100 / 50
    with pytest.raises(ConfigError, match="--rate -1.0 is out of range"):
        make_config("default", rate=[-1.0])
    with pytest.raises(ConfigError, match="unknown arrivals"):
        make_config("default", rate=[10], arrivals="bursty")


def _freeze_mid_window(raw_dir: Path, warmup: float, at: float, stall: float, log: list) -> None:
    """SIGSTOP the cell's worker `at` s into the window for `stall` s (then SIGCONT)."""
    marker, metrics = raw_dir / "requests.csv.start", raw_dir / "metrics"
    deadline = time.time() + 60
    while time.time() < deadline and not (marker.exists() and marker.stat().st_size):
        time.sleep(0.02)
    t_freeze = json.loads(marker.read_text())["t"] + warmup + at
    pid = next(json.loads(f.read_text().splitlines()[0])["pid"] for f in metrics.glob("worker-*.jsonl"))
    time.sleep(max(0.0, t_freeze - time.time()))
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(stall)
    finally:
        os.kill(pid, signal.SIGCONT)
    log.append(pid)


def _stalled_cell(tmp_path: Path, upstream, **load) -> dict:
    cfg = make_config("default", targets=["correct-async"], scenarios=["health"], workers=[1],
                      duration=4.0, warmup=1.0, adapt_window=False, **load)
    cell = build_cells(cfg, cores=2)[0]
    run_dir = tmp_path / ("open" if cell.rate else "closed")
    frozen: list[int] = []
    freezer = threading.Thread(target=_freeze_mid_window,
                               args=(run_dir / "raw" / cell.cell_id, cell.warmup_s, 1.5, 1.0, frozen))
    freezer.start()
    row = run_cell(cell, run_dir, Upstream(upstream.url, upstream.proc.pid, None))
    freezer.join()
    assert frozen and row["status"] == "ok", row.get("error")
    return row


def test_sigstop_stall_shows_in_open_loop_and_hides_in_closed_loop(tmp_path, upstream):
    already = {p.pid for p in leftover_children()}
    opened = _stalled_cell(tmp_path, upstream, rate=[100.0])
    closed = _stalled_cell(tmp_path, upstream, users=[8])
    assert leftover_children(exclude=already) == []
    print(f"\nSIGSTOP 1 s mid-window: open loop (100 rps) p99 {opened['p99_ms']:.0f} ms, service p99 "
          f"{opened['service_p99_ms']:.0f} ms, dropped {opened['dropped']}; closed loop (8 users) p99 "
          f"{closed['p99_ms']:.0f} ms, max {closed['max_ms']:.0f} ms")
    assert opened["p99_ms"] >= 900  # the stalled second is in the percentiles
    assert opened["requests"] >= 300 and opened["dropped"] == 0
    assert closed["p99_ms"] < opened["p99_ms"]  # closed loop hid it
    assert closed["max_ms"] >= 900  # ...though its users did wait through it
