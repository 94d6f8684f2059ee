"""`bench.py audit` for real on an app in the full-stack template's shape whose SQLAlchemy pool (2
connections, no overflow) is smaller than the requests in flight: the pool is found from its events
alone, on both thread-token sizes, and its route without a database gets no pool verdict."""

from __future__ import annotations

import csv

from tests.test_audit_run import ROOT, bench

POOL_APP = str(ROOT / "tests" / "pool_app")


def test_a_small_pool_is_named_on_both_thread_token_sizes(tmp_path):
    out = tmp_path / "audit"
    done = bench("audit", "items:app", "--app-dir", POOL_APP, "--workers", "1", "--users", "32",
                 "--thread-tokens", "40,80", "--duration", "4", "--warmup", "1", "--out", str(out),
                 env={"POOL_APP_DB": str(tmp_path / "items.db")})
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "audit.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    slow = [r for r in rows if r["route"] == "/items/slow"]
    assert [r["thread_tokens"] for r in slow] == ["40", "80"], rows
    for r in slow:
        assert r["verdict"].startswith("limited by the database pool (2 of 2 connections busy"), r
        assert "pool_size + max_overflow" in r["advice"] and "more thread tokens will not help" in r["advice"]
    ping = [r for r in rows if r["route"] == "/ping"]
    assert ping and all("pool" not in r["verdict"] for r in ping), ping
    with open(out / "results.csv", newline="") as fh:
        figures = [r for r in csv.DictReader(fh) if r["scenario"] == "/items/slow"]
    assert all(float(r["app_pool_size"]) == 2 and float(r["app_pool_hold_p50_ms"]) >= 50 for r in figures)
