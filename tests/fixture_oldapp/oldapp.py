"""A FastAPI 0.95 / pydantic 1 app (tests/test_app_env.py runs it under its own virtualenv with
--python): `BaseSettings` is pydantic 1's (pydantic 2 moved it out), so the harness's interpreter
cannot even import this module. Settings come from the environment (--env-file); /report fails
inside the app's own code, so the audit must name that exception and line."""

import time

from fastapi import FastAPI
from pydantic import BaseSettings


class Settings(BaseSettings):
    greeting: str  # required: set by the test's .env file
    data_file: str = "data.txt"


settings = Settings()
app = FastAPI()


@app.get("/hello")
async def hello():
    return {"greeting": settings.greeting}


@app.get("/slow")
async def slow():
    time.sleep(0.05)  # blocks the loop on purpose
    return {"ok": True}


@app.get("/report")
async def report():
    return {"report": parse_invoice("x")}


def parse_invoice(text: str) -> str:
    raise RuntimeError("invoice parser choked")
