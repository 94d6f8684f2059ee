"""charts/db_pool.png: the db scenario against its connection pool, drawn from results.csv alone.

x = connections per worker (DB_POOL, or the driver's default: 10, SQLAlchemy 5 + 10) when the
pool varies, else the users; one line per (target, driver, workers, and the other of the two).
Four panels: throughput with its ceiling, p99 latency, the time requests waited for a connection
(p99), and connections in use (in the worker and, from outside, in pg_stat_activity). A pool sweep
shows throughput rising to min(U, W·B)/(Q·D), p99 falling and pool wait collapsing; SQLAlchemy's
defaults show as a plateau at 15 connections.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from targets import DB_ASYNC_TARGETS, db_pool_max  # noqa: E402

PANELS = [
    ("rps", "throughput (successful requests/s)\ndashed = ceiling min(U, W·B)/(Q·D)"),
    ("p99_ms", "request latency p99 (ms)"),
    ("db_pool_wait_p99_ms", "waiting for a connection, p99 (ms)\n(measured in the worker)"),
    ("db_pool_busy_max", "connections in use\nsolid = most per worker, dotted = pg_stat_activity"),
]


def db_points(df: pd.DataFrame) -> pd.DataFrame:
    """The measured db rows with x (connections per worker), medians across repeats."""
    rows = df[(df["scenario"] == "db") & (df["status"] == "ok")].copy()
    if rows.empty:
        return rows
    rows["pool_per_worker"] = [
        db_pool_max(t, d, None if pd.isna(p) else int(p))
        for t, d, p in zip(rows["target"], rows["db_driver"].fillna("asyncpg"), rows["db_pool"], strict=True)]
    keys = ["target", "db_driver", "workers", "users", "pool_per_worker"]
    measures = ["rps", "ceiling_rps", "p99_ms", "db_pool_wait_p99_ms", "db_pool_busy_max", "db_active_max"]
    return rows.groupby(keys, dropna=False)[measures].median().reset_index()


def plot_db(df: pd.DataFrame, out: Path) -> Path | None:
    """Draw db_pool.png; None when the run has no measured db cell."""
    points = db_points(df)
    if points.empty:
        return None
    # x: the pool when it varies, else the users (SQLAlchemy's default pool: a plateau at 15)
    x_col = "pool_per_worker" if points["pool_per_worker"].nunique() > 1 or points["users"].nunique() < 2 \
        else "users"
    other = "users" if x_col == "pool_per_worker" else "pool_per_worker"
    fig, axes = plt.subplots(1, len(PANELS), figsize=(18, 4.8))
    for i, (key, s) in enumerate(points.groupby(["target", "db_driver", "workers", other], dropna=False)):
        target, driver, workers, fixed = key
        s = s.sort_values(x_col)
        color = plt.get_cmap("tab10")(i % 10)
        style = driver if target in DB_ASYNC_TARGETS else "psycopg, sync"
        fixed_text = f"U={fixed:g}" if other == "users" else f"pool {fixed:g}/worker"
        label = f"{target} ({style}), W={workers:g}, {fixed_text}"
        x = s[x_col]
        for ax, (col, _) in zip(axes, PANELS, strict=True):
            ax.plot(x, s[col], marker="o", color=color, label=label if col == "rps" else None)
        axes[0].plot(x, s["ceiling_rps"], linestyle="--", color=color, alpha=0.7)
        axes[3].plot(x, s["db_active_max"], linestyle=":", marker="s", color=color, alpha=0.8)
    for ax, (_, title) in zip(axes, PANELS, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("connections per worker (DB_POOL or the driver's default)" if x_col == "pool_per_worker"
                      else "concurrent users")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle("GET /db: throughput, latency and pool wait against the connection pool", fontweight="bold")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
