"""The db scenario on a real PostgreSQL (started by harness.run.database, as a run does): the /db
contract on every target and driver, pool exhaustion measured in the worker and from
pg_stat_activity, pool timeouts as 503s counted as failures, and no postgres process left behind,
even after Ctrl-C in the middle of a db cell.

Timing assertions are lower bounds only (a query cannot sleep less than it asked).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import targets
from harness.data.matrix import build_cells, make_config
from harness.run import database
from harness.run.cell import Upstream, run_cell
from harness.system import procs
from targets import DB_DRIVERS, TARGETS
from targets import db as target_db
from tests.test_reliability import CLI_KNOBS, Bench, Family, read_rows, wait_for

ASYNC = list(targets.DB_ASYNC_TARGETS)


@pytest.fixture
def db_env(monkeypatch, postgres, target_common):
    """Point the targets' settings at the session's server; returns a setter for the other DB_*
    knobs (pool=2 sets db_pool, and so on)."""
    def set_(**changes):
        monkeypatch.setattr(target_common, "settings", dataclasses.replace(
            target_common.settings, db_url=postgres.url, **{f"db_{k}": v for k, v in changes.items()}))
    set_()
    return set_


def serve(name: str) -> TestClient:
    module_name = targets.import_string(name).partition(":")[0]
    return TestClient(importlib.import_module(module_name).app)


def test_cluster_has_benchmark_settings(postgres):
    with database._connect(postgres.url) as conn:
        show = {k: conn.execute(f"SHOW {k}").fetchone()[0]
                for k in ("fsync", "max_connections", "listen_addresses", "synchronous_commit")}
    assert show == {"fsync": "off", "max_connections": "100", "listen_addresses": "127.0.0.1",
                    "synchronous_commit": "off"}
    assert postgres.owned and postgres.url.startswith("postgresql://postgres@127.0.0.1:")
    assert postgres.proc is not None and postgres.proc.poll() is None


@pytest.mark.parametrize("name", list(TARGETS))
def test_db_contract(name, db_env):
    with serve(name) as client:
        t0 = time.perf_counter()
        r = client.get("/db")
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        assert r.json() == {"queries": 2, "seconds": 0.02}
        assert elapsed >= 0.04  # two pg_sleep(20 ms), one after the other
        r = client.get("/db", params={"db_queries": 3, "db_ms": 0})
        assert r.status_code == 200 and r.json() == {"queries": 3, "seconds": 0.0}
        for bad in ({"db_queries": 17}, {"db_queries": -1}, {"db_ms": 5001}, {"db_ms": "x"}):
            assert client.get("/db", params=bad).status_code == 422, bad
        assert client.get("/health").status_code == 200


def test_db_without_database_is_503(target_common, monkeypatch):
    monkeypatch.setattr(target_common, "settings", dataclasses.replace(target_common.settings, db_url=None))
    with serve("correct-async") as client:
        r = client.get("/db")
    assert r.status_code == 503 and "DB_URL" in r.json()["detail"]


@pytest.mark.parametrize("driver", DB_DRIVERS)
def test_async_drivers_one_transaction(driver, db_env, postgres):
    """Each driver runs the queries inside one transaction: mid-request, the target's backend is
    'idle in transaction' or 'active' in the same transaction (one xact_start)."""
    db_env(driver=driver, pool=1)
    with serve("correct-async") as client, database._connect(postgres.url) as conn:
        # SQLAlchemy opens its connection lazily and runs its own setup transaction on first use:
        # one request first, so only /db's transaction is observed.
        assert client.get("/db", params={"db_queries": 1, "db_ms": 0}).status_code == 200
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(client.get, "/db", params={"db_queries": 4, "db_ms": 50})
            starts = set()
            deadline = time.monotonic() + 5
            while not future.done() and time.monotonic() < deadline:
                rows = conn.execute("SELECT xact_start FROM pg_stat_activity WHERE application_name = %s "
                                    "AND xact_start IS NOT NULL", (target_db.APPLICATION_NAME,)).fetchall()
                starts.update(r[0] for r in rows)
                time.sleep(0.01)
            assert future.result().status_code == 200
    assert len(starts) == 1, starts


def _burst(client: TestClient, n: int) -> list:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: client.get("/db"), range(n)))


@pytest.mark.parametrize("name,driver", [("correct-async", "asyncpg"), ("correct-async", "psycopg"),
                                         ("correct-async", "sqlalchemy"), ("thread-pool", "psycopg")])
def test_pool_exhaustion_waits_are_measured(name, driver, db_env):
    """Pool 2, 8 concurrent requests of 40 ms: at most 2 connections busy, and the last requests
    waited at least three transactions (120 ms) for theirs."""
    db_env(pool=2, driver=driver)
    with serve(name) as client:
        common = importlib.import_module("targets.common")
        common.probe.extra()  # forget the start-up
        responses = _burst(client, 8)
        stats = common.probe.extra()
    assert [r.status_code for r in responses] == [200] * 8
    assert stats["db_busy"] == 2
    waits = sorted(stats["db_wait_ms"])
    assert len(waits) == 8
    assert waits[-1] >= 0.75 * 3 * 40  # lower bound with slack for timer granularity


@pytest.mark.parametrize("name,driver", [("correct-async", "asyncpg"), ("correct-async", "psycopg"),
                                         ("correct-async", "sqlalchemy"), ("thread-pool", "psycopg")])
def test_pool_timeout_is_a_503_with_a_clear_body(name, driver, db_env):
    db_env(pool=2, pool_timeout=0.01, driver=driver)
    with serve(name) as client:
        responses = _burst(client, 8)
        assert client.get("/health").status_code == 200  # the worker is fine
        assert client.get("/db").status_code == 200  # and recovers once the burst is over
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    body = next(r.json() for r in responses if r.status_code == 503)
    assert "pool exhausted" in body["detail"] and "DB_POOL_TIMEOUT=0.01" in body["detail"], body


def _db_cell(tmp_path, upstream, postgres, **knobs):
    cfg = make_config("smoke", targets=["correct-async"], scenarios=["db"], workers=[1], users=[8],
                      duration=1.5, warmup=0.5, adapt_window=False, db_pool=[2], **knobs)
    (cell,) = build_cells(cfg)
    return cell, run_cell(cell, tmp_path, Upstream(upstream.url, upstream.proc.pid, None), database=postgres)


def test_db_cell_measures_pool_exhaustion(tmp_path, upstream, postgres):
    cell, row = _db_cell(tmp_path, upstream, postgres)
    assert row["status"] == "ok", row.get("error")
    assert cell.ceiling_rps == pytest.approx(2 / 0.04)
    assert row["failures"] == 0 and row["requests"] > 0
    assert row["db_pool_busy_max"] == 2  # in the worker: the whole pool in use
    assert 1 <= row["db_active_max"] <= 2  # from outside: never more backends than the pool
    # 8 users on 2 connections: a request waits about 3 transactions
    assert row["db_pool_wait_p99_ms"] >= 0.75 * 3 * 40
    assert row["db_cpu_pct"] >= 0 and not math.isnan(row["db_cpu_pct"])


def test_db_cell_pool_timeouts_are_failures(tmp_path, upstream, postgres):
    _, row = _db_cell(tmp_path, upstream, postgres, db_pool_timeout=0.005)
    assert row["status"] == "ok", row.get("error")
    assert row["failures"] > 0 and 0 < row["fail_ratio"] < 1
    assert row["db_pool_busy_max"] == 2


def test_existing_server_is_used_not_stopped(tmp_path, postgres):
    cfg = make_config("smoke", targets=["correct-async"], scenarios=["db"], workers=[2])
    db = database.start(tmp_path, build_cells(cfg), postgres.url)
    assert not db.owned and db.proc is None and db.source == "external"
    cap = database.measure_capacity(db, database.connections_needed(build_cells(cfg)))
    assert cap["connections"] == 40 and 0 < cap["qps"] <= cap["ideal_qps"] * 1.05
    db.stop()
    with database._connect(postgres.url) as conn:  # still up
        assert conn.execute("SELECT 1").fetchone()[0] == 1


@pytest.mark.parametrize("source", ["first found", "pgserver wheel"])
def test_a_cluster_stops_without_leftovers(tmp_path, monkeypatch, source):
    """Both sources of binaries: Debian's when installed (else the wheel), and the wheel alone, as on
    a fresh machine without the postgresql package (CI installs none)."""
    monkeypatch.setattr(procs, "_live", set())
    if source == "pgserver wheel":
        monkeypatch.setattr(database.glob, "glob", lambda pattern: [])
    with Family() as fam:
        db = database.start_cluster(tmp_path / "pg.log", max_connections=100)
        folder = db.folder
        if source == "pgserver wheel":
            assert db.source == "pgserver wheel" and db.version.startswith("16"), (db.source, db.version)
        assert fam.running("postgres")
        db.stop()
    assert fam.survivors() == []
    assert not folder.exists()


def test_too_many_connections_is_refused_before_anything_starts(tmp_path):
    bench = Bench(tmp_path, "run", "--scenarios", "db", "--workers", "4", "--db-pool", "200", "--out",
                  str(tmp_path / "run"))
    assert bench.wait(60) == 2, bench.output()
    err = bench.err_path.read_text().strip().splitlines()
    assert len(err) == 1 and "800 database connections" in err[0], err
    assert bench.family.seen == {} and not (tmp_path / "run").exists()


def test_ctrl_c_in_a_db_cell_leaves_no_postgres(tmp_path):
    run_dir = tmp_path / "run"
    knobs = [k for k in CLI_KNOBS]
    knobs[knobs.index("io")] = "db"
    bench = Bench(tmp_path, "run", "--targets", "correct-async", *knobs, "--out", str(run_dir))
    try:
        wait_for(lambda: bench.family.running("locust") and bench.family.running("postgres"), 120,
                 "the db cell under load", bench.proc)
        time.sleep(0.5)  # well inside the cell: the target's pool holds its connections
        bench.signal(signal.SIGINT)
    finally:
        code = bench.wait()
    assert code == 130, bench.output()
    assert bench.leftover == [], f"orphans after Ctrl-C in a db cell\n{bench.output()}"
    assert bench.family.count("postgres") >= 3  # the postmaster and its backends were there
    assert read_rows(run_dir) == []


def test_sigkill_of_the_harness_in_a_db_cell_leaves_no_postgres(tmp_path):
    """The reaper (harness/system/reaper.py) stops the postmaster it was told about and, through it, its
    children: each runs in its own session with its ps title written over the run marker."""
    from tests.test_hard_endings import kill_mid_cell

    knobs = [k for k in CLI_KNOBS]
    knobs[knobs.index("io")] = "db"
    bench = Bench(tmp_path, "run", "--targets", "correct-async", *knobs, "--out", str(tmp_path / "run"))
    # the pool's connections are open once Locust runs; ≥ 5: the postmaster and its helpers
    before, left = kill_mid_cell(
        bench, lambda: bench.family.running("locust") and len(bench.family.running("postgres")) >= 5,
        "the db cell under load")
    assert sum("postgres" in p for p in before) >= 5, before
    assert left == [], f"still running 5 s after the harness was killed: {left}"
    # No clean-up ran, so the cluster folder stays (the next db run removes it once stale): this
    # test removes its own now.
    folders = {Path(m.group(1)) for p in before if (m := re.search(r" -D (\S+)/data", p))}
    assert len(folders) == 1 and all(f.name.startswith(database.FOLDER_PREFIX) for f in folders), before
    for folder in folders:
        shutil.rmtree(folder)


def test_a_killed_runs_cluster_folder_goes_at_the_next_start(tmp_path):
    now = time.time()
    old = now - database.STALE_AFTER_S - 60

    def folder(name: str, pid: int | None, mtime: float):
        path = tmp_path / f"{database.FOLDER_PREFIX}{name}"
        (path / "data").mkdir(parents=True)
        if pid is not None:
            (path / "data" / "postmaster.pid").write_text(f"{pid}\n/some/data\n")
        os.utime(path, (mtime, mtime))
        return path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = folder("killed", dead.pid, old)  # the reaper stopped its postmaster
    never_started = folder("initdb-died", None, old)
    running = folder("running", os.getpid(), old)  # a long run's live server
    starting = folder("starting", None, now)  # initdb in progress: no postmaster yet
    assert sorted(database.remove_stale_clusters(tmp_path, now)) == sorted([killed, never_started])
    assert not killed.exists() and not never_started.exists()
    assert running.exists() and starting.exists()
