"""Why requests failed, in one phrase: `fail_top` is the most frequent failure of the work requests
and its share of them ("404 Not Found 100%", "timeout 24%", "ConnectionResetError 3%").

It comes from Locust's own files in the cell's raw folder: locust_failures.csv (one row per name
and error, with its count) over locust_stats.csv (requests per name). Both cover the whole test,
warm-up included, so the share is of the same requests on both sides.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path

from harness.data import store
from harness.judge.collect import NOT_WORK

_STATUS = re.compile(r"code=(\d{3})|\b(\d{3}) (?:Client|Server) Error")
_TIMEOUT = re.compile(r"time(?:d)? ?out", re.IGNORECASE)
_EXC_NAME = re.compile(r"^([A-Za-z_][\w.]*)\(")
_ORIGINAL = re.compile(r"original=(.+?)\)?$")  # FastHttpUser's RetriesExceeded(url, n, original=...)
_ERRNO = re.compile(r"^\[Errno \d+\] (.+)$")


def label(error: str) -> str:
    """A failure's kind as a user reads it: the status, 'timeout', or the exception's name."""
    if m := _STATUS.search(error):
        code = int(m.group(1) or m.group(2))
        try:
            return f"{code} {HTTPStatus(code).phrase}"
        except ValueError:
            return f"status {code}"
    if _TIMEOUT.search(error):
        return "timeout"
    if (m := _ORIGINAL.search(error)) and not error.startswith(m.group(1)):
        return label(m.group(1))
    if m := _ERRNO.match(error.strip()):
        return m.group(1)
    if m := _EXC_NAME.match(error.strip()):
        name = m.group(1).rsplit(".", 1)[-1]
        return "failed check" if name == "CatchResponseError" else name
    return " ".join(error.split())[:60] or "unknown error"


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        return store.csv_rows(path)
    except OSError:  # unreadable as well as missing: the cell's failures are then unknown, not fatal
        return []


def _int(text: str | None) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0


def counts(raw_dir: Path) -> tuple[dict[str, int], int]:
    """(failures of the work requests by label, work requests sent) from Locust's files."""
    by_label: dict[str, int] = {}
    for row in _rows(raw_dir / "locust_failures.csv"):
        if row.get("Name") in NOT_WORK:
            continue
        kind = label(row.get("Error") or "")
        by_label[kind] = by_label.get(kind, 0) + _int(row.get("Occurrences"))
    sent = sum(_int(r.get("Request Count")) for r in _rows(raw_dir / "locust_stats.csv")
               if r.get("Name") not in NOT_WORK and r.get("Name") != "Aggregated")
    return by_label, sent


def share_text(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}"


def fail_top(raw_dir: Path) -> str:
    """'404 Not Found 100%': the most frequent failure and its share; '' when nothing failed."""
    by_label, sent = counts(raw_dir)
    by_label = {k: n for k, n in by_label.items() if n > 0}
    if not by_label:
        return ""
    kind, n = max(by_label.items(), key=lambda kv: kv[1])
    return f"{kind} {share_text(n / max(sent, n))}"
