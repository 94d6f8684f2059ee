"""Deliberately broken target apps for tests/test_reliability.py.

Each app is registered only inside a test (monkeypatch.setitem(targets.TARGETS, ...)) and runs in a
uvicorn subprocess started with --app-dir at the project root, so `tests.broken_targets` imports
there. The apps that do start are built like the real targets (common.make_app + instrumented) so
the harness's readiness check works on them.

  missing_app          does not exist (registered as "tests.broken_targets:missing_app")
  import_crash_app     raises while uvicorn imports it (module __getattr__ below)
  lifespan_crash_app   lifespan raises at start-up, before the worker is ready
  worker_exit_app      serves normally, then os._exit(EXIT_CODE) 0.5 s after its first work request
  pool_exit_app        as worker_exit_app, but the worker owns a ProcessPoolExecutor (children that
                       must not outlive it) and offloads /cpu to it
  stubborn_app         serves normally, but the worker and its pool children ignore SIGTERM, so only
                       the SIGKILL after the grace period stops them
  stubborn_pool_exit_app  as pool_exit_app, with pool children that ignore SIGTERM: once the worker
                       is gone, only a SIGKILL to its process group stops them
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager

from targets import common
from targets.common import WorkParams

EXIT_AFTER_S = 0.5  # serving time before a dying worker calls os._exit
EXIT_CODE = 17
LIFESPAN_MESSAGE = "simulated lifespan start-up failure"
IMPORT_MESSAGE = "simulated import-time failure"


def __getattr__(name: str):
    # uvicorn imports the module, then getattr()s the app: an exception other than AttributeError
    # here is what a target with a crashing import looks like to uvicorn.
    if name == "import_crash_app":
        raise RuntimeError(IMPORT_MESSAGE)
    raise AttributeError(name)


# --- lifespan crashes at start-up ----------------------------------------------------------------

@asynccontextmanager
async def _crashing_lifespan(app):
    raise RuntimeError(LIFESPAN_MESSAGE)
    yield  # pragma: no cover


lifespan_crash_app = common.make_app("broken-lifespan", "lifespan raises at start-up", _crashing_lifespan)


# --- a worker that dies mid-cell ------------------------------------------------------------------

class _Fuse:
    """Lit by the first work request; the worker exits EXIT_AFTER_S later."""

    def __init__(self) -> None:
        self.lit_at: float | None = None

    def light(self) -> None:
        if self.lit_at is None:
            self.lit_at = time.monotonic()

    async def burn(self) -> None:
        while self.lit_at is None:
            await asyncio.sleep(0.02)
        await asyncio.sleep(max(0.0, self.lit_at + EXIT_AFTER_S - time.monotonic()))
        os._exit(EXIT_CODE)  # no clean-up, no lifespan shutdown: a crash


def _dying_app(title: str, with_pool: bool, stubborn_pool: bool = False):
    fuse = _Fuse()

    @asynccontextmanager
    async def lifespan(app):
        pool = None
        if stubborn_pool:
            pool = _stubborn_pool()
        elif with_pool:
            pool = common.start_process_pool(2)
        app.state.pool = pool
        try:
            async with common.async_client() as client:
                app.state.client = client
                async with common.instrumented(app):
                    task = asyncio.get_running_loop().create_task(fuse.burn())
                    try:
                        yield
                    finally:
                        task.cancel()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    app = common.make_app(title, f"{title}: os._exit({EXIT_CODE}) {EXIT_AFTER_S} s into serving", lifespan)

    @app.get("/io")
    async def io(work: WorkParams):
        fuse.light()
        responses = await asyncio.gather(
            *(app.state.client.get(work.delay_url()) for _ in range(work.fanout)))
        return {"results": [r.json() for r in responses]}

    @app.get("/cpu")
    async def cpu(work: WorkParams):
        fuse.light()
        if app.state.pool is None:
            return common.compute(work)
        loop = asyncio.get_running_loop()
        return {"processed": True, "value": common.job_value(
            await loop.run_in_executor(app.state.pool, *common.cpu_job(work)))}

    @app.get("/mixed")
    async def mixed(work: WorkParams):
        fuse.light()
        data = (await app.state.client.get(work.delay_url())).json()
        return common.compute(work, data)

    return app




# --- SIGTERM ignored by the worker and its pool children ------------------------------------------

def _ignore_term() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stubborn_pool() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_term)
    list(pool.map(time.sleep, [0.05] * 2))  # start both children now
    return pool


@asynccontextmanager
async def _stubborn_lifespan(app):
    pool = _stubborn_pool()
    try:
        async with common.async_client() as client:
            app.state.client = client
            async with common.instrumented(app):
                # uvicorn installed its handlers before lifespan start-up; this one replaces them.
                _ignore_term()
                yield
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


stubborn_app = common.make_app("stubborn", "ignores SIGTERM, and so do its pool children", _stubborn_lifespan)


@stubborn_app.get("/io")
async def _stubborn_io(work: WorkParams):
    responses = await asyncio.gather(
        *(stubborn_app.state.client.get(work.delay_url()) for _ in range(work.fanout)))
    return {"results": [r.json() for r in responses]}


worker_exit_app = _dying_app("broken-worker-exit", with_pool=False)
pool_exit_app = _dying_app("broken-pool-exit", with_pool=True)
stubborn_pool_exit_app = _dying_app("broken-stubborn-pool-exit", with_pool=True, stubborn_pool=True)
