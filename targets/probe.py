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
        # Extra record fields taken at each flush (targets/db.py's pool waits and busy maximum).
        self.extra: Callable[[], dict] | None = None
        # (wake-up wall time, lag ms) and (stage wall ms or None, stage CPU ms): one tuple per event,
        # so the writer thread's swap can never split a pair.
        self._beats: list[tuple[float, float]] = []
        self._stages: list[tuple[float | None, float]] = []
        self._pool_max = 0
        # When the pending heartbeat is due: a loop blocked past it is stalled (the sleep itself is not).
        self._due = time.perf_counter() + HEARTBEAT_S
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self.path = self.dir / f"worker-{os.getpid()}.jsonl" if self.dir else None

    def _append(self, record: dict) -> None:
        assert self.path is not None, "only an enabled probe writes"
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def mark_ready(self, **info) -> None:
        """Tell the launcher this worker finished its start-up (always written when a dir is set)."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"event": "ready", "pid": os.getpid(), "t": time.time(), **info})

    async def _heartbeat(self) -> None:
        while True:
            self._due = time.perf_counter() + HEARTBEAT_S
            await asyncio.sleep(HEARTBEAT_S)
            now = time.perf_counter()
            # Wall time of the wake-up, so the harness can place each lag in its window and
            # weight it by the time the loop was blocked (not by the number of samples).
            self._beats.append((time.time(), max(0.0, now - self._due) * 1000))
            if self.pool_gauge is not None:
                self._pool_max = max(self._pool_max, self.pool_gauge())

    def record_cpu(self, wall_ms: float | None, cpu_time_ms: float) -> None:
        """One CPU stage: its wall time here (None when it ran in another process) and the CPU time
        the computing thread spent on it (list.append is atomic under the GIL)."""
        if self.enabled:
            self._stages.append((wall_ms, cpu_time_ms))

    def _flush(self) -> None:
        beats, self._beats = self._beats, []
        stages, self._stages = self._stages, []
        pool_max, self._pool_max = self._pool_max, 0
        if self.pool_gauge is not None:
            pool_max = max(pool_max, self.pool_gauge())
        record = {
            "pid": os.getpid(), "t": time.time(),
            "lag_ms": [round(lag, 3) for _, lag in beats],
            "lag_t": [round(t, 4) for t, _ in beats],
            "cpu_ms": [round(wall, 3) for wall, _ in stages if wall is not None],
            "cpu_time_ms": [round(cpu, 3) for _, cpu in stages],
            # How long the loop has been past its heartbeat's due time: a loop blocked right now
            # has not logged that lag yet.
            "stalled_ms": round(max(0.0, time.perf_counter() - self._due) * 1000, 1),
            "work": self.work, "health": self.health,
            "pool_busy": pool_max if self.pool_gauge is not None else None,
        }
        if self.extra is not None:
            record.update(self.extra())
        self._append(record)

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
        self._beats, self._stages, self._pool_max = [], [], 0
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._writer, name="bench-probe", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=2)
