"""What process trees cost over the measured window, seen from outside (psutil): CPU (100 % = one
core busy), context switches and peak resident memory. Pool children and uvicorn workers are
included with their parent's tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """user + system CPU seconds of `pid` and every descendant, by pid."""
    return _per_process(pid, lambda p: (t := p.cpu_times()).user + t.system)


def cpu_pct(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """Percent of one core used between two snapshots; processes born in between count whole."""
    if seconds <= 0:
        return float("nan")
    used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return 100.0 * used / seconds


def _family(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_ctx_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches of `pid` and every descendant, by pid."""
    return _per_process(pid, lambda p: (c := p.num_ctx_switches()).voluntary + c.involuntary)


def _per_process(pid: int, read: Callable[[psutil.Process], T]) -> dict[int, T]:
    """`read` of `pid` and every descendant, by pid; a process that ends meanwhile is left out."""
    out: dict[int, T] = {}
    for proc in _family(pid):
        try:
            out[proc.pid] = read(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def switches_between(before: dict[int, int], after: dict[int, int]) -> int:
    """Context switches between two snapshots; processes born in between count whole."""
    return sum(n - before.get(pid, 0) for pid, n in after.items())


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every descendant (workers, pool children), in MB.

    RSS counts pages shared between forked processes once per process, so this is the sum a
    `ps` user would add up: an upper bound of the tree's real footprint, comparable across cells.
    """
    total = 0
    for proc in _family(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


class PeakRss:
    """The largest tree RSS seen by `sample()` calls (made through the measured window)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = float("nan")

    def sample(self) -> None:
        mb = tree_rss_mb(self.pid)
        if mb > 0 and not mb <= self.peak:  # (NaN-safe max)
            self.peak = mb

def busiest_pct(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """Percent of one core used by the busiest single process of a tree (NaN if none was seen)."""
    if not after:
        return float("nan")
    return max(cpu_pct({pid: before.get(pid, 0.0)}, {pid: t}, seconds) for pid, t in after.items())


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


def machine_busy_seconds() -> float:
    """CPU seconds the cores this process may use have spent busy since boot, whoever used them
    (other users of a shared machine, and a hypervisor's steal, included): all but idle and iowait."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for i, t in enumerate(per_cpu):
        if cores is None or i in cores:
            busy += sum(t) - t.idle - getattr(t, "iowait", 0.0)
    return busy


BUSY_THREAD_PCT = 1.0  # a thread using at least this share of one core counts as doing work


def thread_cpu_seconds(pids: list[int]) -> dict[int, dict[int, float]]:
    """user + system CPU seconds of every thread of each process in `pids`: {pid: {tid: s}}."""
    out: dict[int, dict[int, float]] = {}
    for pid in pids:
        try:
            out[pid] = {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            out[pid] = {}
    return out


def worker_cpu(before: dict[int, float], after: dict[int, float], seconds: float, *, root: int,
               workers: list[int], threads_before: dict[int, dict[int, float]] | None = None,
               threads_after: dict[int, dict[int, float]] | None = None) -> dict[str, float]:
    """Per-process CPU of a target tree over the window, in % of one core.

    worker_cpu_max_pct / _min_pct: the busiest and the idlest uvicorn worker process (their own
    CPU: pool children are not added to their worker). pool_cpu_pct: every other process of the
    tree but the supervisor, i.e. process-pool children. For the busiest worker, the CPU spent
    outside its main (event-loop) thread, and how many such threads did work.
    """
    nan = float("nan")
    out = {"worker_cpu_max_pct": nan, "worker_cpu_min_pct": nan, "pool_cpu_pct": nan,
           "worker_thread_cpu_pct": nan, "worker_busy_threads": nan}
    if seconds <= 0:
        return out
    pct = {pid: 100.0 * (t - before.get(pid, 0.0)) / seconds for pid, t in after.items()}
    seen = [w for w in workers if w in pct]
    if not seen:
        return out
    busiest = max(seen, key=pct.__getitem__)
    out["worker_cpu_max_pct"] = pct[busiest]
    out["worker_cpu_min_pct"] = min(pct[w] for w in seen)
    out["pool_cpu_pct"] = sum(p for pid, p in pct.items() if pid not in workers and pid != root)
    if threads_before is not None and threads_after is not None:
        t0, t1 = threads_before.get(busiest, {}), threads_after.get(busiest, {})
        # The main thread's id is the process id; every other thread is an offload thread
        # (anyio's worker threads, a ThreadPoolExecutor, the probe's writer).
        side = {tid: 100.0 * (s - t0.get(tid, 0.0)) / seconds for tid, s in t1.items() if tid != busiest}
        if t1:
            out["worker_thread_cpu_pct"] = sum(side.values())
            out["worker_busy_threads"] = float(sum(1 for p in side.values() if p >= BUSY_THREAD_PCT))
    return out


def window_cpu_pct(samples: list, t0: float, t1: float, shift: float = 0.0) -> float:
    """Percent of one core a process used over [t0, t1], from its own (wall time, CPU seconds)
    samples (a load worker's, shifted by `shift` onto this machine's clock), interpolated at both
    ends; NaN unless the samples cover the window."""
    if len(samples) < 2 or t1 <= t0:
        return float("nan")
    times = [t + shift for t, _ in samples]
    cpu = [c for _, c in samples]
    if times[0] > t0 or times[-1] < t1:
        return float("nan")
    import numpy as np

    start, end = np.interp([t0, t1], times, cpu)
    return 100.0 * float(end - start) / (t1 - t0)


def trees_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """tree_cpu_seconds of several roots, merged (a Locust master and its separate local workers)."""
    out: dict[int, float] = {}
    for pid in pids:
        out.update(tree_cpu_seconds(pid))
    return out
