"""Where the event loop was when it stalled: stack samples of the loop thread, taken by the probe's
writer thread (targets/probe.py) while the loop's heartbeat is overdue.

A sample is one folded stack (root first, `file:function:line` frames joined by ';'), the path of
the request being served (read from the ASGI wrapper's frame on that stack), and whether the loop
thread wanted a core since the previous sample of the same stall (CPU work) or slept (a blocking
wait). "Wanted a core" is its CPU time plus its time waiting on the run queue (the kernel's
schedstat): on a machine busy with other work a computing thread gets only part of a core, but it
is never asleep, so CPU time alone would call it waiting.
The harness (harness/judge/stalls.py) reduces them to the call site.
"""

from __future__ import annotations

import sys
import time
from types import FrameType

STALL_MS = 20.0  # a heartbeat this late is a stall: 2 heartbeat periods, well above scheduler jitter
MAX_FRAMES = 96  # deep enough for FastAPI's middleware stack plus the app's own frames
CPU_SHARE = 0.5  # the loop thread running or runnable ≥ half the wall time between two samples: CPU
# The ASGI entry points whose `scope` names the request being served (targets/probe.py, instrument.py).
_WRAPPERS = {"CountRequests.__call__", "Instrumented.__call__"}


def _path_of(frame: FrameType) -> str | None:
    if frame.f_code.co_qualname not in _WRAPPERS:
        return None
    scope = frame.f_locals.get("scope")  # the wrapper's own argument: read-only here
    return scope.get("path") if isinstance(scope, dict) else None


def fold(frame: FrameType | None) -> tuple[str, str | None]:
    """(folded stack root-first, the request path found on it or None)."""
    names: list[str] = []
    path = None
    while frame is not None and len(names) < MAX_FRAMES:
        code = frame.f_code
        names.append(f"{code.co_filename}:{code.co_qualname}:{frame.f_lineno}")
        if path is None:
            path = _path_of(frame)
        frame = frame.f_back
    return ";".join(reversed(names)), path


class StallSampler:
    """Samples one thread's stack; call `sample(late_ms)` from another thread a few times per stall.

    `thread_id` is the thread's `threading.get_ident()`, `native_id` its `get_native_id()`."""

    def __init__(self, thread_id: int, native_id: int) -> None:
        self.thread_id = thread_id
        self._schedstat = f"/proc/self/task/{native_id}/schedstat"
        self._clock: int | None = None
        if self._wanted() is None:  # no schedstat: the thread's CPU clock alone
            try:
                self._clock = time.pthread_getcpuclockid(thread_id)
            except (AttributeError, OSError):
                self._schedstat = ""
        self._last: tuple[float, float] | None = None  # (wall, seconds wanted) at the previous sample
        self.samples: dict[str, int] = {}  # "path\tkind\tfolded" → count

    def _wanted(self) -> float | None:
        """Seconds the thread has run or waited to run (None: not measurable here)."""
        if self._clock is not None:
            return time.clock_gettime(self._clock)
        try:
            with open(self._schedstat) as fh:
                on_cpu, run_queue, _ = fh.read().split()
        except (OSError, ValueError):
            return None
        return (int(on_cpu) + int(run_queue)) / 1e9

    def _kind(self) -> str:
        wanted = self._wanted()
        if wanted is None:
            return "unknown"
        now = (time.perf_counter(), wanted)
        last, self._last = self._last, now
        if last is None or now[0] <= last[0]:
            return "first"
        return "cpu" if (now[1] - last[1]) >= CPU_SHARE * (now[0] - last[0]) else "wait"

    def sample(self, late_ms: float) -> None:
        if late_ms <= STALL_MS:
            self._last = None  # the next stall starts afresh
            return
        kind = self._kind()
        frame = sys._current_frames().get(self.thread_id)
        if frame is None or kind == "first":
            return  # the first sample of a stall only starts its clock
        stack, path = fold(frame)
        key = f"{path or '?'}\t{kind}\t{stack}"
        self.samples[key] = self.samples.get(key, 0) + 1

    def take(self) -> dict[str, int]:
        out, self.samples = self.samples, {}
        return out
