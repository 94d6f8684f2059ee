"""A 20-route FastAPI app for the audit's screen (docs/audit.md): 18 routes are fine, one blocks
the event loop, one fails. Not written for the harness: no probe, no /health of its own.

- 11 `async def` routes under /a/: a constant, a dict built from the query, an `await asyncio.sleep`;
- 7 plain `def` routes under /d/: FastAPI runs them in its thread pool, so the loop stays free;
- GET /blocking/sleep: `async def` that calls time.sleep (fake async);
- GET /failing: raises, so every request is a 500.
"""

import asyncio
import time

from fastapi import FastAPI

app = FastAPI(title="Shop")

WAIT_S = 0.02
CATALOGUE = [{"sku": f"sku-{i}", "price": i + 0.5} for i in range(20)]


@app.get("/a/ping")
async def ping():
    return {"ok": True}


@app.get("/a/catalogue")
async def catalogue(limit: int = 10):
    return CATALOGUE[:limit]


@app.get("/a/item")
async def item(sku: str = "sku-1"):
    return next((c for c in CATALOGUE if c["sku"] == sku), {})


@app.get("/a/wait")
async def wait():
    await asyncio.sleep(WAIT_S)
    return {"waited_s": WAIT_S}


@app.get("/a/short-wait")
async def short_wait():
    await asyncio.sleep(WAIT_S / 4)
    return {"waited_s": WAIT_S / 4}


@app.get("/a/total")
async def total():
    return {"total": sum(c["price"] for c in CATALOGUE)}


@app.get("/a/count")
async def count():
    return {"count": len(CATALOGUE)}


@app.get("/a/echo")
async def echo(text: str = "hello"):
    return {"text": text}


@app.get("/a/version")
async def version():
    return {"version": "1.0"}


@app.get("/a/status")
async def status():
    await asyncio.sleep(0)
    return {"status": "up"}


@app.get("/d/ping")
def d_ping():
    return {"ok": True}


@app.get("/d/catalogue")
def d_catalogue(limit: int = 10):
    return CATALOGUE[:limit]


@app.get("/d/wait")
def d_wait():
    time.sleep(WAIT_S)  # in a worker thread: the loop stays free
    return {"waited_s": WAIT_S}


@app.get("/d/total")
def d_total():
    return {"total": sum(c["price"] for c in CATALOGUE)}


@app.get("/d/count")
def d_count():
    return {"count": len(CATALOGUE)}


@app.get("/d/echo")
def d_echo(text: str = "hello"):
    return {"text": text}


@app.get("/d/version")
def d_version():
    return {"version": "1.0"}


@app.get("/blocking/sleep")
async def blocking_sleep():
    time.sleep(WAIT_S)
    return {"slept_s": WAIT_S}


@app.get("/a/tags")
async def tags():
    return {"tags": sorted({c["sku"][:5] for c in CATALOGUE})}


@app.get("/failing")
async def failing():
    raise RuntimeError("the price feed is down")
