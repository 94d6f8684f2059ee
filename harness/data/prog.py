"""The name the user runs the harness by, for every message that tells them what to type next.

`bench.py` in the clone; `fastapi-bench` (or `python -m harness`) installed. The command sets
BENCH_PROG for the processes it starts (the reaper, the app's own interpreter reading its schema),
so their messages use the same name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "BENCH_PROG"
INSTALLED = "fastapi-bench"
CLONE = "bench.py"


def name() -> str:
    """The command name for messages: the one the user typed (or the one our parent was run by)."""
    return os.environ.get(ENV) or typed()


def typed() -> str:
    """The name this process was started by."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    # `python -m harness` runs harness/__main__.py; pytest's own __main__.py is not us
    if first.name == INSTALLED or (first.name == "__main__.py" and first.parent.name == "harness"):
        return INSTALLED
    return CLONE


def remember() -> str:
    """Fix the name for this process and the processes it starts; returns it. What this process
    was typed as wins over an inherited name (a test's pytest may have run the clone's command)."""
    os.environ[ENV] = found = typed()
    return found
