"""One real cell end to end: upstream → uvicorn (2 workers + process pools) → Locust → tidy row →
chart, and nothing left running."""

from __future__ import annotations

import json
import time

import pandas as pd

from harness.answer import aggregate, claims, evidence
from harness.data.matrix import make_config
from harness.data.schema import COLUMNS, SCHEMA_VERSION
from harness.present import report
from harness.run.sweep import run_sweep
from tests.conftest import leftover_children
from tests.test_report import parse


def test_one_real_cell_through_uvicorn_and_locust(tmp_path, capsys):
    cfg = make_config("smoke", targets=["process-pool"], scenarios=["mixed"], workers=[2], users=[4],
                      duration=2.0, warmup=1.0)
    run_dir = tmp_path / "run"
    already = {p.pid for p in leftover_children()}  # e.g. the session's upstream fixture
    assert run_sweep(cfg, run_dir, preset="smoke", measure_upstream=False) == 0
    assert leftover_children(exclude=already) == []

    df = aggregate.load_results(run_dir)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert len(df) == 1
    row = df.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert (row["target"], row["scenario"], row["workers"], row["users"]) == ("process-pool", "mixed", 2, 4)
    assert row["requests"] > 0 and row["rps"] > 0
    assert row["p50_ms"] >= row["io_ms"]  # every /mixed request waits for the upstream at least
    assert row["health_requests"] > 0
    assert row["workers_seen"] == 2  # both workers' probes reported
    workers = pd.read_csv(run_dir / row["raw_dir"] / "workers.csv")
    assert sorted(workers["worker"]) == [1, 2]
    assert (workers["health_served"] > 0).all(), "the /health probe must reach every worker"
    assert (workers["probe_requests"] > 0).all()  # and its requests are told apart by worker pid
    assert row["health_min_samples"] == workers["probe_requests"].min()
    assert 0.5 <= row["worker_share_max"] <= 1.0
    assert row["pool_busy_max"] >= 1
    assert row["target_cpu_pct"] > 0 and row["locust_cpu_pct"] > 0
    # the cost of the configuration: 2 workers + 2 × POOL_SIZE pool children, each tens of MB
    assert row["target_rss_mb"] > 30 * 2 and row["ctx_switches_per_req"] > 0
    assert row["ceiling_rps"] > 0 and row["efficiency"] > 0

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["knobs"]["workers"] == [2] and meta["cpu_units_per_ms"] > 0
    assert {"python", "fastapi", "uvicorn", "locust"} <= set(meta["versions"])
    raw = run_dir / row["raw_dir"]
    assert (raw / "requests.csv").is_file() and (raw / "locust.json").is_file()
    assert (raw / "locust_stats.csv").is_file() and (raw / "uvicorn.log").is_file()

    report.finish(run_dir)
    assert (run_dir / "charts" / "mixed.png").stat().st_size > 10_000
    assert "results:" in capsys.readouterr().out
    page = parse(run_dir / "report.html")  # the end of every sweep writes the report too
    assert len(page.rows["results"]) == 1 and len(page.rows["verdicts"]) == len(claims.REGISTRY)
    assert sum(1 for tag, _ in page.tags if tag == "img") == 1


def test_reuseport_launch_starts_every_worker_and_stops_them_all(tmp_path, upstream):
    import httpx

    from harness.run.launch import launch_target

    already = {p.pid for p in leftover_children()}
    server = launch_target("targets.fake_async:app", workers=2, loop="uvloop", launch="reuseport",
                           env={"UPSTREAM_URL": upstream.url}, metrics_dir=tmp_path / "metrics",
                           log_path=tmp_path / "uvicorn.log")
    try:
        assert len(server.worker_pids) == 2  # two single-worker uvicorns, both ready
        assert server.url.startswith("http://127.0.0.1:")
        # fresh connections are spread by the kernel: of 40, each worker gets some
        for _ in range(40):
            with httpx.Client() as client:
                assert client.get(f"{server.url}/health").status_code == 200
        time.sleep(0.6)  # the probes' writer threads flush every 0.25 s
        served = {}
        for path in (tmp_path / "metrics").glob("worker-*.jsonl"):
            ticks = [json.loads(x) for x in path.read_text().splitlines() if '"health"' in x]
            served[path.name] = ticks[-1]["health"]
        assert len(served) == 2 and all(n > 0 for n in served.values()), served
        assert sum(served.values()) >= 40
    finally:
        server.stop()
    assert leftover_children(exclude=already) == []


def test_claims_preset_end_to_end_on_one_of_its_cells(tmp_path, capsys, monkeypatch):
    """bench.py claims, cut down to one real cell (claim 2's): the run folder gets results, claims.csv
    and report.html, the verdict table is printed, and nothing is left running."""
    import pandas as pd

    from harness import claims_preset, cli

    full_plan = claims_preset.plan
    monkeypatch.setattr(claims_preset, "plan",
                        lambda cores, only=None: [c for c in full_plan(cores, only) if c.users == 4][:1])
    run_dir = tmp_path / "claims"
    already = {p.pid for p in leftover_children()}
    assert cli.main(["claims", "--out", str(run_dir)]) == 0
    assert leftover_children(exclude=already) == []
    out = capsys.readouterr().out
    assert "claim verdict" in " ".join(out.split()) and "report.html" in out
    verdicts = pd.read_csv(run_dir / "claims.csv", dtype=str).fillna("").set_index("claim")
    assert len(verdicts) == len(claims.REGISTRY)
    two = verdicts.loc["2"]
    # Its cell was measured: decided, or, on a machine too loaded for the cell to run unsaturated,
    # "not measured" for that reason alone (the decider refuses to read queueing as the gather).
    loaded = two["verdict"] == evidence.NOT_MEASURED and "ran below" in two["condition"] + two["evidence"]
    assert two["verdict"] in (evidence.HOLDS, evidence.FAILS) or loaded, dict(two)
    assert verdicts.loc["5", "verdict"] == evidence.NOT_MEASURED  # its cells were not
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["preset"] == "claims" and {r["claim"] for r in meta["claims_runs"]} >= {"1", "10"}
    page = parse(run_dir / "report.html")
    assert len(page.rows["results"]) == 1 and len(page.rows["verdicts"]) == len(claims.REGISTRY)
