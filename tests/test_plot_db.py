"""charts/db_pool.png from constructed rows: x is connections per worker, medians across repeats."""

from __future__ import annotations

import math

import pandas as pd

from harness.answer.aggregate import coerce
from harness.data.schema import COLUMNS
from harness.present.plot_db import db_points, plot_db


def rows() -> pd.DataFrame:
    out = []
    for pool, rps in [(2, 48.0), (5, 120.0), (None, 240.0)]:
        for repeat, jitter in [(1, -2.0), (2, 2.0)]:
            r = {c: math.nan for c in COLUMNS}
            r.update(target="correct-async", scenario="db", workers=1, users=40, loop="uvloop",
                     cpu_kind="python", http_client="httpx", launch="uvicorn", probe=True, db_queries=2,
                     db_ms=20, db_pool=pool, db_driver="sqlalchemy" if pool is None else "asyncpg",
                     repeat=repeat, status="ok", error="", valid=True, invalid_reason="", rps=rps + jitter,
                     ceiling_rps=(pool or 15) / 0.04, db_pool_busy_max=pool or 15, db_active_max=pool or 15,
                     started_at="", raw_dir="")
            out.append(r)
    io = dict(out[0], scenario="io", db_pool=None)
    return coerce(pd.DataFrame(out + [io]))


def test_points_use_the_drivers_default_pool_and_medians():
    points = db_points(rows())
    assert len(points) == 3  # the io row is not a db point
    by_pool = points.set_index("pool_per_worker")
    assert sorted(by_pool.index) == [2, 5, 15]
    assert by_pool.loc[15, "db_driver"] == "sqlalchemy"  # SQLAlchemy's 5 + 10 when DB_POOL is unset
    assert by_pool.loc[2, "rps"] == 48.0 and by_pool.loc[15, "rps"] == 240.0  # median of ±2


def test_plot_db_draws_a_png_or_nothing(tmp_path):
    out = plot_db(rows(), tmp_path / "db_pool.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_db(rows().query("scenario != 'db'"), tmp_path / "none.png") is None


def test_db_validity_and_bound_by_name_the_database():
    from harness.judge import bottleneck, validity

    row = dict(target="correct-async", scenario="db", workers=1, users=40, fanout=3, rps=240.0, requests=1200,
               db_queries=2, db_ms=20, db_pool=None, db_driver="sqlalchemy", io_ms=50, cpu_ms=20,
               pool_size=None, cpu_kind="python", http_connections=100, workers_seen=1)
    # 240 rps × 2 queries = 480 queries/s: fine against 1000, too much for half of 800
    assert validity.invalid_reasons(row, upstream_capacity_rps=None, probe=True, db_capacity_qps=1000) == []
    [reason] = validity.invalid_reasons(row, upstream_capacity_rps=None, probe=True, db_capacity_qps=800)
    assert "database demand 480 queries/s > half its capacity 800" in reason
    # the model's smallest term: SQLAlchemy's 15 connections, fewer than the 40 users
    part, why = bottleneck.pattern_part(row, cores=2)
    assert part == "database pool" and why.startswith("15 connections")
    assert bottleneck.pattern_part({**row, "db_pool": 40}, cores=2)[0] == "users"


def test_plot_db_draws_a_users_sweep_at_one_pool(tmp_path):
    df = rows()
    df = df[(df["scenario"] == "db") & df["db_pool"].isna()].assign(users=[20, 40])  # SQLAlchemy's 15
    points = db_points(df)
    assert list(points["pool_per_worker"]) == [15, 15] and list(points["users"]) == [20, 40]
    assert plot_db(df, tmp_path / "db_pool.png") is not None
