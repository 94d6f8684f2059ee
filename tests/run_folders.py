"""Builders for constructed run folders (results.csv + meta.json) used by the recommend/compare tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data import schema

DEFAULTS: dict[str, object] = dict(
    target="thread-pool", scenario="io", workers=1, users=32, loop="uvloop", pool_size=40, io_ms=100,
    cpu_ms=20, fanout=1, cpu_kind="python", http_client="httpx", http_connections=100, launch="uvicorn",
    server="uvicorn",
    probe=True, repeat=0, status="ok", error="", requests=1000, failures=0, fail_ratio=0.0, valid=True,
    invalid_reason="", warmup_s=2, duration_s=5, started_at="2026-01-01T00:00:00", raw_dir="raw/x",
    health_requests=50, health_p99_ms=5.0,
)


def row(**overrides: object) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys(schema.COLUMNS, np.nan)
    out.update(DEFAULTS)
    out.update(overrides)
    return out


def write_run(path: Path, rows: list[dict[str, object]], meta: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    extra = sorted({k for r in rows for k in r} - set(schema.COLUMNS))
    pd.DataFrame(rows, columns=[*schema.COLUMNS, *extra]).to_csv(path / "results.csv", index=False)
    if meta is not None:
        (path / "meta.json").write_text(json.dumps(meta))
    return path


def pool_sweep_rows(pools: list[int], users: int = 32, io_ms: float = 100.0,
                    repeats: int = 1) -> list[dict[str, object]]:
    """thread-pool /io as the model has it: rps = min(U, P)/L, latency = U/rps (closed loop)."""
    rows = []
    for pool in pools:
        rps = min(users, pool) / (io_ms / 1000) * (1.003 if pool > users else 1.0)
        for rep in range(repeats):
            r = rps * (1 + 0.004 * rep)
            mean = users / r * 1000
            p99 = mean * 1.08 + (pool > users)  # a larger idle pool: 1 ms worse, to break ties
            rows.append(row(pool_size=pool, repeat=rep, rps=r, p50_ms=mean, p99_ms=p99, requests=int(r * 5)))
    return rows
