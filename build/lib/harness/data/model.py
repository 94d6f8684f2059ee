"""Analytic ceilings: the most requests/s a cell can serve, from its knobs alone (Little's law).

A request occupies a *slot* (the event loop, a thread token, ...) for `wall` seconds, and needs
`cpu` seconds of computation that can run on at most `cpu_parallel` cores at once. The ceiling is

    min( min(users, slots) / wall ,  min(users, cpu_parallel) / cpu )

Framework and client overheads are left out on purpose, so a ceiling is an upper bound: efficiency
(measured / ceiling) near 1 means the pattern is the limit, well below 1 means something else is
(CPU spent in the framework, the HTTP client, the load generator sharing the cores). A cell far
*above* 1 is a bug in the harness or in this model.

Symbols: W workers, U users, F fan-out, L upstream wait, C CPU cost, P pool size, H HTTP client
connections per worker, K cores available to the target, Q queries per /db request, D per-query
wait, B database pool per worker, M the connections the server lets the targets have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.data.scenarios import SCENARIOS
from targets import TARGETS

INF = math.inf


@dataclass(frozen=True)
class Demand:
    """How one request of a cell uses the server."""

    slots: float         # requests that can be in progress at once, server-wide
    wall_s: float        # time a request holds its slot, CPU contention aside
    cpu_s: float         # CPU time per request
    cpu_parallel: float  # requests whose CPU part can run simultaneously


def db_demand(concurrency: str, *, workers: int, pool_size: int | None, db_queries: int, db_ms: float,
              db_pool: int, db_connections: int | None = None) -> Demand:
    """/db: a request holds a connection for its whole transaction, Q·D.

    Blocking and blocked-future targets wait on the loop: W requests at once. Async drivers: W·B.
    Sync routes in threads: each request needs a thread token and a connection, W·min(P, B). All
    are capped by the connections the server lets the targets have (M).
    """
    W, B = workers, db_pool
    if concurrency in ("blocking", "blocked-future"):
        slots = W
    elif concurrency == "threads":
        slots = W * min(pool_size or 1, B)
    else:
        slots = W * B
    if db_connections is not None:
        slots = min(slots, db_connections)
    return Demand(slots, db_queries * db_ms / 1000, 0.0, 0.0)


def demand(target: str, scenario: str, *, workers: int, io_ms: float, cpu_ms: float, fanout: int,
           pool_size: int | None, cpu_kind: str, cores: int, http_connections: int = 100,
           db_queries: int = 2, db_ms: float = 20, db_pool: int = 10,
           db_connections: int | None = None) -> Demand:
    W, L, C, F, K, H = workers, io_ms / 1000, cpu_ms / 1000, fanout, cores, http_connections
    P = pool_size or 1
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    work = SCENARIOS[scenario]
    record = TARGETS.get(target)
    if record is None or record.concurrency is None:
        raise ValueError(f"no ceiling model for target {target!r}")
    if scenario == "db":
        return db_demand(record.concurrency, workers=W, pool_size=pool_size, db_queries=db_queries,
                         db_ms=db_ms, db_pool=db_pool, db_connections=db_connections)
    calls = work.calls(F)
    per_call_wall = L if calls else 0.0
    if not work.cpu:
        C = 0.0
    gil_free = cpu_kind == "native"
    # Where the CPU stage runs decides how many requests compute at once: inline on the worker's
    # loop (one per worker), in a thread pool (one per worker under the GIL, P with native work),
    # or in a process pool (W·P), never more than the cores.
    if record.pool_kind == "processes":
        cpu_parallel = min(W * P, K)
    elif record.pool_kind == "threads":
        cpu_parallel = min(W * P if gil_free else W, K)
    else:
        cpu_parallel = min(W, K)

    if record.concurrency == "blocking":
        # Everything blocks the loop: one request at a time per worker, calls in sequence.
        return Demand(W, calls * per_call_wall + C, C, min(W, K))
    if record.concurrency == "threads":
        # Each request holds a thread token; the sync client calls in sequence, one connection each.
        return Demand(W * min(P, H), calls * per_call_wall + C, C, cpu_parallel)
    if record.concurrency == "blocked-future":
        if not work.cpu and calls:
            # F calls go to P threads in parallel, but the loop waits on them: one request per worker.
            return Demand(W, math.ceil(calls / P) * L, 0.0, 0.0)
        # The upstream fetch is awaited; the CPU stage blocks the loop while the process computes.
        return Demand(INF if calls else W, calls * L + C, C, min(W, K))
    # async: upstream calls run concurrently (gather); each in-flight request needs `calls` connections.
    slots = W * (H // calls) if calls else INF
    return Demand(slots, per_call_wall + C, C, cpu_parallel)


def ceiling_from(d: Demand, users: int) -> float:
    limits = []
    if d.wall_s > 0:
        limits.append(min(users, d.slots) / d.wall_s)
    if d.cpu_s > 0:
        limits.append(min(users, d.cpu_parallel) / d.cpu_s)
    return min(limits) if limits else INF


def ceiling_rps(target: str, scenario: str, *, workers: int, users: int, io_ms: float, cpu_ms: float,
                fanout: int, pool_size: int | None, cpu_kind: str, cores: int,
                http_connections: int = 100, db_queries: int = 2, db_ms: float = 20, db_pool: int = 10,
                db_connections: int | None = None) -> float:
    """The analytic ceiling (requests/s) of one cell."""
    d = demand(target, scenario, workers=workers, io_ms=io_ms, cpu_ms=cpu_ms, fanout=fanout,
               pool_size=pool_size, cpu_kind=cpu_kind, cores=cores, http_connections=http_connections,
               db_queries=db_queries, db_ms=db_ms, db_pool=db_pool, db_connections=db_connections)
    return ceiling_from(d, users)


def upstream_calls(scenario: str, fanout: int) -> int:
    """Upstream requests each work request makes (for the upstream-capacity validity check)."""
    work = SCENARIOS.get(scenario)  # your own app's endpoints (--app/--url) call no upstream of ours
    return work.calls(fanout) if work else 0
