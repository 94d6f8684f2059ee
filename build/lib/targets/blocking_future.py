"""blocking-future: the article's own /process example — work handed to an executor, then waited
for with `future.result()` inside `async def`. The wait blocks the event loop, so the pool's
parallelism is wasted: each worker still handles one request at a time.

/cpu and the compute stage of /mixed go to a ProcessPoolExecutor(POOL_SIZE, default CPU count);
/io submits its FANOUT calls to a ThreadPoolExecutor(POOL_SIZE) and blocks on each result.

Expect in the charts: despite the pools, throughput like fake-async (about W / IO_MS on /io,
W / CPU_MS on /cpu), a stalled /health and a large loop lag — the bug the harness exists to catch.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from targets import common, db, default_pool_size
from targets.common import WorkParams
from targets.db import DbParams


@asynccontextmanager
async def lifespan(app):
    size = common.pool_size(default_pool_size("blocking-future"))
    app.state.inflight = common.InFlight()
    app.state.processes = common.start_process_pool(size)
    try:
        with (
            ThreadPoolExecutor(max_workers=size) as threads,
            common.sync_client() as sync_client,
            db.sync_pool("blocking-future") as pool,
        ):
            app.state.db = pool
            async with common.async_client() as client:
                app.state.threads, app.state.sync_client, app.state.client = threads, sync_client, client
                async with common.instrumented(app, pool_gauge=app.state.inflight):
                    yield
    finally:
        app.state.processes.shutdown(wait=True, cancel_futures=True)


app = common.make_app("blocking-future", __doc__, lifespan)
db.install(app)


def _blocking_cpu(work) -> int:
    with app.state.inflight:
        future = app.state.processes.submit(*common.cpu_job(work))
        return common.job_value(future.result())  # the bug: blocks the event loop until the process finishes


@app.get("/io")
async def io(work: WorkParams):
    with app.state.inflight:
        futures = [app.state.threads.submit(app.state.sync_client.get, work.delay_url())
                   for _ in range(work.fanout)]
        return {"results": [f.result().json() for f in futures]}


@app.get("/cpu")
async def cpu(work: WorkParams):
    return {"processed": True, "value": _blocking_cpu(work)}


@app.get("/mixed")
async def mixed(work: WorkParams):
    data = (await app.state.client.get(work.delay_url())).json()
    return {"processed": True, "score": len(str(data)), "value": _blocking_cpu(work)}


@app.get("/db")
async def db_route(work: DbParams):
    # Its style: the transaction runs in a thread, and future.result() blocks the loop until it ends.
    with app.state.inflight:
        return app.state.threads.submit(db.run_sync, app.state.db, work).result()
