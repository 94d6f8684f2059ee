"""The app's SQLAlchemy pools seen through their events (targets/pool_events.py, on a real engine in
this process), the collector's figures from hand-made probe lines, and the pool verdict and its
advice on hand-made rows (harness/judge/waits.py, harness/answer/audit.py)."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

from harness.answer import audit
from harness.judge import collect, waits
from harness.judge.bottleneck import Context, attribute
from targets import pool_events

CTX = Context(target_cores=2, machine_cores=2)


@pytest.fixture
def watch():
    w = pool_events.install()
    assert w is not None
    yield w
    pool_events.uninstall(w)


def _request(engine, hold_s: float) -> None:
    pool_events.request_started()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        time.sleep(hold_s)


def _two_requests_on_one_connection(tmp_path, name: str):
    engine = create_engine(f"sqlite:///{tmp_path / name}", poolclass=QueuePool, pool_size=1, max_overflow=0)
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(_request, engine, 0.1))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return engine


def test_a_full_pool_is_timed_and_its_waits_measured(watch, tmp_path):
    watch.take()  # from here
    engine = _two_requests_on_one_connection(tmp_path, "x.db")
    out = watch.take()
    assert out["app_pool_size"] == 1 and out["app_pool_out_max"] == 1
    # two requests of 100 ms one after the other on one connection: full about 200 ms of the span
    assert 180 <= out["app_pool_full_ms"] <= out["app_pool_span_ms"], out
    short, long = sorted(out["app_pool_wait_ms"])
    assert short < 50 and 90 <= long < 400, out  # the second waited for the first's 100 ms
    assert len(out["app_pool_hold_ms"]) == 2 and all(100 <= h < 400 for h in out["app_pool_hold_ms"]), out
    engine.dispose()


def test_a_second_watch_does_not_hide_the_checkouts_from_the_first(watch, tmp_path):
    """Two wrapped apps in one process (a test suite starting apps in-process) both listen: each
    sees every request's first checkout, not only the first listener."""
    other = pool_events.install()
    assert other is not None
    try:
        watch.take(), other.take()
        engine = _two_requests_on_one_connection(tmp_path, "w.db")
        for out in (watch.take(), other.take()):
            assert len(out["app_pool_wait_ms"]) == 2, out
        engine.dispose()
    finally:
        pool_events.uninstall(other)


def test_an_unbounded_pool_has_no_size_and_is_never_full(watch, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'y.db'}", poolclass=QueuePool, pool_size=1,
                           max_overflow=-1)
    watch.take()
    _request(engine, 0.01)
    out = watch.take()
    assert out["app_pool_size"] is None and out["app_pool_full_ms"] == 0.0, out
    engine.dispose()


def test_the_collector_reads_the_pool_figures_of_the_window():
    lines = [{"app_pool_size": 2, "app_pool_out_max": 2, "app_pool_full_ms": 900.0,
              "app_pool_span_ms": 1000.0, "app_pool_wait_ms": [700.0, 790.0]},
             {"app_pool_size": 2, "app_pool_out_max": 2, "app_pool_full_ms": 1000.0,
              "app_pool_span_ms": 1000.0, "app_pool_wait_ms": [800.0]}]
    got = collect._app_pool(lines)
    assert got == {"app_pool_size": 2, "app_pool_full_pct": 95.0, "app_pool_wait_ms": [700.0, 790.0, 800.0],
                   "app_pool_hold_ms": []}
    unseen = collect._app_pool([{"work": 1}])  # a worker without SQLAlchemy: no pool figures, not zeros
    assert unseen["app_pool_size"] != unseen["app_pool_size"] and unseen["app_pool_wait_ms"] == []


POOL_BOUND = {"target": "app", "scenario": "/items/slow", "fanout": 1,
              "status": "ok", "requests": 320, "failures": 0, "fail_ratio": 0.0, "users": 32, "workers": 1,
              "rps": 39.6, "p50_ms": 815.0, "loop_blocked_pct_max": 1.0, "worker_cpu_max_pct": 30.0,
              "thread_tokens_total": 40, "thread_tokens_busy_max": 32, "thread_tokens_full_pct": 0.0,
              "app_pool_size": 2, "app_pool_full_pct": 98.0, "app_pool_wait_p99_ms": 790.0,
              "ceiling_rps": float("nan"), "efficiency": float("nan")}


def test_a_full_pool_is_the_verdict_with_both_sizes_in_its_advice():
    text = audit.verdict({**POOL_BOUND, "bound_by": "users"})
    assert text == "limited by the database pool (2 of 2 connections busy 98% of the window, p99 wait 790 ms)"
    advice = audit.advice(POOL_BOUND, text)
    assert "pool_size + max_overflow" in advice and "40 thread tokens" in advice
    assert ("throughput ≈ pool / hold time; at 39.6 rps each checkout holds its connection about 51 ms"
            in advice)
    assert attribute(POOL_BOUND, CTX).bound_by == "database pool"
    held = audit.advice({**POOL_BOUND, "app_pool_hold_p50_ms": 60.0}, text)
    assert "(measured: a median 60 ms from checkout to checkin, so at most 33 rps)" in held


def test_a_pool_full_now_and_then_is_no_verdict_and_a_healthy_route_gets_none():
    brief = {**POOL_BOUND, "app_pool_full_pct": 20.0, "bound_by": "unexplained"}
    assert waits.pool_limit(brief) is None
    assert audit.verdict(brief) == ("unexplained (queued: all 2 database pool connections out 20% of the "
                                    "window)")
    healthy = {**POOL_BOUND, "app_pool_size": float("nan"), "app_pool_full_pct": float("nan"),
               "app_pool_wait_p99_ms": float("nan"), "p50_ms": 2.0, "rps": 16000.0,
               "thread_tokens_busy_max": 3}
    assert attribute(healthy, CTX).bound_by == "users"
    assert audit.verdict({**healthy, "bound_by": "users"}) == "fine at this load"


def test_a_thread_token_sweep_that_does_not_move_a_pool_bound_route_says_so():
    text = audit.verdict(POOL_BOUND)
    rows = [{"url": "/items/slow", "workers": "1", "users": "32", "thread_tokens": t, "rps": rps,
             "verdict": text, "advice": "x"} for t, rps in (("40", "39.6"), ("80", "39.4"))]
    audit._sweep_notes(rows)
    assert all(r["advice"].endswith("(--thread-tokens 40,80 left it at 39.4–39.6 rps: the pool, not the "
                                    "threads, sets the rate)") for r in rows), rows
    moved = [{**r, "advice": "x"} for r in rows]
    moved[1]["rps"] = "79.0"
    audit._sweep_notes(moved)
    assert all(r["advice"] == "x" for r in moved)
