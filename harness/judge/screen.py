"""The audit's screen, judged: every route was requested in one shared window (scenarios/screen.py);
from that window alone, each route is either **cleared** ("fine at this load", on positive evidence
only) or **flagged**, to be measured alone (the audit's per-route cells) to confirm and size.

A route is cleared only when all of these hold in the window:
  - at least FINE_MIN_REQUESTS requests of its own completed (route_window's table);
  - none of them failed (not a 1% allowance: a screen clears on none);
  - no stall sample of the event loop found the app's own code of its request on the loop's stack
    (the stall sampler reads the request's path from the ASGI wrapper's frame,
    targets/stall_sampler.py), and fewer than the noise floor found FastAPI's handling of it there;
  - its requests spent under QUEUE_PCT of their time waiting for a pool or lock, or for a
    thread token (the wait profile's per-route shares, harness/judge/wait_profile.py);
  - the window as a whole is explained: each of the audit's worker-wide rules, applied to the
    screen row one by one, either did not fire or fired for what flagged routes account for (a
    blocked loop: a route with stall samples; failures: a failing route; the worker's CPU: a route
    computing on the loop; a lock: a route waiting on one), and the window was bound by the users,
    the load generator or the machine. A limit no route explains (the thread pool, the database
    pool, the workers' CPU, an unexplained bound) cannot be put on one route from the shared
    window, so it flags every route.

A stall sample names a URL path, not an operation: routes that share a path (GET and POST /items)
are flagged together. The cleared route's figures (rps, p99) are the shared window's, slowed by its
neighbours; the flagged routes' rows come from their own cells.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from harness.data import store
from harness.data.schema import row_number as _num
from harness.judge import route_window, stalls, wait_profile, waits
from harness.judge.bottleneck import (
    BLOCKED_PCT,
    CORE_BUSY_PCT,
    FINE_BOUNDS,
    FINE_MIN_REQUESTS,
    TOKENS_FULL_PCT,
)
from harness.judge.waits import QUEUE_PCT

SCREEN_CSV = "screen.csv"  # in the run folder: every route's evidence from each screen cell
FINE = "fine at this load"


@dataclass
class Screened:
    """One route's evidence from one screen window, and why it is flagged (empty: cleared)."""

    route: str           # the operation as the audit names its cell ('/items', 'POST /login')
    url: str
    requests: int = 0
    failures: int = 0
    rps: float = math.nan
    p99_ms: float = math.nan
    stall_samples: int = 0
    stall_cpu_samples: int = 0  # of those, the loop thread computing (not waiting)
    stall_app_samples: int = 0  # of those, with the app's own code on the stack (raw/<cell>/stall_sites.csv)
    lock_pct: float = 0.0
    tokens_pct: float = 0.0
    wait: str = ""        # its largest wait with its share: 'network or database I/O 87%'
    reasons: list[str] = field(default_factory=list)
    held_loop: bool = False  # its stall samples flag it (set by route_reasons)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def url_path(url: str) -> str:
    """The path a request's ASGI scope names: '/items/1' of '/items/1?limit=5'."""
    return urlsplit(url).path or "/"


def noise_floor(window_s: float, workers: int) -> int:
    """Stall samples below which a route's samples, none in the app's own code, clear it: the share of
    the window under which the harness names no stall site either (stalls.MIN_SHARE: a busy machine
    preempts a healthy loop now and then)."""
    return max(1, math.ceil(stalls.MIN_SHARE * window_s * max(1, workers) / stalls.SAMPLE_S - 1e-9))


def route_reasons(s: Screened, floor: int = 1) -> list[str]:
    """Why the route's own evidence does not clear it (empty: it does). `floor`: noise_floor()."""
    out = []
    s.held_loop = s.stall_app_samples > 0 or s.stall_samples >= floor
    if s.requests <= 0:
        out.append("no request completed in the window")
    elif s.requests < FINE_MIN_REQUESTS:
        out.append(f"only {s.requests} requests completed in the window (fewer than {FINE_MIN_REQUESTS} "
                   "cannot clear it)")
    if s.failures > 0:
        out.append(f"{s.failures} of {s.requests} requests failed")
    if s.stall_app_samples > 0:
        out.append(f"{s.stall_app_samples} stall sample(s) in the app's own code of its request")
    elif s.stall_samples >= floor:
        out.append(f"{s.stall_samples} stall sample(s) with its request on the loop (noise floor {floor})")
    if s.lock_pct >= QUEUE_PCT:
        out.append(f"waited for a pool or lock {s.lock_pct:.0f}% of its time")
    if s.tokens_pct >= QUEUE_PCT:
        out.append(f"waited for a thread token {s.tokens_pct:.0f}% of its time")
    return out


def window_reasons(row: dict, screened: list[Screened]) -> list[str]:
    """The shared window's own evidence that no route's evidence explains: each of the audit's
    worker-wide rules, applied to the screen row one by one (not the first that fires, which a
    failing route would hide the rest behind). Any of them flags every route."""
    if str(row.get("status", "ok")) == "failed":
        return [f"the screen cell did not run ({row.get('error') or 'no error recorded'})"]
    out = []
    failing = any(s.failures or s.requests <= 0 for s in screened)
    on_loop = any(s.held_loop for s in screened)
    computing = any(s.held_loop and s.stall_cpu_samples for s in screened)
    if (_num(row, "fail_ratio") > 0 or waits.no_response(row)) and not failing:
        out.append("requests failed in the window, and none of any one route")
    if _num(row, "loop_blocked_pct_max") >= BLOCKED_PCT and not on_loop:
        out.append(f"the loop was blocked {_num(row, 'loop_blocked_pct_max'):.0f}% of the window with no "
                   "route's request on it")
    if pool := waits.pool_limit(row):
        out.append(f"the window was {pool}")
    if _num(row, "wait_lock_pct") >= waits.LOCK_PCT and not any(s.lock_pct >= QUEUE_PCT for s in screened):
        out.append("requests waited for a pool or lock, and none of any one route for long")
    if _num(row, "thread_tokens_full_pct") >= TOKENS_FULL_PCT:
        out.append(f"every thread token was taken {_num(row, 'thread_tokens_full_pct'):.0f}% of the window")
    if _num(row, "worker_cpu_max_pct") >= CORE_BUSY_PCT and not computing:
        out.append(f"a worker used {_num(row, 'worker_cpu_max_pct'):.0f}% of a core, and no route computed "
                   "on the loop")
    bound = str(row.get("bound_by") or "")
    explained = bound in FINE_BOUNDS or (bound == "blocked loop" and on_loop) or \
        (bound in ("failing requests", "no response") and failing)
    if not explained:
        out.append(f"the window was bound by {bound or 'nothing measured'}")
    return out


def judge(routes: list[tuple[str, str]], window: dict, table: pd.DataFrame, on_loop: dict[str, Counter[str]],
          shares: dict[str, dict[str, float]], own_code: Counter[str] | None = None) -> list[Screened]:
    """Every route (name, url) of the screen: its evidence and the reasons it is flagged.

    `window`: the screen cell's results row; `table`: route_window's per-route figures; `on_loop`:
    per URL path, stall kind (cpu, wait, ...) → samples; `shares`: per URL path, category → share of
    request time in % (wait_profile.csv); `own_code`: per URL path, the stall samples with an app frame
    on the stack (stall_sites.csv). A route's samples none of which is in the app's code flag it only
    from the noise floor up: the loop running FastAPI's own handling of a request (its parameters,
    its response) while it catches up after another route's stall. A thread-token share counts only
    when the window's limiter was ever full: otherwise no request waited for a token (the samples in
    anyio's limiter were at its checkpoint, waiting for the loop)."""
    by_name = {str(r["route"]): r for r in table.to_dict("records")}
    limiter_full = _num(window, "thread_tokens_full_pct") > 0
    own_code = own_code if own_code is not None else Counter()
    workers = _num(window, "workers")
    floor = noise_floor(_num(window, "duration_s") if _num(window, "duration_s") > 0 else 1.0,
                        int(workers) if workers > 0 else 1)
    out = []
    for name, url in routes:
        figures = by_name.get(name, {})
        path = url_path(url)
        mine, kinds = shares.get(path, {}), on_loop.get(path, Counter())
        s = Screened(route=name, url=url, requests=int(figures.get("requests", 0) or 0),
                     failures=int(figures.get("failures", 0) or 0), rps=float(figures.get("rps", math.nan)),
                     p99_ms=float(figures.get("p99_ms", math.nan)), stall_samples=sum(kinds.values()),
                     stall_cpu_samples=kinds.get("cpu", 0), stall_app_samples=own_code.get(path, 0),
                     lock_pct=mine.get("lock", 0.0),
                     tokens_pct=mine.get("tokens", 0.0) if limiter_full else 0.0, wait=largest_wait(mine))
        s.reasons = route_reasons(s, floor)
        out.append(s)
    for reason in window_reasons(window, out):
        for s in out:
            s.reasons.append(reason)
    return out


def largest_wait(shares: dict[str, float]) -> str:
    """'network or database I/O 87%': the largest category that is not app code ('' when none)."""
    waiting = [(v, c) for c, v in shares.items() if c != "app" and v > 0]
    if not waiting:
        return ""
    share, cat = max(waiting)
    return f"{wait_profile.LABELS.get(cat, cat)} {share:.0f}%"


def stall_paths(raw_dir: Path) -> dict[str, Counter[str]]:
    """Stall samples per URL path and kind ('cpu', 'wait'), from raw/<cell>/stalls.folded: its first
    frame is the path ('?' when no request was on the loop's stack), its last the kind ('[cpu]')."""
    out: dict[str, Counter[str]] = {}
    folded = raw_dir / stalls.FOLDED_FILE
    if not folded.is_file():
        return out
    for line in folded.read_text().splitlines():
        frames, _, n = line.rpartition(" ")
        parts = frames.split(";")
        if parts[0] != "?" and n.isdigit():
            out.setdefault(parts[0], Counter())[parts[-1].strip("[]")] += int(n)
    return out


def own_code_paths(raw_dir: Path) -> Counter[str]:
    """Stall samples per URL path with an app frame on the stack, from raw/<cell>/stall_sites.csv."""
    out: Counter[str] = Counter()
    sites = raw_dir / stalls.SITES_FILE
    if sites.is_file():
        for r in pd.read_csv(sites, dtype={"path": str}).to_dict("records"):
            out[str(r["path"])] += int(r["samples"])
    return out


def wait_shares(raw_dir: Path) -> dict[str, dict[str, float]]:
    """Per URL path, category → share of its request time (%), from raw/<cell>/wait_profile.csv."""
    out: dict[str, dict[str, float]] = {}
    for r in wait_profile.read(raw_dir):
        out.setdefault(r["path"], {})[r["category"]] = float(r["share_pct"])
    return out


def judge_cell(run_dir: Path, window: dict, routes: list[tuple[str, str]]) -> list[Screened]:
    """judge() on one screen cell: its results row and its raw folder."""
    raw_dir = run_dir / str(window.get("raw_dir") or "")
    return judge(routes, window, route_window.read(raw_dir), stall_paths(raw_dir), wait_shares(raw_dir),
                 own_code_paths(raw_dir))


CSV_COLUMNS = ["raw_dir", *(f.name for f in fields(Screened))]


def write(run_dir: Path, judged: list[tuple[str, list[Screened]]]) -> Path:
    """screen.csv: one line per (screen cell, route), its evidence and reasons ('; '-joined)."""
    path = run_dir / SCREEN_CSV
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for raw, screened in judged:
            for s in screened:
                writer.writerow({"raw_dir": raw, **asdict(s), "reasons": "; ".join(s.reasons)})
    return path


def read(run_dir: Path) -> list[dict]:
    """screen.csv's lines ([] when the audit ran no screen)."""
    return store.csv_rows(run_dir / SCREEN_CSV)


def flagged_routes(judged: list[tuple[str, list[Screened]]]) -> list[str]:
    """The routes flagged in any screen cell, in the schema's order."""
    return list(dict.fromkeys(s.route for _, screened in judged for s in screened if s.flagged))
