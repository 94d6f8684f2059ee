"""Registry of target apps: CLI name → (uvicorn import string, what it demonstrates).

Kept free of heavy imports: process-pool children import `targets.cpu_work` through this package.
"""

from __future__ import annotations

import os

TARGETS: dict[str, tuple[str, str]] = {
    "fake-async": (
        "targets.fake_async:app",
        "async def + synchronous client/CPU inline: blocks the event loop (the anti-pattern)",
    ),
    "correct-async": (
        "targets.correct_async:app",
        "async def + shared httpx.AsyncClient + asyncio.gather; CPU inline (async does not help CPU)",
    ),
    "thread-pool": (
        "targets.thread_pool:app",
        "plain def routes in anyio's thread pool (POOL_SIZE tokens) + synchronous client",
    ),
    "process-pool": (
        "targets.process_pool:app",
        "async I/O + CPU offloaded with await run_in_executor(ProcessPoolExecutor(POOL_SIZE))",
    ),
    "mixed": (
        "targets.mixed:app",
        "two-stage: async I/O, then CPU in await run_in_executor(ThreadPoolExecutor(POOL_SIZE))",
    ),
    "blocking-future": (
        "targets.blocking_future:app",
        "the article's /process: executor.submit(...).result() inside async def blocks the loop",
    ),
}

# The five targets every default sweep compares; blocking-future is an extra demonstration.
CORE_TARGETS = ["fake-async", "correct-async", "thread-pool", "process-pool", "mixed"]


# POOL_SIZE default per target (None: the target has no pool; "cpu": os.cpu_count()).
POOL_DEFAULTS: dict[str, int | str | None] = {
    "fake-async": None,
    "correct-async": None,
    "thread-pool": 40,  # anyio's own default limiter size
    "process-pool": "cpu",
    "mixed": 4,  # the article's ThreadPoolExecutor(max_workers=4)
    "blocking-future": "cpu",  # the article's ProcessPoolExecutor(max_workers=os.cpu_count())
}


def default_pool_size(name: str) -> int | None:
    value = POOL_DEFAULTS.get(name)
    return (os.cpu_count() or 1) if value == "cpu" else value


def import_string(name: str) -> str:
    """uvicorn import string for a registered target name."""
    return TARGETS[name][0]
