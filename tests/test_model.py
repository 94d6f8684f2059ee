"""The ceiling model's arithmetic, on hand-computed cases (DESIGN.md's formulas)."""

from __future__ import annotations

import math

import pytest

from harness.data.matrix import window
from harness.data.model import ceiling_rps, upstream_calls

BASE = dict(io_ms=50, cpu_ms=20, fanout=3, cpu_kind="python", cores=2, http_connections=100)


def ceil(target, scenario, workers=1, users=32, pool_size=None, **kw):
    return ceiling_rps(target, scenario, workers=workers, users=users, pool_size=pool_size, **{**BASE, **kw})


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_fake_async_io_is_workers_over_fanout_times_latency(workers):
    # W / (F·L): 1 / (3 × 0.05) = 6.67 rps per worker
    assert ceil("fake-async", "io", workers) == pytest.approx(workers / 0.15)


def test_fake_async_io_fanout_one():
    assert ceil("fake-async", "io", 2, fanout=1, io_ms=100) == pytest.approx(20.0)


def test_fake_async_io_capped_by_users():
    assert ceil("fake-async", "io", 4, users=2) == pytest.approx(2 / 0.15)


def test_thread_pool_io_is_min_users_and_threads_over_fanout_latency():
    # min(U, W·P) / (F·L): pool 4 < 16 users → 4 / 0.15
    assert ceil("thread-pool", "io", 1, users=16, pool_size=4) == pytest.approx(4 / 0.15)
    # users below the pool: 8 / 0.15
    assert ceil("thread-pool", "io", 2, users=8, pool_size=40) == pytest.approx(8 / 0.15)


def test_thread_pool_io_capped_by_http_connections():
    limited = ceil("thread-pool", "io", 1, users=64, pool_size=40, http_connections=10)
    assert limited == pytest.approx(10 / 0.15)


@pytest.mark.parametrize("target", ["correct-async", "process-pool", "mixed"])
def test_async_io_is_users_over_latency(target):
    # U / L: fan-out calls overlap, so one request takes L
    assert ceil(target, "io", 1, users=32) == pytest.approx(32 / 0.05)


def test_async_io_capped_by_connection_pool():
    # 100 connections / 3 calls per request = 33 requests in flight per worker
    assert ceil("correct-async", "io", 1, users=64) == pytest.approx(33 / 0.05)


@pytest.mark.parametrize("target", ["fake-async", "correct-async", "thread-pool", "mixed", "blocking-future"])
@pytest.mark.parametrize("workers,expected", [(1, 50.0), (2, 100.0), (4, 100.0)])
def test_pure_python_cpu_is_bounded_by_workers_and_cores(target, workers, expected):
    # min(W, K) / C with K = 2 cores, C = 20 ms
    assert ceil(target, "cpu", workers, pool_size=4) == pytest.approx(expected)


def test_process_pool_cpu_uses_every_core_from_one_worker():
    assert ceil("process-pool", "cpu", 1, pool_size=2) == pytest.approx(2 / 0.02)
    assert ceil("process-pool", "cpu", 1, pool_size=1) == pytest.approx(1 / 0.02)
    assert ceil("process-pool", "cpu", 1, pool_size=8, cores=4) == pytest.approx(4 / 0.02)


def test_native_cpu_lets_threads_run_in_parallel():
    assert ceil("mixed", "cpu", 1, pool_size=4, cpu_kind="native", cores=4) == pytest.approx(4 / 0.02)
    assert ceil("thread-pool", "cpu", 1, pool_size=40, cpu_kind="native") == pytest.approx(2 / 0.02)
    # but not the inline targets
    assert ceil("correct-async", "cpu", 1, cpu_kind="native") == pytest.approx(1 / 0.02)


def test_cpu_capped_by_users():
    assert ceil("process-pool", "cpu", 4, users=1, pool_size=2) == pytest.approx(1 / 0.02)


def test_mixed_scenario_takes_the_tighter_of_latency_and_cpu():
    # fake-async: one request per worker, each L + C = 70 ms → 1 / 0.07
    assert ceil("fake-async", "mixed", 1) == pytest.approx(1 / 0.07)
    # correct-async: U / (L + C) = 32 / 0.07 = 457, but the loop computes inline: 1 / 0.02 = 50
    assert ceil("correct-async", "mixed", 1) == pytest.approx(50.0)
    # few users: latency-bound, 2 / 0.07 = 28.6 < 50
    assert ceil("correct-async", "mixed", 1, users=2) == pytest.approx(2 / 0.07)
    # process-pool with 2 processes on 2 cores: 2 / 0.02 = 100
    assert ceil("process-pool", "mixed", 1, pool_size=2) == pytest.approx(100.0)


def test_blocking_future_waits_like_fake_async():
    # /io: F calls run in parallel on P ≥ F threads, but the loop waits: W / L
    assert ceil("blocking-future", "io", 2, pool_size=4) == pytest.approx(2 / 0.05)
    # with P = 2 < F = 3 the calls take two rounds: W / (2L)
    assert ceil("blocking-future", "io", 1, pool_size=2) == pytest.approx(1 / 0.1)


def test_unknown_target_or_scenario_is_an_error():
    with pytest.raises(ValueError):
        ceil("nope", "io")
    with pytest.raises(ValueError):
        ceil("fake-async", "disk")


def test_zero_work_has_no_finite_ceiling():
    assert math.isinf(ceil("correct-async", "cpu", cpu_ms=0))


def test_upstream_calls_per_request():
    assert upstream_calls("io", 3) == 3
    assert upstream_calls("mixed", 3) == 1
    assert upstream_calls("cpu", 3) == 0


def test_window_stretches_slow_cells_only_within_bounds():
    # 6.67 rps: a queue cycle of 32 users is 4.8 s; 100 requests at 80% of it need 18.75 s
    warm, dur = window(5.0, 2.0, 32, 32 / 4.8, adapt=True)
    assert warm == pytest.approx(5.8, abs=0.05)
    assert dur == pytest.approx(18.8, abs=0.05)
    # fast cells keep the asked window
    assert window(5.0, 2.0, 32, 640.0, adapt=True) == (2.0, 5.0)
    # never beyond MAX_STRETCH × duration
    assert window(5.0, 2.0, 32, 0.5, adapt=True)[1] == pytest.approx(20.0)
    # fixed window when asked
    assert window(5.0, 2.0, 32, 1.0, adapt=False) == (2.0, 5.0)


# --- /db: Q queries of D seconds per request, B connections per worker (DESIGN.md's table) ---

DB = dict(db_queries=2, db_ms=20)  # Q·D = 40 ms


@pytest.mark.parametrize("target", ["fake-async", "blocking-future"])
@pytest.mark.parametrize("workers", [1, 2])
def test_db_blocking_targets_are_workers_over_q_times_d(target, workers):
    # W / (Q·D): 1 / 0.04 = 25 rps per worker, whatever the pool
    assert ceil(target, "db", workers, users=32, db_pool=10, **DB) == pytest.approx(workers * 25.0)


@pytest.mark.parametrize("target", ["correct-async", "process-pool", "mixed"])
def test_db_async_is_min_users_and_pool_over_q_times_d(target):
    # min(U, W·B) / (Q·D): pool 10 < 32 users → 10 / 0.04 = 250; 2 workers → 500
    assert ceil(target, "db", 1, users=32, db_pool=10, **DB) == pytest.approx(250.0)
    assert ceil(target, "db", 2, users=32, db_pool=10, **DB) == pytest.approx(500.0)
    # users below the pools: 40 users, 2 × 40 connections → 40 / 0.04 = 1000
    assert ceil(target, "db", 2, users=40, db_pool=40, **DB) == pytest.approx(1000.0)


@pytest.mark.parametrize("pool,expected", [(2, 50.0), (5, 125.0), (10, 250.0), (20, 500.0), (40, 1000.0)])
def test_db_pool_sweep_ceilings(pool, expected):
    # the acceptance sweep: 1 worker, 40 users, min(40, B) / 0.04
    assert ceil("correct-async", "db", 1, users=40, db_pool=pool, **DB) == pytest.approx(expected)


def test_db_thread_pool_is_min_users_threads_and_connections():
    # min(U, W·P, W·B) / (Q·D)
    assert ceil("thread-pool", "db", 1, users=32, pool_size=40, db_pool=10, **DB) == pytest.approx(250.0)
    assert ceil("thread-pool", "db", 2, users=32, pool_size=4, db_pool=10, **DB) == pytest.approx(200.0)
    assert ceil("thread-pool", "db", 2, users=6, pool_size=40, db_pool=10, **DB) == pytest.approx(150.0)


def test_db_capped_by_max_connections():
    # 4 workers × 40 connections wanted, but the server allows the targets 50: 50 / 0.04
    assert ceil("correct-async", "db", 4, users=200, db_pool=40, db_connections=50, **DB) \
        == pytest.approx(1250.0)
    assert ceil("thread-pool", "db", 4, users=200, pool_size=40, db_pool=40, db_connections=50, **DB) \
        == pytest.approx(1250.0)
    assert ceil("fake-async", "db", 4, users=200, db_pool=40, db_connections=2, **DB) == pytest.approx(50.0)


def test_db_other_query_shapes():
    # 4 queries of 5 ms = 20 ms per request: 1 worker, pool 3 → 150 rps
    assert ceil("correct-async", "db", 1, users=32, db_pool=3, db_queries=4, db_ms=5) == pytest.approx(150.0)
    assert upstream_calls("db", 3) == 0


def test_db_pool_defaults_per_driver():
    from targets import db_pool_max

    assert db_pool_max("correct-async", "asyncpg", None) == 10
    assert db_pool_max("correct-async", "psycopg", None) == 10
    assert db_pool_max("correct-async", "sqlalchemy", None) == 15  # QueuePool 5 + 10 overflow
    assert db_pool_max("thread-pool", "sqlalchemy", None) == 10  # sync targets ignore DB_DRIVER
    assert db_pool_max("mixed", "sqlalchemy", 4) == 4
