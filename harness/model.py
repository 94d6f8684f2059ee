"""Analytic ceilings: the most requests/s a cell can serve, from its knobs alone (Little's law).

A request occupies a *slot* (the event loop, a thread token, ...) for `wall` seconds, and needs
`cpu` seconds of computation that can run on at most `cpu_parallel` cores at once. The ceiling is

    min( min(users, slots) / wall ,  min(users, cpu_parallel) / cpu )

Framework and client overheads are left out on purpose, so a ceiling is an upper bound: efficiency
(measured / ceiling) near 1 means the pattern is the limit, well below 1 means something else is
(CPU spent in the framework, the HTTP client, the load generator sharing the cores). A cell far
*above* 1 is a bug in the harness or in this model.

Symbols: W workers, U users, F fan-out, L upstream wait, C CPU cost, P pool size, H HTTP client
connections per worker, K cores available to the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INF = math.inf

# Which targets wait asynchronously on upstream I/O (the loop is free while waiting)
ASYNC_IO = {"correct-async", "process-pool", "mixed"}


@dataclass(frozen=True)
class Demand:
    """How one request of a cell uses the server."""

    slots: float         # requests that can be in progress at once, server-wide
    wall_s: float        # time a request holds its slot, CPU contention aside
    cpu_s: float         # CPU time per request
    cpu_parallel: float  # requests whose CPU part can run simultaneously


def demand(target: str, scenario: str, *, workers: int, io_ms: float, cpu_ms: float, fanout: int,
           pool_size: int | None, cpu_kind: str, cores: int, http_connections: int = 100) -> Demand:
    W, L, C, F, K, H = workers, io_ms / 1000, cpu_ms / 1000, fanout, cores, http_connections
    P = pool_size or 1
    if scenario == "io":
        C = 0.0
        calls, per_call_wall = F, L
    elif scenario == "mixed":
        calls, per_call_wall = 1, L
    elif scenario == "cpu":
        calls, per_call_wall = 0, 0.0
    elif scenario == "health":  # no modelled work: framework overhead only, no finite ceiling
        C = 0.0
        calls, per_call_wall = 0, 0.0
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    gil_free = cpu_kind == "native"

    if target == "fake-async":
        # Everything blocks the loop: one request at a time per worker, calls in sequence.
        return Demand(W, calls * per_call_wall + C, C, min(W, K))
    if target == "thread-pool":
        # Each request holds a thread token; the sync client calls in sequence, one connection each.
        slots = W * min(P, H)
        return Demand(slots, calls * per_call_wall + C, C, min(W * P if gil_free else W, K))
    if target == "blocking-future":
        if scenario == "io":
            # F calls go to P threads in parallel, but the loop waits on them: one request per worker.
            return Demand(W, math.ceil(F / P) * L, 0.0, 0.0)
        # The upstream fetch is awaited; the CPU stage blocks the loop while the process computes.
        return Demand(INF if calls else W, calls * L + C, C, min(W, K))
    if target in ASYNC_IO:
        # Upstream calls run concurrently (gather); each in-flight request needs `calls` connections.
        slots = W * (H // calls) if calls else INF
        if target == "process-pool":
            cpu_parallel = min(W * P, K)
        elif target == "mixed":
            cpu_parallel = min(W * P if gil_free else W, K)
        else:  # correct-async computes inline, on the loop
            cpu_parallel = min(W, K)
        return Demand(slots, (L if calls else 0.0) + C, C, cpu_parallel)
    raise ValueError(f"no ceiling model for target {target!r}")


def ceiling_from(d: Demand, users: int) -> float:
    limits = []
    if d.wall_s > 0:
        limits.append(min(users, d.slots) / d.wall_s)
    if d.cpu_s > 0:
        limits.append(min(users, d.cpu_parallel) / d.cpu_s)
    return min(limits) if limits else INF


def ceiling_rps(target: str, scenario: str, *, workers: int, users: int, io_ms: float, cpu_ms: float,
                fanout: int, pool_size: int | None, cpu_kind: str, cores: int,
                http_connections: int = 100) -> float:
    """The analytic ceiling (requests/s) of one cell."""
    d = demand(target, scenario, workers=workers, io_ms=io_ms, cpu_ms=cpu_ms, fanout=fanout,
               pool_size=pool_size, cpu_kind=cpu_kind, cores=cores, http_connections=http_connections)
    return ceiling_from(d, users)


def upstream_calls(scenario: str, fanout: int) -> int:
    """Upstream requests each work request makes (for the upstream-capacity validity check)."""
    return {"io": fanout, "mixed": 1, "cpu": 0, "health": 0}[scenario]
