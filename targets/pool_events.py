"""The app's own SQLAlchemy pools, watched from the wrapper through SQLAlchemy's pool events.

`install()` listens at class level (`event.listen(Pool, "checkout" / "checkin")`), so every engine
the app creates is seen without a change to the app; without SQLAlchemy importable it returns None
and nothing else happens (this module imports with the standard library alone, on Python >= 3.9).

Per pool it keeps the connections out, its capacity (`pool_size` + `max_overflow`; an unbounded
overflow has none) and the time every connection was out, integrated at each event (exact, not
sampled). A checkout's wait is the time from the request's arrival at the wrapper (a context
variable, which anyio copies into the `def` route's thread) to its first checkout: it includes any
thread-token wait and the app code before the query, so it bounds the pool wait from above. The
probe writes `take()` into each line: app_pool_size, app_pool_out_max, app_pool_full_ms,
app_pool_span_ms, app_pool_wait_ms, app_pool_hold_ms (checkout to checkin, each).
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

# (arrival perf_counter time, the watches that saw its first checkout) of the request this context
# serves. Per watch, not one flag: with two watches listening (two wrapped apps in one process), the
# first to see the checkout would otherwise hide it from the other.
_REQUEST: contextvars.ContextVar[tuple[float, set[int]] | None] = contextvars.ContextVar(
    "bench_request", default=None)


def request_started() -> None:
    """Called by the wrapper as a request arrives: its checkouts measure their wait from here."""
    _REQUEST.set((time.perf_counter(), set()))


class _PoolState:
    __slots__ = ("capacity", "out", "out_max", "full_ms", "since")

    def __init__(self, capacity: float) -> None:
        self.capacity = capacity
        self.out = 0
        self.out_max = 0
        self.full_ms = 0.0
        self.since = time.perf_counter()

    def step(self, now: float, delta: int) -> None:
        if self.out >= self.capacity:
            self.full_ms += (now - self.since) * 1000
        self.since = now
        self.out = max(0, self.out + delta)
        self.out_max = max(self.out_max, self.out)


def _capacity(pool: Any) -> float:
    try:
        size = int(pool.size())
        overflow = int(getattr(pool, "_max_overflow", 0))
    except (AttributeError, TypeError, ValueError):  # a pool without a size (NullPool, StaticPool)
        return float("inf")
    return float("inf") if overflow < 0 else float(size + overflow)


class PoolWatch:
    """Pool figures since the last take(), for every pool that checked a connection out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[int, _PoolState] = {}
        self._records: dict[int, tuple[int, float]] = {}  # connection record → (its pool, checked out at)
        self._waits: list[float] = []
        self._holds: list[float] = []
        self._last = time.perf_counter()

    def on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        now = time.perf_counter()
        pool = getattr(proxy, "_pool", None)
        if pool is None:
            return
        request = _REQUEST.get()
        with self._lock:
            state = self._pools.get(id(pool))
            if state is None:
                state = self._pools[id(pool)] = _PoolState(_capacity(pool))
            state.step(now, +1)
            self._records[id(record)] = (id(pool), now)
            if request is not None and id(self) not in request[1]:
                request[1].add(id(self))
                self._waits.append((now - request[0]) * 1000)

    def on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            pool_id, since = self._records.pop(id(record), (-1, now))
            state = self._pools.get(pool_id)
            if state is not None:
                state.step(now, -1)
                self._holds.append((now - since) * 1000)

    def take(self) -> dict:
        """The figures since the last take (the probe's line), then start afresh."""
        now = time.perf_counter()
        with self._lock:
            for state in self._pools.values():
                state.step(now, 0)
            bounded = [s for s in self._pools.values() if s.capacity != float("inf")]
            out = {"app_pool_size": sum(s.capacity for s in bounded) if bounded else None,
                   "app_pool_out_max": max((s.out_max for s in self._pools.values()), default=None),
                   # the worst pool's time at its limit: one full pool holds its requests back
                   "app_pool_full_ms": round(max((s.full_ms for s in bounded), default=0.0), 1),
                   "app_pool_span_ms": round((now - self._last) * 1000, 1),
                   "app_pool_wait_ms": [round(w, 2) for w in self._waits],
                   "app_pool_hold_ms": [round(h, 2) for h in self._holds]}
            for state in self._pools.values():
                state.full_ms, state.out_max = 0.0, state.out
            self._waits, self._holds, self._last = [], [], now
        return out if self._pools else {}


def install() -> PoolWatch | None:
    """Listen to every SQLAlchemy pool's events; None when SQLAlchemy is not importable."""
    try:
        from sqlalchemy import event
        from sqlalchemy.pool import Pool
    except ImportError:
        return None
    watch = PoolWatch()
    event.listen(Pool, "checkout", watch.on_checkout)
    event.listen(Pool, "checkin", watch.on_checkin)
    return watch


def uninstall(watch: PoolWatch) -> None:
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    event.remove(Pool, "checkout", watch.on_checkout)
    event.remove(Pool, "checkin", watch.on_checkin)
