"""What the app raised when a route answered 5xx: the exception's own line and the innermost frame
of the app's code, read from the tracebacks the server printed to the worker's log
(raw/<cell>/uvicorn.log), e.g. "RuntimeError: invoice parser choked at billing.py:14".

The log covers the whole cell (warm-up included); the most frequent exception is the one named.
A frame is the app's when its path is absolute and not in site-packages, the standard library or
the harness's own targets/ (the wrapper around the app); a Cython frame's relative path is a library's.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from harness.judge.stalls import shown_file  # a site's file named as the stall sampler names it

LOG_FILE = "uvicorn.log"
_FRAME = re.compile(r'^\s*(?:\|\s*)?File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_EXCEPTION = re.compile(r"^(?P<line>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Group)\b.*)$")
_NOT_APP = ("site-packages", "dist-packages", "<frozen", os.sep + "targets" + os.sep)
_STDLIB = re.compile(r"/lib/python\d+\.\d+/")


def _is_app(path: str) -> bool:
    """A frame of the app's own code: an absolute path, not a library's, not the standard library's.
    A compiled extension's frame names its source relative to its build ("asyncpg/protocol/
    protocol.pyx"): that is a library's too."""
    return os.path.isabs(path) and not any(part in path for part in _NOT_APP) and not _STDLIB.search(path)


def tracebacks(text: str, app_dir: str | None = None) -> list[str]:
    """Every traceback of the log as 'Type: message at file:line' (the site omitted when no frame is
    the app's)."""
    out: list[str] = []
    site: str | None = None
    inside = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if "Traceback (most recent call last)" in line:
            inside, site = True, None
            continue
        if not inside:
            continue
        frame = _FRAME.match(line)
        if frame:
            if _is_app(frame.group("file")):
                site = f"{shown_file(frame.group('file'), app_dir)}:{frame.group('line')}"
            continue
        match = _EXCEPTION.match(line.strip())
        if match and not raw.startswith((" ", "\t")):
            text_line = " ".join(match.group("line").split())
            out.append(f"{text_line} at {site}" if site else text_line)
            inside = False
    return out


def top(raw_dir: Path, app_dir: str | None = None) -> str:
    """The most frequent exception of the cell's worker log; '' when it has none."""
    try:
        text = (raw_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    found = Counter(tracebacks(text, app_dir))
    if not found:
        return ""
    line, _ = found.most_common(1)[0]
    return line if len(line) <= 200 else line[:197] + "..."
