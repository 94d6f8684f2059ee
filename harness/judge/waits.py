"""Where a cell's requests waited, read from its row: the evidence the verdicts rest on.

A closed loop of U users always sends about U / latency requests a second, whatever limits it, so
"the users set the rate" needs positive evidence that nothing in the server made them wait: the
default thread limiter measured and never full for long, the app's database pool (when it has one)
never full for long. `queue_evidence` names the first wait that the row shows;
`server_measured` says whether the row could have shown one at all (--url without a probe cannot).

`lock_wait` reads the wait profile (harness/judge/wait_profile.py): a pool or lock the requests
queued on, named by its line in the app's code.

`no_response` is the other side of "fine": a route with no request completed in the window has no
latency to explain, whatever else was quiet.
"""

from __future__ import annotations

from harness.data.schema import row_number as _num

QUEUE_PCT = 10.0  # a resource full this share of the window queued requests; below it, now and then


def in_flight(row: dict) -> str:
    """'32 in flight' for a closed loop (every user waits on one request), or '' when unknown."""
    users = _num(row, "users")
    return f"{users:.0f} in flight" if users > 0 else ""


def no_response(row: dict) -> str | None:
    """'no response within the window (32 in flight)' when the row counted no request at all."""
    if _num(row, "requests") != 0:  # NaN (not counted) is not evidence of silence either
        return None
    flight = in_flight(row)
    return "no response within the window" + (f" ({flight})" if flight else "")


def server_measured(row: dict) -> bool:
    """Whether the probe measured the worker's waits (its thread limiter): else no queue can be ruled out."""
    return _num(row, "thread_tokens_total") > 0


def queue_evidence(row: dict) -> str | None:
    """The first wait in front of the route that the row shows, in words; None when it shows none."""
    full, busy, total = (_num(row, k) for k in ("thread_tokens_full_pct", "thread_tokens_busy_max",
                                                "thread_tokens_total"))
    if full >= QUEUE_PCT:
        return f"all {total:.0f} thread tokens taken {full:.0f}% of the window (at most {busy:.0f} busy)"
    pool_full, pool = _num(row, "app_pool_full_pct"), _num(row, "app_pool_size")
    if pool_full >= QUEUE_PCT:
        return f"all {pool:.0f} database pool connections out {pool_full:.0f}% of the window"
    lock = _num(row, "wait_lock_pct")
    if lock >= QUEUE_PCT:
        site = _text(row, "wait_site")
        at = f" at {site}" if site else ""
        return f"requests waited for a pool or lock {lock:.0f}% of their time{at}"
    # The loop is left to its own rule (BLOCKED_PCT): on a shared 2-core machine a busy healthy worker's
    # heartbeat is late a good part of the window without any queue in front of the route.
    return None


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


LOCK_PCT = 25.0  # a route's requests spent this share of their time on one pool or lock: it binds


def lock_wait(row: dict) -> str | None:
    """'waits on a lock / semaphore at gate.py:15 (asyncio.Semaphore.acquire, 74% of request time)'
    when the wait profile found the route's requests on a pool or lock most of their time."""
    share, site = _num(row, "wait_lock_pct"), _text(row, "wait_site")
    if not share >= LOCK_PCT or not site:
        return None
    where, _, call = site.partition(" (")
    call = call.removesuffix(")")
    what = f"{call}, " if call else ""
    return f"waits on a lock / semaphore at {where} ({what}{share:.0f}% of request time)"


def lock_advice(row: dict) -> str:
    site = _text(row, "wait_site")
    return (f"requests queue at {site or 'one lock'}: hold it for less time (no await of I/O inside it), "
            "raise its size if it is a pool or semaphore (within what it protects), or shard what it guards")


POOL_FULL_PCT = 50.0  # every connection out this share of the window: the pool binds (as the tokens)


def pool_limit(row: dict) -> str | None:
    """'limited by the database pool (2 of 2 connections busy 98% of the window, p99 wait 790 ms)'
    when the app's own SQLAlchemy pool was full most of the window; None otherwise."""
    full, size, wait = (_num(row, k) for k in ("app_pool_full_pct", "app_pool_size", "app_pool_wait_p99_ms"))
    if not full >= POOL_FULL_PCT:
        return None
    p99 = f", p99 wait {wait:.0f} ms" if wait == wait else ""
    return (f"limited by the database pool ({size:.0f} of {size:.0f} connections busy {full:.0f}% of the "
            f"window{p99})")


def pool_advice(row: dict) -> str:
    """Both sizes and the consequence: throughput ≈ connections / hold time."""
    size, rps, workers = _num(row, "app_pool_size"), _num(row, "rps"), _num(row, "workers")
    tokens = _num(row, "thread_tokens_total")
    conns = size * (workers if workers > 0 else 1)
    hold = f"; at {rps:.1f} rps each checkout holds its connection about {1000 * conns / rps:.0f} ms" \
        if rps > 0 else ""
    held = _num(row, "app_pool_hold_p50_ms")
    if held > 0:  # measured checkout to checkin: the session's teardown after the query counts too
        hold += (f" (measured: a median {held:.0f} ms from checkout to checkin, so at most "
                 f"{1000 * conns / held:.0f} rps)")
    threads = f"{tokens:.0f} thread tokens" if tokens > 0 else "the thread tokens"
    return (f"requests queue for {size:.0f} connection(s) per worker (create_engine's pool_size + "
            f"max_overflow) in front of {threads}: throughput ≈ pool / hold time{hold}. Raise pool_size "
            "or max_overflow (within the database's max_connections), or hold the connection for less; "
            "more thread tokens will not help")
