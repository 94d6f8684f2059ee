"""A cell is bound by its users only if more users would have been served as fast: across the run's
cells, a "users" bound is withdrawn where the same configuration at fewer users answered clearly faster.

bound_by is decided per cell (harness/judge/bottleneck.py), and in a closed loop the rate is always
about users / latency, so one cell alone cannot show that the users, not a queue, set it. Cells that
differ only in users can: while the users are the limit, latency stays put as they grow; once
requests queue for something (a pool, a lock, a thread, a core), the median grows with them. A cell
whose p50 is at least LATENCY_GROWTH times that of its configuration at the fewest users measured
is "unexplained", with those figures, in place of "users".
"""

from __future__ import annotations

import math

import pandas as pd

from harness.data import knobs

LATENCY_GROWTH = 1.5  # p50 ratio: on 2 shared cores a users-bound route's median moves by tens of percent
USERS_BOUNDS = ("users", "pattern: users")
# Cells compared: every parameter but the users, the repeat, and the load processes (a saturated cell's
# re-run with more load processes is the same configuration).
_SAME = [c for c in knobs.PARAM_COLUMNS if c not in ("users", "repeat", "load_processes")]


def withdraw_grown(df: pd.DataFrame) -> pd.DataFrame:
    """`df` (results.csv's rows) with a "users" bound replaced where latency grew with the users."""
    needed = {"bound_by", "bound_detail", "users", "p50_ms", "status"}
    if df.empty or not needed <= set(df.columns):
        return df
    keys = [c for c in _SAME if c in df.columns]
    ok = df[df["status"] == "ok"]
    ident = pd.Series([repr(tuple(v)) for v in ok[keys].itertuples(index=False)], index=ok.index,
                      dtype=object)
    p50 = pd.to_numeric(ok["p50_ms"], errors="coerce")
    users = pd.to_numeric(ok["users"], errors="coerce")
    medians = pd.DataFrame({"ident": ident, "users": users, "p50": p50}).groupby(
        ["ident", "users"])["p50"].median()
    out = df.copy()
    for i in ok.index[ok["bound_by"].astype(str).isin(USERS_BOUNDS)]:
        fewer = [(u, p) for (key, u), p in medians.items()
                 if key == ident[i] and u < users[i] and math.isfinite(p) and p > 0]
        if not fewer or not math.isfinite(p50[i]):
            continue
        u0, p0 = min(fewer)  # the fewest users: the route's own latency, with the least queueing
        growth = p50[i] / p0
        if growth >= LATENCY_GROWTH:
            out.at[i, "bound_by"] = "unexplained"
            out.at[i, "bound_detail"] = (
                f"not the users: p50 grew ×{growth:.1f} from {p0:.0f} ms at {u0:.0f} users to "
                f"{p50[i]:.0f} ms at {users[i]:.0f}, so requests queued for something no rule named; was: "
                f"{df.at[i, 'bound_by']}: {df.at[i, 'bound_detail']}")
    return out
