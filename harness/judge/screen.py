"""The audit's screen, judged: every route was requested in one shared window (scenarios/screen.py);
from that window alone, each route is either **cleared** ("fine at this load", on positive evidence
only) or **flagged**, to be measured alone (the audit's per-route cells) to confirm and size.

A route is cleared only when all of these hold in the window:
  - requests of its own completed (route_window's table: requests > 0);
  - none of them failed (not a 1% allowance: a screen clears on none);
  - no stall sample of the event loop had its request on the loop's stack (the stall sampler
    reads the request's path from the ASGI wrapper's frame, targets/stall_sampler.py);
  - its requests spent under QUEUE_PCT of their time waiting for a pool or lock, or for a
    thread token (the wait profile's per-route shares, harness/judge/wait_profile.py);
  - the window as a whole is explained: its own verdict (the audit's rules applied to the screen
    row) is "fine", or a blocked loop / failures / a lock wait that flagged routes account for.
    A worker-wide limit (workers' CPU, the thread pool, the database pool, an unexplained one)
    cannot be put on one route from the shared window, so it flags every route.

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

from harness.judge import route_window, stalls, wait_profile
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
    lock_pct: float = 0.0
    tokens_pct: float = 0.0
    wait: str = ""        # its largest wait with its share: 'network or database I/O 87%'
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def url_path(url: str) -> str:
    """The path a request's ASGI scope names: '/items/1' of '/items/1?limit=5'."""
    return urlsplit(url).path or "/"


def route_reasons(s: Screened) -> list[str]:
    """Why the route's own evidence does not clear it (empty: it does)."""
    out = []
    if s.requests <= 0:
        out.append("no request completed in the window")
    if s.failures > 0:
        out.append(f"{s.failures} of {s.requests} requests failed")
    if s.stall_samples > 0:
        out.append(f"{s.stall_samples} stall sample(s) with its request on the loop")
    if s.lock_pct >= QUEUE_PCT:
        out.append(f"waited for a pool or lock {s.lock_pct:.0f}% of its time")
    if s.tokens_pct >= QUEUE_PCT:
        out.append(f"waited for a thread token {s.tokens_pct:.0f}% of its time")
    return out


def window_reason(window_verdict: str, screened: list[Screened]) -> str | None:
    """Why the shared window's own verdict flags every route (None: it is fine, or flagged routes
    explain it)."""
    if window_verdict.startswith("fine"):
        return None
    if window_verdict.startswith("blocks the event loop") and any(s.stall_samples for s in screened):
        return None
    ran = not window_verdict.startswith("failing: the cell did not run")
    if window_verdict.startswith("failing") and ran and any(s.failures or s.requests <= 0 for s in screened):
        return None
    if window_verdict.startswith("waits on a lock") and any(s.lock_pct >= QUEUE_PCT for s in screened):
        return None
    return f"the shared window was '{window_verdict}', which no route's own evidence explains"


def judge(routes: list[tuple[str, str]], table: pd.DataFrame, stall_paths: Counter[str],
          waits: dict[str, dict[str, float]], window_verdict: str) -> list[Screened]:
    """Every route (name, url) of the screen: its evidence and the reasons it is flagged.

    `table`: route_window's per-route figures; `stall_paths`: stall samples per URL path;
    `waits`: per URL path, category → share of request time in % (wait_profile.csv)."""
    by_name = {str(r["route"]): r for r in table.to_dict("records")}
    out = []
    for name, url in routes:
        figures = by_name.get(name, {})
        path = url_path(url)
        shares = waits.get(path, {})
        s = Screened(route=name, url=url, requests=int(figures.get("requests", 0) or 0),
                     failures=int(figures.get("failures", 0) or 0), rps=float(figures.get("rps", math.nan)),
                     p99_ms=float(figures.get("p99_ms", math.nan)), stall_samples=stall_paths.get(path, 0),
                     lock_pct=shares.get("lock", 0.0), tokens_pct=shares.get("tokens", 0.0),
                     wait=largest_wait(shares))
        s.reasons = route_reasons(s)
        out.append(s)
    shared = window_reason(window_verdict, out)
    if shared is not None:
        for s in out:
            s.reasons.append(shared)
    return out


def largest_wait(shares: dict[str, float]) -> str:
    """'network or database I/O 87%': the largest category that is not app code ('' when none)."""
    waiting = [(v, c) for c, v in shares.items() if c != "app" and v > 0]
    if not waiting:
        return ""
    share, cat = max(waiting)
    return f"{wait_profile.LABELS.get(cat, cat)} {share:.0f}%"


def stall_paths(raw_dir: Path) -> Counter[str]:
    """Stall samples per URL path, from raw/<cell>/stalls.folded (its first frame is the path; '?' when
    no request was on the loop's stack)."""
    out: Counter[str] = Counter()
    folded = raw_dir / stalls.FOLDED_FILE
    if not folded.is_file():
        return out
    for line in folded.read_text().splitlines():
        frames, _, n = line.rpartition(" ")
        path = frames.split(";", 1)[0]
        if path != "?" and n.isdigit():
            out[path] += int(n)
    return out


def wait_shares(raw_dir: Path) -> dict[str, dict[str, float]]:
    """Per URL path, category → share of its request time (%), from raw/<cell>/wait_profile.csv."""
    out: dict[str, dict[str, float]] = {}
    for r in wait_profile.read(raw_dir):
        out.setdefault(r["path"], {})[r["category"]] = float(r["share_pct"])
    return out


def judge_cell(raw_dir: Path, routes: list[tuple[str, str]], window_verdict: str) -> list[Screened]:
    """judge() on one screen cell's raw folder."""
    return judge(routes, route_window.read(raw_dir), stall_paths(raw_dir), wait_shares(raw_dir),
                 window_verdict)


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
    path = run_dir / SCREEN_CSV
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def flagged_routes(judged: list[tuple[str, list[Screened]]]) -> list[str]:
    """The routes flagged in any screen cell, in the schema's order."""
    return list(dict.fromkeys(s.route for _, screened in judged for s in screened if s.flagged))
