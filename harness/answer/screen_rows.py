"""audit.csv's rows for the routes the screen cleared (harness/judge/screen.py judged them, into the
run folder's screen.csv): "fine at this load", with the route's own rps and p99 from the shared
window, and the window's /health, loop and validity figures. The `source` column tells them
("screen") from the rows of a route's own cells ("alone").
"""

from __future__ import annotations

import math
import re

from harness.answer.reruns import RERUN
from harness.data.schema import row_number as _num
from harness.data.schema import row_text as _text
from harness.judge import screen

ALONE, SCREENED = "alone", "screen"
read = screen.read  # screen.csv's lines, [] when the audit ran no screen


def _fmt(value: float, digits: int = 0) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def cleared(window: dict, line: dict, template: dict[str, str]) -> dict:
    """The row of one route the screen cleared: `window` is the screen cell's results row, `line`
    the route's line of screen.csv, `template` scenario → the route as the schema names it. Its
    `_scenario` key orders the rows (audit_rows removes it)."""
    users = _num(window, "users")
    return {
        "_scenario": line["route"], "route": template.get(line["route"], line["route"]), "url": line["url"],
        "workers": _fmt(_num(window, "workers")), "users": _fmt(users),
        "thread_tokens": _fmt(_num(window, "thread_tokens")), "verdict": screen.FINE,
        "rps": _fmt(_num(line, "rps"), 1), "p99_ms": _fmt(_num(line, "p99_ms"), 1),
        "health_p99_ms": _fmt(_num(window, "health_p99_ms"), 1),
        "health_max_ms": _fmt(_num(window, "health_max_ms"), 1),
        "loop_lag_p99_ms": _fmt(_num(window, "loop_lag_p99_ms"), 1), "stall_site": "", "wait": line["wait"],
        "app_error": "", "advice": f"nothing to change at {users:.0f} users (cleared in the screen: every "
        "route in one window, so its p99 is that shared window's)", **own_validity(window),
        "rerun": _text(window, RERUN), "source": SCREENED,
    }


_FAILED = re.compile(r"^\d+% of requests failed\b")


def own_validity(window: dict) -> dict:
    """The window's validity as a cleared route's: without the window's failed share, which is other
    routes' (a cleared route had none of its own); every other reason stays."""
    reasons = [r for r in _text(window, "invalid_reason").split("; ") if r and not _FAILED.match(r)]
    if not reasons and _text(window, "invalid_reason"):
        return {"valid": "True", "invalid_reason": ""}
    return {"valid": _text(window, "valid"), "invalid_reason": "; ".join(reasons)}
