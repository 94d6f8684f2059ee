"""One measurement: fresh target → Locust → window → tidy row. Never raises for a failed cell:
a failure becomes a row with status=failed and the reason in `error`.

Why one module over 300 lines: a cell's steps (launch, load, window, sample, collect, stop) share
one try/finally, so that every child the cell started is stopped on every way out of it.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.data import model, store
from harness.data.matrix import Cell, cores_available
from harness.judge import bottleneck, collect, resources, route_window, stalls, validity
from harness.present import flamegraph
from harness.run import app_python, seed
from harness.run.database import ActivityWatcher, Database
from harness.run.drive import DriveError, scenario_file, start_locust
from harness.run.launch import LaunchError, Server, launch_target
from harness.run.profile import Profiler
from harness.run.remote import Hub
from harness.run.request_env import request_env, requests_of, screen_env
from harness.system import procs
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


def base_row(cell: Cell, raw_dir: Path, run_dir: Path, session: int = 1) -> dict:
    return {**cell.params(), "warmup_s": cell.warmup_s, "duration_s": cell.duration_s,
            "ceiling_rps": cell.ceiling_rps, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "session": session, "raw_dir": str(raw_dir.relative_to(run_dir)), "profiled": False,
            "profile_svg": ""}


def failed_row(row: dict, error: str) -> dict:
    return {**row, "status": "failed", "error": " ".join(error.split())[:500], "valid": False,
            "invalid_reason": "cell failed"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until(t: float, target: Server | RunningServer, rss: resources.PeakRss | None = None) -> None:
    """Sleep until wall time t, watching that every worker of the target stays alive (and sampling
    the target tree's memory every 0.25 s when given `rss`)."""
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.25))
        if rss is not None:
            rss.sample()
        if isinstance(target, Server) and not target.alive():
            raise CellError(f"the server exited with code {target.proc.returncode} during the cell")
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
             stopper: Stopper | None = None, profile: bool = False, session: int = 1,
             database: Database | None = None, hub: Hub | None = None) -> dict:
    """Measure one cell; returns its tidy row (status ok or failed).

    A db cell needs `database`: its URL goes to the target, its pg_stat_activity is watched over
    the window (db_active_max), and a server we started has its CPU counted (db_cpu_pct).

    With a `stopper`, the previous cell's target finishes stopping while this one launches, and
    this cell's target is left to the stopper; without one, everything is stopped before return.
    With `profile`, py-spy samples the worker that was busiest in the warm-up, over the window.
    With a `hub` (--remote-load-workers), load workers on other machines join the cell.
    """
    raw_dir = _fresh_raw_dir(cell, run_dir)
    row = {**base_row(cell, raw_dir, run_dir, session), "profiled": profile}  # the row says if py-spy ran
    if cell.scenario == "db" and database is None:
        return failed_row(row, "the db scenario needs a database (none was started)")
    db_env = {"DB_URL": database.url} if cell.scenario == "db" and database is not None else {}
    children = _Children()
    try:
        _measure(cell, row, raw_dir, run_dir, upstream, children, env={**(extra_env or {}), **db_env},
                 stopper=stopper, profile=profile, database=database if db_env else None, hub=hub)
    except (LaunchError, DriveError, CellError, OSError, ValueError) as exc:
        _raise_if_disk(exc, cell, raw_dir, run_dir)  # a full disk is not the cell's failure
        return failed_row(row, f"{type(exc).__name__}: {exc}")
    finally:
        children.stop(stopper)
    db_capacity = (database.capacity or {}).get("qps") if database is not None else None
    return finish_row(row, cell, upstream.capacity_rps, db_capacity_qps=db_capacity)


def _fresh_raw_dir(cell: Cell, run_dir: Path) -> Path:
    """raw/<cell>/, empty: a cell re-run by --resume starts from a clean folder."""
    raw_dir = run_dir / "raw" / cell.cell_id
    try:
        if raw_dir.exists():
            shutil.rmtree(raw_dir)
        raw_dir.mkdir(parents=True)
    except OSError as exc:
        _raise_if_disk(exc, cell, raw_dir, run_dir)
        raise
    return raw_dir


@dataclass
class _Children:
    """What a cell started, so that one `finally` stops all of it on every way out."""

    target: Server | RunningServer | None = None
    locust: Any = None
    profiler: Profiler | None = None
    watcher: ActivityWatcher | None = None

    def stop(self, stopper: Stopper | None) -> None:
        if self.profiler is not None:
            self.profiler.stop()  # py-spy never outlives its cell
        if self.watcher is not None:
            self.watcher.__exit__()
        if self.locust is not None:
            self.locust.stop()
        if isinstance(self.target, Server):
            if stopper is not None:
                stopper.stop(self.target)  # stops in the background, while the next cell launches
            else:
                self.target.stop()
        elif stopper is not None:  # --url, or nothing launched: still wait for the previous target
            stopper.wait()


def _start_target(cell: Cell, raw_dir: Path, upstream: Upstream,
                  env: dict[str, str]) -> Server | RunningServer:
    """Launch the cell's target (or, with --url, check that the running server answers)."""
    url, app_dir = cell.knobs.get("url"), cell.knobs.get("app_dir")
    health_path = cell.knobs.get("health_path") or "/health"
    if url is not None:  # a server already running: launch nothing
        running = RunningServer(url)
        running.check(health_path)
        return running
    return launch_target(
        FOREIGN_TARGET if app_dir else import_string(cell.target), workers=cell.workers, loop=cell.loop,
        env={**cell.env(), **env, "UPSTREAM_URL": upstream.url, **foreign_env(cell)},
        metrics_dir=raw_dir / "metrics", log_path=raw_dir / "uvicorn.log", timeout=LAUNCH_TIMEOUT_S,
        launch=cell.launch, health_path=health_path, server=cell.server or "uvicorn",
        app_env=app_python.for_cell(cell.knobs, raw_dir))


def _measure(cell: Cell, row: dict, raw_dir: Path, run_dir: Path, upstream: Upstream, children: _Children, *,
             env: dict[str, str], stopper: Stopper | None, profile: bool, database: Database | None,
             hub: Hub | None) -> None:
    """Launch, load, and measure the window [t0, t1] into `row`; raises on a failed cell."""
    started = time.monotonic()
    deadline = cell.warmup_s + cell.duration_s + LAUNCH_TIMEOUT_S + GRACE_S + (hub.wait_s if hub else 0)
    children.target = target = _start_target(cell, raw_dir, upstream, env)
    if stopper is not None:
        stopper.wait()
    given = requests_of(cell).get("headers") or {}
    if cell.knobs.get("setup"):  # --setup: seed the app's data (and log in) before the load starts
        given = {**given, **seed.run(cell.knobs["setup"], target.url, raw_dir / "setup.log", given)}
    files, locust_env = locust_files(cell, given)
    users = load_processes(cell) if cell.rate else cell.users  # open loop: one scheduler per process
    children.locust = locust = start_locust(
        files, target.url, users, cell.warmup_s + cell.duration_s, raw_dir,
        probe_workers=max(1, cell.workers), env=locust_env, processes=cell.load_processes, hub=hub,
        cell_id=cell.cell_id)
    t0 = locust.wait_started() + cell.warmup_s
    t1 = t0 + cell.duration_s
    # A server we did not start (--url): its processes are not ours to watch.
    root = target.proc.pid if isinstance(target, Server) else None
    trees = _trees(locust.pids, upstream.pid, root, database)
    profile = profile and root is not None
    warm = resources.tree_cpu_seconds(root) if profile and root else {}
    if database is not None:
        children.watcher = ActivityWatcher(database.url).__enter__()
    _wait_until(t0, target)
    first = _Snapshot.take(trees, target, root)
    rss = resources.PeakRss(root) if root else None
    if rss is not None:
        rss.sample()
    if profile:
        children.profiler = Profiler(_busiest(target.worker_pids, warm, first.cpu["target"]), cell.duration_s,
                                     raw_dir)
    _wait_until(t1, target, rss)
    last = _Snapshot.take(trees, target, root)
    if rss is not None:
        rss.sample()
    locust.end()
    locust.finish(timeout=max(5.0, deadline - (time.monotonic() - started)))
    row.update(collect.collect_cell(raw_dir, t0, t1, cell.knobs.get("app_dir")))
    _raw_extras(cell, raw_dir, t0, t1)
    if len(row["_workers"]):  # each worker's own figures, beside the row's worst-worker ones
        row["_workers"].to_csv(raw_dir / collect.WORKERS_FILE, index=False)
    if children.watcher is not None:
        children.watcher.__exit__()
        row["db_active_max"] = children.watcher.max_between(t0, t1)
    row.update(_window_figures(first, last, t1 - t0, target.worker_pids, root,
                               row.pop("load_worker_cpu_max_pct", float("nan"))))
    # The cost of the configuration: what a bigger pool pays in memory and scheduling.
    row["target_rss_mb"] = rss.peak if rss is not None else float("nan")
    switches = (resources.switches_between(first.switches, last.switches)
                if root and first.switches is not None else float("nan"))
    row["ctx_switches_per_req"] = switches / row["requests"] if row["requests"] else float("nan")
    if children.profiler is not None:  # py-spy ends its own recording at the window's end
        result = children.profiler.finish()
        row["profile"] = result.summary
        row["profile_svg"] = str(result.svg.relative_to(run_dir)) if result.svg else ""


def _trees(locust: list[int], upstream: int, root: int | None,
           database: Database | None) -> dict[str, list[int]]:
    """The process trees whose CPU the window counts: Locust, the upstream, our target, our database."""
    trees = {"locust": locust, "upstream": [upstream]}
    if root is not None:
        trees["target"] = [root]
    if database is not None and database.pid is not None:
        trees["db"] = [database.pid]
    return trees


@dataclass
class _Snapshot:
    """The counters read at one edge of the window: CPU per process tree, per worker thread, the
    machine's busy time and the target's context switches."""

    cpu: dict[str, Any]
    threads: Any
    machine: float
    switches: Any

    @classmethod
    def take(cls, trees: dict[str, list[int]], target: Server | RunningServer, root: int | None) -> _Snapshot:
        return cls(cpu={name: resources.trees_cpu_seconds(pids) for name, pids in trees.items()},
                   threads=resources.thread_cpu_seconds(target.worker_pids),
                   machine=resources.machine_busy_seconds(),
                   switches=resources.tree_ctx_switches(root) if root else None)


def _window_figures(first: _Snapshot, last: _Snapshot, span: float, workers: list[int], root: int | None,
                    remote_locust_max: float) -> dict[str, float]:
    """CPU shares over the window: per process tree, the busiest load process, the machine, each worker."""
    out = {f"{name}_cpu_pct": resources.cpu_pct(first.cpu[name], last.cpu[name], span) for name in first.cpu}
    # Each load process has one core at most: the guard looks at the busiest one, on this
    # machine by psutil, on the others by the load workers' own samples.
    here = resources.busiest_pct(first.cpu["locust"], last.cpu["locust"], span)
    out["locust_cpu_max_pct"] = max_known(here, remote_locust_max)
    out["machine_cpu_pct"] = 100.0 * (last.machine - first.machine) / span
    if root is None:
        out["target_cpu_pct"] = float("nan")
        return out
    out.update(resources.worker_cpu(first.cpu["target"], last.cpu["target"], span, root=root, workers=workers,
                                    threads_before=first.threads, threads_after=last.threads))
    return out


def _raw_extras(cell: Cell, raw_dir: Path, t0: float, t1: float) -> None:
    """The stall flame graph, and for a screen cell each route's own figures in the shared window."""
    draw_stalls(raw_dir, cell.cell_id)
    if cell.knobs.get("screen"):
        route_window.write(raw_dir, t0, t1)


def draw_stalls(raw_dir: Path, title: str) -> None:
    """raw/<cell>/stalls.svg: a flame graph of the event loop's stalls alone (when it stalled)."""
    folded = raw_dir / stalls.FOLDED_FILE
    if not folded.exists():
        return
    stacks = []
    for line in folded.read_text().splitlines():
        frames, _, n = line.rpartition(" ")
        stacks.append((frames.split(";"), int(n)))
    (raw_dir / "stalls.svg").write_text(flamegraph.render(stacks, title=f"event-loop stalls: {title}"))


def _raise_if_disk(exc: BaseException, cell: Cell, raw_dir: Path, run_dir: Path) -> None:
    if store.is_disk_error(exc, under=run_dir):
        raise store.DiskError(f"writing the raw files of cell {cell.cell_id}", raw_dir,
                              getattr(exc, "strerror", None) or str(exc)) from None

FOREIGN_TARGET = "targets.foreign:app"  # uvicorn imports this to wrap your app (--app)


class RunningServer:
    """--url: a server the harness did not start and never stops."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.worker_pids: list[int] = []

    def check(self, health_path: str) -> None:
        import httpx

        try:
            httpx.get(f"{self.url}{health_path}", timeout=5.0).raise_for_status()
        except httpx.HTTPError as exc:
            raise CellError(f"{self.url}{health_path} does not answer: {exc}") from None

    def alive(self) -> bool:
        return True


def foreign_env(cell: Cell) -> dict[str, str]:
    """What targets/foreign.py needs to import and wrap the user's app."""
    if not cell.knobs.get("app_dir"):
        return {}
    return {"BENCH_APP": cell.target, "BENCH_APP_DIR": cell.knobs["app_dir"],
            "BENCH_HEALTH_PATH": cell.knobs["health_path"]}


def load_processes(cell: Cell) -> int:
    """Every load process of the cell: this machine's and the remote load workers."""
    return cell.load_processes + cell.knobs.get("remote_load_workers", 0)


def max_known(*values: float) -> float:
    known = [v for v in values if v == v]
    return max(known) if known else float("nan")


def locust_files(cell: Cell, headers: dict[str, str] | None = None) -> tuple[list[Path], dict[str, str]]:
    """The Locust files for a cell and the settings they read (`headers`: sent with every work request)."""
    env = {"BENCH_HEALTH_PATH": cell.knobs.get("health_path") or "/health"}
    if cell.rate:
        env.update(BENCH_RATE=repr(cell.rate), BENCH_ARRIVALS=cell.arrivals,
                   BENCH_MAX_IN_FLIGHT=str(cell.max_in_flight), BENCH_SCHEDULERS=str(load_processes(cell)))
    if cell.knobs.get("locustfile"):
        return [scenario_file("probe"), Path(cell.knobs["locustfile"])], env
    if cell.knobs.get("screen"):  # every route in one window: each one's request from requests.json
        return [scenario_file("screen")], {**env, **screen_env(cell.knobs["screen"], requests_of(cell),
                                                               headers or {})}
    if cell.knobs.get("path") is not None:
        spec = (requests_of(cell).get("routes") or {}).get(cell.knobs["path"]) or {}
        return [scenario_file("path")], {**env, **request_env(cell.knobs["path"], spec, headers or {})}
    return [scenario_file(cell.scenario)], env


def _busiest(workers: list[int], before: dict[int, float], after: dict[int, float]) -> int:
    """The worker that used the most CPU between two snapshots (the first one on a tie)."""
    return max(workers, key=lambda pid: after.get(pid, 0.0) - before.get(pid, 0.0))


def measured_cpu_ceiling(cell: Cell, cpu_cost_ms: float, cores: int | None = None) -> float:
    """The cell's ceiling with the CPU cost the workers measured (CPU time per stage) in place of the
    nominal CPU_MS: what the pattern allows on this CPU at the speed it really ran."""
    if cell.scenario not in ("cpu", "mixed") or not math.isfinite(cpu_cost_ms) or cpu_cost_ms <= 0:
        return cell.ceiling_rps
    try:
        return model.ceiling_rps(
            cell.target, cell.scenario, workers=cell.workers, users=cell.users, io_ms=cell.io_ms,
            cpu_ms=cpu_cost_ms, fanout=cell.fanout, pool_size=cell.pool_size, cpu_kind=cell.cpu_kind,
            cores=cores or procs.target_cores(), http_connections=cell.http_connections)
    except ValueError:  # a target without a model
        return float("nan")


def _ratio(value: float, ceiling: float) -> float:
    return value / ceiling if ceiling and math.isfinite(ceiling) else float("nan")


def finish_row(row: dict, cell: Cell, upstream_capacity_rps: float | None, cores: int | None = None,
               db_capacity_qps: float | None = None) -> dict:
    """Add the ceilings, efficiencies, the validity verdict and the bottleneck verdict to a measured row."""
    for col in ("db_active_max", "db_cpu_pct"):  # measured only in db cells (with our own server)
        row.setdefault(col, math.nan)
    row["ceiling_cpu_rps"] = measured_cpu_ceiling(cell, row.get("cpu_cost_ms", float("nan")), cores)
    row["efficiency"] = _ratio(row["rps"], cell.ceiling_rps)
    row["efficiency_cpu"] = _ratio(row["rps"], row["ceiling_cpu_rps"])
    reasons = validity.invalid_reasons(row, upstream_capacity_rps=upstream_capacity_rps, probe=cell.probe,
                                       workers=row.pop("_workers", None), db_capacity_qps=db_capacity_qps)
    row.update(status="ok", error="", valid=not reasons, invalid_reason="; ".join(reasons))
    ctx = bottleneck.Context(target_cores=procs.target_cores(), machine_cores=cores_available(),
                             upstream_capacity_rps=upstream_capacity_rps)
    verdict = bottleneck.attribute(row, ctx)
    profile = row.pop("profile", "")
    row["bound_by"] = verdict.bound_by
    row["bound_detail"] = verdict.detail + (f"; {profile}" if profile else "")
    return row
