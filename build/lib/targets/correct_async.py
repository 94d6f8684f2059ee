"""correct-async: the whole I/O chain is asynchronous (the article's /fetch-data done right).

One httpx.AsyncClient is shared by the worker (created in lifespan, not per request) and the
FANOUT upstream calls run concurrently with asyncio.gather. CPU work stays inline: async does not
make computation faster, it only stops *waiting* from blocking.

Expect in the charts: /io throughput near USERS / IO_MS until the CPU saturates (httpx's own
overhead is then the limit), /health p99 in single-digit ms, tiny loop lag. On /cpu it behaves
exactly like fake-async: one request at a time per worker, /health stalls.
"""

from contextlib import asynccontextmanager

from targets import common, db
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    async with common.async_client() as client, db.async_pool("correct-async") as pool:
        app.state.client, app.state.db = client, pool
        async with common.instrumented(app):
            yield


app = common.make_app("correct-async", __doc__, lifespan)
db.install(app)


app.get("/io")(common.async_io)  # the shared async /io route (targets/common.py)


@app.get("/cpu")
async def cpu(work: WorkParams):
    # Inline on purpose: the lesson is that async does not help CPU-bound work.
    return common.compute(work)


@app.get("/mixed")
async def mixed(work: WorkParams):
    data = (await app.state.client.get(work.delay_url())).json()
    return common.compute(work, data)


@app.get("/db")
async def db_route(work: DbParams):
    # The async driver's pool (DB_DRIVER): waiting for a connection or a query frees the loop.
    return await db.run_async(app.state.db, work)
