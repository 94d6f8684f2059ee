"""Child processes in their own process groups, stopped TERM → wait → KILL, with no orphans.

Every process the harness starts goes through `spawn` and is ended by `stop_tree`, which also
catches descendants that left the group (e.g. a pool child re-parented after its worker died).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from harness.system.reaper import MARKER_VAR, ROOT, make_marker

_live: set[subprocess.Popen] = set()
# A leader that shuts down best on another signal than SIGTERM (postgres: SIGINT = fast shutdown,
# where SIGTERM waits for every client to leave): tried first, on the leader only, then TERM → KILL.
_first_signal: dict[int, int] = {}
_spawning = False
_pending: BaseException | None = None


def interrupt_or_defer(exc: BaseException) -> None:
    """For signal handlers: raise `exc` now or, while a child is being started, as soon as it is
    registered. Raised inside Popen (a Ctrl-C landing while it waits for the exec), the exception
    would lose the only handle on a child that is already running: an orphan."""
    global _pending
    if _spawning:
        _pending = exc
        return
    raise exc


_placement: dict[str, set[int]] = {}

# The reaper (harness/system/reaper.py): enabled by the CLI, started lazily before the first child (so
# bad input still launches nothing), told about every process group, ended by closing its pipe.
_reaper_wanted = False
_reaper: subprocess.Popen | None = None


@contextlib.contextmanager
def reaper_guard() -> Iterator[None]:
    """Within it, every child is watched by a reaper (started with the first child). On leaving,
    the harness says goodbye: the reaper stops only groups still registered (none, normally), not
    every carrier of the marker, since an in-process caller (a test) may still own some."""
    global _reaper_wanted
    _reaper_wanted = True
    try:
        yield
    finally:
        _reaper_wanted = False
        _close_reaper()


@functools.cache
def _marker(pid: int) -> str:
    return make_marker(pid)


def marked_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: ours) plus this run's marker, which every descendant inherits."""
    return {**(os.environ if env is None else env), MARKER_VAR: _marker(os.getpid())}


def _ensure_reaper() -> None:
    global _reaper
    if not _reaper_wanted or (_reaper is not None and _reaper.poll() is None):
        return
    env = {k: v for k, v in os.environ.items() if k != MARKER_VAR}  # it must not reap itself
    _reaper = subprocess.Popen([sys.executable, "-m", "harness.system.reaper", _marker(os.getpid())],
                               cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               start_new_session=True)


def _tell_reaper(line: str) -> None:
    if _reaper is None or _reaper.stdin is None:
        return
    try:  # one short write: atomic on a pipe, so the Stopper thread's lines never interleave
        os.write(_reaper.stdin.fileno(), line.encode())
    except OSError:  # the reaper was killed: the harness's own clean-up still runs
        pass


def _close_reaper(timeout: float = 10.0) -> None:
    global _reaper
    if _reaper is None:
        return
    try:
        _tell_reaper("bye\n")
        if _reaper.stdin is not None:
            _reaper.stdin.close()
        _reaper.wait(timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        _reaper.kill()
        _reaper.wait()
    _reaper = None


def set_placement(pin: bool) -> None:
    """--pin: the target on every core but the first; Locust and the upstream on the first.

    Needs at least 2 cores; otherwise (or without --pin) everything shares every core.
    """
    _placement.clear()
    cores = sorted(os.sched_getaffinity(0))
    if pin and len(cores) >= 2:
        _placement.update(target=set(cores[1:]), locust=set(cores[:1]), upstream=set(cores[:1]),
                          database=set(cores[:1]))


def target_cores() -> int:
    return len(_placement.get("target") or os.sched_getaffinity(0))


def placement_note() -> str:
    if not _placement:
        return f"no pinning: target, Locust and upstream share all {len(os.sched_getaffinity(0))} cores"
    return (f"pinned: target on cores {sorted(_placement['target'])}, "
            f"Locust and upstream on cores {sorted(_placement['locust'])}")


def spawn(cmd: Sequence[str], *, env: dict[str, str] | None = None, log_path: Path | None = None,
          cwd: Path | None = None, stdout=None, role: str | None = None, user: str | None = None,
          first_signal: int | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session (its own process group), stderr (and stdout) to `log_path`.

    `role` (target / locust / upstream / database) applies --pin's core placement before exec, so
    every descendant (uvicorn workers, pool children) inherits it. `user` runs the child as that
    system user (root only; PostgreSQL refuses to run as root). `first_signal`: see stop_tree.
    """
    ids: dict[str, Any] = {}
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        ids = dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    global _spawning, _pending
    cpus = _placement.get(role or "")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    _spawning = True
    try:
        _ensure_reaper()
        proc = subprocess.Popen(
            list(cmd), env=marked_env(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log, stderr=log, start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None, **ids,
        )
        _live.add(proc)
        _tell_reaper(f"+{proc.pid}\n")
        if first_signal is not None:
            _first_signal[proc.pid] = first_signal
    finally:
        _spawning = False
        if not isinstance(log, int):
            log.close()  # the child holds its own copy of the descriptor
    if _pending is not None:  # a signal arrived while starting: now the child can be stopped
        exc, _pending = _pending, None
        raise exc
    return proc


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def session_members(sid: int) -> list[psutil.Process]:
    """Every live process of session `sid`, re-parented ones included (children spawned here
    lead their own session, so a pool child orphaned by its dead worker still carries it)."""
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return out


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_tree(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, wait up to `grace` s, then SIGKILL whatever is left; reap all.

    Covers members that left the group's tree: descendants seen now, and anything still in the
    child's session (e.g. pool children re-parented to init after their worker died).
    """
    family = {p.pid: p for p in descendants(proc.pid) + session_members(proc.pid)}.values()
    first = _first_signal.pop(proc.pid, None)
    if first is not None and proc.poll() is None:
        try:
            proc.send_signal(first)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGTERM)
    for p in family:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + grace  # one grace period for the leader and its family together
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(list(family), timeout=max(0.0, deadline - time.monotonic()))
    # Even when the leader is gone, its group and session may not be: finish them.
    _signal_group(proc.pid, signal.SIGKILL)
    for p in {*alive, *session_members(proc.pid)}:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(family), timeout=grace)
    _live.discard(proc)
    _tell_reaper(f"-{proc.pid}\n")


def stop_all() -> None:
    """Last-resort cleanup for anything spawned and not yet stopped (used on Ctrl-C / SIGTERM)."""
    for proc in list(_live):
        stop_tree(proc, grace=3.0)
