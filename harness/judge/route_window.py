"""Each route's own figures in a window shared by several routes (the audit's screen cell): the
records of requests.csv grouped by the name each request was sent under (scenarios/screen.py
names it after its route), counted as the row's figures are (a request belongs to the window
when it completes inside it; harness/judge/collect.py). Written to raw/<cell>/routes.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.judge.collect import DROPPED, NOT_WORK, latency_stats, read_records

ROUTES_FILE = "routes.csv"
COLUMNS = ["route", "requests", "failures", "fail_ratio", "rps", "p50_ms", "p99_ms", "max_ms"]


def by_route(records: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    """One row per work name seen anywhere in the records (a name with no request completed in the
    window has requests 0): requests, failures, their share, rps (successes per second), p50, p99."""
    work = records[~records["name"].isin(NOT_WORK | {DROPPED})]
    inside = work[(work["end"] >= t0) & (work["end"] < t1)]
    rows = []
    for name in dict.fromkeys(work["name"]):
        mine = inside[inside["name"] == name]
        ok = mine.loc[mine["ok"] == 1, "ms"].to_numpy()
        failed = int((mine["ok"] == 0).sum())
        stats = latency_stats(ok, failed)
        rows.append({"route": name, "requests": len(mine), "failures": failed,
                     "fail_ratio": failed / len(mine) if len(mine) else float("nan"),
                     "rps": len(ok) / (t1 - t0), "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"],
                     "max_ms": stats["max_ms"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def write(raw_dir: Path, t0: float, t1: float) -> pd.DataFrame:
    table = by_route(read_records(raw_dir / "requests.csv"), t0, t1)
    table.to_csv(raw_dir / ROUTES_FILE, index=False)
    return table


def read(raw_dir: Path) -> pd.DataFrame:
    """raw/<cell>/routes.csv (an empty table when the cell wrote none)."""
    path = raw_dir / ROUTES_FILE
    return pd.read_csv(path, dtype={"route": str}) if path.is_file() else pd.DataFrame(columns=COLUMNS)
