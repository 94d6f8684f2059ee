"""CPU use of process trees over the measured window, seen from outside (psutil).

100 % = one core busy. Pool children and uvicorn workers are included with their parent's tree.
"""

from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """user + system CPU seconds of `pid` and every descendant, by pid."""
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for proc in family:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


def cpu_pct(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """Percent of one core used between two snapshots; processes born in between count whole."""
    if seconds <= 0:
        return float("nan")
    used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return 100.0 * used / seconds


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
