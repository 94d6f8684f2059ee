"""Child processes in their own process groups, stopped TERM → wait → KILL, with no orphans.

Every process the harness starts goes through `spawn` and is ended by `stop_tree`, which also
catches descendants that left the group (e.g. a pool child re-parented after its worker died).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

_live: set[subprocess.Popen] = set()
_placement: dict[str, set[int]] = {}


def set_placement(pin: bool) -> None:
    """--pin: the target on every core but the first; Locust and the upstream on the first.

    Needs at least 2 cores; otherwise (or without --pin) everything shares every core.
    """
    _placement.clear()
    cores = sorted(os.sched_getaffinity(0))
    if pin and len(cores) >= 2:
        _placement.update(target=set(cores[1:]), locust=set(cores[:1]), upstream=set(cores[:1]))


def target_cores() -> int:
    return len(_placement.get("target") or os.sched_getaffinity(0))


def placement_note() -> str:
    if not _placement:
        return f"no pinning: target, Locust and upstream share all {len(os.sched_getaffinity(0))} cores"
    return (f"pinned: target on cores {sorted(_placement['target'])}, "
            f"Locust and upstream on cores {sorted(_placement['locust'])}")


def spawn(cmd: Sequence[str], *, env: dict[str, str] | None = None, log_path: Path | None = None,
          cwd: Path | None = None, stdout=None, role: str | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session (its own process group), stderr (and stdout) to `log_path`.

    `role` (target / locust / upstream) applies --pin's core placement before exec, so every
    descendant (uvicorn workers, pool children) inherits it.
    """
    cpus = _placement.get(role or "")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log, stderr=log, start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    finally:
        if log_path:
            log.close()  # the child holds its own copy of the descriptor
    _live.add(proc)
    return proc


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_tree(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, wait up to `grace` s, then SIGKILL whatever is left; reap all."""
    family = descendants(proc.pid)
    for sig_target in (lambda: os.killpg(proc.pid, signal.SIGTERM), *(p.terminate for p in family)):
        try:
            sig_target()  # the group, then each descendant in case one left the group
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    _live.discard(proc)


def stop_all() -> None:
    """Last-resort cleanup for anything spawned and not yet stopped (used on Ctrl-C / SIGTERM)."""
    for proc in list(_live):
        stop_tree(proc, grace=3.0)
