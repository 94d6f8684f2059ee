"""Where each route's requests spent their wall time, from the wait sampler's samples
(targets/wait_sampler.py): every sample is one request in flight at one instant, so a route's
samples per category are its share of request time.

Categories, decided on the sample's frames (root first) and state:
  app      running app code (the loop ran the task, or its worker thread was not in a wait)
  io       waiting on the network, the database or a timer (an `await` on anything else; a thread
           in a socket, driver or sleep call)
  lock     waiting for a pool or a lock: asyncio Lock / Semaphore / Condition, threading's, asyncpg's
           Pool.acquire, httpcore's connection pool, SQLAlchemy's QueuePool, psycopg_pool
  tokens   a `def` route waiting for one of anyio's thread tokens (CapacityLimiter)
  stalled  suspended while the event loop was stalled: the loop, not the awaited thing, held it
A lock wait's site is the innermost app frame outside the lock ("gate.py:14"), with the lock's call
("asyncio.Semaphore.acquire").
"""

from __future__ import annotations

import csv
import linecache
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.data import store
from harness.judge.stalls import Frame, c_call, is_app, library_name, parse_key, short, shown_file

CATEGORIES = ("app", "io", "lock", "tokens", "stalled")
LABELS = {"app": "running app code", "io": "network or database I/O", "lock": "pool or lock wait",
          "tokens": "thread-token wait", "stalled": "loop stalled"}
FOLDED_FILE = "waits.folded"        # raw/<cell>/: "path;frames...;[category] count"
PROFILE_FILE = "wait_profile.csv"   # raw/<cell>/: samples per (path, category), with the lock site
# (file suffix, qualname prefix) of the frames that wait for a pool or a lock.
_LOCKS = (
    ("asyncio/locks.py", ("Lock.", "Semaphore.", "BoundedSemaphore.", "Condition.")),
    ("/threading.py", ("Condition.wait", "Semaphore.acquire", "BoundedSemaphore.acquire")),
    ("asyncpg/pool.py", ("Pool.acquire", "Pool._acquire")),
    ("httpcore/_async/connection_pool.py", ("PoolRequest.wait_for_connection",)),
    ("httpcore/_sync/connection_pool.py", ("PoolRequest.wait_for_connection",)),
    ("sqlalchemy/pool/impl.py", ("QueuePool._do_get", "AsyncAdaptedQueuePool._do_get")),
    ("psycopg_pool/pool.py", ("ConnectionPool.getconn",)),
    ("psycopg_pool/pool_async.py", ("AsyncConnectionPool.getconn",)),
)
_IO_LIBRARIES = {"socket", "ssl", "selectors", "http", "urllib", "urllib3", "requests", "httpx", "httpcore",
                 "psycopg", "psycopg2", "sqlalchemy", "pymysql", "redis", "sqlite3", "asyncpg", "aiohttp"}
_IO_CALL = re.compile(r"(sleep|recv|read|execute|connect|urlopen|request|get|post|fetch|query)", re.I)
# A `with lock:` on a threading lock is a C call: no frame, only the app's source line tells.
_LOCK_LINE = re.compile(r"^(with\s+.*(lock|sem|mutex))|(lock|sem|mutex)\w*\.acquire\(", re.I)


def _is_lock(frame: Frame) -> bool:
    return any(frame.file.endswith(suffix) and frame.qualname.startswith(prefixes)
               for suffix, prefixes in _LOCKS)


def _lock_site(frames: list[Frame], i: int, app_dir: str | None = None) -> str:
    """'gate.py:14 (asyncio.Semaphore.acquire)': the app frame outside lock frame i, and the lock's call."""
    inner = i
    while inner + 1 < len(frames) and _is_lock(frames[inner + 1]):
        inner += 1
    outer = [f for f in frames[:i] if is_app(f.file)]
    where = f"{shown_file(outer[-1].file, app_dir)}:{outer[-1].line}" if outer else short(frames[i].file)
    return f"{where} ({library_name(frames[inner])})"


def _thread_category(frames: list[Frame], app_dir: str | None = None) -> tuple[str, str]:
    inner = frames[-1]
    if not is_app(inner.file):
        module = library_name(inner).split(".", 1)[0]
        return ("io" if module in _IO_LIBRARIES else "app"), ""
    line = linecache.getline(inner.file, inner.line).strip()
    if _LOCK_LINE.search(line):
        return "lock", f"{shown_file(inner.file, app_dir)}:{inner.line} (threading lock)"
    call = c_call(inner) or ""
    return ("io" if _IO_CALL.search(call.rsplit(".", 1)[-1]) else "app"), ""


def classify(state: str, stack: str, app_dir: str | None = None) -> tuple[str, str]:
    """(category, lock site or '') of one sample; the site's file named from `app_dir` (--app-dir)
    when under it, as a stall site's is."""
    frames = [Frame.parse(f) for f in stack.split(";") if f]
    if state == "stalled":
        return "stalled", ""
    if not frames:
        return ("app" if state in ("run", "thread") else "io"), ""
    if any("CapacityLimiter" in f.qualname for f in frames):
        return "tokens", ""
    lock = next((i for i, f in enumerate(frames) if _is_lock(f)), None)
    if lock is not None:
        return "lock", _lock_site(frames, lock, app_dir)
    if state == "run":
        return "app", ""
    if state == "thread":
        return _thread_category(frames, app_dir)
    if "anyio/" in frames[-1].file and "run_sync" in frames[-1].qualname:
        return "app", ""  # awaiting its worker thread, which the sample missed between two frames
    return "io", ""


@dataclass
class Profile:
    by_path: dict[str, Counter[str]]          # path → category → samples
    sites: dict[str, Counter[str]]            # path → lock site → samples
    folded: Counter[str]                      # "path;frames...;[category]" → samples

    @property
    def samples(self) -> int:
        return sum(sum(c.values()) for c in self.by_path.values())

    def shares(self) -> Counter[str]:
        """Every route together: category → share of request time (0..1)."""
        total = Counter[str]()
        for counts in self.by_path.values():
            total.update(counts)
        n = sum(total.values())
        return Counter({k: v / n for k, v in total.items()}) if n else Counter()

    def row(self) -> dict:
        """The results row's columns: the largest wait (not app code) with its share, the lock site."""
        shares = self.shares()
        waits = [(shares[c], c) for c in CATEGORIES if c != "app" and shares[c] > 0]
        top = max(waits) if waits else (0.0, "")
        sites = Counter[str]()
        for counts in self.sites.values():
            sites.update(counts)
        return {"wait_top": LABELS[top[1]] if top[1] else "", "wait_top_pct": 100 * top[0] if top[1] else 0.0,
                "wait_lock_pct": 100 * shares["lock"],
                "wait_site": sites.most_common(1)[0][0] if sites else "", "wait_samples": self.samples}

    def table(self) -> list[tuple[str, str, int, float, str]]:
        """wait_profile.csv's rows: (path, category, samples, share %, the lock site most seen)."""
        out = []
        for path, counts in sorted(self.by_path.items()):
            n = sum(counts.values())
            for cat in CATEGORIES:
                if counts[cat]:
                    lock_sites = self.sites.get(path) if cat == "lock" else None
                    site = lock_sites.most_common(1)[0][0] if lock_sites else ""
                    out.append((path, cat, counts[cat], round(100 * counts[cat] / n, 1), site))
        return out


def reduce(samples: Iterable[tuple[str, int]], app_dir: str | None = None) -> Profile:
    """The workers' samples ("path\\tstate\\tstack" → count) → the per-route profile."""
    by_path: dict[str, Counter[str]] = {}
    sites: dict[str, Counter[str]] = {}
    folded: Counter[str] = Counter()
    for key, n in samples:
        path, state, stack = parse_key(key)
        cat, site = classify(state, stack, app_dir)
        by_path.setdefault(path, Counter())[cat] += n
        if site:
            sites.setdefault(path, Counter())[site] += n
        folded[";".join([path, *(short(f) for f in stack.split(";") if f), f"[{cat}]"])] += n
    return Profile(by_path, sites, folded)


def write(raw_dir: Path, profile: Profile) -> None:
    """The folded stacks (a flame graph's input, beside stalls.folded) and the per-route table."""
    if not profile.samples:
        return
    with open(raw_dir / FOLDED_FILE, "w") as fh:
        fh.writelines(f"{frames} {n}\n" for frames, n in profile.folded.items())
    with open(raw_dir / PROFILE_FILE, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "samples", "share_pct", "site"])
        writer.writerows(profile.table())


def read(raw_dir: Path) -> list[dict]:
    """wait_profile.csv's rows ([] when the cell has none)."""
    return store.csv_rows(raw_dir / PROFILE_FILE)
