"""What limited a cell: `bound_by` (a short label) and `bound_detail` (the figures behind it).

The rules use only what a row already measures. They are tried in order; the first that holds
names the bound, and any later one that also holds is listed after it ("also: ...").

1. pattern            efficiency ≥ 0.9: the concurrency pattern itself is the limit. The part is
                      read from the model's Demand (harness/data/model.py): the blocked loop, the
                      thread tokens, the HTTP connections, the pool, the GIL, the cores, or the
                      users themselves (a closed loop of U users cannot exceed U / latency).
                      Also below 0.9 when efficiency_cpu (the ceiling at the CPU cost the workers
                      measured) is ≥ 0.9, or when that part is CPU and the processes doing the
                      pattern's work are measured at ≥ 90% of it: the pattern still binds, each
                      request just cost more CPU than calibrated (a slowed or shared core).
   Below 0.9 (or without a ceiling), what the target, the machine and the helpers did:
2. accept imbalance   the busiest worker served well over its even share 1/W while another idled.
   database pool      the app's own SQLAlchemy pool had every connection out for most of the window
                      (harness/judge/waits.py; its events, seen from the wrapper).
3. GIL                threads doing pure-Python CPU, their process at about one core.
4. worker CPU         a worker process at ≥ 90% of one core (framework, client library, JSON...).
5. upstream           the upstream's CPU saturated, or its demand above half its measured capacity.
6. machine CPU        target + Locust + upstream at ≥ 90% of the machine's cores, or the cores that
                      busy counting every process (on a shared machine, others take CPU too).
7. load generator     Locust at ≥ 90% of its one core.
8. unexplained        none of the above: said plainly, with the figures, rather than guessed.
   Between 80% and 90% of the ceiling, the closest rule (the pattern, or a resource nearest its
   threshold) is named instead, with its figures and how far it is from firing.

Before all of them: a cell whose every request failed is bound by "failing requests" (with the
most frequent failure), never by a resource. Among the rules, "thread pool": anyio's default thread
limiter had every token taken for most of the window (`def` routes waited for a thread).

Without a model (your own app, --url) there is no pattern to name, but the loop says it: a worker
whose event loop was late on its heartbeat for ≥ half the window is "blocked loop" (little CPU: a
blocking call such as sync I/O or time.sleep in async def; a saturated core: CPU work on the loop),
and, when no rule fired, a closed loop whose rate is U / p50 is bound by its "users" only when the
worker's waits were measured and show no queue (harness/judge/waits.py); otherwise "unexplained",
naming the closest rule and the wait the row shows. A cell with no request in the window is bound by
"no response".

Target-side rules come first: a saturated worker cannot serve faster whatever else is busy,
while a busy load generator next to it may only be keeping pace.

Why one module over 300 lines: the rules are tried in one order and each names the next when it also
holds, so they live together; each rule is a short function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.data import model, prog
from harness.data.schema import row_number as _num
from harness.judge import waits
from targets import db_pool_max

PATTERN_EFFICIENCY = 0.9
CORE_BUSY_PCT = 90.0          # one process at ≥ this % of a core is saturated
MACHINE_BUSY_SHARE = 0.9      # all measured processes at ≥ this share of the cores
UPSTREAM_DEMAND_SHARE = 0.5   # as in validity.py
IMBALANCE_FACTOR = 1.5        # busiest worker's share ≥ this × 1/W ...
IDLE_SHARE = 1 / 3            # ... while the idlest used under this share of the busiest's CPU
GIL_PROCESS_PCT = 70.0        # "about one core": GIL hand-offs keep a contended process a bit below
GIL_THREAD_SHARE = 0.5        # most of that process's CPU in threads other than the loop's
OTHERS_PCT = 20.0             # CPU of processes not ours worth naming (a shared machine)
SLOW_STAGE = 1.1              # a CPU stage costing this much more than calibrated is worth saying
BLOCKED_PCT = 50.0            # a loop late on its heartbeat this share of the window is blocked
TOKENS_FULL_PCT = 50.0        # every thread token taken for this share of the window: the pool binds
# Bounds under which the route itself kept up: the users, or the load they could generate (the audit's
# "fine" needs one of them, harness/answer/audit.py; so does the screen's, harness/judge/screen.py).
FINE_BOUNDS = ("users", "pattern: users", "load generator", "machine CPU")
# Fewer completed requests than this cannot show a route fine (audit and screen alike): no queue among
# 10 requests says little (a slow route at 2 rps in a 5 s window).
FINE_MIN_REQUESTS = 20
NEAR_EFFICIENCY = 0.8         # from here to PATTERN_EFFICIENCY, the closest rule rather than none


@dataclass(frozen=True)
class Context:
    """What a row does not carry: the cores the model used and the machine's, and the upstream's
    measured capacity."""

    target_cores: int
    machine_cores: int
    upstream_capacity_rps: float | None = None


@dataclass(frozen=True)
class Verdict:
    bound_by: str
    detail: str


def pattern_part(row: dict, cores: int) -> tuple[str, str]:
    """(part, why): which term of the model's ceiling is the smallest for this cell."""
    db: dict[str, Any] = {}
    if row["scenario"] == "db":  # the pool a worker really gets: DB_POOL or the driver's default
        given = _num(row, "db_pool")
        pool_max = db_pool_max(row["target"], row.get("db_driver"), None if math.isnan(given) else int(given))
        db = dict(db_queries=int(row["db_queries"]), db_ms=_num(row, "db_ms"), db_pool=pool_max)
    d = model.demand(row["target"], row["scenario"], workers=int(row["workers"]), io_ms=_num(row, "io_ms"),
                     cpu_ms=_num(row, "cpu_ms"), fanout=int(row["fanout"]),
                     pool_size=int(row["pool_size"]) if not math.isnan(_num(row, "pool_size")) else None,
                     cpu_kind=row["cpu_kind"], cores=cores,
                     http_connections=int(_num(row, "http_connections")), **db)
    users, W = int(row["users"]), int(row["workers"])
    slot_limit = min(users, d.slots) / d.wall_s if d.wall_s > 0 else math.inf
    cpu_limit = min(users, d.cpu_parallel) / d.cpu_s if d.cpu_s > 0 else math.inf
    target = row["target"]
    if slot_limit <= cpu_limit:  # a request holds a slot longer than its CPU needs a core
        if users <= d.slots:
            return "users", f"{users} users, each waiting {d.wall_s * 1000:.0f} ms per request (U / latency)"
        if target in ("fake-async", "blocking-future"):
            return "blocked loop", f"one request at a time per worker: {W} / {d.wall_s * 1000:.0f} ms"
        pool = _num(row, "pool_size")
        if db:
            if target == "thread-pool" and pool < db["db_pool"]:
                return "thread tokens", f"{W} × {pool:.0f} thread tokens < {users} users"
            return "database pool", f"{d.slots:.0f} connections (workers × pool) < {users} users"
        if target == "thread-pool" and pool <= _num(row, "http_connections"):
            return "thread tokens", f"{W} × {pool:.0f} thread tokens < {users} users"
        return "HTTP connections", f"{d.slots:.0f} requests in flight fit the client pools < {users} users"
    if users <= d.cpu_parallel:
        return "users", f"{users} users, each needing {d.cpu_s * 1000:.0f} ms of CPU"
    if d.cpu_parallel >= cores:
        return "cores", f"CPU work on all {cores} cores ({d.cpu_s * 1000:.0f} ms per request)"
    if target == "process-pool" or (target in ("thread-pool", "mixed") and row["cpu_kind"] == "native"):
        return "pool", f"{d.cpu_parallel:.0f} pool workers computing at once"
    if target in ("thread-pool", "mixed"):
        return "GIL", f"pure-Python CPU in threads: one core per worker, {W} worker(s)"
    return "blocked loop", f"CPU computed on the event loop: one core per worker, {W} worker(s)"


def _blocked_loop(row: dict) -> str | None:
    """For an app the model does not know: its worst worker's loop blocked for most of the window."""
    blocked, lag, cpu = (_num(row, k) for k in ("loop_blocked_pct_max", "loop_lag_p99_ms",
                                                  "worker_cpu_max_pct"))
    if not blocked >= BLOCKED_PCT:
        return None
    late = (f"the worst worker's event loop was blocked {blocked:.0f}% of the window (loop lag p99 "
            f"{lag:.0f} ms)")
    if math.isnan(cpu):  # --url: the server's CPU is not visible from here
        return f"{late}: a blocking call or CPU work on the event loop"
    what = ("CPU work on the event loop" if cpu >= CORE_BUSY_PCT else
            "a blocking call on the event loop (sync I/O or a sleep inside async def: fake async)")
    return f"{late} while that worker used {cpu:.0f}% of a core: {what}"


def _closed_loop_users(row: dict) -> str | None:
    """For an app the model does not know, with nothing saturated: U closed-loop users each waiting
    about p50 send about U / p50 requests a second (Little's law). When the rate is that, the users
    set it, not the server: more users would find its limit."""
    if not (_littles_law(row) and waits.server_measured(row)) or waits.queue_evidence(row):
        return None  # U / latency holds for any closed loop: only a server seen free of waits proves it
    users, p50, rps = _num(row, "users"), _num(row, "p50_ms"), _num(row, "rps")
    offered = users / (p50 / 1000)
    return (f"a closed loop of {users:.0f} users at p50 {p50:.1f} ms sends about {offered:.0f} rps "
            f"(measured {rps:.0f}) and nothing measured was saturated: the users set the rate; add users "
            "to find the server's limit")


def _littles_law(row: dict) -> bool:
    """The rate is about U / p50: the users kept one request each in flight."""
    users, p50, rps = _num(row, "users"), _num(row, "p50_ms"), _num(row, "rps")
    if not (users > 0 and p50 > 0 and rps > 0):
        return False
    return abs(users / (p50 / 1000) - rps) <= 0.25 * rps  # else something else shapes the median


def _rule_imbalance(row: dict, ctx: Context) -> str | None:
    W = int(row["workers"])
    share, busiest, idlest = (_num(row, k) for k in ("worker_share_max", "worker_cpu_max_pct",
                                                      "worker_cpu_min_pct"))
    if W < 2 or not share >= min(1.0, IMBALANCE_FACTOR / W) or not idlest < IDLE_SHARE * busiest:
        return None
    return (f"the busiest of {W} workers served {share:.0%} of requests (even share {1 / W:.0%}); "
            f"CPU busiest {busiest:.0f}%, idlest {idlest:.0f}% of a core")


def _rule_thread_pool(row: dict, ctx: Context) -> str | None:
    full, busy, total = (_num(row, k) for k in ("thread_tokens_full_pct", "thread_tokens_busy_max",
                                                "thread_tokens_total"))
    if not full >= TOKENS_FULL_PCT:
        return None
    return (f"limited by the thread pool ({busy:.0f} of {total:.0f} tokens busy, all of them {full:.0f}% "
            "of the window): `def` routes waited for a thread; raise "
            "anyio.to_thread.current_default_thread_limiter().total_tokens at start-up "
            f"(try {prog.name()} run --thread-tokens {total:.0f},{2 * total:.0f})")


def _rule_gil(row: dict, ctx: Context) -> str | None:
    if row.get("cpu_kind") != "python":
        return None
    busiest, threads_pct, n = (_num(row, k) for k in ("worker_cpu_max_pct", "worker_thread_cpu_pct",
                                                      "worker_busy_threads"))
    if not (busiest >= GIL_PROCESS_PCT and n >= 2 and threads_pct >= GIL_THREAD_SHARE * busiest):
        return None
    return (f"{n:.0f} threads running pure-Python CPU ({threads_pct:.0f}% of a core) in a worker at "
            f"{busiest:.0f}% of one core: the GIL lets one run at a time")


def _rule_worker_cpu(row: dict, ctx: Context) -> str | None:
    busiest = _num(row, "worker_cpu_max_pct")
    if not busiest >= CORE_BUSY_PCT:
        return None
    out = f"busiest worker at {busiest:.0f}% of one core (framework, client library, serialisation)"
    cost, asked = _num(row, "cpu_cost_ms"), _num(row, "cpu_ms")
    if row.get("scenario") in ("cpu", "mixed") and cost > SLOW_STAGE * asked:
        # the model counts the calibrated CPU_MS; a slowed or shared core makes every request cost more
        out += f"; its CPU stage cost {cost:.1f} ms of CPU, not the {asked:.0f} ms calibrated"
    return out


def _rule_upstream(row: dict, ctx: Context) -> str | None:
    cpu = _num(row, "upstream_cpu_pct")
    if cpu >= CORE_BUSY_PCT:
        return f"upstream at {cpu:.0f}% of its one core"
    calls = model.upstream_calls(row["scenario"], int(row["fanout"])) * (_num(row, "rps") or 0.0)
    cap = ctx.upstream_capacity_rps
    if cap and calls > UPSTREAM_DEMAND_SHARE * cap:
        return f"upstream demand {calls:.0f} calls/s > half its measured capacity {cap:.0f}/s"
    return None


def _rule_machine(row: dict, ctx: Context) -> str | None:
    parts = {k: _num(row, f"{k}_cpu_pct") for k in ("target", "locust", "upstream")}
    ours = sum(v for v in parts.values() if not math.isnan(v))
    whole = _num(row, "machine_cpu_pct")  # every process on these cores, ours and others
    k = ctx.machine_cores
    full = MACHINE_BUSY_SHARE * 100 * k
    if not (ours >= full or whole >= full):
        return None
    out = (f"target {parts['target']:.0f}% + Locust {parts['locust']:.0f}% + upstream "
           f"{parts['upstream']:.0f}% = {ours:.0f}% of {100 * k}% ({k} cores)")
    others = whole - ours
    if others >= OTHERS_PCT:
        out += f"; other processes on this machine used {others:.0f}% more (busy {whole:.0f}% in all)"
    return out


def _rule_locust(row: dict, ctx: Context) -> str | None:
    cpu = _num(row, "locust_cpu_pct")
    return f"Locust at {cpu:.0f}% of its one core" if cpu >= CORE_BUSY_PCT else None


def _rule_app_pool(row: dict, ctx: Context) -> str | None:
    return waits.pool_limit(row)


RULES: list[tuple[str, Callable[[dict, Context], str | None]]] = [
    ("accept imbalance", _rule_imbalance),
    ("database pool", _rule_app_pool),  # before the tokens: threads waiting on the pool hold them
    ("thread pool", _rule_thread_pool),
    ("GIL", _rule_gil),
    ("worker CPU", _rule_worker_cpu),
    ("upstream", _rule_upstream),
    ("machine CPU", _rule_machine),
    ("load generator", _rule_locust),
]


def _efficiency_text(row: dict) -> str:
    eff, ceiling = _num(row, "efficiency"), _num(row, "ceiling_rps")
    if math.isnan(eff) or not math.isfinite(ceiling):
        return "no finite ceiling"
    return f"{eff:.0%} of the {ceiling:.0f} rps ceiling"


def saturated_part(row: dict, part: str, cores: int) -> str | None:
    """When the part of the model that binds is CPU, whether the processes doing the pattern's work
    were measured saturated: then the pattern is the limit even below 0.9, and each request simply
    cost more CPU than calibrated (a slowed or shared core). None when they were not."""
    if row.get("scenario") not in ("cpu", "mixed"):
        return None
    W = int(row["workers"])
    if part == "cores":
        used, full, who = _num(row, "target_cpu_pct"), 100.0 * cores, "the target"
    elif part == "pool" and row.get("target") == "process-pool":
        P = _num(row, "pool_size")
        used, full, who = _num(row, "pool_cpu_pct"), 100.0 * min(W * P, cores), "the pool processes"
    elif part in ("blocked loop", "GIL"):
        idlest = _num(row, "worker_cpu_min_pct")
        if not idlest >= CORE_BUSY_PCT:
            return None
        return (f"every worker at ≥ {idlest:.0f}% of a core ({part} saturated): a request cost more CPU "
                f"than the calibrated {_num(row, 'cpu_ms'):.0f} ms{_cost(row)}")
    else:
        return None
    if not used >= CORE_BUSY_PCT / 100 * full:
        return None
    return (f"{who} used {used:.0f}% of {full:.0f}% ({part} saturated): a request cost more CPU than "
            f"the calibrated {_num(row, 'cpu_ms'):.0f} ms{_cost(row)}")


def _cost(row: dict) -> str:
    """' (it cost 24.0 ms of CPU)' when the workers measured the stage's CPU time above CPU_MS."""
    cost = _num(row, "cpu_cost_ms")
    return f" (it cost {cost:.1f} ms of CPU)" if cost > _num(row, "cpu_ms") else ""


def _all_failed(row: dict) -> Verdict | None:
    """Every request failed: nothing was served, so no resource can be what limited it."""
    requests, failures = _num(row, "requests"), _num(row, "failures")
    if not (requests > 0 and failures >= requests):
        return None
    top = row.get("fail_top") or ""
    return Verdict("failing requests", f"all {requests:.0f} requests in the window failed"
                   + (f": {top}" if top else ""))


# How close each resource rule came to its threshold (1.0: it fires): (label, ratio, figures).
def _closeness(row: dict, ctx: Context) -> list[tuple[str, float, str]]:
    out = []
    busiest = _num(row, "worker_cpu_max_pct")
    out.append(("worker CPU", busiest / CORE_BUSY_PCT, f"busiest worker at {busiest:.0f}% of one core "
                f"(the rule needs {CORE_BUSY_PCT:.0f}%)"))
    full = MACHINE_BUSY_SHARE * 100 * ctx.machine_cores
    used = max(_num(row, "machine_cpu_pct"), sum(v for k in ("target", "locust", "upstream")
                                                  if not math.isnan(v := _num(row, f"{k}_cpu_pct"))))
    out.append(("machine CPU", used / full, f"machine at {used:.0f}% of {100 * ctx.machine_cores}% "
                f"(the rule needs {full:.0f}%)"))
    locust = _num(row, "locust_cpu_pct")
    out.append(("load generator", locust / CORE_BUSY_PCT, f"Locust at {locust:.0f}% of its core "
                f"(the rule needs {CORE_BUSY_PCT:.0f}%)"))
    return [(n, r, t) for n, r, t in out if not math.isnan(r)]


def _nearest(row: dict, ctx: Context, part: str, why: str) -> Verdict | None:
    """Between 80% and 90% of the ceiling with no rule fired: the rule closest to firing, with its
    figures, rather than 'unexplained' (the pattern itself competes at efficiency / 0.9)."""
    eff = _num(row, "efficiency")
    if not NEAR_EFFICIENCY <= eff < PATTERN_EFFICIENCY:
        return None
    candidates = [(f"pattern: {part}", eff / PATTERN_EFFICIENCY,
                   f"{why} (the rule needs {PATTERN_EFFICIENCY:.0%} of the ceiling)"),
                  *_closeness(row, ctx)]
    name, ratio, figures = max(candidates, key=lambda c: c[1])
    return Verdict(name, f"{_efficiency_text(row)}; no rule fired; closest: {name} at {ratio:.0%} of its "
                   f"threshold: {figures}")


def _unexplained_unmodelled(row: dict, ctx: Context) -> Verdict:
    """An app without a model where no rule fired: the rule closest to firing, with its figures, and
    the wait the row shows (why the users are not named), rather than a guess."""
    full = _num(row, "thread_tokens_full_pct")
    candidates = [("thread pool", full / TOKENS_FULL_PCT, f"every thread token taken {full:.0f}% of the "
                   f"window (the rule needs {TOKENS_FULL_PCT:.0f}%)"), *_closeness(row, ctx)]
    candidates = [c for c in candidates if not math.isnan(c[1])]
    out = "no rule matched"
    if candidates:
        name, ratio, figures = max(candidates, key=lambda c: c[1])
        out += f"; closest: {name} at {ratio:.0%} of its threshold: {figures}"
    if queue := waits.queue_evidence(row):
        out += f"; requests queued: {queue}"
    if _littles_law(row):
        out += (f"; the rate is {_num(row, 'users'):.0f} users / p50 {_num(row, 'p50_ms'):.0f} ms, as in any "
                "closed loop, so it does not show the users are the limit"
                + ("" if waits.server_measured(row) else " (the worker's waits were not measured)"))
    return Verdict("unexplained", f"{_efficiency_text(row)}; {out}")


def attribute(row: dict, ctx: Context) -> Verdict:
    """The bound of one measured row (status ok). Failed rows have no bound."""
    if silent := waits.no_response(row):
        return Verdict("no response", silent)
    if failing := _all_failed(row):
        return failing
    eff = _num(row, "efficiency")
    fired = [(name, why) for name, rule in RULES if (why := rule(row, ctx))]
    try:
        part, why = pattern_part(row, ctx.target_cores)
    except (KeyError, ValueError):  # a target the model does not know
        part, why = "ceiling", "no model of its parts"
    if part == "thread tokens":  # the pattern already names the pool
        fired = [(name, w) for name, w in fired if name != "thread pool"]
    others = [name for name, _ in fired if name != part]  # "pattern: GIL" needs no "also GIL"
    also = "; also " + ", ".join(others) if others else ""
    if eff >= PATTERN_EFFICIENCY:
        return Verdict(f"pattern: {part}", f"{_efficiency_text(row)}: {why}{also}")
    eff_cpu = _num(row, "efficiency_cpu")
    if eff_cpu >= PATTERN_EFFICIENCY and eff_cpu != eff:
        # the ceiling recomputed with the CPU time a request really cost (harness/judge/collect.py)
        return Verdict(f"pattern: {part}", f"{_efficiency_text(row)}, {eff_cpu:.0%} of the "
                       f"{_num(row, 'ceiling_cpu_rps'):.0f} rps ceiling at the measured CPU cost"
                       f"{_cost(row)}: {why}{also}")
    if full := saturated_part(row, part, ctx.target_cores):
        return Verdict(f"pattern: {part}", f"{_efficiency_text(row)}; {why}; {full}{also}")
    if not math.isfinite(_num(row, "ceiling_rps")) and (blocked := _blocked_loop(row)):
        return Verdict("blocked loop", f"{_efficiency_text(row)}; {blocked}{also}")
    if fired:
        (name, why), rest = fired[0], fired[1:]
        more = "; also " + ", ".join(n for n, _ in rest) if rest else ""
        return Verdict(name, f"{_efficiency_text(row)}; {why}{more}")
    if not math.isfinite(_num(row, "ceiling_rps")) and (closed := _closed_loop_users(row)):
        return Verdict("users", f"{_efficiency_text(row)}; {closed}")
    if near := _nearest(row, ctx, part, why):
        return near
    if not math.isfinite(_num(row, "ceiling_rps")):
        return _unexplained_unmodelled(row, ctx)
    figures = ", ".join(
        f"{label} {v:.0f}%" for label, v in (
            ("busiest worker", _num(row, "worker_cpu_max_pct")), ("target", _num(row, "target_cpu_pct")),
            ("Locust", _num(row, "locust_cpu_pct")), ("upstream", _num(row, "upstream_cpu_pct")),
            ("machine", _num(row, "machine_cpu_pct")))
        if not math.isnan(v))
    return Verdict("unexplained", f"{_efficiency_text(row)}; no rule matched ({figures}; "
                   f"{ctx.machine_cores} cores)")
