"""What every target shares: knobs from the environment, bounded query parameters, the upstream
URL, HTTP clients, calibrated CPU work, /health, and the one lifespan helper (`instrumented`).

Knobs are read once, at import, in every uvicorn worker, from the environment variables the
harness sets (which workers inherit). Their names, defaults and bounds are the knob table's
(harness/data/knobs.py: IO_MS, FANOUT, CPU_MS, CPU_KIND, POOL_SIZE, HTTP_CONNECTIONS, HTTP_CLIENT, PROBE,
and the harness's own UPSTREAM_URL, METRICS_DIR, CPU_UNITS_PER_MS).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from harness.data.knobs import ENV_KNOBS, KNOBS
from targets import cpu_work
from targets.probe import CountRequests, WorkerProbe

# Bounds on request-controlled work, the same as the knobs' (harness/data/knobs.py): a query can never
# ask for minutes of waiting or CPU.
MAX_IO_MS = int(KNOBS["io_ms"].bounds[1])  # type: ignore[index]
MAX_FANOUT = int(KNOBS["fanout"].bounds[1])  # type: ignore[index]
MAX_CPU_MS = int(KNOBS["cpu_ms"].bounds[1])  # type: ignore[index]
HTTP_CLIENTS = tuple(KNOBS["http_client"].allowed())


@dataclass(frozen=True)
class Settings:
    """The knobs a worker reads at start: one field per env-var knob of the table (the table gives
    each one's variable, default and bounds; tests/test_targets.py checks the fields match)."""

    io_ms: int
    fanout: int
    cpu_ms: int
    cpu_kind: str
    pool_size: int | None
    upstream_url: str
    http_connections: int
    metrics_dir: str | None
    probe: bool
    cpu_units_per_ms: float | None
    http_client: str
    thread_tokens: int | None  # applied by the probe at start-up (targets/probe.py)
    # GET /db (targets/db.py); DB_URL is set by the harness for db cells only
    db_queries: int
    db_ms: int
    db_pool: int | None
    db_pool_timeout: float
    db_driver: str
    db_url: str | None

    @classmethod
    def from_env(cls) -> Settings:
        values = {k.name: k.from_env(os.environ) for k in ENV_KNOBS}
        values["upstream_url"] = values["upstream_url"].rstrip("/")
        return cls(**values)


settings = Settings.from_env()
probe = WorkerProbe(settings.metrics_dir, enabled=settings.probe)
_units_per_ms: dict[str, float] = {}


def pool_size(default: int) -> int:
    """POOL_SIZE if set, else the target's own documented default."""
    return settings.pool_size or default


# --- request parameters (async dependencies: a sync one would itself run in the thread pool) ---

@dataclass(frozen=True)
class Work:
    io_ms: int
    fanout: int
    cpu_ms: int

    def delay_url(self) -> str:
        return f"{settings.upstream_url}/delay?ms={self.io_ms}"

    def cpu_units(self) -> int:
        return round(self.cpu_ms * _units_per_ms[settings.cpu_kind])


async def _work(
    io_ms: Annotated[int | None, Query(ge=0, le=MAX_IO_MS, description="upstream wait per call")] = None,
    fanout: Annotated[int | None, Query(ge=1, le=MAX_FANOUT, description="upstream calls (/io)")] = None,
    cpu_ms: Annotated[int | None, Query(ge=0, le=MAX_CPU_MS, description="CPU milliseconds")] = None,
) -> Work:
    return Work(
        io_ms=settings.io_ms if io_ms is None else io_ms,
        fanout=settings.fanout if fanout is None else fanout,
        cpu_ms=settings.cpu_ms if cpu_ms is None else cpu_ms,
    )


WorkParams = Annotated[Work, Depends(_work)]


# --- the work itself ---

def compute(work: Work, data: object = None) -> dict:
    """The CPU stage: `work.cpu_ms` of calibrated CPU, then a small result built from `data`."""
    t0 = time.perf_counter()
    value, cpu_time_ms = cpu_work.timed_burn(work.cpu_units(), settings.cpu_kind)
    probe.record_cpu((time.perf_counter() - t0) * 1000, cpu_time_ms)
    return {"processed": True, "score": len(str(data)) if data is not None else 0, "value": value}


def cpu_job(work: Work) -> tuple:
    """(function, *args) for an executor: plain values only, so it pickles for process pools.
    Its result goes through `job_value`."""
    return (cpu_work.timed_burn, work.cpu_units(), settings.cpu_kind)


def job_value(result: tuple[int, float]) -> int:
    """The value of a finished `cpu_job`; records the CPU time the pool process spent on it."""
    value, cpu_time_ms = result
    probe.record_cpu(None, cpu_time_ms)
    return value


def client_limits() -> httpx.Limits:
    # Idle keep-alive connections stay at httpx's default of 20: httpcore 1.0 checks every idle
    # connection's socket on each request (encode/httpx#3215), so 100 idle ones cost more CPU than
    # the reconnects they save (measured here: 69 vs 387 rps at 96 concurrent calls).
    n = settings.http_connections
    return httpx.Limits(max_connections=n, max_keepalive_connections=min(n, 20))


CLIENT_TIMEOUT = httpx.Timeout(30.0)


def _raise_for_status(response: httpx.Response) -> None:
    response.raise_for_status()  # an upstream error must never count as a served request


async def _araise_for_status(response: httpx.Response) -> None:
    response.raise_for_status()


def sync_client() -> httpx.Client:
    """The blocking client (the `requests`-style call the article warns about inside async def)."""
    return httpx.Client(timeout=CLIENT_TIMEOUT, limits=client_limits(),
                        event_hooks={"response": [_raise_for_status]})


def async_client() -> httpx.AsyncClient | AiohttpClient:
    """One shared async client per worker, created in lifespan (never one per request).

    httpx.AsyncClient by default (the article's); HTTP_CLIENT=aiohttp swaps in aiohttp behind the
    same two calls, to tell the cost of the pattern from the cost of the client library.
    """
    if settings.http_client == "aiohttp":
        return AiohttpClient(settings.http_connections)
    return httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=client_limits(),
                             event_hooks={"response": [_araise_for_status]})


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def json(self) -> object:
        return json.loads(self._data)


class AiohttpClient:
    """aiohttp.ClientSession offering what the targets use of httpx: `await get(url)` → `.json()`."""

    def __init__(self, connections: int) -> None:
        self._connections = connections
        self._session: Any = None  # an aiohttp.ClientSession once entered

    async def __aenter__(self) -> AiohttpClient:
        import aiohttp  # only the workers that use it pay for the import

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT.read), raise_for_status=True)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    async def get(self, url: str) -> _Body:
        import aiohttp

        try:
            async with self._session.get(url) as response:
                return _Body(await response.read())
        except aiohttp.ClientError as exc:
            raise UpstreamError(str(exc)) from exc


async def async_io(work: WorkParams, request: Request) -> dict:
    """GET /io of every target whose I/O is asynchronous: the worker's one shared async client,
    FANOUT upstream calls awaited together (asyncio.gather), so a request takes one IO_MS."""
    client = request.app.state.client
    responses = await asyncio.gather(*(client.get(work.delay_url()) for _ in range(work.fanout)))
    return {"results": [r.json() for r in responses]}


# --- app construction ---

async def health() -> dict:
    # The pid lets the harness's probe tell which worker answered (and hold one connection each).
    return {"status": "ok", "pid": os.getpid()}


class UpstreamError(Exception):
    """An upstream call failed in a client other than httpx (the cause is chained)."""


async def _upstream_failed(request: Request, exc: Exception) -> JSONResponse:
    cause = exc.__cause__ if isinstance(exc, UpstreamError) and exc.__cause__ else exc
    return JSONResponse({"detail": f"upstream call failed: {type(cause).__name__}"}, status_code=502)


def make_app(title: str, description: str, lifespan) -> FastAPI:
    """A FastAPI app with /health, the request counter and upstream errors mapped to 502."""
    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_exception_handler(httpx.HTTPError, _upstream_failed)
    app.add_exception_handler(UpstreamError, _upstream_failed)
    app.add_exception_handler(json.JSONDecodeError, _upstream_failed)  # only upstream bodies are decoded
    if probe.enabled:
        app.add_middleware(CountRequests, probe=probe)
    return app


@asynccontextmanager
async def instrumented(app: FastAPI, pool_gauge=None) -> AsyncIterator[None]:
    """Innermost lifespan layer of every target: calibrate CPU work, start the probe, mark ready.

    Targets create their clients and pools *outside* this block, so "ready" means fully set up.
    """
    # The harness calibrates once per run and passes the rate, so every cell does the same work
    # (a worker calibrating while a neighbour core is busy would measure a slower machine).
    given = settings.cpu_units_per_ms
    _units_per_ms[settings.cpu_kind] = given or cpu_work.calibrate(settings.cpu_kind)
    probe.pool_gauge = pool_gauge
    probe.start()
    probe.mark_ready(target=app.title, units_per_ms=round(_units_per_ms[settings.cpu_kind], 1))
    try:
        yield
    finally:
        await probe.stop()


# --- executors ---

class InFlight:
    """Jobs handed to an executor and not finished yet (running + queued): the pool gauge."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> None:
        self.count += 1

    def __exit__(self, *exc) -> None:
        self.count -= 1

    def __call__(self) -> int:
        return self.count


def start_process_pool(size: int) -> ProcessPoolExecutor:
    """A process pool with an explicit start method, its children started before serving.

    uvicorn --workers 1 would inherit *fork* and --workers N *spawn*; fixing spawn makes both alike
    and keeps forked copies of the worker's threads out of the children.
    """
    pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))
    # Children spawn on demand: `size` concurrent jobs start them all now, not mid-measurement.
    list(pool.map(time.sleep, [0.05] * size))
    return pool
