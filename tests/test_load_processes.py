"""--load-processes N: Locust as a master and N forked workers; every worker's exact records reach
the master's requests.csv, the CPU guard looks at each load process, and nothing is left running."""

from __future__ import annotations

import json

from harness.answer import aggregate
from harness.data.matrix import make_config
from harness.run.sweep import run_sweep
from tests.conftest import leftover_children


def test_two_load_processes_merge_records_open_loop(tmp_path):
    cfg = make_config("default", targets=["correct-async"], scenarios=["health"], workers=[1],
                      rate=[200.0], load_processes=[2], duration=2.0, warmup=1.0, adapt_window=False)
    already = {p.pid for p in leftover_children()}
    assert run_sweep(cfg, tmp_path / "run", preset="default", measure_upstream=False) == 0
    assert leftover_children(exclude=already) == []  # master and both workers are gone
    row = aggregate.load_results(tmp_path / "run").iloc[0]
    assert row["status"] == "ok", row["error"]
    raw = tmp_path / "run" / row["raw_dir"]
    info = json.loads((raw / "requests.csv.info").read_text())
    assert {k: info[k] for k in ("load_workers", "records_lost", "workers_without_final_report",
                                 "remote_load_workers")} == {"load_workers": 2, "records_lost": 0,
                                                             "workers_without_final_report": 0,
                                                             "remote_load_workers": 0}
    # each worker's own CPU samples reached the master (the guard's source for remote workers)
    assert all(len(w["cpu"]) >= 4 and not w["remote"] for w in info["workers"].values())
    # 200 sends/s over a 2 s window, shared by the two workers' schedulers
    assert 0.7 * 400 <= row["requests"] <= 1.3 * 400 and row["dropped"] == 0
    assert row["locust_cpu_max_pct"] <= row["locust_cpu_pct"]  # the busiest of three processes
    assert row["service_p99_ms"] <= row["p99_ms"]
