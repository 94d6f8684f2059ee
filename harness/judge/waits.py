"""Where a cell's requests waited, read from its row: the evidence the verdicts rest on.

A closed loop of U users always sends about U / latency requests a second, whatever limits it, so
"the users set the rate" needs positive evidence that nothing in the server made them wait: the
default thread limiter measured and never full for long, the app's database pool (when it has one)
never full for long, the event loop free. `queue_evidence` names the first wait that the row shows;
`server_measured` says whether the row could have shown one at all (--url without a probe cannot).

`no_response` is the other side of "fine": a route with no request completed in the window has no
latency to explain, whatever else was quiet.
"""

from __future__ import annotations

import math

QUEUE_PCT = 10.0  # a resource full this share of the window queued requests; below it, now and then


def _num(row: dict, key: str) -> float:
    try:
        v = float(row.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


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
    blocked = _num(row, "loop_blocked_pct_max")
    if blocked >= QUEUE_PCT:
        return f"the event loop blocked {blocked:.0f}% of the window"
    return None
