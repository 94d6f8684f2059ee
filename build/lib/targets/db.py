"""GET /db: DB_QUERIES × `SELECT pg_sleep(DB_MS / 1000.0)` inside one transaction, through a real
PostgreSQL driver and pool, in each target's own style.

  DB_URL          postgresql://... (set by the harness for db cells; unset: /db answers 503)
  DB_QUERIES (2)  queries per request               DB_MS (20)      pg_sleep per query, ms
  DB_POOL         connections per worker (default: 10; SQLAlchemy's own 5 + 10 overflow)
  DB_POOL_TIMEOUT (30) seconds to wait for a free connection; past it the request is a 503
  DB_DRIVER       the async targets' driver: asyncpg (default) | psycopg (async pool) | sqlalchemy

Two pool styles:
- `AsyncDb`: asyncpg `create_pool`, psycopg_pool's `AsyncConnectionPool` or SQLAlchemy's async
  engine (QueuePool), awaited on the event loop (correct-async, process-pool, mixed);
- `SyncDb`: psycopg_pool's `ConnectionPool`, blocking (fake-async calls it inside async def,
  thread-pool from anyio's threads, blocking-future behind `future.result()`).

Both measure, in the worker, how long each request waited for a connection and the most
connections checked out at once; the probe writes both (`db_wait_ms`, `db_busy`).

Why one module over 300 lines: the two pool styles and three drivers implement one endpoint
contract side by side, so that a reader compares them in one place (as the targets compare patterns).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from harness.data.knobs import KNOBS
from targets import SQLALCHEMY_POOL_DEFAULT, common, db_pool_max
from targets.common import probe

# Bounds on request-controlled work, the same as the knobs' (harness/data/knobs.py).
MAX_DB_QUERIES = int(KNOBS["db_queries"].bounds[1])  # type: ignore[index]
MAX_DB_MS = int(KNOBS["db_ms"].bounds[1])  # type: ignore[index]
APPLICATION_NAME = "bench-target"  # how the harness finds the targets' backends in pg_stat_activity
SQL = "SELECT pg_sleep({})"
# The DB_* knobs are read from targets.common.settings where they are used, never copied at import,
# so a test can swap the settings.


# --- request parameters ---

@dataclass(frozen=True)
class DbWork:
    queries: int
    seconds: float  # pg_sleep argument


async def _db_work(
    db_queries: Annotated[int | None, Query(ge=0, le=MAX_DB_QUERIES, description="queries")] = None,
    db_ms: Annotated[int | None, Query(ge=0, le=MAX_DB_MS, description="pg_sleep per query, ms")] = None,
) -> DbWork:
    q = common.settings.db_queries if db_queries is None else db_queries
    ms = common.settings.db_ms if db_ms is None else db_ms
    return DbWork(q, ms / 1000.0)


DbParams = Annotated[DbWork, Depends(_db_work)]


# --- in-worker measurement ---

class PoolUse:
    """Acquire waits and the most connections checked out at once, for the probe's writer thread.

    Updated from the loop or from request threads, hence the lock (held for a few operations)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.busy = 0
        self._busy_max = 0
        self._waits: list[float] = []

    def acquired(self, wait_ms: float) -> None:
        with self._lock:
            self.busy += 1
            self._busy_max = max(self._busy_max, self.busy)
            self._waits.append(wait_ms)

    def released(self) -> None:
        with self._lock:
            self.busy -= 1

    def take(self) -> dict:
        """The record fields since the last call (max resets to what is still in use)."""
        with self._lock:
            waits, self._waits = self._waits, []
            busy_max, self._busy_max = self._busy_max, self.busy
        return {"db_wait_ms": [round(w, 3) for w in waits], "db_busy": busy_max}


class PoolTimeout(Exception):
    """No connection became free within DB_POOL_TIMEOUT (any driver's own timeout, mapped)."""


class DbError(Exception):
    """The database call failed (the driver's exception is chained)."""


class NoDatabase(Exception):
    """/db on a target started without DB_URL."""


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"database pool exhausted: {exc}"}, status_code=503)


async def _db_failed(request: Request, exc: Exception) -> JSONResponse:
    cause = exc.__cause__ or exc
    return JSONResponse({"detail": f"database call failed: {type(cause).__name__}: {cause}"[:300]},
                        status_code=502)


async def _no_database(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


def _timeout_message(pool: int) -> str:
    return f"no connection free within DB_POOL_TIMEOUT={common.settings.db_pool_timeout:g} s (pool of {pool})"


def install(app: FastAPI) -> None:
    """Map pool timeouts (and a missing DB_URL) to 503, other database errors to 502 (never a crash
    or a hang)."""
    app.add_exception_handler(PoolTimeout, _pool_timeout)
    app.add_exception_handler(DbError, _db_failed)
    app.add_exception_handler(NoDatabase, _no_database)


class NoDb:
    """Stands in when DB_URL is unset (cells of other scenarios open no connections)."""

    def _refuse(self) -> None:
        raise NoDatabase("no database: DB_URL is not set (the harness sets it for db cells only)")

    async def run(self, work: DbWork) -> dict:
        self._refuse()
        return {}

    def run_sync(self, work: DbWork) -> dict:
        self._refuse()
        return {}


# --- async drivers ---

class AsyncDb:
    """One pool per worker, created in lifespan; `run` is one /db request."""

    def __init__(self, driver: str, size: int, use: PoolUse) -> None:
        self.driver, self.size, self.use = driver, size, use
        self._pool: Any = None  # the driver's pool (asyncpg, psycopg or an SQLAlchemy engine)

    async def open(self, url: str) -> None:
        if self.driver == "asyncpg":
            import asyncpg

            self._pool = await asyncpg.create_pool(
                url, min_size=self.size, max_size=self.size,
                server_settings={"application_name": APPLICATION_NAME})
        elif self.driver == "psycopg":
            from psycopg_pool import AsyncConnectionPool

            self._pool = AsyncConnectionPool(
                url, min_size=self.size, max_size=self.size, timeout=common.settings.db_pool_timeout,
                kwargs={"application_name": APPLICATION_NAME}, open=False)
            await self._pool.open(wait=True)
        else:  # sqlalchemy: its QueuePool, with its own defaults unless DB_POOL is set
            from sqlalchemy.engine import make_url
            from sqlalchemy.ext.asyncio import create_async_engine

            pool = common.settings.db_pool
            size, overflow = (pool, 0) if pool else SQLALCHEMY_POOL_DEFAULT
            self._pool = create_async_engine(
                make_url(url).set(drivername="postgresql+asyncpg"), pool_size=size, max_overflow=overflow,
                pool_timeout=common.settings.db_pool_timeout,
                connect_args={"server_settings": {"application_name": APPLICATION_NAME}})

    async def close(self) -> None:
        if self._pool is None:
            return
        if self.driver == "asyncpg":
            await self._pool.close()
        elif self.driver == "psycopg":
            await self._pool.close()
        else:
            await self._pool.dispose()

    async def run(self, work: DbWork) -> dict:
        sql = SQL.format(f"{work.seconds!r}::float8")
        t0 = time.perf_counter()
        if self.driver == "asyncpg":
            try:
                conn = await self._pool.acquire(timeout=common.settings.db_pool_timeout)
            except TimeoutError:
                raise PoolTimeout(_timeout_message(self.size)) from None
            self.use.acquired((time.perf_counter() - t0) * 1000)
            try:
                async with conn.transaction():
                    for _ in range(work.queries):
                        await conn.execute(sql)
            finally:
                self.use.released()
                await self._pool.release(conn)
        elif self.driver == "psycopg":
            from psycopg_pool import PoolTimeout as PsycopgTimeout

            try:
                async with self._pool.connection() as conn:
                    self.use.acquired((time.perf_counter() - t0) * 1000)
                    try:
                        async with conn.transaction():
                            for _ in range(work.queries):
                                await conn.execute(sql)
                    finally:
                        self.use.released()
            except PsycopgTimeout:
                raise PoolTimeout(_timeout_message(self.size)) from None
        else:
            from sqlalchemy import exc as sa_exc
            from sqlalchemy import text

            try:
                conn = await self._pool.connect()
            except sa_exc.TimeoutError as exc:
                raise PoolTimeout(f"{_timeout_message(self.size)}: {str(exc).split('(')[0].strip()}") \
                    from None
            self.use.acquired((time.perf_counter() - t0) * 1000)
            try:
                async with conn.begin():
                    for _ in range(work.queries):
                        await conn.execute(text(sql))
            finally:
                self.use.released()
                await conn.close()
        return {"queries": work.queries, "seconds": work.seconds}


# --- the synchronous pool ---

class SyncDb:
    """psycopg_pool.ConnectionPool: the blocking driver (safe in threads, a stall in async def)."""

    def __init__(self, size: int, use: PoolUse) -> None:
        self.size, self.use = size, use
        self._pool: Any = None

    def open(self, url: str) -> None:
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(url, min_size=self.size, max_size=self.size,
                                    timeout=common.settings.db_pool_timeout,
                                    kwargs={"application_name": APPLICATION_NAME}, open=False)
        self._pool.open(wait=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def run_sync(self, work: DbWork) -> dict:
        from psycopg_pool import PoolTimeout as PsycopgTimeout

        sql = SQL.format(f"{work.seconds!r}::float8")
        t0 = time.perf_counter()
        try:
            with self._pool.connection() as conn:
                self.use.acquired((time.perf_counter() - t0) * 1000)
                try:
                    with conn.transaction():
                        for _ in range(work.queries):
                            conn.execute(sql)
                finally:
                    self.use.released()
        except PsycopgTimeout:
            raise PoolTimeout(_timeout_message(self.size)) from None
        return {"queries": work.queries, "seconds": work.seconds}


def _wrap_errors(exc: Exception) -> None:
    """Driver errors (connection lost, server gone) become DbError → 502, never a 500 crash."""
    raise DbError(str(exc)) from exc


@asynccontextmanager
async def async_pool(target: str) -> AsyncIterator[AsyncDb | NoDb]:
    """The worker's async pool for /db (DB_DRIVER), opened before the worker reports ready."""
    settings = common.settings
    if not settings.db_url:
        yield NoDb()
        return
    use = PoolUse()
    db = AsyncDb(settings.db_driver, db_pool_max(target, settings.db_driver, settings.db_pool), use)
    await db.open(settings.db_url)
    probe.extra = use.take
    try:
        yield db
    finally:
        probe.extra = None
        await db.close()


@contextmanager
def sync_pool(target: str) -> Iterator[SyncDb | NoDb]:
    """The worker's synchronous psycopg pool for /db."""
    if not common.settings.db_url:
        yield NoDb()
        return
    use = PoolUse()
    db = SyncDb(db_pool_max(target, "psycopg", common.settings.db_pool), use)
    db.open(common.settings.db_url)
    probe.extra = use.take
    try:
        yield db
    finally:
        probe.extra = None
        db.close()


async def run_async(db: AsyncDb | NoDb, work: DbWork) -> dict:
    try:
        return await db.run(work)
    except (PoolTimeout, DbError, NoDatabase):
        raise
    except Exception as exc:  # noqa: BLE001 - any driver error is a 502 with its name
        _wrap_errors(exc)
        raise


def run_sync(db: SyncDb | NoDb, work: DbWork) -> dict:
    try:
        return db.run_sync(work)
    except (PoolTimeout, DbError, NoDatabase):
        raise
    except Exception as exc:  # noqa: BLE001
        _wrap_errors(exc)
        raise
