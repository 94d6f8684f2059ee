"""One measurement: fresh target → Locust → window → tidy row. Never raises for a failed cell:
a failure becomes a row with status=failed and the reason in `error`.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness import collect, resources, validity
from harness.drive import DriveError, start_locust
from harness.launch import LaunchError, Server, launch_target
from harness.matrix import Cell
from targets import import_string

LAUNCH_TIMEOUT_S = 60.0
GRACE_S = 30.0  # beyond warm-up + duration, how long a cell may take before it is a failure


class CellError(RuntimeError):
    """The cell ran but cannot be reported (a worker died, the deadline passed...)."""


@dataclass
class Upstream:
    url: str
    pid: int
    capacity_rps: float | None


def base_row(cell: Cell, raw_dir: Path, run_dir: Path) -> dict:
    return {**cell.params(), "warmup_s": cell.warmup_s, "duration_s": cell.duration_s,
            "ceiling_rps": cell.ceiling_rps, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "raw_dir": str(raw_dir.relative_to(run_dir))}


def failed_row(row: dict, error: str) -> dict:
    return {**row, "status": "failed", "error": " ".join(error.split())[:500], "valid": False,
            "invalid_reason": "cell failed"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until(t: float, target: Server) -> None:
    """Sleep until wall time t, watching that every worker of the target stays alive."""
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.25))
        if not target.alive():
            raise CellError(f"uvicorn exited with code {target.proc.returncode} during the cell")
        dead = [pid for pid in target.worker_pids if not _alive(pid)]
        if dead:
            raise CellError(f"worker(s) {dead} died during the cell")


class Stopper:
    """Stops a cell's target in the background, so its shutdown (uvicorn's supervisor polls every
    0.5 s, workers drain) overlaps the next target's start-up. `wait()` is called before the next
    cell's load begins, so a stopping server never shares the machine with a measurement."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def stop(self, server: Server) -> None:
        self.wait()
        self._thread = threading.Thread(target=server.stop, name="stop-target", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def run_cell(cell: Cell, run_dir: Path, upstream: Upstream, extra_env: dict[str, str] | None = None,
             stopper: Stopper | None = None) -> dict:
    """Measure one cell; returns its tidy row (status ok or failed).

    With a `stopper`, the previous cell's target finishes stopping while this one launches, and
    this cell's target is left to the stopper; without one, everything is stopped before return.
    """
    raw_dir = run_dir / "raw" / cell.cell_id
    if raw_dir.exists():  # a cell re-run by --resume starts from a clean folder
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    row = base_row(cell, raw_dir, run_dir)
    target = locust = None
    started = time.monotonic()
    deadline = cell.warmup_s + cell.duration_s + LAUNCH_TIMEOUT_S + GRACE_S
    try:
        target = launch_target(
            import_string(cell.target), workers=cell.workers, loop=cell.loop,
            env={**cell.env(), **(extra_env or {}), "UPSTREAM_URL": upstream.url},
            metrics_dir=raw_dir / "metrics", log_path=raw_dir / "uvicorn.log", timeout=LAUNCH_TIMEOUT_S,
            launch=cell.launch)
        if stopper is not None:
            stopper.wait()
        locust = start_locust(cell.scenario, target.url, cell.users, cell.warmup_s + cell.duration_s,
                              raw_dir)
        t_start = locust.wait_started()
        t0 = t_start + cell.warmup_s
        t1 = t0 + cell.duration_s
        trees = {"target": target.proc.pid, "locust": locust.proc.pid, "upstream": upstream.pid}
        _wait_until(t0, target)
        before = {name: resources.tree_cpu_seconds(pid) for name, pid in trees.items()}
        _wait_until(t1, target)
        after = {name: resources.tree_cpu_seconds(pid) for name, pid in trees.items()}
        locust.end()
        locust.finish(timeout=max(5.0, deadline - (time.monotonic() - started)))
        row.update(collect.collect_cell(raw_dir, t0, t1))
        for name in trees:
            row[f"{name}_cpu_pct"] = resources.cpu_pct(before[name], after[name], t1 - t0)
    except (LaunchError, DriveError, CellError, OSError, ValueError) as exc:
        return failed_row(row, f"{type(exc).__name__}: {exc}")
    finally:
        if locust is not None:
            locust.stop()
        if target is not None:
            if stopper is not None:
                stopper.stop(target)
            else:
                target.stop()
        elif stopper is not None:
            stopper.wait()
    return finish_row(row, cell, upstream.capacity_rps)


def finish_row(row: dict, cell: Cell, upstream_capacity_rps: float | None) -> dict:
    """Add efficiency and the validity verdict to a measured row."""
    ceiling = cell.ceiling_rps
    row["efficiency"] = row["rps"] / ceiling if ceiling and math.isfinite(ceiling) else float("nan")
    reasons = validity.invalid_reasons(row, upstream_capacity_rps=upstream_capacity_rps, probe=cell.probe)
    row.update(status="ok", error="", valid=not reasons, invalid_reason="; ".join(reasons))
    return row
