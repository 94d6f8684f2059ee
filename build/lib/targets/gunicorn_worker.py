"""gunicorn's uvicorn worker on the asyncio loop (`--server gunicorn --loop asyncio`).

uvicorn_worker.UvicornWorker resolves loop "auto" (uvloop when installed); this subclass changes only
the loop, so the two gunicorn cells differ in the loop alone (httptools either way).
"""

from uvicorn_worker import UvicornWorker


class AsyncioWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": "httptools"}
