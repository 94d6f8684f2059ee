"""When the harness cannot trust a cell: the reasons, in words a user can act on.

Failures and timeouts of the target are data (fail_ratio), not invalidity.
"""

from __future__ import annotations

import math

from harness import model

LOCUST_CPU_LIMIT = 90.0    # % of the one core a Locust process can use
UPSTREAM_SHARE_LIMIT = 0.5  # upstream demand above half its measured capacity


def invalid_reasons(row: dict, *, upstream_capacity_rps: float | None, probe: bool) -> list[str]:
    reasons = []
    if row.get("locust_cpu_pct", 0) >= LOCUST_CPU_LIMIT:
        reasons.append(f"load generator saturated ({row['locust_cpu_pct']:.0f}% of its core)")
    calls = model.upstream_calls(row["scenario"], row["fanout"]) * (row.get("rps") or 0)
    if upstream_capacity_rps and calls > UPSTREAM_SHARE_LIMIT * upstream_capacity_rps:
        reasons.append(f"upstream demand {calls:.0f} rps > half its capacity {upstream_capacity_rps:.0f} rps")
    if row.get("requests", 0) < 100:
        reasons.append(f"only {row.get('requests', 0)} requests in the window; p99 needs ≥ 100 "
                       "(lengthen --duration)")
    if probe and row.get("workers_seen", 0) < row["workers"]:
        reasons.append(f"only {row.get('workers_seen', 0)} of {row['workers']} workers reported")
    rps, ceiling = row.get("rps"), row.get("ceiling_rps")
    if rps and ceiling and math.isfinite(ceiling) and rps > 1.10 * ceiling:
        reasons.append(f"measured {rps:.0f} rps above the {ceiling:.0f} rps ceiling: the CPU ran faster "
                       "than calibrated (see cpu_speed_spread in meta.json) or a model/harness bug")
    return reasons
