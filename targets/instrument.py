"""The harness's in-worker probe for *any* ASGI app, without editing it: one line.

    from targets.instrument import instrument
    app = instrument(app)          # or: uvicorn targets.foreign:app with BENCH_APP=pkg.module:app

The wrapper adds what the built-in targets have (targets/probe.py): a loop-lag heartbeat, request
counts (work vs health) and a ready record, written by a thread to METRICS_DIR/worker-<pid>.jsonl.
It also answers HEALTH_PATH (`/_bench/health`) itself: a trivial answer on the worker's own event
loop, so its latency shows whether the app's loop is stalled, whatever the app's own routes do.

Everything else is passed through untouched. The probe starts once the app's own lifespan start-up
has completed (so "ready" means the app is set up) and stops before the app's shutdown. Without
METRICS_DIR (a deployment that does not run under the harness) the wrapper only serves
HEALTH_PATH. PROBE=0 switches the probe off, as for the built-in targets. With SQLAlchemy in the
app's interpreter, its pools' checkouts are watched too (targets/pool_events.py).
"""

from __future__ import annotations

import os

from targets import pool_events, wait_sampler
from targets.probe import WorkerProbe

HEALTH_PATH = "/_bench/health"


class Instrumented:
    """ASGI wrapper: probe lifespan around the app's own, request counting, an in-loop health answer."""

    def __init__(self, app, *, metrics_dir: str | None = None, health_path: str | None = None,
                 enabled: bool | None = None) -> None:
        self.app = app
        if enabled is None:
            enabled = os.environ.get("PROBE", "1") != "0"
        self.probe = WorkerProbe(metrics_dir if metrics_dir is not None else os.environ.get("METRICS_DIR"),
                                 enabled=enabled)
        # Requests to this path count as health, the rest as work (worker share is over work).
        self.health_path = health_path or os.environ.get("BENCH_HEALTH_PATH") or HEALTH_PATH
        self.label = getattr(app, "title", None) or type(app).__name__
        self.pools: pool_events.PoolWatch | None = None  # the app's SQLAlchemy pools, once started

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == self.health_path or path == HEALTH_PATH:
                self.probe.health += 1
                if path == HEALTH_PATH:
                    await _answer_health(send)
                    return
            else:
                self.probe.work += 1
                if self.pools is not None:
                    pool_events.request_started()
                sampled = wait_sampler.begin(path)  # the wait profile's view of this request
                try:
                    await self.app(scope, receive, send)
                finally:
                    wait_sampler.end(sampled)
                return
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        await self.app(scope, receive, send)

    def _lifespan_send(self, send):
        async def wrapped(message) -> None:
            if message["type"] == "lifespan.startup.complete":
                if self.probe.enabled and self.pools is None:
                    self.pools = pool_events.install()
                    if self.pools is not None and self.probe.extra is None:
                        self.probe.extra = self.pools.take
                self.probe.start()
                self.probe.mark_ready(target=self.label)
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.probe.stop()
                if self.pools is not None:  # an app started again in this process listens afresh
                    if self.probe.extra == self.pools.take:
                        self.probe.extra = None
                    pool_events.uninstall(self.pools)
                    self.pools = None
            await send(message)
        return wrapped


async def _answer_health(send) -> None:
    # The pid tells the harness's probe which worker answered (it holds one connection per worker).
    body = b'{"status":"ok","pid":%d}' % os.getpid()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def instrument(app, **kwargs) -> Instrumented:
    """Wrap an ASGI app with the harness's probe (see the module docstring)."""
    return Instrumented(app, **kwargs)
