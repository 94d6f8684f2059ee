"""CPU work calibrated in milliseconds, importable on its own (process-pool children import it).

`python` work holds the GIL (pure-Python arithmetic); `native` work hashes a buffer with hashlib,
which releases the GIL, so threads can run it in parallel.
"""

from __future__ import annotations

import hashlib
import time

KINDS = ("python", "native")
_CHUNK = bytes(range(256)) * 256  # 64 KiB: hashlib drops the GIL for buffers over 2 KiB


def _python_units(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 7
    return total


def _native_units(n: int) -> int:
    digest = b""
    for _ in range(n):
        digest = hashlib.sha256(_CHUNK).digest()
    return digest[0]


def burn_units(units: int, kind: str = "python") -> int:
    """Do `units` units of CPU work of the given kind; returns a value so nothing is optimised away."""
    if units <= 0:
        return 0
    return _python_units(units) if kind == "python" else _native_units(units)


def timed_burn(units: int, kind: str = "python") -> tuple[int, float]:
    """`burn_units`, plus the CPU time (ms) this thread spent on it: what the work really cost
    here, without the time spent waiting for the GIL or for a core."""
    t0 = time.thread_time()
    value = burn_units(units, kind)
    return value, (time.thread_time() - t0) * 1000


def speed_samples(kind: str = "python", probe_ms: float = 10.0, rounds: int = 15,
                  warm_s: float = 0.0) -> list[float]:
    """Units per millisecond of thread CPU time, one sample per probe of about `probe_ms`.

    `warm_s` of busy work first: a core that was idle runs slower for a while (clock ramp-up on
    the host), and the work will run on a core kept busy by the load. Measured here: probes after
    1 s of warm-up peaked at 19.6–21.5 k units/ms, probes spaced out with pauses at 14–20 k.
    """
    deadline = time.perf_counter() + warm_s
    while time.perf_counter() < deadline:
        burn_units(10_000, kind)
    units = 1000 if kind == "python" else 4
    while True:
        t0 = time.thread_time()
        burn_units(units, kind)
        spent = (time.thread_time() - t0) * 1000
        if spent >= probe_ms:
            break
        units *= 2
    rates = []
    for _ in range(rounds):
        t0 = time.thread_time()
        burn_units(units, kind)
        rates.append(units / max((time.thread_time() - t0) * 1000, 1e-6))
    return rates


def calibrate(kind: str = "python", probe_ms: float = 10.0, rounds: int = 15, warm_s: float = 0.2) -> float:
    """Units of work per millisecond of CPU time on this machine, at its best.

    Thread CPU time, not wall time, so a busy neighbour process does not count. The fastest probe
    wins: interference (a descheduled or shared vCPU) only ever makes a probe slower, so work then
    costs *at least* CPU_MS and a ceiling computed from CPU_MS stays an upper bound.
    """
    return max(speed_samples(kind, probe_ms, rounds, warm_s))
