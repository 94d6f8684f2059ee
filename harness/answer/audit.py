"""Verdicts of `bench.py audit`, read from a finished run folder only: one row per measured cell
(route × workers × thread tokens), plus the routes skipped, in audit.csv and a terminal table.

The verdict is the first of these that the row's own figures show:
  failing               no request completed in the window ("no response within the window (N in
                        flight)"), or over 1% of the requests failed (FAIL_RATIO_LIMIT; the most
                        frequent: fail_top, e.g. "timeout 24%")
  blocks the event loop the worst worker's loop was blocked ≥ BLOCKED_PCT of the window
  limited by the database pool  the app's own SQLAlchemy pool had every connection out for ≥
                        POOL_FULL_PCT of the window (harness/judge/waits.py, from its pool events)
  waits on a lock / semaphore at FILE:LINE  the wait profile found the requests on one pool or lock
                        ≥ LOCK_PCT of their time (harness/judge/waits.py, wait_profile.py)
  limited by the thread pool   anyio's default limiter had every token borrowed for ≥ TOKENS_FULL_PCT of
                        the window (thread_tokens_full_pct, as bottleneck's "thread pool" rule)
  limited by workers' CPU      the busiest worker used ≥ CORE_BUSY_PCT of a core
  fine at this load     only on evidence: requests completed, the bound (bottleneck's bound_by) is the
                        users or the load generator / machine, and the row shows no queue in front of
                        the route (harness/judge/waits.py)
  limited by <bound>    the bound bottleneck named, when it is none of the above
  unexplained           no rule found the limit: the closest one, from bound_detail
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

from harness.answer import refusals, screen_rows
from harness.answer.refusals import first_error  # the row text reads it; tests too
from harness.answer.reruns import RERUN, drop_superseded
from harness.data.matrix import SCREEN
from harness.data.schema import read_results
from harness.data.schema import row_number as _num  # the one reader of a row's figures
from harness.data.schema import row_text as _text
from harness.judge import users_bound, waits
from harness.judge.bottleneck import (
    BLOCKED_PCT,
    CORE_BUSY_PCT,
    FINE_BOUNDS,
    FINE_MIN_REQUESTS,
    TOKENS_FULL_PCT,
)
from harness.judge.validity import FAIL_RATIO_LIMIT

AUDIT_JSON = "audit.json"   # what the audit found in the schema (written before any cell runs)
AUDIT_CSV = "audit.csv"
COLUMNS = ["route", "url", "workers", "users", "thread_tokens", "verdict", "rps", "p99_ms", "health_p99_ms",
           "health_max_ms", "loop_lag_p99_ms", "stall_site", "wait", "app_error", "advice", "valid",
           "invalid_reason", "rerun", "source"]
ALONE = screen_rows.ALONE


def write_found(run_dir: Path, routes: list[dict], skipped: list[dict], setup: str | None) -> None:
    (run_dir / AUDIT_JSON).write_text(json.dumps({"routes": routes, "skipped": skipped, "setup": setup},
                                                 indent=1))


def _tokens(row: dict) -> tuple[float, float]:
    return _num(row, "thread_tokens_busy_max"), _num(row, "thread_tokens_total")


def verdict(row: dict) -> str:
    """The route's verdict from its row (see the module's docstring)."""
    if _text(row, "status") == "failed":
        return "failing: the cell did not run (" + (_text(row, "error") or "no error recorded") + ")"
    if silent := waits.no_response(row):
        return f"failing: {silent}"
    if _num(row, "fail_ratio") > FAIL_RATIO_LIMIT:  # the share beyond which the row is not valid either
        top = _text(row, "fail_top")
        return f"failing: {top}" if top else f"failing: {_num(row, 'fail_ratio'):.0%} of requests failed"
    if _num(row, "loop_blocked_pct_max") >= BLOCKED_PCT:
        return "blocks the event loop"
    if pool := waits.pool_limit(row):  # before the tokens: threads held waiting on the pool fill them too
        return pool
    if lock := waits.lock_wait(row):  # a pool or lock the wait profile found the requests on
        return lock
    busy, total = _tokens(row)
    if _num(row, "thread_tokens_full_pct") >= TOKENS_FULL_PCT:  # at the limit most of the window, not once
        return (f"limited by the thread pool ({busy:.0f} of {total:.0f} tokens busy, all of them "
                f"{_num(row, 'thread_tokens_full_pct'):.0f}% of the window)")
    if _num(row, "worker_cpu_max_pct") >= CORE_BUSY_PCT:
        return "limited by workers' CPU"
    return _by_bound(row)


_CLOSEST = re.compile(r"closest: (.+?) at \d+% of its threshold")


def _by_bound(row: dict) -> str:
    """After the rules above: 'fine' only on evidence, else the bound bottleneck named."""
    bound = _text(row, "bound_by")
    if bound in FINE_BOUNDS and not waits.queue_evidence(row):
        done = _num(row, "requests")
        if done < FINE_MIN_REQUESTS:  # a handful of requests shows no queue, and proves little else
            return (f"unexplained (only {done:.0f} requests completed in the window, too few to show it "
                    "fine: lengthen --duration)")
        return "fine at this load"
    if bound in ("", "unexplained") or bound in FINE_BOUNDS:  # users named, yet a queue shows: not proven
        closest = _CLOSEST.search(_text(row, "bound_detail"))
        queue = waits.queue_evidence(row)
        why = "; ".join(t for t in (f"closest: {closest.group(1)}" if closest else "",
                                    f"queued: {queue}" if queue else "") if t)
        return "unexplained" + (f" ({why})" if why else " (no limit measured)")
    return f"limited by {bound.removeprefix('pattern: ')}"


_SITE = re.compile(r"^(?P<where>\S+:\d+) in (?P<func>\S+)(?: → (?P<call>.+?))?(?P<cpu> \(CPU\))?$")


def advice(row: dict, verdict_text: str, route: str = "", has_body: bool | None = None) -> str:
    """One line: what to change, naming the call site when the stall sampler found one (`route`:
    the operation as --body names it; `has_body` False: it sends none, so no --body is advised)."""
    site = _text(row, "stall_site")
    if verdict_text.startswith("failing: no response"):
        return ("no request was answered within the window: look for an await or a lock with no "
                "timeout in the route, and give it one")
    blocked = _num(row, "loop_blocked_pct_max") >= BLOCKED_PCT
    if verdict_text.startswith("failing: timeout") and site and blocked:
        return ("the requests timed out queued behind a blocked loop (fewer --users shows the blocking "
                "without timeouts): " + _blocking_advice(site))
    if verdict_text.startswith("failing"):
        code = re.search(r"\b([45]\d\d)\b", verdict_text)
        if code and code.group(1) == "404":
            return ("the route answered 404: seed data with --setup FILE, or give an id that exists "
                    "with --param")
        if code and code.group(1) == "422":
            if route.startswith("/"):  # a GET: no body to give
                return "the app refused the parameters (422): give valid values with --param name=value"
            return ("the app refused the request (422): give valid values with --param name=value, or the "
                    f"body with --body '{route or 'METHOD /path'}=@body.json'")
        if code and code.group(1) in ("401", "403"):
            return (f"the route refused the credentials ({code.group(1)}): give --header 'Authorization: "
                    "Bearer TOKEN', or log in in --setup and return the headers from setup(base_url)")
        if code and code.group(1).startswith("4"):
            return refusals.refused_advice(code.group(1), route, has_body)
        raised = _text(row, "app_error")
        if code and code.group(1).startswith("5") and raised:
            return f"the app raised {raised}: fix it (the traceback is in raw/<cell>/uvicorn.log)"
        return "fix the failures first: their causes are in raw/<cell>/locust_failures.csv"
    if verdict_text == "blocks the event loop":
        return _blocking_advice(site)
    if verdict_text.startswith("limited by the database pool"):
        return waits.pool_advice(row)
    if verdict_text.startswith("waits on a lock"):
        return waits.lock_advice(row)
    if verdict_text.startswith("limited by the thread pool"):
        total = _num(row, "thread_tokens_total")
        size = f"{total:.0f}" if total > 0 else "40"
        sizes = f"{size},{2 * int(float(size))},{4 * int(float(size))}"
        return (f"`def` routes waited for one of {size} threads: raise "
                "anyio.to_thread.current_default_thread_limiter().total_tokens at start-up (measure "
                f"sizes with --thread-tokens {sizes}), or make the route async with an async client")
    if verdict_text == "limited by workers' CPU":
        cpu = f" (the CPU work at {site})" if site else ""
        return f"add workers (--workers), or move the CPU work{cpu} to a process pool"
    if verdict_text.startswith("unexplained"):
        return ("no measured limit explains the latency: audit again with more users (--users) to see "
                "whether throughput grows with them")
    if verdict_text.startswith("limited by"):
        return f"the limit named: see bound_detail ({_text(row, 'bound_detail') or 'no detail recorded'})"
    return f"nothing to change at {_num(row, 'users'):.0f} users"


def _blocking_advice(site: str) -> str:
    match = _SITE.match(site.strip()) if site else None
    if match is None:
        return ("a call in this async def blocks the loop: make the route def, or await an async client "
                "(no call site recorded for this cell)")
    call, where = match.group("call"), match.group("where")
    if match.group("cpu"):  # the loop thread computing: in the app's own code, or in the call it made
        work = f"`{call}`" if call else f"in {match.group('func')}"
        return (f"move the CPU work {work} at {where} off the loop: a process pool (run_in_executor), "
                "or a def route")
    what = f"`{call}`" if call else f"the call in {match.group('func')}"
    return f"move {what} at {where} out of `async def`: make the route `def`, or await an async client"


def _fmt(value: float, digits: int = 0) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _wait(row: dict) -> str:
    """The largest wait with its share of request time: 'pool or lock wait 74%' ('' when none)."""
    top = _text(row, "wait_top")
    return f"{top} {_num(row, 'wait_top_pct'):.0f}%" if top else ""


def audit_rows(run_dir: Path) -> list[dict]:
    """audit.csv's rows: every measured cell of the run, then every skipped route."""
    found = json.loads((run_dir / AUDIT_JSON).read_text())
    template = {r.get("scenario", r["url"]): r["template"] for r in found["routes"]}
    has_body = {r.get("scenario", r["url"]): r.get("body") for r in found["routes"]}  # None: not recorded
    urls = {r.get("scenario", r["url"]): r["url"] for r in found["routes"]}
    results = run_dir / "results.csv"
    rows = (drop_superseded(users_bound.withdraw_grown(read_results(results)).to_dict("records"))
            if results.is_file() else [])
    lines = screen_rows.read(run_dir)
    flagged = {ln["route"] for ln in lines if ln["reasons"]}
    out = []
    for row in rows:
        scenario = _text(row, "scenario")
        if scenario == SCREEN:  # the shared window: a row for each route it cleared
            out += [screen_rows.cleared(row, ln, template) for ln in lines
                    if ln["raw_dir"] == _text(row, "raw_dir") and ln["route"] not in flagged]
            continue
        text = verdict(row)
        detail = first_error(run_dir, row) if re.match(r"failing: 4\d\d ", text) else ""
        if detail and detail.lower() not in text.lower():  # not a 404's own "Not Found" again
            text += f" ({detail})"
        out.append({
            "_scenario": scenario,
            "route": template.get(scenario, scenario), "url": urls.get(scenario, scenario),
            "workers": _fmt(_num(row, "workers")),
            "users": _fmt(_num(row, "users")), "thread_tokens": _fmt(_num(row, "thread_tokens")),
            "verdict": text, "rps": _fmt(_num(row, "rps"), 1), "p99_ms": _fmt(_num(row, "p99_ms"), 1),
            "health_p99_ms": _fmt(_num(row, "health_p99_ms"), 1),
            "health_max_ms": _fmt(_num(row, "health_max_ms"), 1),
            "loop_lag_p99_ms": _fmt(_num(row, "loop_lag_p99_ms"), 1), "stall_site": _text(row, "stall_site"),
            "wait": _wait(row), "app_error": _text(row, "app_error"),
            "advice": refusals.with_app_error(
                advice(row, text, template.get(scenario, ""), has_body.get(scenario)), row),
            "valid": _text(row, "valid"),
            "invalid_reason": _text(row, "invalid_reason"), "rerun": _text(row, RERUN), "source": ALONE,
        })
    if lines:  # the cleared routes' rows and the alone ones in the schema's order
        order = {scenario: i for i, scenario in enumerate(template)}
        out.sort(key=lambda r: order.get(r["_scenario"], len(order)))
    for r in out:
        del r["_scenario"]
    _sweep_notes(out)
    for skip in found["skipped"]:
        out.append({**dict.fromkeys(COLUMNS, ""), "route": skip["template"],
                    "verdict": "skipped: " + skip["reason"]})
    return out


def _sweep_notes(rows: list[dict]) -> None:
    """A --thread-tokens sweep that did not move a pool-bound route says so in each row's advice."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["verdict"].startswith("limited by the database pool") and r["thread_tokens"]:
            groups.setdefault((r["url"], r["workers"], r["users"]), []).append(r)
    for group in groups.values():
        rates = {r["thread_tokens"]: float(r["rps"] or "nan") for r in group}
        if len(rates) < 2 or not all(v > 0 for v in rates.values()):
            continue
        low, high = min(rates.values()), max(rates.values())
        if high > 1.1 * low:  # the tokens moved it: nothing to add
            continue
        sizes = ",".join(sorted(rates, key=float))
        note = (f" (--thread-tokens {sizes} left it at {low:.1f}–{high:.1f} rps: the pool, not the "
                "threads, sets the rate)")
        for r in group:
            r["advice"] += note


def write_csv(run_dir: Path) -> list[dict]:
    rows = audit_rows(run_dir)
    with open(run_dir / AUDIT_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_csv(run_dir: Path) -> list[dict]:
    with open(run_dir / AUDIT_CSV, newline="") as fh:
        return list(csv.DictReader(fh))


def format_table(rows: list[dict]) -> str:
    """The terminal table: one route per block, the verdict and advice under its figures."""
    tokens = any(r.get("thread_tokens") for r in rows)  # --thread-tokens given: a column tells them apart
    head = f" {'tokens':>6}" if tokens else ""
    lines = [f"{'route':<28} {'W':>2}{head} {'rps':>8} {'p99 ms':>8} {'health p99':>10} {'loop lag p99':>12}"]
    for r in rows:
        if r["verdict"].startswith("skipped"):
            lines.append(f"{r['route']:<28} {r['verdict']}")
            continue
        health = r["health_p99_ms"] or (f"max {r['health_max_ms']}" if r["health_max_ms"] else "")
        size = f" {r.get('thread_tokens') or '40':>6}" if tokens else ""  # unset: anyio's default
        lines.append(f"{r['route']:<28} {r['workers']:>2}{size} {r['rps']:>8} {r['p99_ms']:>8} "
                     f"{health:>10} {r['loop_lag_p99_ms']:>12}")
        site = f" at {r['stall_site']}" if r["stall_site"] else ""
        waited = f"  [largest wait: {r['wait']}]" if r.get("wait") else ""
        lines.append(f"    {r['verdict']}{site}{waited}")
        lines.append(f"    → {r['advice']}")
        if r["valid"] not in ("True", "true", "1") and r["invalid_reason"]:
            lines.append(f"    (not valid: {r['invalid_reason']})")
        if r.get("rerun"):
            lines.append(f"    ({r['rerun']})")
    return "\n".join(lines)
