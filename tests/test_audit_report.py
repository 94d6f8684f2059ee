"""report.html of an audit is about the app: the audit table with its validity, one chart per route
(throughput, p99 against /health p99, loop lag), the stalls of a blocking route from its raw folder,
and no pattern answer or claims; a cell invalid only because Locust saturated is measured once more
with more load processes, and its row says so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.answer import audit, baseline
from harness.data.matrix import make_config, plan_cells
from harness.present import audit_charts, html_report
from harness.run import saturation
from tests.run_folders import row, write_run
from tests.test_audit_run import FIXTURE

ROUTES = [("/items/sync", "/items/sync"), ("/items/blocking", "/items/blocking")]
FOLDED = ("items.py:main;uvicorn.run;asyncio.run;read_items_blocking (items.py:29);time.sleep 40\n"
          "items.py:main;uvicorn.run;asyncio.run;json.dumps (json/__init__.py:231) 2\n")


def _row(scenario: str, workers: int, repeat: int, **more: object) -> dict:
    blocking = scenario.endswith("blocking")
    lp = more.get("load_processes", 1)
    return row(**{**dict(
        target="app", scenario=scenario, workers=workers, repeat=repeat, users=4, load_processes=1,
        rps=40.0 + repeat if blocking else 900.0 + 10 * repeat, p99_ms=120.0 if blocking else 9.0,
        health_p99_ms=110.0 if blocking else 4.0, loop_lag_p99_ms=100.0 if blocking else 1.0,
        loop_blocked_pct_max=80.0 if blocking else 0.0, bound_by="users",
        raw_dir=f"raw/{scenario.strip('/').replace('/', '_')}_w{workers}_lp{lp}_r{repeat}"), **more})


def audit_folder(path: Path, rows: list[dict]) -> Path:
    write_run(path, rows, meta={"preset": "audit", "run_id": path.name})
    (path / "audit.json").write_text(json.dumps({"routes": [
        {"template": t, "url": s, "scenario": s} for t, s in ROUTES], "skipped": [], "setup": None}))
    for r in rows:
        (path / str(r["raw_dir"])).mkdir(parents=True, exist_ok=True)
    audit.write_csv(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rows = [_row(s, w, k) for _, s in ROUTES for w in (1, 2) for k in range(2)]
    run = audit_folder(tmp_path / "audit", rows)
    stalled = run / "raw" / "items_blocking_w1_lp1_r0"
    (stalled / "stalls.folded").write_text(FOLDED)
    (stalled / "stalls.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                                        "<title>time.sleep: 40 samples</title></svg>")
    return run


def test_the_audit_report_has_a_chart_per_route_and_the_stalls_of_the_blocking_one(folder):
    page = html_report.render(folder)
    assert "<th>valid</th>" in page and 'id="claims"' not in page and 'id="verdicts"' not in page
    assert 'id="answer' not in page and "cannot decide" not in page and "no charts in this run" not in page
    section = page.split('id="audit-routes"', 1)[1].split("<h2", 1)[0]
    routes = re.findall(r'<section class="audit-route"><h3>([^<]+)</h3><img alt="[^"]+ chart" '
                        r'src="data:image/png;base64,', section)
    assert routes == ["/items/sync", "/items/blocking"]
    sync, blocking = section.split('<section class="audit-route">')[1:]
    assert "stall" not in sync
    assert blocking.count("Where the loop stalled") == 1  # W=1 has its stall files, W=2 has none
    assert "Where the loop stalled: /items/blocking W=1" in blocking
    assert "<title>time.sleep: 40 samples</title>" in blocking  # the flame graph, inline
    stacks = re.findall(r'<tr><td class="num">(\d+)</td><td class="num">(\d+%)</td><td><code>([^<]+)<br>',
                        blocking)
    assert stacks == [("40", "95%", "time.sleep"), ("2", "5%", "json.dumps (json/__init__.py:231)")]
    pngs = sorted(p.name for p in (folder / audit_charts.CHART_DIR).glob("*.png"))
    assert pngs == ["items_blocking.png", "items_sync.png"]


def test_report_of_an_audit_draws_no_pattern_charts(folder):
    html_report.write(folder)  # `bench.py report DIR` on an audit folder
    assert list((folder / "charts").glob("*.png")) == []


SATURATED = "load generator saturated (98% of its core)"


def test_a_rerun_with_more_load_processes_replaces_the_saturated_row_and_says_so(tmp_path):
    rows = [_row("/items/sync", 1, 0, valid=False, invalid_reason=SATURATED, locust_cpu_max_pct=98.0),
            _row("/items/sync", 1, 0, load_processes=2, rps=1400.0),
            _row("/items/blocking", 1, 0, valid=False, invalid_reason=SATURATED + "; only 40 requests")]
    run = audit_folder(tmp_path / "audit", rows)
    by_route = {r["route"]: r for r in audit.read_csv(run)}
    assert len(audit.read_csv(run)) == 2  # the saturated measurement gave way to its re-run
    assert by_route["/items/sync"]["rps"] == "1400.0"
    assert by_route["/items/sync"]["rerun"] == f"re-run with 2 load processes: with 1, {SATURATED}"
    assert by_route["/items/blocking"]["rerun"] == ""  # invalid for more than the load generator
    table = audit.format_table(audit.read_csv(run))
    assert f"    (re-run with 2 load processes: with 1, {SATURATED})" in table
    page = html_report.render(run)
    assert f"<td>yes (re-run with 2 load processes: with 1, {SATURATED})</td>" in page
    # the baseline compares the re-run, not the saturated row, and does not split on load processes
    assert baseline.load_audit(run).df["rps"].tolist() == [1400.0, 40.0]


def test_only_cells_invalid_for_locust_alone_are_measured_again(tmp_path):
    cfg = make_config("default", app="items:app", app_dir=FIXTURE, paths=["/items/sync", "/items/blocking"],
                      workers=[1], users=[4], duration=1.0, warmup=0.5)
    sync, blocking = plan_cells([cfg])  # rows with the plan's own parameters, as the sweep writes them
    rows = [row(**sync.params(), valid=False, invalid_reason=SATURATED),
            row(**blocking.params(), valid=False, invalid_reason=SATURATED + "; only 40 requests")]
    run = write_run(tmp_path / "audit", rows)
    (cell,) = saturation.rerun_cells([cfg], run, cores=2)
    assert cell.scenario == "/items/sync" and cell.knobs["load_processes"] == 2
    assert "_lp2_r" in cell.cell_id  # its own raw folder
    assert saturation.rerun_cells([cfg], run, cores=1) == []  # no more cores to give it
    write_run(run, [*rows, {**rows[0], "load_processes": 2, "valid": True, "invalid_reason": ""}])
    assert saturation.rerun_cells([cfg], run, cores=2) == []  # once only
