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


def calibrate(kind: str = "python", probe_ms: float = 10.0) -> float:
    """Units of work per millisecond of CPU time on this machine.

    Uses thread CPU time, not wall time, so workers calibrating at the same moment on a busy
    machine still agree. Best of three runs after growing the probe until it lasts ~probe_ms.
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
    for _ in range(2):
        t0 = time.thread_time()
        burn_units(units, kind)
        best = min(best, (time.thread_time() - t0) * 1000)
    return units / best
