"""Helpers shared by the upstream simulator and the harness's raw-asyncio capacity client
(harness/system/burst.py): which hosts count as loopback, and the fastest event loop available.

Kept free of imports beyond the standard library: the upstream runs as its own small process.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Coroutine
from typing import Any


def is_loopback(host: str | None) -> bool:
    """True for `localhost` and any loopback address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def event_loop_runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """uvloop.run when uvloop is installed (it is, with uvicorn[standard]), else asyncio.run."""
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run
