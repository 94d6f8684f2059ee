"""A `def` route waiting on slow I/O: FastAPI runs it on anyio's default thread limiter, so with more
users than thread tokens the tokens, not the event loop, set the rate: min(users, tokens) / WAIT_S."""

import time

from fastapi import FastAPI

app = FastAPI(title="Slow def")

WAIT_S = 0.25


@app.get("/slow-def")
def slow_def():
    time.sleep(WAIT_S)  # sync I/O in a thread: holds one token, not the loop
    return {"ok": True}
