"""Registry of target apps: CLI name → one record (import string, what it shows, its pool).

Adding a target is one module plus one entry here. The sweep, the ceiling model, the charts and
the tests read these records. Kept free of heavy imports: process-pool children import
`targets.cpu_work` through this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

PoolKind = Literal["threads", "processes", "none"]
# How a request waits on upstream I/O, for the ceiling model (harness/data/model.py):
#   blocking        the call blocks the event loop: one request at a time per worker
#   threads         each request holds a thread token (sync routes in anyio's pool)
#   async           awaited; calls of one request overlap (asyncio.gather)
#   blocked-future  handed to a pool, then waited for with .result() on the loop
Concurrency = Literal["blocking", "threads", "async", "blocked-future"]


@dataclass(frozen=True)
class Target:
    app: str                           # uvicorn import string
    description: str
    concurrency: Concurrency | None    # None: no ceiling model (e.g. a target a test registers)
    pool_kind: PoolKind = "none"       # what POOL_SIZE sizes: the CPU stage's threads or processes
    pool_default: int | Literal["cpu"] | None = None  # "cpu": os.cpu_count()
    core: bool = True                  # in the default sweep

    def default_pool_size(self) -> int | None:
        if self.pool_kind == "none":
            return None
        return (os.cpu_count() or 1) if self.pool_default == "cpu" else self.pool_default


TARGETS: dict[str, Target] = {
    "fake-async": Target(
        "targets.fake_async:app",
        "async def + synchronous client/CPU inline: blocks the event loop (the anti-pattern)",
        concurrency="blocking"),
    "correct-async": Target(
        "targets.correct_async:app",
        "async def + shared httpx.AsyncClient + asyncio.gather; CPU inline (async does not help CPU)",
        concurrency="async"),
    "thread-pool": Target(
        "targets.thread_pool:app",
        "plain def routes in anyio's thread pool (POOL_SIZE tokens) + synchronous client",
        concurrency="threads", pool_kind="threads", pool_default=40),  # anyio's own limiter size
    "process-pool": Target(
        "targets.process_pool:app",
        "async I/O + CPU offloaded with await run_in_executor(ProcessPoolExecutor(POOL_SIZE))",
        concurrency="async", pool_kind="processes", pool_default="cpu"),
    "mixed": Target(
        "targets.mixed:app",
        "two-stage: async I/O, then CPU in await run_in_executor(ThreadPoolExecutor(POOL_SIZE))",
        concurrency="async", pool_kind="threads", pool_default=4),  # the article's max_workers=4
    "blocking-future": Target(
        "targets.blocking_future:app",
        "the article's /process: executor.submit(...).result() inside async def blocks the loop",
        # the article's ProcessPoolExecutor(max_workers=os.cpu_count())
        concurrency="blocked-future", pool_kind="processes", pool_default="cpu", core=False),
}


# --- the database endpoint (GET /db): which targets take DB_DRIVER, and each driver's pool size ---

# Targets whose /db awaits an async driver (DB_DRIVER picks it); the others use a synchronous
# psycopg pool in their own style (inline in async def, in anyio's threads, behind future.result()).
DB_ASYNC_TARGETS = tuple(name for name, t in TARGETS.items() if t.concurrency == "async")
DB_DRIVERS = ("asyncpg", "psycopg", "sqlalchemy")
DB_POOL_DEFAULT = 10  # asyncpg create_pool's own default (min = max = 10); used for psycopg pools too
SQLALCHEMY_POOL_DEFAULT = (5, 10)  # QueuePool pool_size + max_overflow when DB_POOL is not set


def db_pool_max(target: str, driver: str | None, db_pool: int | None) -> int:
    """The most connections one worker of `target` may hold on /db (DB_POOL, else the default)."""
    if db_pool is not None:
        return db_pool
    record = TARGETS.get(target)
    if record is not None and record.concurrency == "async" and driver == "sqlalchemy":
        return sum(SQLALCHEMY_POOL_DEFAULT)
    return DB_POOL_DEFAULT


def core_targets() -> list[str]:
    """The targets every default sweep compares (blocking-future is an extra demonstration)."""
    return [name for name, t in TARGETS.items() if t.core]


def default_pool_size(name: str) -> int | None:
    return TARGETS[name].default_pool_size()


def import_string(name: str) -> str:
    """uvicorn import string for a registered target name."""
    return TARGETS[name].app
