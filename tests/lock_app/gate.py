"""An app whose `async def` route queues behind an asyncio.Semaphore(2) held 50 ms, beside a plain
healthy route: the wait profile names the semaphore's line, and /ping gets no wait verdict."""

import asyncio

from fastapi import FastAPI

app = FastAPI(title="lock app")
GATE = asyncio.Semaphore(2)
HELD_S = 0.05


@app.get("/gated")
async def gated() -> dict:
    async with GATE:  # the line the wait profile names
        await asyncio.sleep(HELD_S)
    return {"ok": True}


@app.get("/ping")
async def ping() -> dict:
    return {"pong": True}
