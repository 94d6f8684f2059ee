"""When the harness cannot trust a cell: the reasons, in words a user can act on.

A few failures are data; beyond FAIL_RATIO_LIMIT the latencies describe only the lucky requests
(failed ones have no latency), so the cell is not comparable to its neighbours.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from harness.data import model

LOCUST_CPU_LIMIT = 90.0    # % of the one core a Locust process can use
UPSTREAM_SHARE_LIMIT = 0.5  # upstream demand above half its measured capacity
FAIL_RATIO_LIMIT = 0.01
UNEVEN_SHARE = 1.5  # the busiest worker serving ≥ 1.5/W of the work: connections landed unevenly
BUSY_SHARE = 0.5    # a worker serving ≥ 0.5/W of the work is one the /health probe must reach
DB_SHARE_LIMIT = 0.5  # database queries above half the server's measured capacity


def _names(workers: pd.DataFrame) -> str:
    return ", ".join(str(w) for w in workers["worker"])


def worker_reasons(workers: pd.DataFrame | None, n_workers: int, launch: str = "reuseport") -> list[str]:
    """How the work and the /health probe spread over the workers (raw/<cell>/workers.csv)."""
    if workers is None or len(workers) == 0 or n_workers < 2:
        return []
    parts = []
    busiest = workers.loc[workers["work_share"].idxmax()] if workers["work_share"].notna().any() else None
    if busiest is not None and busiest["work_share"] >= UNEVEN_SHARE / n_workers:
        parts.append(f"connections uneven: worker {int(busiest['worker'])} served "
                     f"{busiest['work_share']:.0%} of requests (even is {1 / n_workers:.0%})"
                     + ("; uvicorn's shared socket, try --launch reuseport" if launch == "uvicorn" else
                        f"; {launch}'s own accept" if launch != "reuseport" else ""))
    busy = workers[workers["work_share"] >= BUSY_SHARE / n_workers]
    # The workers' own count of the /health requests they served: no probe request reached them.
    missed = busy[busy["health_served"] == 0]
    if len(missed):
        reached = workers[workers["health_served"] > 0]
        where = f"only worker {_names(reached)}" if len(reached) else "no worker"
        parts.append(f"/health reached {where}, not busy worker {_names(missed)}")
    return ["; ".join(parts)] if parts else []


def saturation_reason(busiest_pct: float) -> str:
    return f"load generator saturated ({busiest_pct:.0f}% of its core)"


_SATURATED_ONLY = re.compile(r"^load generator saturated \(\d+% of its core\)$")


def saturated_only(row: dict) -> bool:
    """A measured row distrusted for one reason alone: its (busiest) Locust process at its core's limit."""
    return (str(row.get("status")) == "ok" and str(row.get("valid")) not in ("True", "true", "1")
            and bool(_SATURATED_ONLY.match(str(row.get("invalid_reason") or ""))))


def invalid_reasons(row: dict, *, upstream_capacity_rps: float | None, probe: bool,
                    workers: pd.DataFrame | None = None, db_capacity_qps: float | None = None) -> list[str]:
    reasons = []
    fail_ratio = row.get("fail_ratio")
    if fail_ratio is not None and fail_ratio > FAIL_RATIO_LIMIT:
        top = f" (most: {row['fail_top']})" if row.get("fail_top") else ""
        reasons.append(f"{fail_ratio:.0%} of requests failed{top} (> {FAIL_RATIO_LIMIT:.0%}): latencies "
                       f"beyond the successes are unknown and rps counts successes only")
    # Per load process (--load-processes N gives each its own core): the busiest one decides.
    busiest = row.get("locust_cpu_max_pct")
    if busiest is None or busiest != busiest:
        busiest = row.get("locust_cpu_pct", 0)
    if busiest >= LOCUST_CPU_LIMIT:
        reasons.append(saturation_reason(busiest))
    if row.get("records_lost"):
        reasons.append(f"{row['records_lost']} request records of the load workers never reached the master")
    calls = model.upstream_calls(row["scenario"], row["fanout"]) * (row.get("rps") or 0)
    if upstream_capacity_rps and calls > UPSTREAM_SHARE_LIMIT * upstream_capacity_rps:
        reasons.append(f"upstream demand {calls:.0f} rps > half its capacity {upstream_capacity_rps:.0f} rps")
    if row["scenario"] == "db" and db_capacity_qps:
        queries = (row.get("rps") or 0) * row.get("db_queries", 0)
        if queries > DB_SHARE_LIMIT * db_capacity_qps:
            reasons.append(f"database demand {queries:.0f} queries/s > half its capacity "
                           f"{db_capacity_qps:.0f} queries/s")
    if row.get("requests", 0) < 100:
        reasons.append(f"only {row.get('requests', 0)} requests in the window; p99 needs ≥ 100 "
                       "(lengthen --duration)")
    if probe and row.get("workers_seen", 0) < row["workers"]:
        reasons.append(f"only {row.get('workers_seen', 0)} of {row['workers']} workers reported")
    if probe:
        # another --server has its own accept model: the reuseport hint is uvicorn's only
        server = row.get("server") or "uvicorn"
        reasons += worker_reasons(workers, row["workers"],
                                  row.get("launch", "uvicorn") if server == "uvicorn" else server)
    rps, ceiling = row.get("rps"), row.get("ceiling_rps")
    if rps and ceiling and math.isfinite(ceiling) and rps > 1.10 * ceiling:
        reasons.append(f"measured {rps:.0f} rps above the {ceiling:.0f} rps ceiling: the CPU ran faster "
                       "than calibrated (see cpu_speed_spread in meta.json) or a model/harness bug")
    cpu_ceiling = row.get("ceiling_cpu_rps")
    measured_cost = cpu_ceiling != ceiling
    if rps and cpu_ceiling and math.isfinite(cpu_ceiling) and measured_cost and rps > 1.10 * cpu_ceiling:
        reasons.append(f"measured {rps:.0f} rps above the {cpu_ceiling:.0f} rps allowed by the CPU time the "
                       "workers measured: a model or harness bug")
    return reasons
