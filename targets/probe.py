"""In-worker measurements: event-loop lag, requests served, pool occupancy.

Each uvicorn worker appends JSON lines to METRICS_DIR/worker-<pid>.jsonl. The writer is a thread,
not a coroutine, so a worker whose event loop is blocked still reports (and reports *that* it is
blocked, via `stalled_ms`). The harness merges the files over its measured window.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_S = 0.01   # loop-lag sampling interval: 100 wake-ups/s, cheap next to any request
FLUSH_S = 0.25       # how often the writer thread appends a line


class CountRequests:
    """Pure ASGI middleware counting requests by kind; cheaper than BaseHTTPMiddleware."""

    def __init__(self, app, probe: WorkerProbe) -> None:
        self.app = app
        self.probe = probe

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            if scope["path"] == "/health":
                self.probe.health += 1
            else:
                self.probe.work += 1
        await self.app(scope, receive, send)


class WorkerProbe:
    """Heartbeat coroutine + writer thread for one worker process."""

    def __init__(self, metrics_dir: str | None, enabled: bool = True) -> None:
        self.dir = Path(metrics_dir) if metrics_dir else None
        self.enabled = enabled and self.dir is not None
        self.work = 0
        self.health = 0
        self.pool_gauge: Callable[[], int] | None = None
        self._lags: list[float] = []
        self._cpu_ms: list[float] = []
        self._pool_max = 0
        self._last_beat = time.perf_counter()
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self.path = self.dir / f"worker-{os.getpid()}.jsonl" if self.dir else None

    def _append(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def mark_ready(self, **info) -> None:
        """Tell the launcher this worker finished its start-up (always written when a dir is set)."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"event": "ready", "pid": os.getpid(), "t": time.time(), **info})

    async def _heartbeat(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(HEARTBEAT_S)
            now = time.perf_counter()
            self._last_beat = now
            self._lags.append((now - t0 - HEARTBEAT_S) * 1000)
            if self.pool_gauge is not None:
                self._pool_max = max(self._pool_max, self.pool_gauge())

    def record_cpu(self, ms: float) -> None:
        """Wall time one CPU stage took in this process (list.append is atomic under the GIL)."""
        if self.enabled:
            self._cpu_ms.append(ms)

    def _flush(self) -> None:
        lags, self._lags = self._lags, []
        cpu, self._cpu_ms = self._cpu_ms, []
        pool_max, self._pool_max = self._pool_max, 0
        if self.pool_gauge is not None:
            pool_max = max(pool_max, self.pool_gauge())
        self._append({
            "pid": os.getpid(), "t": time.time(),
            "lag_ms": [round(x, 3) for x in lags],
            "cpu_ms": [round(x, 3) for x in cpu],
            "stalled_ms": round((time.perf_counter() - self._last_beat) * 1000, 1),
            "work": self.work, "health": self.health,
            "pool_busy": pool_max if self.pool_gauge is not None else None,
        })

    def _writer(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self._flush()
        self._flush()

    def start(self) -> None:
        if not self.enabled:
            return
        # A fresh start (a second lifespan in one process, as in tests) begins from zero.
        self._stop.clear()
        self.work = self.health = 0
        self._lags, self._cpu_ms, self._pool_max = [], [], 0
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._writer, name="bench-probe", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=2)
