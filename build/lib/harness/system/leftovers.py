"""Processes left running by an earlier run of this checkout whose harness (and reaper) died.

They are recognised by the run marker in their environment (harness/system/reaper.py): same checkout,
and the harness that started them is gone. They would steal CPU from the new run's measurements,
so `bench.py run` stops them before it starts and says so in one line.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from harness.system.reaper import (
    ROOT,
    harness_alive,
    marked_processes,
    parse_marker,
    terminate,
    with_descendants,
)


def find(root: Path = ROOT) -> dict[int, list[psutil.Process]]:
    """Dead harness pid → its processes still running, for runs of the checkout at `root`."""
    out: dict[int, list[psutil.Process]] = {}
    for pid, value in marked_processes().items():
        parsed = parse_marker(value)
        if parsed is None or parsed[2] != str(root) or harness_alive(parsed[0], parsed[1]):
            continue
        try:
            out.setdefault(parsed[0], []).append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return out


def stop(root: Path = ROOT) -> str | None:
    """Stop every leftover; a one-line note of what was found, or None if there was nothing."""
    found = find(root)
    if not found:
        return None
    # Descendants too: a postmaster carries the marker, its children (own sessions, ps titles
    # written over their environment) do not.
    stopped = terminate(with_descendants([p for group in found.values() for p in group]))
    if not stopped:
        return None
    pids = ", ".join(str(pid) for pid in sorted(found))
    return (f"note: stopped {stopped} process(es) left running by an earlier run of this checkout "
            f"(its harness, pid {pids}, is gone); they would have stolen CPU from this run")
