"""thread-pool: plain `def` routes, which FastAPI runs in anyio's worker-thread pool.

Blocking code is fine here: each request holds one of POOL_SIZE thread tokens (default 40, anyio's
own default, set in lifespan) instead of the event loop. The synchronous httpx.Client is shared by
the threads; its connection pool is HTTP_CONNECTIONS.

Expect in the charts: /io throughput about min(USERS, W × POOL_SIZE) / (FANOUT × IO_MS) with a
healthy /health; on pure-Python /cpu no gain over fake-async (the GIL lets one thread compute at a
time), but with CPU_KIND=native threads do run in parallel.
"""

from contextlib import asynccontextmanager

import anyio.to_thread
import httpx

from targets import common, db, default_pool_size
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    # The limiter belongs to the running loop, so it can only be resized in here.
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = common.pool_size(default_pool_size("thread-pool"))
    with common.sync_client() as client, db.sync_pool("thread-pool") as pool:
        app.state.client, app.state.db = client, pool
        async with common.instrumented(app, pool_gauge=lambda: int(limiter.borrowed_tokens)):
            yield


app = common.make_app("thread-pool", __doc__, lifespan)
db.install(app)


@app.get("/io")
def io(work: WorkParams):
    client: httpx.Client = app.state.client
    return {"results": [client.get(work.delay_url()).json() for _ in range(work.fanout)]}


@app.get("/cpu")
def cpu(work: WorkParams):
    return common.compute(work)


@app.get("/mixed")
def mixed(work: WorkParams):
    data = app.state.client.get(work.delay_url()).json()
    return common.compute(work, data)


@app.get("/db")
def db_route(work: DbParams):
    # Each request holds a thread token, then a connection: min(POOL_SIZE, DB_POOL) per worker.
    return db.run_sync(app.state.db, work)
