"""A small FastAPI app of the kind the FastAPI tutorial builds, NOT written for the harness:
no probe, no /health of its own. The harness must tell its three routes apart from outside.

- GET /items/sync     plain `def`: FastAPI runs it in the thread pool, so the loop stays free.
- GET /items/blocking `async def` that calls time.sleep: blocks the event loop (fake async).
- GET /items/awaiting `async def` that awaits asyncio.sleep: the loop stays free.
"""

import asyncio
import time

from fastapi import FastAPI

app = FastAPI(title="Items")

WAIT_S = 0.02

fake_items_db = [{"item_name": "Foo"}, {"item_name": "Bar"}, {"item_name": "Baz"}]


@app.get("/items/sync")
def read_items_sync(skip: int = 0, limit: int = 10):
    time.sleep(WAIT_S)
    return fake_items_db[skip: skip + limit]


@app.get("/items/blocking")
async def read_items_blocking(skip: int = 0, limit: int = 10):
    time.sleep(WAIT_S)
    return fake_items_db[skip: skip + limit]


@app.get("/items/awaiting")
async def read_items_awaiting(skip: int = 0, limit: int = 10):
    await asyncio.sleep(WAIT_S)
    return fake_items_db[skip: skip + limit]
