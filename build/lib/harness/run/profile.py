"""`--profile`: sample one uvicorn worker with py-spy during a cell's window, as evidence for the
bottleneck verdict.

py-spy runs in non-blocking mode (it reads the worker's memory without pausing it) and writes
collapsed stacks (`profile.txt`, one "frame;frame;... count" line per stack, the input format of
every flame-graph tool). From them come a flame graph (`flamegraph.svg`, harness/present/flamegraph.py)
and a one-line summary: the functions with the most self time, and self time by package.

A py-spy that cannot attach (no ptrace permission, not a Python process) is not a failed cell:
the summary says so and the run goes on. py-spy is a child like any other (procs.spawn), so it
is stopped with its cell and by Ctrl-C.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.present import flamegraph
from harness.run.launch import log_tail
from harness.system import procs

RATE_HZ = 100        # py-spy's default sampling rate
TOP_FUNCTIONS = 3
TOP_PACKAGES = 3
STACKS_FILE = "profile.txt"
SVG_FILE = "flamegraph.svg"
LOG_FILE = "py-spy.log"

# Comprehensions are frames of their own before Python 3.12 (PEP 709 inlines them): their time
# belongs to the function that contains them.
_COMPREHENSION = re.compile(r"(\.<locals>)?\.<(listcomp|dictcomp|setcomp|genexpr)>$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(:\d+)?\)$")


def py_spy_path() -> str | None:
    """The py-spy installed next to this interpreter (the project's venv), else one on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass
class ProfileResult:
    summary: str            # one line for bound_detail: the evidence, or why there is none
    svg: Path | None = None  # the flame graph, when there were samples


def _error_line(log: Path) -> str:
    """py-spy's own error message ("Error: ...", "Permission Denied ..."), without its backtrace."""
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if x.startswith(("Error", "Permission"))]
    return errors[0] if errors else log_tail(log, lines=2)


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """Collapsed stacks → [(frames root first, samples)], empty stacks dropped."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head.strip() or not count.isdigit():
            continue
        stacks.append((head.split(";"), int(count)))
    return stacks


def function_of(frame: str) -> tuple[str, str]:
    """'AsyncConnectionPool._assign...<locals>.<listcomp> (httpcore/_async/pool.py:305)' →
    ('httpcore', 'AsyncConnectionPool._assign...'): the package and the enclosing function."""
    m = _FRAME.match(frame.strip())
    name, file = (m["name"], m["file"]) if m else (frame.strip(), "")
    name = _COMPREHENSION.sub("", name)
    top = file.split("/", 1)[0]
    package = top[:-3] if top.endswith(".py") else top
    return package or "?", name


def summarize(stacks: list[tuple[list[str], int]], top: int = TOP_FUNCTIONS) -> str:
    """'N samples: self time 22% httpcore AsyncConnectionPool._assign_requests_to_connections, ...;
    by package httpcore 71%, ...' (shares of the samples in which a thread was running)."""
    total = sum(n for _, n in stacks)
    if not total:
        return "no samples: the worker's threads were all idle"
    by_function: Counter[tuple[str, str]] = Counter()
    by_package: Counter[str] = Counter()
    for frames, n in stacks:
        package, name = function_of(frames[-1])
        by_function[(package, name)] += n
        by_package[package] += n
    funcs = ", ".join(f"{n / total:.0%} {pkg} {name}" for (pkg, name), n in by_function.most_common(top))
    pkgs = ", ".join(f"{pkg} {n / total:.0%}" for pkg, n in by_package.most_common(TOP_PACKAGES))
    return f"{total} samples: self time {funcs}; by package {pkgs}"


class Profiler:
    """py-spy recording one process for `seconds`, writing into `raw_dir`."""

    def __init__(self, pid: int, seconds: float, raw_dir: Path, rate: int = RATE_HZ) -> None:
        self.pid = pid
        self.raw_dir = raw_dir
        self.stacks = raw_dir / STACKS_FILE
        self.log = raw_dir / LOG_FILE
        self.proc: subprocess.Popen | None = None
        self.error = ""
        self.seconds = max(1, math.floor(seconds))  # whole seconds, rounded down: inside the window
        self.started = time.monotonic()
        exe = py_spy_path()
        if exe is None:
            self.error = "py-spy is not installed"
            return
        cmd = [exe, "record", "--nonblocking", "--pid", str(pid), "--duration", str(self.seconds),
               "--rate", str(rate), "--format", "raw", "--nolineno", "--output", str(self.stacks)]
        try:
            # role "locust": with --pin, the sampler stays off the target's cores
            self.proc = procs.spawn(cmd, log_path=self.log, role="locust")
        except OSError as exc:
            self.error = f"py-spy could not start: {exc}"

    def finish(self) -> ProfileResult:
        """Wait for py-spy to end its recording (a few seconds' margin to write it), then read it.
        Never raises for py-spy's sake."""
        where = f"worker {self.pid}"
        if self.proc is None:
            return ProfileResult(f"profile of {where} not taken: {self.error}")
        try:
            code = self.proc.wait(timeout=max(0.1, self.started + self.seconds + 5.0 - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            return ProfileResult(f"profile of {where} not taken: py-spy did not finish in time")
        self.stop()  # reaps
        if code != 0 or not self.stacks.exists():
            why = _error_line(self.log) or f"exit code {code}"
            return ProfileResult(f"profile of {where} not taken: py-spy could not attach ({why})")
        stacks = read_stacks(self.stacks)
        svg = None
        if stacks:
            svg = self.raw_dir / SVG_FILE
            svg.write_text(flamegraph.render(stacks, title=f"worker {self.pid}, {self.seconds} s, "
                                             f"py-spy --nonblocking"))
        return ProfileResult(f"profile of {where}, {summarize(stacks)}", svg)

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_tree(self.proc, grace=2.0)

