"""Where the event loop was when it stalled: stack samples of the loop thread, taken by the probe's
writer thread (targets/probe.py) while the loop's heartbeat is overdue.

A sample is one folded stack (root first, `file:function:line` frames joined by ';'), the path of
the request being served (read from the ASGI wrapper's frame on that stack), and whether the loop
thread wanted a core since the previous sample of the same stall (CPU work) or slept (a blocking
wait). "Wanted a core" is its CPU time plus its time waiting on the run queue (the kernel's
schedstat): on a machine busy with other work a computing thread gets only part of a core, but it
is never asleep, so CPU time alone would call it waiting.
The harness (harness/judge/stalls.py) reduces them to the call site.

`Watchdog` wakes the sampling thread only when a heartbeat is late: a Linux timerfd that the loop
re-arms on every heartbeat (one 2 µs call), so on a healthy loop the thread never wakes at all.
Every wake of a Python thread costs more than its own work: it must take the GIL from a loop that
releases and retakes it on every epoll, and on a saturated loop that alone cost 6% of a core at
100 wakes a second (measured 2026-12-04). Without timerfd (not Linux) it falls back to sleeping
until the pending heartbeat would be late.
"""

from __future__ import annotations

import ctypes
import os
import select
import sys
import time
from types import CodeType, FrameType

STALL_MS = 20.0  # a heartbeat this late is a stall: 2 heartbeat periods, well above scheduler jitter
MAX_FRAMES = 96  # deep enough for FastAPI's middleware stack plus the app's own frames
CPU_SHARE = 0.5  # the loop thread running or runnable ≥ half the wall time between two samples: CPU
# The ASGI entry points whose `scope` names the request being served (targets/probe.py, instrument.py).
_WRAPPERS = {"CountRequests.__call__", "Instrumented.__call__"}


def _qualname(code: CodeType) -> str:
    # co_qualname is Python 3.11+; the app's own interpreter may be older (3.9): the name alone then
    return getattr(code, "co_qualname", None) or code.co_name


def _path_of(frame: FrameType) -> str | None:
    name = _qualname(frame.f_code)
    if "." not in name and name == "__call__":  # < 3.11: tell the wrappers by their instance's class
        name = f"{type(frame.f_locals.get('self')).__name__}.{name}"
    if name not in _WRAPPERS:
        return None
    scope = frame.f_locals.get("scope")  # the wrapper's own argument: read-only here
    return scope.get("path") if isinstance(scope, dict) else None


def fold(frame: FrameType | None) -> tuple[str, str | None]:
    """(folded stack root-first, the request path found on it or None)."""
    names: list[str] = []
    path = None
    while frame is not None and len(names) < MAX_FRAMES:
        code = frame.f_code
        names.append(f"{code.co_filename}:{_qualname(code)}:{frame.f_lineno}")
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


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1


class Watchdog:
    """A one-shot timer the event loop re-arms on every heartbeat; `wait()` (another thread) returns
    when it fires, i.e. when the loop did not re-arm it in time. `available` is False off Linux."""

    def __init__(self) -> None:
        self.fd = -1
        try:
            libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL keeps the GIL: the calls never block
            create, self._settime = libc.timerfd_create, libc.timerfd_settime
        except (OSError, AttributeError):
            return
        create.argtypes, create.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        self._settime.restype = ctypes.c_int
        self.fd = create(_CLOCK_MONOTONIC, os.O_CLOEXEC | os.O_NONBLOCK)
        self._spec = _Itimerspec()
        self._ref = ctypes.byref(self._spec)

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def arm(self, after_s: float) -> None:
        """Fire `after_s` from now unless armed again before (a relative, one-shot expiry)."""
        if self.fd < 0:
            return
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = int(after_s), max(1, int((after_s % 1) * 1e9))
        self._settime(self.fd, 0, self._ref, None)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block (without the GIL) until the timer fires: True, or False at the timeout."""
        try:
            ready, _, _ = select.select([self.fd], [], [], timeout_s)
            if ready:
                os.read(self.fd, 8)  # clear it
        except (OSError, ValueError):  # closed under us (the probe stopping)
            return True
        return bool(ready)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
