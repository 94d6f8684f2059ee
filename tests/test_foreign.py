"""Your own app (--app) and a running server (--url): the fixture app under tests/fixture_app is a
tutorial-style FastAPI app the harness knows nothing about; the harness must tell its three routes
apart from outside (loop lag and /health p99), leave nothing running, and refuse bad input."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.answer import aggregate
from harness.data.matrix import ConfigError, build_cells, make_config
from harness.run.cell import Upstream, run_cell
from harness.run.sweep import run_sweep
from tests.conftest import leftover_children

FIXTURE_DIR = str(Path(__file__).parent / "fixture_app")
ROUTES = ["/items/sync", "/items/blocking", "/items/awaiting"]


def _foreign(**kw):
    return make_config("default", **{"app": "items:app", "app_dir": FIXTURE_DIR, "paths": ["/items/sync"],
                                     **kw})


def test_foreign_cells_have_no_ceiling_and_plain_folder_names():
    cells = build_cells(_foreign(paths=ROUTES, workers=[1, 2], users=[8]))
    assert [(c.scenario, c.workers) for c in cells][:3] == [("/items/sync", 1), ("/items/sync", 2),
                                                           ("/items/blocking", 1)]
    assert all(math.isnan(c.ceiling_rps) and c.foreign and c.health_path == "/_bench/health" for c in cells)
    assert cells[0].cell_id == "items_app__items_sync_w1_u8_r1"


@pytest.mark.parametrize("overrides, message", [
    (dict(app="items"), "expected 'pkg.module:app'"),
    (dict(app="nosuchmodule:app"), "no module 'nosuchmodule'"),
    (dict(app_dir="/nonexistent-dir"), "is not a directory"),
    (dict(paths=None), "--app needs --path"),
    (dict(paths=["items"]), "must start with '/'"),
    (dict(url="http://127.0.0.1:1"), "give one of them"),
    (dict(app=None, url="http://10.1.2.3:8000"), "--allow-non-loopback"),
    (dict(app=None, url="ftp://127.0.0.1:8000"), "expected http://host:port"),
    (dict(app=None, url="http://127.0.0.1:8000/x"), "no path"),
    (dict(locustfile="/nonexistent.py", paths=None), "is not a file"),
])
def test_bad_foreign_input_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _foreign(**overrides)


def test_path_without_app_or_url_is_refused():
    with pytest.raises(ConfigError, match="need --app or --url"):
        make_config("default", paths=["/x"])


def test_non_loopback_url_with_permission_is_accepted():
    cfg = make_config("default", url="http://10.1.2.3:8000/", allow_non_loopback=True, paths=["/x"])
    assert cfg.url == "http://10.1.2.3:8000" and build_cells(cfg)[0].workers == 0


def test_fixture_app_three_routes_told_apart(tmp_path):
    """sync (thread pool) and awaiting routes leave the loop free; the blocking one stalls it."""
    cfg = _foreign(paths=ROUTES, workers=[1], users=[8], duration=2.0, warmup=1.0)
    already = {p.pid for p in leftover_children()}
    assert run_sweep(cfg, tmp_path / "run", preset="default", measure_upstream=False) == 0
    assert leftover_children(exclude=already) == []
    df = aggregate.load_results(tmp_path / "run").set_index("scenario")
    assert (df["status"] == "ok").all() and (df["workers_seen"] == 1).all()
    assert df["efficiency"].isna().all() and df["ceiling_rps"].isna().all()  # no ceiling for a foreign app
    assert (df["rps"] > 0).all() and (df["health_requests"] > 0).all()
    blocked, free = df.loc["/items/blocking"], df.loc[["/items/sync", "/items/awaiting"]]
    # 8 users × 20 ms of time.sleep on the loop: the neighbour waits for the queue; the others do not.
    assert blocked["loop_lag_p99_ms"] > 3 * free["loop_lag_p99_ms"].max()
    # (a 2 s window holds too few probe samples per worker for a p99: the median says it too)
    assert blocked["health_p50_ms"] > 3 * free["health_p50_ms"].max()
    # The probe's stack samples name the blocking call at its line (docs/diagnosis.md); not the others.
    line = next(i for i, text in enumerate(Path(FIXTURE_DIR, "items.py").read_text().splitlines(), 1)
                if "async def read_items_blocking" in text) + 1
    assert blocked["stall_site"] == f"items.py:{line} in read_items_blocking → time.sleep"
    assert blocked["stall_samples"] > 0
    assert (free["stall_site"].fillna("") == "").all()


def test_url_mode_with_own_locustfile(tmp_path, upstream):
    """--url against a server started here (as `bench.py serve` would): it is loaded, not stopped;
    the user's own Locust file runs with the harness's probe user and recorder added."""
    from harness.run.launch import launch_target

    server = launch_target("targets.foreign:app", workers=1, loop="uvloop",
                           env={"BENCH_APP": "items:app", "BENCH_APP_DIR": FIXTURE_DIR},
                           metrics_dir=tmp_path / "metrics", log_path=tmp_path / "uvicorn.log",
                           health_path="/_bench/health")
    try:
        cfg = make_config("default", url=server.url, locustfile=f"{FIXTURE_DIR}/locustfile.py", users=[4],
                          duration=1.5, warmup=0.5, health_path="/_bench/health")
        cell = build_cells(cfg)[0]
        assert cell.scenario == "locustfile:locustfile" and cell.workers == 0
        before = {p.pid for p in leftover_children()}
        row = run_cell(cell, tmp_path / "run", Upstream(upstream.url, upstream.proc.pid, None))
        assert row["status"] == "ok", row["error"]
        assert row["rps"] > 0 and row["health_requests"] > 0 and math.isnan(row["target_cpu_pct"])
        names = set(pd.read_csv(tmp_path / "run" / row["raw_dir"] / "requests.csv")["name"])
        assert names - {"health-discover"} == {"awaiting", "sync", "health"}  # the user's, the probe's
        assert {p.pid for p in leftover_children()} <= before  # Locust gone, nothing new launched
        assert server.alive()  # and the server it drove is still up
    finally:
        server.stop()


def test_one_line_instrumentation_wraps_an_app_without_editing_it(tmp_path):
    """instrument(app): the app's own lifespan runs, then the probe; requests are counted; the
    wrapper answers /_bench/health itself; a ready record and probe lines are written."""
    import asyncio
    import json
    from contextlib import asynccontextmanager

    import httpx
    from fastapi import FastAPI

    from targets.instrument import HEALTH_PATH, instrument

    events = []

    @asynccontextmanager
    async def lifespan(_app):  # the app's own start-up must still run, before "ready"
        events.append("app-startup")
        yield

    inner = FastAPI(lifespan=lifespan)

    @inner.get("/x")
    async def x():
        return {"x": 1}

    app = instrument(inner, metrics_dir=str(tmp_path))

    async def scenario():
        inbox: asyncio.Queue = asyncio.Queue()
        sent: list[str] = []

        async def send(message):
            sent.append(message["type"])

        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
        while "lifespan.startup.complete" not in sent:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/x")).json() == {"x": 1}
            assert (await client.get(HEALTH_PATH)).json() == {"status": "ok", "pid": os.getpid()}
        await asyncio.sleep(0.3)  # one probe flush
        await inbox.put({"type": "lifespan.shutdown"})
        await task
        return sent

    sent = asyncio.run(scenario())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"] and events == ["app-startup"]
    assert (app.probe.work, app.probe.health) == (1, 1)
    lines = [json.loads(x) for f in tmp_path.glob("worker-*.jsonl") for x in f.read_text().splitlines()]
    assert lines[0]["event"] == "ready"
    assert any("lag_ms" in r and r["work"] == 1 for r in lines[1:])
