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


def calibrate(kind: str = "python", probe_ms: float = 10.0, rounds: int = 15) -> float:
    """Units of work per millisecond of CPU time on this machine, at its best.

    Thread CPU time, not wall time, so a busy neighbour does not count. The fastest of `rounds`
    short probes: interference (a descheduled or stolen vCPU, a busy SMT sibling) only ever makes
    a probe slower, so the best one is the machine's real speed. Work then costs *at least*
    CPU_MS, never less, and a ceiling computed from CPU_MS stays an upper bound.
    """
    units = 1000 if kind == "python" else 4
    while True:
        t0 = time.thread_time()
        burn_units(units, kind)
        spent = (time.thread_time() - t0) * 1000
        if spent >= probe_ms:
            break
        units *= 2
    best = spent
    for _ in range(rounds):
        t0 = time.thread_time()
        burn_units(units, kind)
        best = min(best, (time.thread_time() - t0) * 1000)
    return units / best
