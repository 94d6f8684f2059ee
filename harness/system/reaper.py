"""The run marker, and the reaper: a tiny process that outlives a killed harness and stops its children.

Every child the harness starts carries `BENCH_RUN_MARKER=<harness pid>:<its start time>:<checkout>`
in its environment, which every descendant inherits (uvicorn workers, pool children, the
multiprocessing resource tracker, Locust workers, even a server that calls setsid).

`python -m harness.system.reaper MARKER` is started before the harness's first child, in its own session
(a terminal's Ctrl-C or hang-up must not take it down first). Its stdin is a pipe whose only
writer is the harness; the harness writes `+PGID` / `-PGID` lines as it starts and stops process
groups. When the pipe reaches EOF without the harness's `bye`, the harness died (SIGKILL, the
OOM killer): the reaper stops every registered group and session and every process carrying the
marker (TERM, a short grace, then KILL), and exits. After a `bye` it only stops groups still
registered (none, normally). This does not depend on the harness running any
clean-up of its own, and unlike PR_SET_PDEATHSIG it reaches grandchildren too.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil

from harness import ROOT
from harness.data import prog

MARKER_VAR = "BENCH_RUN_MARKER"
GRACE_S = 1.0  # after TERM; everything is gone well within the 5 s promise


def make_marker(pid: int | None = None, root: Path = ROOT) -> str:
    pid = pid or os.getpid()
    return f"{pid}:{psutil.Process(pid).create_time():.2f}:{root}"


def parse_marker(value: str) -> tuple[int, float, str] | None:
    """(harness pid, its create time, checkout path), or None if `value` is not a marker."""
    parts = value.split(":", 2)
    try:
        return int(parts[0]), float(parts[1]), parts[2]
    except (IndexError, ValueError):
        return None


def harness_alive(pid: int, create_time: float) -> bool:
    """Is the harness that wrote a marker still running (and not a new process with its pid)?"""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def marked_processes() -> dict[int, str]:
    """pid → marker value of every running process that carries a run marker (not this one)."""
    needle = (MARKER_VAR + "=").encode()
    out = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:  # gone, or a kernel thread
            continue
        for item in env.split(b"\0"):
            if item.startswith(needle):
                out[int(entry)] = item[len(needle):].decode(errors="replace")
                break
    return out


def _live(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _session_members(sids: set[int]) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and os.getsid(p.pid) in sids:
                out.append(p)
        except (OSError, psutil.NoSuchProcess):
            continue
    return out


def terminate(procs: list[psutil.Process], grace: float = GRACE_S) -> int:
    """TERM every process, wait up to `grace` s, KILL the rest; returns how many were running."""
    procs = _live(procs)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return len(procs)


def with_descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    """`procs` and every descendant of theirs. PostgreSQL's children each call setsid() and write
    their ps title over their environment, so neither the session nor the marker finds them: only
    their parent, the postmaster, does."""
    found = {p.pid: p for p in procs}
    for p in procs:
        try:
            found.update((c.pid, c) for c in p.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def reap(groups: set[int], marker: str | None) -> int:
    """Stop every member of the registered groups/sessions and every carrier of `marker` (if any).

    A few rounds, because a dying supervisor may have started a child between the scan and the
    signal; returns how many processes were stopped.
    """
    stopped = 0
    for _ in range(3):
        found = {p.pid: p for p in _session_members(groups)}
        for pid, value in (marked_processes() if marker else {}).items():
            if value == marker:
                try:
                    found.setdefault(pid, psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass
        for pgid in groups:  # members that left the session but not the group
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        everyone = with_descendants(list(found.values()))
        if not _live(everyone):
            break
        stopped += terminate(everyone)
    return stopped


def main(argv: list[str]) -> int:
    marker = argv[0]
    # Only the pipe's EOF ends the watch: a hang-up or Ctrl-C aimed at the harness is its business.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    goodbye = False  # the harness ended normally, having stopped its own children
    buf = b""
    while chunk := os.read(0, 4096):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
            elif line == b"bye":
                goodbye = True
    stopped = reap(groups, None if goodbye else marker)
    if stopped:
        try:
            print(f"{prog.name()} reaper: the harness ended without stopping its children; stopped {stopped} "
                  "process(es)", file=sys.stderr, flush=True)
        except OSError:  # the terminal may be gone too
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
