"""The `server` knob: every ASGI server launches a target with W probed workers and stops them all;
bad combinations are refused before anything starts; old results read as uvicorn."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from harness.data import servers
from harness.data.matrix import ConfigError, build_cells, cores_available, make_config, make_plan, plan_cells
from tests.conftest import leftover_children


def test_reuseport_is_a_uvicorn_option_only():
    with pytest.raises(ConfigError, match="--launch reuseport is a uvicorn launch option"):
        make_config(server=["uvicorn", "granian"], launch=["reuseport"])
    with pytest.raises(ConfigError, match="--url drives a server already running"):
        make_config(url="http://127.0.0.1:9", server=["hypercorn"])
    with pytest.raises(ConfigError, match="did you mean 'granian'"):
        make_config(server=["granain"])
    assert make_config(server=["uvicorn"], launch=["reuseport"]).server == ["uvicorn"]
    url_cell = build_cells(make_config(url="http://127.0.0.1:9"))[0]
    assert url_cell.workers == 0 and url_cell.server is None  # nothing launched: neither is known


def test_each_server_gets_the_same_app_workers_loop_and_port():
    for name in servers.SERVERS:
        cmd = servers.command(name, "targets.fake_async:app", workers=3, port=8123, loop="uvloop",
                              host="127.0.0.1")
        text = " ".join(cmd)
        assert "targets.fake_async:app" in cmd and "8123" in text and "3" in cmd, (name, cmd)
        assert name.split("-")[0] in text, (name, cmd)
    assert "targets.gunicorn_worker.AsyncioWorker" in servers.command(
        "gunicorn", "a:b", workers=1, port=1, loop="asyncio", host="127.0.0.1")


def test_servers_preset_runs_every_workload_under_every_server_at_one_and_all_cores():
    plan = make_plan("servers")
    cells = plan_cells(plan, cores=2)
    by = {(c.target, c.scenario) for c in cells}
    assert by == {("correct-async", "health"), ("correct-async", "io"), ("fake-async", "io"),
                  ("process-pool", "cpu")}
    for work in by:
        got = {(c.server, c.workers) for c in cells if (c.target, c.scenario) == work}
        assert got == {(s, w) for s in servers.SERVERS for w in plan[0].workers}
    assert plan[0].workers == sorted({1, cores_available()})
    # the budget: ≤ 10 min on 2 cores, counting ~5 s to start and stop a target per cell
    assert sum(c.warmup_s + c.duration_s + 5 for c in cells) <= 600


@pytest.mark.parametrize("server", list(servers.SERVERS))
def test_every_server_starts_every_worker_probed_and_stops_them_all(tmp_path, upstream, server):
    from harness.run.launch import launch_target

    already = {p.pid for p in leftover_children()}
    target = launch_target("targets.correct_async:app", workers=2, loop="uvloop", server=server,
                           env={"UPSTREAM_URL": upstream.url}, metrics_dir=tmp_path / "metrics",
                           log_path=tmp_path / "server.log")
    try:
        assert len(target.worker_pids) == 2  # both workers ran the lifespan and wrote ready
        assert target.proc.pid not in target.worker_pids  # a supervisor, not a worker
        for _ in range(30):
            with httpx.Client() as client:
                assert client.get(f"{target.url}/health").status_code == 200
        time.sleep(0.6)  # the probes' writer threads flush every 0.25 s
        ticks, beats = {}, {}
        for path in (tmp_path / "metrics").glob("worker-*.jsonl"):
            lines = [json.loads(x) for x in path.read_text().splitlines() if '"health"' in x]
            ticks[path.name] = lines[-1]["health"]
            beats[path.name] = sum(len(x["lag_ms"]) for x in lines)
        assert len(ticks) == 2
        assert sum(ticks.values()) >= 30, ticks  # every answer counted by one worker's probe
        assert all(n > 0 for n in beats.values()), beats  # each loop's heartbeat ran
    finally:
        target.stop()
    assert leftover_children(exclude=already) == []


# ------------------------------------------------------------------ claim 21, on constructed runs

def _server_rows(health: dict[str, float], fake_io: dict[str, float], eff: dict[str, float] | None = None):
    from tests.test_claims import row

    eff = eff or {}
    out = [row("correct-async", "health", rps, server=s, ceiling_rps=np.nan, efficiency=np.nan)
           for s, rps in health.items()]
    out += [row("fake-async", "io", rps, server=s, io_ms=10, fanout=1, ceiling_rps=100.0,
                efficiency=eff.get(s, rps / 100.0)) for s, rps in fake_io.items()]
    return out


def test_claim_21_holds_when_only_health_differs():
    from tests.test_claims import verdict

    v = verdict("21", _server_rows({"uvicorn": 2000, "granian": 3000}, {"uvicorn": 95, "granian": 96}))
    assert v.verdict == "holds", v
    assert "granian on correct-async /health" in v.condition
    assert any("work-bound" in e and "inside the noise" in e for e in v.evidence), v.evidence


def test_claim_21_does_not_hold_when_a_work_bound_cell_differs():
    from tests.test_claims import verdict

    # The model's ceiling (100 rps, a twentieth of uvicorn's /health) classifies the workload: neither
    # a slow server nor a busy machine (uvicorn's own cell at 40% of it) makes it framework-bound.
    v = verdict("21", _server_rows({"uvicorn": 2000, "hypercorn": 2050}, {"uvicorn": 40, "hypercorn": 20}))
    assert v.verdict == "does not hold", v
    assert "hypercorn on fake-async /io" in v.condition
    both = verdict("21", _server_rows({"uvicorn": 2000, "hypercorn": 900}, {"uvicorn": 95, "hypercorn": 45}))
    # a workload whose ceiling the framework does not dwarf (correct-async /io: 3200 rps) is framework-bound
    rows = _server_rows({"uvicorn": 2000, "granian": 2050}, {"uvicorn": 95, "granian": 96})
    rows += _server_rows({}, {"uvicorn": 500, "granian": 900})
    for r in rows[-2:]:
        r.update(target="correct-async", ceiling_rps=3200.0, efficiency=r["rps"] / 3200)
    assert verdict("21", rows).verdict == "holds"
    assert both.verdict == "holds only partly", both


def test_claim_21_inside_the_noise_and_not_measured():
    from tests.test_claims import verdict

    same = verdict("21", _server_rows({"uvicorn": 2000, "granian": 2100}, {"uvicorn": 95, "granian": 94}))
    assert same.verdict == "no measurable difference", same
    only_uvicorn = verdict("21", _server_rows({"uvicorn": 2000}, {"uvicorn": 95}))
    assert only_uvicorn.verdict == "not measured" and "another server" in only_uvicorn.condition
    no_work = verdict("21", _server_rows({"uvicorn": 2000, "granian": 3000}, {}))
    assert no_work.verdict == "not measured" and "work-bound" in no_work.condition


def test_uneven_share_under_another_server_names_its_accept_not_reuseport():
    import pandas as pd

    from harness.judge import validity

    frame = pd.DataFrame({"worker": [1, 2], "work_share": [0.9, 0.1], "health_served": [50, 50]})
    uv = validity.worker_reasons(frame, 2, launch="uvicorn")
    gran = validity.worker_reasons(frame, 2, launch="granian")
    assert any("try --launch reuseport" in r for r in uv)
    assert any("granian's own accept" in r for r in gran) and not any("reuseport" in r for r in gran)


def test_recommend_keeps_servers_apart_and_compare_names_the_server(tmp_path):
    from harness.answer import compare, recommend
    from tests.run_folders import row, write_run

    # granian is the faster server here: were `server` a size, its W=1 cell would be "the cheapest
    # within 5% of the best" for uvicorn's group too; as a group knob each server gets its own answer.
    rows = [row(server=s, workers=w, rps=r, p50_ms=32 / r * 1000, p99_ms=40 / r * 1000)
            for s, w, r in (("uvicorn", 1, 100.0), ("uvicorn", 2, 200.0), ("granian", 1, 400.0),
                            ("granian", 2, 410.0))]
    results = recommend.recommend(pd.DataFrame(rows), slo_p99_ms=1000.0)
    chosen = {r.key["server"]: int(r.chosen["workers"]) for r in results}
    assert "server" in recommend.group_columns() and chosen == {"uvicorn": 2, "granian": 1}

    a = write_run(tmp_path / "a", [r for r in rows if r["server"] == "uvicorn"])
    b = write_run(tmp_path / "b", [r for r in rows if r["server"] == "granian"])
    _, differ = compare.knob_differences(compare.load_run(a).df, compare.load_run(b).df)
    assert differ == [("server", "uvicorn", "granian")]


def test_a_server_sweep_is_drawn_as_small_multiples_one_row_per_server(tmp_path):
    from harness.answer.aggregate import coerce, summarize
    from harness.present.plot import chart_texts, plot_run
    from tests.run_folders import row, write_run

    rows = [row(target=t, scenario="health", server=s, workers=w, rps=r * w, p50_ms=5.0, p99_ms=9.0)
            for t in ("correct-async", "fake-async") for s, r in (("uvicorn", 1000.0), ("granian", 1500.0))
            for w in (1, 2)]
    df = coerce(pd.DataFrame(rows))
    texts = chart_texts(df, summarize(df))
    assert texts.x == "workers" and texts.row_cols == ["server"]
    assert sorted(texts.row_titles) == ["server=granian", "server=uvicorn"]
    paths = plot_run(write_run(tmp_path / "run", rows))
    assert [p.name for p in paths] == ["health.png"] and paths[0].stat().st_size > 10_000


def test_hypercorns_daemonic_workers_fail_a_process_pool_target_in_words(tmp_path, upstream):
    """Found by the servers preset: hypercorn's workers are daemonic, so the pool cannot start."""
    from harness.run.launch import LaunchError, launch_target

    already = {p.pid for p in leftover_children()}
    with pytest.raises(LaunchError, match="hypercorn runs its workers as daemonic multiprocessing"):
        launch_target("targets.process_pool:app", workers=1, loop="uvloop", server="hypercorn",
                      env={"UPSTREAM_URL": upstream.url}, metrics_dir=tmp_path / "metrics",
                      log_path=tmp_path / "server.log", timeout=30)
    assert leftover_children(exclude=already) == []
