"""Adding a target is one module plus one registry entry: a target defined in a test module
(tests/extra_target.py), registered here, goes through build_cells, the ceiling model, the
endpoint contract and the charts without any other change."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

import targets
from harness.answer import aggregate
from harness.data import model, store
from harness.data.matrix import build_cells, make_config
from harness.data.scenarios import SCENARIOS
from harness.present import plot
from harness.run.cell import base_row

NAME = "to-thread"
RECORD = targets.Target("tests.extra_target:app", "async def + asyncio.to_thread(blocking client)",
                        concurrency="threads", pool_kind="threads", pool_default=8, core=False)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(targets.TARGETS, NAME, RECORD)
    return NAME


def test_new_target_through_build_cells_and_model(registered):
    cfg = make_config("default", targets=[NAME, "correct-async"], scenarios=["io"], workers=[1], users=[32],
                      fanout=[1], io_ms=[100], pool_size={NAME: [2, 8, 64]})
    cells = build_cells(cfg, cores=2)
    mine = [c for c in cells if c.target == NAME]
    assert [c.pool_size for c in mine] == [2, 8, 64]
    assert [c.cell_id for c in mine] == [f"{NAME}_io_w1_u32_p{p}_r1" for p in (2, 8, 64)]
    # the "threads" model: min(U, W·P) / (F·L)
    assert [c.ceiling_rps for c in mine] == pytest.approx([20.0, 80.0, 320.0])
    assert [c.env()["POOL_SIZE"] for c in mine] == ["2", "8", "64"]
    # its default pool comes from its record
    [default] = build_cells(make_config("default", targets=[NAME], scenarios=["cpu"], workers=[1]), cores=2)
    assert default.pool_size == 8
    assert model.ceiling_rps(NAME, "cpu", workers=1, users=32, io_ms=50, cpu_ms=20, fanout=3, pool_size=8,
                             cpu_kind="native", cores=2) == pytest.approx(100.0)


def test_new_target_serves_the_contract(registered, target_common):
    module, _, attr = targets.import_string(NAME).partition(":")
    app = getattr(importlib.import_module(module), attr)
    with TestClient(app) as client:
        for name, scenario in SCENARIOS.items():
            response = client.get(f"{scenario.path}?io_ms=1&cpu_ms=1")
            if name == "db":  # no DB_URL here: a clear 503 (tests/test_database.py serves it for real)
                assert response.status_code == 503 and "DB_URL" in response.text, response.text
                continue
            assert response.status_code == 200, (name, response.text)
        assert len(client.get("/io?io_ms=1&fanout=2").json()["results"]) == 2


def test_new_target_is_charted(registered, tmp_path):
    cfg = make_config("default", targets=["thread-pool", NAME], scenarios=["io"], workers=[1], users=[32],
                      pool_size=[4, 16, 64])
    run = tmp_path / "run"
    run.mkdir()
    for cell in build_cells(cfg, cores=2):
        raw = run / "raw" / cell.cell_id
        rps = 0.9 * cell.ceiling_rps
        row = {**base_row(cell, raw, run), "status": "ok", "error": "", "valid": True, "invalid_reason": "",
               "requests": int(rps * 5), "failures": 0, "fail_ratio": 0.0, "rps": rps,
               "p50_ms": 32 / rps * 1000, "p99_ms": 64 / rps * 1000, "health_p99_ms": 5.0,
               "efficiency": 0.9}
        store.append_row(run / "results.csv", row)
    df = aggregate.load_results(run)
    assert set(df["target"]) == {"thread-pool", NAME}
    paths = plot.plot_run(run)
    assert [p.name for p in paths] == ["io.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chart = plot.chart_texts(df[df["scenario"] == "io"], aggregate.summarize(df))
    assert chart.x == "pool_size"  # the swept knob
    assert chart.legend == ["thread-pool", NAME]  # one line per target, the new one included
    colors = plot.target_colors(df["target"])
    assert colors[NAME] != colors["thread-pool"]
    assert np.isfinite(df["ceiling_rps"]).all()
