"""The call site that stalled a worker's event loop, from the probe's stack samples
(targets/stall_sampler.py): `stall_site` is "fake_async.py:33 in io → httpx.Client.get" or
"cpu_work.py:18 in _python_units (CPU)".

A sample's site is the innermost frame in the app's own code (not site-packages, not the standard
library, not the harness's probe) and, under it, the library call it was in. A call into C (time.sleep)
has no Python frame: it is read from the app's source line. On CPU work the source line says
nothing useful (the loop's own `range`), so only the app frame is named, marked (CPU).
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import sysconfig
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SAMPLE_S = 0.01  # the probe's gap between two samples of a stall (targets/probe.py SAMPLE_S)
# A site is named only when its samples add up to this share of the workers' window: a busy machine
# preempts a healthy loop now and then past the stall threshold, and those few samples name nothing.
MIN_SHARE = 0.01
# raw/<cell>/: "path;frames...;[cpu|wait] count" (frames shortened by `short`), a flame graph's input
FOLDED_FILE = "stalls.folded"
SITES_FILE = "stall_sites.csv"  # raw/<cell>/: samples per (path, site)

_STDLIB = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")})
# Another interpreter's standard library (--python: the app's 3.9 beside the harness's 3.11).
_OTHER_STDLIB = re.compile(r"^(?P<root>/.*?/lib/python\d+\.\d+)/")
_PROBE = tuple(f"/targets/{name}.py" for name in ("probe", "stall_sampler", "wait_sampler", "instrument",
                                                                 "foreign"))
_LIBRARY = ("/site-packages/", "/dist-packages/")


@dataclass(frozen=True)
class Frame:
    file: str
    qualname: str
    line: int

    @classmethod
    def parse(cls, text: str) -> Frame:
        file, qualname, line = text.rsplit(":", 2)
        return cls(file, qualname, int(line) if line.isdigit() else 0)


def is_app(file: str) -> bool:
    """The app's own code: not a library, not the standard library, not the harness probe."""
    if file.startswith("<") or any(part in file for part in _LIBRARY) or file.endswith(_PROBE):
        return False
    return stdlib_root(file) is None


def stdlib_root(file: str) -> str | None:
    """The standard library folder `file` is in (the harness's, or the app's own interpreter's
    .../lib/python3.9), or None."""
    own = next((r for r in _STDLIB if file.startswith(r + "/")), None)
    if own is not None:
        return own
    other = _OTHER_STDLIB.match(file)
    return other.group("root") if other else None


def _function(qualname: str) -> str:
    """'io.<locals>.<listcomp>' → 'io': the function a user wrote."""
    parts = [p for p in qualname.split(".") if p != "<locals>" and not p.startswith("<")]
    return ".".join(parts) or qualname


def library_name(frame: Frame) -> str:
    """'httpx.Client.get' for site-packages/httpx/_client.py's Client.get; 'json.dumps' for the stdlib."""
    path = Path(frame.file)
    for marker in _LIBRARY:
        if marker in frame.file:
            package = frame.file.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
            return f"{package}.{_function(frame.qualname)}"
    if (root := stdlib_root(frame.file)) is not None:
        module = path.relative_to(root).parts[0].removesuffix(".py")
        return f"{module}.{_function(frame.qualname)}"
    return f"{path.stem}.{_function(frame.qualname)}"


def short(frame: str) -> str:
    """A frame as a flame graph shows it: 'httpx/_client.py:Client.get:1053', 'asyncio/runners.py:...',
    'targets/fake_async.py:io:36' (the app's file with its folder), not the full path."""
    file, qualname, line = frame.rsplit(":", 2) if frame.count(":") >= 2 else (frame, "", "")
    for marker in _LIBRARY:
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        root = stdlib_root(file)
        if root is not None:
            file = file[len(root) + 1:]
        elif file.startswith("/"):
            file = "/".join(Path(file).parts[-2:])
    return f"{file}:{qualname}:{line}"


def c_call(frame: Frame) -> str | None:
    """The call on the frame's source line ('time.sleep' in `time.sleep(WAIT_S)`), or None."""
    source = linecache.getline(frame.file, frame.line).strip()
    try:
        tree = ast.parse(source.removeprefix("return ").removeprefix("await "))
    except SyntaxError:
        return None
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    for call in calls:
        name = ast.unparse(call.func)
        if name.replace(".", "").replace("_", "").isalnum():
            return name
    return None


def shown_file(file: str, app_dir: str | None = None) -> str:
    """The app frame's file as a site names it: relative to --app-dir when under it
    ('app/services/security.py' in a package app), else its name."""
    if app_dir:
        root = os.path.abspath(app_dir)
        if os.path.abspath(file).startswith(root + os.sep):
            return os.path.relpath(file, root)
    return Path(file).name


def site(stack: str, kind: str, app_dir: str | None = None) -> tuple[str, str] | None:
    """(site without its line, its line) of one sample, or None when no app frame is on the stack."""
    frames = [Frame.parse(f) for f in stack.split(";") if f]
    inner = [i for i, f in enumerate(frames) if is_app(f.file)]
    if not inner:
        return None
    i = inner[-1]
    app = frames[i]
    where = shown_file(app.file, app_dir) + ":{line} in " + _function(app.qualname)
    if i + 1 < len(frames):
        where += f" → {library_name(frames[i + 1])}"
    elif kind != "cpu" and (call := c_call(app)):
        where += f" → {call}"
    if kind == "cpu":
        where += " (CPU)"
    return where, str(app.line)


@dataclass
class Stalls:
    site: str        # the row's stall_site ('' on a healthy loop)
    samples: int     # every stall sample in the window
    sites: list[tuple[str, str, int]]  # (path, site, samples), most first
    folded: list[tuple[list[str], int]]  # flame graph input: path, frames, [kind]


def parse_key(key: str) -> tuple[str, str, str]:
    path, kind, stack = key.split("\t", 2)
    return path, kind, stack


def reduce(samples: Iterable[tuple[str, int]], window_s: float, workers: int,
           app_dir: str | None = None) -> Stalls:
    """Stack samples ("path\\tkind\\tstack" → count) of every worker over the window → the site
    (its file named from `app_dir`, --app-dir, when under it)."""
    by_site: Counter[tuple[str, str]] = Counter()
    lines: dict[str, Counter[str]] = {}
    folded: Counter[str] = Counter()
    total = 0
    for key, n in samples:
        path, kind, stack = parse_key(key)
        total += n
        folded[";".join([path, *(short(f) for f in stack.split(";") if f), f"[{kind}]"])] += n
        found = site(stack, kind, app_dir)
        if found is None:
            continue
        where, line = found
        by_site[(path, where)] += n
        lines.setdefault(where, Counter())[line] += n
    named = {(p, w.replace("{line}", lines[w].most_common(1)[0][0])): n for (p, w), n in by_site.items()}
    ranked = sorted(((p, w, n) for (p, w), n in named.items()), key=lambda x: -x[2])
    top = ""
    if ranked:
        per_site: Counter[str] = Counter()
        for _, w, n in ranked:
            per_site[w] += n
        best, n = per_site.most_common(1)[0]
        if n * SAMPLE_S >= MIN_SHARE * window_s * max(1, workers):
            top = best
    return Stalls(top, total, ranked, [(k.split(";"), n) for k, n in folded.items()])
