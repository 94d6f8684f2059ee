"""In-worker measurements: event-loop lag, requests served, pool occupancy.

Each uvicorn worker appends JSON lines to METRICS_DIR/worker-<pid>.jsonl. The writer is a thread,
not a coroutine, so a worker whose event loop is blocked still reports (and reports *that* it is
blocked, via `stalled_ms`). While the loop is stalled the writer also samples the loop thread's
stack (targets/stall_sampler.py), so the harness can name the call that blocked it. The heartbeat
also reads anyio's default thread limiter (the tokens `def` routes hold), and THREAD_TOKENS resizes
it at start-up. The harness merges the files over its measured window.

The writer costs a healthy loop next to nothing: on a healthy loop the heartbeat itself appends the
line every FLUSH_S, and the writer thread sleeps on a timer the heartbeat re-arms (Watchdog), so it
does not wake at all. When a heartbeat is STALL_MS late the timer fires: the writer then samples the
stack every SAMPLE_S and writes the lines the stalled loop cannot, until the loop is back. A stack is
written once per file ("stacks": id → stack) and counted by its id after that ("stalls": id →
samples). A second thread samples the requests in flight WAIT_HZ times a second
(targets/wait_sampler.py; "waits": id → samples, the same stack table). A full disk never stops the
worker: a line that cannot be written is dropped (the harness checks the disk after each cell and
stops the sweep).

Over 300 lines: the heartbeat, the writer and the line format are one protocol with the harness's
reader (harness/judge/collect.py), kept in one place.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from targets import wait_sampler
from targets.stall_sampler import STALL_MS, StallSampler, Watchdog

HEARTBEAT_S = 0.01   # loop-lag sampling interval: 100 wake-ups/s, cheap next to any request
FLUSH_S = 0.25       # how often a line is appended (the heartbeat; the writer while the loop is stalled)
SAMPLE_S = 0.01      # while the loop is stalled, the gap between stack samples (a few per 20+ ms stall)
WAKE_SLACK_S = 0.001  # the writer wakes this long after a heartbeat would be STALL_MS late


# The thread_tokens knob's bounds (harness/data/knobs.py); read here with the standard library alone,
# because this module runs inside apps with their own interpreter (tests/test_app_env.py pins both agree).
THREAD_TOKENS_BOUNDS = (1, 10_000)


def thread_tokens() -> int | None:
    """THREAD_TOKENS (None: anyio's own default of 40), checked as the knob table checks it."""
    raw = os.environ.get("THREAD_TOKENS", "")
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"THREAD_TOKENS={raw!r} is not an integer") from None
    lo, hi = THREAD_TOKENS_BOUNDS
    if not lo <= value <= hi:
        raise ValueError(f"THREAD_TOKENS={value} is outside [{lo:g}, {hi:g}]")
    return value


class _Tokens:
    """anyio's default thread limiter as the heartbeat sees it: busy at most, and beats at the limit."""

    def __init__(self, size: int | None) -> None:
        import anyio.to_thread

        self.limiter = anyio.to_thread.current_default_thread_limiter()
        if size is not None:  # resized here, in the loop it belongs to
            self.limiter.total_tokens = size
        self.busy_max = self.full = self.beats = 0

    def beat(self) -> None:
        busy = int(self.limiter.borrowed_tokens)
        self.busy_max = max(self.busy_max, busy)
        self.full += busy >= self.limiter.total_tokens
        self.beats += 1

    def take(self) -> dict:
        out = {"tokens_busy": self.busy_max, "tokens_total": int(self.limiter.total_tokens),
               "tokens_full": self.full, "tokens_beats": self.beats}
        self.busy_max = self.full = self.beats = 0
        return out


class CountRequests:
    """Pure ASGI middleware counting requests by kind; cheaper than BaseHTTPMiddleware."""

    def __init__(self, app, probe: WorkerProbe) -> None:
        self.app = app
        self.probe = probe

    async def __call__(self, scope, receive, send):
        # `scope` stays a local of this frame: the stall sampler reads the path from it.
        if scope["type"] == "http":
            if scope["path"] == "/health":
                self.probe.health += 1
            else:
                self.probe.work += 1
                sampled = wait_sampler.begin(scope["path"])  # the wait profile's view of this request
                try:
                    await self.app(scope, receive, send)
                finally:
                    wait_sampler.end(sampled)
                return
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
        self._tokens: _Tokens | None = None
        self._sampler: StallSampler | None = None
        self._waits: wait_sampler.WaitSampler | None = None  # requests in flight, sampled WAIT_HZ a second
        self._watchdog: Watchdog | None = None
        self._next_flush = 0.0  # perf_counter time of the next line
        self._flushing = threading.Lock()  # the loop and the writer never write a line at once
        self._stack_ids: dict[str, str] = {}  # stack key → its id, for stacks already in the file
        self._next_id = 0
        self._cut = False  # a write failed: the file may end in a partial line
        self.wakes = 0  # writer wake-ups (tests check that a healthy loop gets none)
        self.dropped_lines = 0  # lines a full disk refused
        self.path = self.dir / f"worker-{os.getpid()}.jsonl" if self.dir else None

    def _append(self, record: dict) -> bool:
        """Append one line; False (the line dropped) when the disk refuses it (ENOSPC, EDQUOT, EIO).

        After a failed write the next line starts on a fresh line, so a partial line stays alone
        (the harness skips a line it cannot parse)."""
        try:
            self._write(record)
        except OSError:
            self._cut = True
            self.dropped_lines += 1
            return False
        self._cut = False
        return True

    def _write(self, record: dict) -> None:
        assert self.path is not None, "only an enabled probe writes"
        with open(self.path, "a") as fh:
            fh.write(("\n" if self._cut else "") + json.dumps(record) + "\n")

    def mark_ready(self, **info) -> None:
        """Tell the launcher this worker finished its start-up (always written when a dir is set).

        Unlike the writer's lines, a full disk here fails the start-up: the launcher reports the
        worker's OSError, which names the disk, rather than waiting for a line that never comes."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write({"event": "ready", "pid": os.getpid(), "t": time.time(), **info})

    async def _heartbeat(self) -> None:
        watchdog = self._watchdog
        while True:
            now = time.perf_counter()
            self._due = now + HEARTBEAT_S
            if watchdog is not None:  # the writer wakes only if the next beat is STALL_MS late
                watchdog.arm(HEARTBEAT_S + STALL_MS / 1000)
            if now >= self._next_flush:  # a healthy loop writes its own lines: no thread wakes
                self._flush_if_free()
            await asyncio.sleep(HEARTBEAT_S)
            now = time.perf_counter()
            # Wall time of the wake-up, so the harness can place each lag in its window and
            # weight it by the time the loop was blocked (not by the number of samples).
            self._beats.append((time.time(), max(0.0, now - self._due) * 1000))
            if self._tokens is not None:
                self._tokens.beat()
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
        if self._tokens is not None:
            record.update(self._tokens.take())
        new: dict[str, str] = {}
        if self._sampler is not None:
            record["stalls"] = self._intern(self._sampler.take(), new)
        if self._waits is not None:
            record["waits"] = self._intern(self._waits.take(), new)
        if new:
            record["stacks"] = new
        if self.extra is not None:
            record.update(self.extra())
        if not self._append(record):
            for key in new.values():  # not in the file: written again with its next sample
                del self._stack_ids[key]

    def _intern(self, samples: dict[str, int], new: dict[str, str]) -> dict[str, int]:
        """Samples by stack id; stacks not yet in the file go to `new` (id → stack)."""
        out = {}
        for key, n in samples.items():
            sid = self._stack_ids.get(key)
            if sid is None:
                sid = self._stack_ids[key] = str(self._next_id)
                self._next_id += 1
                new[sid] = key
            out[sid] = n
        return out

    def _flush_if_free(self) -> None:
        if self._flushing.acquire(blocking=False):
            try:
                self._next_flush = time.perf_counter() + FLUSH_S
                self._flush()
            finally:
                self._flushing.release()

    def _late_ms(self) -> float:
        return (time.perf_counter() - self._due) * 1000

    def _wait_for_stall(self) -> bool:
        """Block until the pending heartbeat is STALL_MS late (True) or the probe stops (False)."""
        watchdog = self._watchdog
        while not self._stop.is_set():
            if watchdog is not None and watchdog.available:
                watchdog.wait()
            else:  # no timer: sleep until the pending heartbeat would be late (every 2-3 heartbeats)
                wake = self._due + STALL_MS / 1000 + WAKE_SLACK_S
                self._stop.wait(max(0.0, wake - time.perf_counter()))
            self.wakes += 1
            if self._late_ms() > STALL_MS:
                return not self._stop.is_set()
        return False

    def _writer(self) -> None:
        while self._wait_for_stall():
            # Stalled: sample a few times per stall and write the lines the loop cannot.
            while (late_ms := self._late_ms()) > STALL_MS and not self._stop.is_set():
                if self._sampler is not None:
                    self._sampler.sample(late_ms)
                if time.perf_counter() >= self._next_flush:
                    self._flush_if_free()
                if self._stop.wait(SAMPLE_S):
                    break
                self.wakes += 1
            if self._sampler is not None:
                self._sampler.sample(0.0)  # the stall is over: the next one starts its clock afresh
        with self._flushing:  # the last line, once the heartbeat has stopped
            self._flush()

    def start(self) -> None:
        if not self.enabled:
            return
        # A fresh start (a second lifespan in one process, as in tests) begins from zero.
        self._stop.clear()
        self.work = self.health = 0
        self._beats, self._stages, self._pool_max = [], [], 0
        self._tokens = _Tokens(thread_tokens())
        self._sampler = StallSampler(threading.get_ident(), threading.get_native_id())
        self._stack_ids, self._cut = {}, False  # ids stay unique in the file: _next_id goes on
        self._watchdog = Watchdog()
        self._next_flush = time.perf_counter() + FLUSH_S
        # armed before the first beat: a loop blocked right after start-up is seen too
        self._due = time.perf_counter() + HEARTBEAT_S
        self._watchdog.arm(HEARTBEAT_S + STALL_MS / 1000)
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._writer, name="bench-probe", daemon=True)
        self._thread.start()
        self._waits = wait_sampler.WaitSampler(threading.get_ident(), lambda: self._late_ms() > STALL_MS,
                                               wait_sampler.wait_hz())
        self._waits.start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._waits is not None:
            self._waits.stop()
        if self._thread:
            self._stop.set()
            if self._watchdog is not None and self._watchdog.available:
                self._watchdog.arm(0.0)  # wake the writer now
            self._thread.join(timeout=2)
        if self._watchdog is not None and not (self._thread and self._thread.is_alive()):
            self._watchdog.close()
