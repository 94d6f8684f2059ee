"""to-thread: a target registered by a test (tests/test_registry.py), to show that adding a target
is one module plus one registry entry. `async def` routes hand the blocking client and the CPU work
to `asyncio.to_thread`, whose executor (the loop's default) is sized by POOL_SIZE here.

Expect in the charts: like thread-pool, /io near min(USERS, W × POOL_SIZE) / (FANOUT × IO_MS), with
a responsive /health since the loop only awaits.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from targets import common, db, default_pool_size
from targets.common import WorkParams
from targets.db import DbParams

NAME = "to-thread"


@asynccontextmanager
async def lifespan(app):
    app.state.inflight = common.InFlight()
    size = common.pool_size(default_pool_size(NAME))
    with (ThreadPoolExecutor(max_workers=size) as executor, common.sync_client() as client,
          db.sync_pool(NAME) as pool):
        app.state.db = pool
        asyncio.get_running_loop().set_default_executor(executor)
        app.state.client = client
        async with common.instrumented(app, pool_gauge=app.state.inflight):
            yield


app = common.make_app(NAME, __doc__, lifespan)
db.install(app)


def _calls(work) -> list:
    return [app.state.client.get(work.delay_url()).json() for _ in range(work.fanout)]


@app.get("/io")
async def io(work: WorkParams):
    with app.state.inflight:
        return {"results": await asyncio.to_thread(_calls, work)}


@app.get("/cpu")
async def cpu(work: WorkParams):
    with app.state.inflight:
        return await asyncio.to_thread(common.compute, work)


@app.get("/mixed")
async def mixed(work: WorkParams):
    with app.state.inflight:
        data = await asyncio.to_thread(lambda: app.state.client.get(work.delay_url()).json())
        return await asyncio.to_thread(common.compute, work, data)


@app.get("/db")
async def db_route(work: DbParams):
    with app.state.inflight:
        return await asyncio.to_thread(db.run_sync, app.state.db, work)
