"""fake-async: `async def` routes that do blocking work — the anti-pattern the article warns about.

/io calls the upstream with a *synchronous* httpx.Client, one call after another, inside `async def`.
Each call blocks the worker's event loop, so a worker serves one request at a time.

Expect in the charts: /io throughput flat at about W / (FANOUT × IO_MS) however many users come,
latency growing with users, and /health p99 as bad as the work endpoint's (the loop is stalled for
everyone). Loop lag p99 in the hundreds of ms. Only more workers help.
"""

from contextlib import asynccontextmanager

import httpx

from targets import common, db
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    with common.sync_client() as client, db.sync_pool("fake-async") as pool:
        app.state.client, app.state.db = client, pool
        async with common.instrumented(app):
            yield


app = common.make_app("fake-async", __doc__, lifespan)
db.install(app)


@app.get("/io")
async def io(work: WorkParams):
    client: httpx.Client = app.state.client
    # Blocking call in async def: the event loop can do nothing else while this waits.
    results = [client.get(work.delay_url()).json() for _ in range(work.fanout)]
    return {"results": results}


@app.get("/cpu")
async def cpu(work: WorkParams):
    return common.compute(work)


@app.get("/mixed")
async def mixed(work: WorkParams):
    data = app.state.client.get(work.delay_url()).json()
    return common.compute(work, data)


@app.get("/db")
async def db_route(work: DbParams):
    # A synchronous driver in async def: the loop waits with every query (the article's claim 1).
    return db.run_sync(app.state.db, work)
