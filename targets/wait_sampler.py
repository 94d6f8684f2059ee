"""Where the requests in flight are waiting: a thread that samples, WAIT_HZ times a second, every
request the ASGI wrapper has registered (targets/instrument.py, targets/probe.py CountRequests).

A request is registered by its asyncio task (`begin` / `end` around the app's call) with a small
record of its path, also put in a context variable that anyio copies into the `def` route's worker
thread. A sample of one request is:
  - the task's coroutine chain (cr_await, outermost first): where an `async def` route awaits
    (asyncio.Semaphore.acquire, asyncpg's Pool.acquire, anyio's CapacityLimiter, a socket read);
  - when the route runs in an anyio worker thread, that thread's stack too, found by the context
    that anyio's `WorkerThread.run` holds (its `context` local) and joined under the task's chain.
Its state is `run` (the loop was running this task's code), `thread` (a worker thread held it: its
frames tell running from waiting), `wait` (the task was suspended) or `stalled` (suspended while the
loop's heartbeat was late: the loop, not the awaited thing, held it back). The harness classifies the frames
(harness/judge/wait_profile.py); this module only folds them, with the standard library alone.

Cost: one wake every 1 / WAIT_HZ s walks at most MAX_REQUESTS requests' frames; a frame's text is
cached by (code, line). Measured with `bench.py overhead` (docs/diagnosis.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from targets.stall_sampler import MAX_FRAMES, _qualname

WAIT_HZ = 10.0  # samples a second: a request in flight 50 ms is seen every 2nd request at 10 rps
MAX_REQUESTS = 256  # requests sampled per wake, at most: a bound on the sampler's own cost


class Request:
    """A request in flight: its path (read by the sampler from another thread)."""
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


CURRENT: contextvars.ContextVar[Request | None] = contextvars.ContextVar("bench_wait_request", default=None)
IN_FLIGHT: dict[Any, Request] = {}  # task → its request; written on the loop, copied by the sampler
ENABLED = False  # set by the probe at start: without a sampler the wrapper registers nothing


def wait_hz() -> float:
    """WAIT_HZ from the environment (0 switches the sampler off), within [0, 100]."""
    raw = os.environ.get("WAIT_HZ", "")
    try:
        value = float(raw) if raw else WAIT_HZ
    except ValueError:
        raise ValueError(f"WAIT_HZ={raw!r} is not a number") from None
    if not 0 <= value <= 100:
        raise ValueError(f"WAIT_HZ={value:g} is outside [0, 100]")
    return value


def begin(path: str) -> Any:
    """Register the current task as serving `path`; returns the key for `end` (None: not sampled)."""
    if not ENABLED:
        return None
    task = asyncio.current_task()
    if task is None:
        return None
    request = Request(path)
    CURRENT.set(request)
    IN_FLIGHT[task] = request
    return task


def end(key: Any) -> None:
    if key is not None:
        IN_FLIGHT.pop(key, None)


class WaitSampler:
    """Samples the registered requests from its own thread; `take()` returns "path\\tstate\\tstack" → n."""

    def __init__(self, loop_thread_id: int, stalled: Callable[[], bool], hz: float = WAIT_HZ) -> None:
        self.loop_thread_id = loop_thread_id
        self.stalled = stalled
        self.period = 1.0 / hz if hz > 0 else 0.0
        self.samples: dict[str, int] = {}
        self.wakes = 0
        self._lock = threading.Lock()  # take() (the probe's flush, another thread) against sample()
        self._names: dict[tuple[CodeType, int], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _name(self, frame: FrameType) -> str:
        key = (frame.f_code, frame.f_lineno)
        name = self._names.get(key)
        if name is None:
            if len(self._names) > 50_000:  # a bound: a long run's cache never grows without limit
                self._names.clear()
            code = frame.f_code
            name = self._names[key] = f"{code.co_filename}:{_qualname(code)}:{frame.f_lineno}"
        return name

    def _thread_stacks(self, frames: dict[int, FrameType]) -> dict[int, tuple[str, bool]]:
        """id(request) → (its worker thread's stack root first, whether the thread runs it)."""
        out: dict[int, tuple[str, bool]] = {}
        for ident, top in frames.items():
            if ident == self.loop_thread_id:
                continue
            names: list[str] = []
            frame: FrameType | None = top
            request = None
            while frame is not None and len(names) < MAX_FRAMES:
                if frame.f_code.co_name == "run" and "anyio" in frame.f_code.co_filename:
                    context = frame.f_locals.get("context")  # anyio's WorkerThread.run: the request's
                    if isinstance(context, contextvars.Context):
                        request = context.get(CURRENT)
                    break
                names.append(self._name(frame))
                frame = frame.f_back
            if isinstance(request, Request) and names:
                out[id(request)] = (";".join(reversed(names)), True)
        return out

    def _coro_stack(self, coro: Any) -> tuple[list[str], bool]:
        """The await chain's frames outermost first, and whether one of them is running now."""
        names: list[str] = []
        running = False
        while coro is not None and len(names) < MAX_FRAMES:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) \
                or getattr(coro, "ag_frame", None)
            if frame is None:
                break
            names.append(self._name(frame))
            running = running or bool(getattr(coro, "cr_running", False)
                                      or getattr(coro, "gi_running", False))
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) \
                or getattr(coro, "ag_await", None)
        return names, running

    def sample(self) -> None:
        """One sample of every registered request (called from the sampler's thread, or a test)."""
        in_flight = list(IN_FLIGHT.items())[:MAX_REQUESTS]  # a copy: the loop changes it meanwhile
        if not in_flight:
            return
        threads = self._thread_stacks(sys._current_frames())
        stalled = self.stalled()
        batch: list[str] = []
        for task, request in in_flight:
            try:
                names, running = self._coro_stack(task.get_coro())
            except (AttributeError, RuntimeError):
                continue
            thread = threads.get(id(request))
            if thread is not None:
                names.append(thread[0])
            state = "thread" if thread is not None else "run" if running else "stalled" if stalled else "wait"
            batch.append(f"{request.path}\t{state}\t{';'.join(names)}")
        with self._lock:
            for key in batch:
                self.samples[key] = self.samples.get(key, 0) + 1

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.wakes += 1
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a sampler fault must never reach the app
                continue

    def start(self) -> None:
        global ENABLED
        if self.period <= 0:
            return
        ENABLED = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="bench-waits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        global ENABLED
        ENABLED = False
        IN_FLIGHT.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def take(self) -> dict[str, int]:
        with self._lock:
            out, self.samples = self.samples, {}
        return out
