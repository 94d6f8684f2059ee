"""process-pool: async I/O, CPU work awaited in a ProcessPoolExecutor (the article's advice for
pure computation, with the safe asynchronous wait the article only hints at).

Each uvicorn worker owns its own pool of POOL_SIZE processes (default: CPU count), created in
lifespan with an explicit start method: W workers × POOL_SIZE processes in total.

Expect in the charts: /io like correct-async; /cpu throughput up to min(W × POOL_SIZE, cores) /
CPU_MS — the only pattern that uses more than one core per worker for pure-Python CPU — and a
healthy /health while the CPU work runs, at the price of pickling and process start-up memory.
"""

import asyncio
from contextlib import asynccontextmanager

from targets import common, db, default_pool_size
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    app.state.inflight = common.InFlight()
    pool = common.start_process_pool(common.pool_size(default_pool_size("process-pool")))
    app.state.pool = pool
    try:
        async with common.async_client() as client, db.async_pool("process-pool") as db_pool:
            app.state.client, app.state.db = client, db_pool
            async with common.instrumented(app, pool_gauge=app.state.inflight):
                yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


app = common.make_app("process-pool", __doc__, lifespan)
db.install(app)


async def _offload(work) -> int:
    loop = asyncio.get_running_loop()
    with app.state.inflight:
        return common.job_value(await loop.run_in_executor(app.state.pool, *common.cpu_job(work)))


app.get("/io")(common.async_io)  # the shared async /io route (targets/common.py)


@app.get("/cpu")
async def cpu(work: WorkParams):
    return {"processed": True, "value": await _offload(work)}


@app.get("/mixed")
async def mixed(work: WorkParams):
    data = (await app.state.client.get(work.delay_url())).json()
    return {"processed": True, "score": len(str(data)), "value": await _offload(work)}


@app.get("/db")
async def db_route(work: DbParams):
    # Like correct-async: the pools here are for CPU work, the database is awaited.
    return await db.run_async(app.state.db, work)
