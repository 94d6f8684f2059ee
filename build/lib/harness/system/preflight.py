"""Before a sweep starts: can this machine hold its largest cell at all?

The estimate counts, per cell, what the harness will start: the fixed processes (harness, reaper,
upstream, Locust), the uvicorn supervisor and its W workers, W × POOL_SIZE pool processes plus one
resource tracker per worker for a process pool, and W × POOL_SIZE threads for a thread pool.
Memory is a *lower bound* (small per-process figures measured on a 2-core VM), so a refusal is
certain and never a guess: a sweep that cannot fit is refused with exit 2 before anything starts;
one that fits but crowds the machine gets a one-line warning.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.data.matrix import Cell, ConfigError

# Which targets hold which kind of pool (POOL_SIZE each): processes, threads, or both.
PROCESS_POOLS = {"process-pool", "blocking-future"}
THREAD_POOLS = {"thread-pool", "mixed", "blocking-future"}

FIXED_PROCESSES = 4  # the harness, its reaper, the upstream, Locust
# Resident memory, lower bounds (MB): a spawned pool child that imported only the CPU work,
# a uvicorn worker with FastAPI and its clients, and the fixed processes together.
POOL_CHILD_MB = 10
WORKER_MB = 35
FIXED_MB = 120
THREAD_MB = 0.064  # a thread's stack actually touched, at least
FDS_SPARE = 64  # a process's own files, logs, pipes and sockets besides its connections

WARN_SHARE = 0.5  # warn when the cell takes more than half of what is free
WARN_PROCESSES_PER_CORE = 32


@dataclass(frozen=True)
class Need:
    what: str  # the cell, for the message
    processes: int
    threads: int
    memory_mb: float
    open_files: int  # in the busiest single process


def cell_need(target: str, workers: int, users: int, pool: int | None, http_connections: int) -> Need:
    pool = pool or 0
    procs = FIXED_PROCESSES + 1 + workers  # + the uvicorn (or reuseport) supervisor
    threads = 0
    what = f"{target}, {workers} worker(s)"
    if target in PROCESS_POOLS:
        procs += workers * (pool + 1)  # + one multiprocessing resource tracker per worker
        what += f" × a pool of {pool} processes"
    if target in THREAD_POOLS:
        threads += workers * pool
        if target not in PROCESS_POOLS:
            what += f" × {pool} threads"
    pool_children = procs - FIXED_PROCESSES - 1 - workers
    memory = FIXED_MB + workers * WORKER_MB + pool_children * POOL_CHILD_MB + threads * THREAD_MB
    # Locust holds one connection per user; one worker may get them all, plus its own client pool.
    fds = max(users, users + http_connections) + FDS_SPARE
    return Need(what, procs, threads, memory, fds)


def sweep_needs(cells: list[Cell]) -> list[Need]:
    """One Need per distinct (target, workers, users, pool) among the sweep's cells."""
    seen = {(c.target, c.workers, c.users, c.pool_size, c.http_connections) for c in cells}
    return [cell_need(t, w, u, p, h) for t, w, u, p, h in sorted(seen, key=str)]


@dataclass(frozen=True)
class Machine:
    cores: int
    memory_total_mb: float
    memory_available_mb: float
    task_limit: int  # processes + threads this user may still start
    task_limit_name: str
    open_files_limit: int

    @classmethod
    def here(cls) -> Machine:
        vm = psutil.virtual_memory()
        limits = {"the kernel's pid_max": _read_int("/proc/sys/kernel/pid_max"),
                  "the kernel's threads-max": _read_int("/proc/sys/kernel/threads-max")}
        nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        if nproc != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is exempt from NPROC
            limits["the process limit (ulimit -u)"] = nproc
        name, limit = min(((k, v) for k, v in limits.items() if v), key=lambda kv: kv[1],
                          default=("no limit", 1 << 30))
        running = sum(p.info["num_threads"] or 1 for p in psutil.process_iter(["num_threads"]))
        nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(len(os.sched_getaffinity(0)), vm.total / 2**20, vm.available / 2**20,
                   max(0, limit - running), name,
                   nofile if nofile != resource.RLIM_INFINITY else 1 << 30)


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _times(need: float, have: float) -> str:
    return f"{need / have:.1f}× over" if have else "none is left"


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def check(needs: list[Need], machine: Machine) -> str | None:
    """Raise ConfigError (one line) if the largest cell cannot run here; return a one-line warning
    if it can but crowds the machine, else None."""
    if not needs:
        return None
    big = max(needs, key=lambda n: n.memory_mb)
    busy = max(needs, key=lambda n: n.processes + n.threads)
    files = max(needs, key=lambda n: n.open_files)
    hits: dict[str, list[str]] = {}  # cell → what it needs beyond this machine
    tasks = busy.processes + busy.threads
    if tasks > machine.task_limit:
        threads = f" and {busy.threads:,} threads" if busy.threads else ""
        hits.setdefault(busy.what, []).append(
            f"about {busy.processes:,} processes{threads} ({machine.task_limit_name} leaves room for "
            f"{machine.task_limit:,}: {_times(tasks, machine.task_limit)})")
    if big.memory_mb > machine.memory_total_mb:
        hits.setdefault(big.what, []).append(
            f"at least {_gb(big.memory_mb)} of memory (the machine has {_gb(machine.memory_total_mb)}: "
            f"{_times(big.memory_mb, machine.memory_total_mb)})")
    if files.open_files > machine.open_files_limit:
        hits.setdefault(files.what, []).append(
            f"about {files.open_files:,} open files in one process (ulimit -n is "
            f"{machine.open_files_limit:,}: {_times(files.open_files, machine.open_files_limit)})")
    if hits:
        cells = "; ".join(f"{what} needs {' and '.join(needs)}" for what, needs in hits.items())
        raise ConfigError(f"sweep too big for this machine: {cells}; lower --workers, --pool-size "
                          "or --users")
    crowded = []
    if big.memory_mb > WARN_SHARE * machine.memory_available_mb:
        crowded.append(f"at least {_gb(big.memory_mb)} of the {_gb(machine.memory_available_mb)} "
                       "of memory available")
    if tasks > WARN_SHARE * machine.task_limit:
        crowded.append(f"{tasks:,} of the {machine.task_limit:,} processes and threads left")
    if busy.processes > WARN_PROCESSES_PER_CORE * machine.cores:
        crowded.append(f"{busy.processes:,} processes on {machine.cores} cores")
    if crowded:
        return (f"warning: the largest cell ({big.what}) takes {', '.join(crowded)}; it should run, "
                "but start-up will be slow and the figures will mostly show contention")
    return None
