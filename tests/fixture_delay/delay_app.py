"""One async route whose wait comes from the environment, for `bench.py audit --baseline`
(tests/test_baseline.py): the same code audited with DELAY_MS=40 and then 52 is a route made 30%
slower; with the same DELAY_MS twice it is the same code twice."""

import asyncio
import os

from fastapi import FastAPI

app = FastAPI(title="Delay")

DELAY_S = float(os.environ.get("DELAY_MS", "40")) / 1000


@app.get("/wait")
async def wait():
    await asyncio.sleep(DELAY_S)  # awaits: the loop stays free, only the latency moves
    return {"ok": True}
