"""Three routes, three verdicts, for `bench.py audit` (tests/test_audit_run.py), written here:

- GET /slow-def          `def` on slow I/O: with more users than anyio's 40 thread tokens, the tokens
                         set the rate (limited by the thread pool).
- GET /blocking          `async def` that calls time.sleep: blocks the event loop.
- GET /things/{thing_id} no thing exists: every request answers 404 (failing).
"""

import asyncio
import time
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path

app = FastAPI(title="Three kinds")

SLOW_S = 0.25
BLOCK_S = 0.02
THINGS: dict[int, str] = {}


@app.get("/slow-def")
def slow_def():
    time.sleep(SLOW_S)  # in a worker thread: holds one token, not the loop
    return {"ok": True}


@app.get("/blocking")
async def blocking():
    time.sleep(BLOCK_S)
    await asyncio.sleep(0)
    return {"ok": True}


@app.get("/things/{thing_id}")
async def read_thing(thing_id: Annotated[int, Path(examples=[7])]):
    if thing_id not in THINGS:
        raise HTTPException(status_code=404, detail="no such thing")
    return {"name": THINGS[thing_id]}
