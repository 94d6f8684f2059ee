"""mixed: the article's two-stage pattern — fetch asynchronously, then hand the computation to a
ThreadPoolExecutor with `await loop.run_in_executor(...)`.

POOL_SIZE threads per worker (default 4, the article's choice).

Expect in the charts: /io like correct-async; /health stays fast on /cpu and /mixed because the loop
only awaits. Pure-Python CPU still runs one thread at a time per worker (the GIL), so /cpu
throughput matches fake-async's; with CPU_KIND=native the threads run in parallel and it scales
with POOL_SIZE up to the core count.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from targets import common, db, default_pool_size
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    app.state.inflight = common.InFlight()
    with ThreadPoolExecutor(max_workers=common.pool_size(default_pool_size("mixed"))) as executor:
        app.state.executor = executor
        async with common.async_client() as client, db.async_pool("mixed") as db_pool:
            app.state.client, app.state.db = client, db_pool
            async with common.instrumented(app, pool_gauge=app.state.inflight):
                yield


app = common.make_app("mixed", __doc__, lifespan)
db.install(app)


async def _compute(work, data=None) -> dict:
    loop = asyncio.get_running_loop()
    with app.state.inflight:
        return await loop.run_in_executor(app.state.executor, common.compute, work, data)


app.get("/io")(common.async_io)  # the shared async /io route (targets/common.py)


@app.get("/cpu")
async def cpu(work: WorkParams):
    return await _compute(work)


@app.get("/mixed")
async def mixed(work: WorkParams):
    data = (await app.state.client.get(work.delay_url())).json()
    return await _compute(work, data)


@app.get("/db")
async def db_route(work: DbParams):
    # Like correct-async: the pools here are for CPU work, the database is awaited.
    return await db.run_async(app.state.db, work)
