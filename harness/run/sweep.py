"""The whole run: validate → run folder → upstream (+ capacity burst) → cells → summary → charts.

Rows are appended as cells finish; the upstream is checked between cells and restarted if it died
(the restart is recorded in meta.json and printed); Ctrl-C / SIGTERM stop every child and keep
every finished row.

Why one module over 300 lines: it owns the run's lifetime (upstream, stopper, database, hub) and
its progress line; the cell itself is harness.run.cell, the plan harness.data.matrix.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.data import knobs, prog, store
from harness.data.address import parse_address
from harness.data.matrix import Cell, Config, cores_available, plan_cells
from harness.judge.resources import cpu_model
from harness.run import database
from harness.run.cell import Stopper, Upstream, run_cell
from harness.run.launch import LOOPBACK, LaunchError, Server, start_upstream
from harness.run.remote import Hub
from harness.system import burst, procs
from targets import cpu_work

CELL_OVERHEAD_GUESS_S = 4.0  # start-up + shutdown per cell, until measured


def say(msg: str) -> None:
    print(msg, flush=True)


def fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def estimate_s(cells: Sequence[Cell], overhead: float = CELL_OVERHEAD_GUESS_S) -> float:
    return sum(c.warmup_s + c.duration_s + overhead for c in cells)


class UpstreamKeeper:
    """Owns the upstream for the run: starts it, measures it, restarts it if it dies."""

    def __init__(self, run_dir: Path, measure: bool = True) -> None:
        self.run_dir = run_dir
        self.server: Server | None = None
        self.capacity: dict | None = None
        self.restarts = 0
        self.measure = measure

    def start(self) -> None:
        self.server = start_upstream(self.run_dir / "upstream.log")
        if self.measure and self.capacity is None:
            say("measuring upstream capacity (1000 connections × 50 ms, 2 s)...")
            self.capacity = burst.measure_capacity(self.server.url, connections=1000, delay_ms=50,
                                                   seconds=2.0, warmup=0.5)
            say(f"  upstream: {self.capacity['rps']:.0f} rps (ideal {self.capacity['ideal_rps']:.0f})")

    def ensure(self) -> Upstream:
        if self.server is None or not self.server.alive():
            if self.server is not None:
                self.restarts += 1
                say(f"! upstream died (exit {self.server.proc.returncode}); restarting it")
                self.server.stop()
            self.start()
        assert self.server is not None  # start() set it or raised
        cap = self.capacity["rps"] if self.capacity else None
        return Upstream(self.server.url, self.server.proc.pid, cap)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def cell_label(cell: Cell) -> str:
    """workers and users, plus every other knob this sweep varies: 'workers=1 users=32 pool_size=8'."""
    load = ["rate", "arrivals"] if cell.knobs.get("rate") else ["users"]  # open loop has no users
    names = ["workers", *load, *(k for k in cell.swept if k not in ("workers", "users", *load))]
    if cell.knobs.get("load_processes", 1) > 1 and "load_processes" not in names:
        names.append("load_processes")
    if cell.knobs.get("remote_load_workers"):
        names.append("remote_load_workers")
    # A knob that does not apply to this cell (a pool size on a target without a pool, db knobs off
    # /db) is None: naming it would only clutter the line.
    return " ".join(f"{k}={cell.knobs[k]}" for k in names if cell.knobs.get(k) is not None)


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None and math.isfinite(value) else "— ms"


def p99_text(row: dict) -> str:
    """'p99 412.0 ms', or, when failures reach it, the bound it exceeds: 'p99 > 10.0 s (6% failed)'."""
    bound = row.get("p99_lower_ms", math.nan)
    if bound is not None and math.isfinite(bound):
        fail = row.get("fail_ratio", math.nan)
        failed = f" ({fail:.0%} failed or timed out)" if fail is not None and math.isfinite(fail) else ""
        shown = f"{bound / 1000:.1f} s" if bound >= 1000 else _ms(bound)
        return f"p99 > {shown}{failed}"
    return f"p99 {_ms(row.get('p99_ms'))}"


def describe(row: dict) -> str:
    if row["status"] != "ok":
        return f"FAILED: {row['error']}"
    eff = float(row.get("efficiency", math.nan))
    eff_s = f", {eff:.0%} of ceiling {row['ceiling_rps']:.0f}" if math.isfinite(eff) else \
        (" (no ceiling known for this app)" if row["ceiling_rps"] != row["ceiling_rps"] else "")
    # A blank percentile (too few samples, or failures reaching it) shows as a dash, never as a number.
    health = (f"/health p99 {_ms(row['health_p99_ms'])}" if math.isfinite(row.get("health_p99_ms", math.nan))
              else f"/health max {_ms(row.get('health_max_ms'))} (n={row.get('health_min_samples', 0)}, "
              "too few for a p99)")
    out = (f"{row['rps']:.1f} rps{eff_s}; p50 {_ms(row['p50_ms'])}; {p99_text(row)}; {health}; "
           f"loop lag p99 {_ms(row['loop_lag_p99_ms'])} (worst worker)")
    if row.get("scenario") == "db":
        out += (f"; pool wait p99 {_ms(row['db_pool_wait_p99_ms'])}, busy max {row['db_pool_busy_max']:g}"
                f"/worker, db active max {row['db_active_max']:g}")
    if row.get("fail_top"):
        out += f"; failed: {row['fail_top']}"
    if row.get("stall_site"):
        out += f"; loop stalled at {row['stall_site']}"
    if row.get("bound_by"):
        out += f"; bound by {row['bound_by']}"
    if not row["valid"]:
        out += f"  [invalid: {row['invalid_reason']}]"
    return out


def profiled(cell: Cell, pattern: str | None) -> bool:
    """Whether --profile / --profile-cells PATTERN (a glob on the cell's raw folder name, e.g.
    'correct-async_io_*' or '*_r1') asks for this cell to be profiled."""
    return pattern is not None and fnmatch.fnmatchcase(cell.cell_id, pattern)


def session_info(number: int) -> dict:
    """What one session of a run (the first, or a --resume) measured on: code, versions, machine."""
    return {
        "session": number, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": store.git_commit(),
        "versions": store.versions(), "cpu_count": os.cpu_count(), "cores_available": cores_available(),
        "cpu_model": cpu_model(), "pinning": procs.placement_note(), "command": " ".join(sys.argv),
    }


def new_meta(run_dir: Path, preset: str, knobs: dict) -> dict:
    first = session_info(1)
    # The top-level machine fields are the first session's; every session is in "sessions".
    top = {k: v for k, v in first.items() if k != "session"}
    return {"run_id": run_dir.name, "preset": preset, **top, "knobs": knobs, "host": LOOPBACK,
            "sessions": [first]}


SPEED_SPREAD_WARNING = 1.2
SPEED_DRIFT_WARNING = 0.2  # a resumed session's CPU this much faster or slower than the run's


def _measure_rate(cpu_kind: str) -> tuple[float, float]:
    """(best rate, best / median) of 100 back-to-back probes after 1 s of warm-up."""
    rates = sorted(cpu_work.speed_samples(cpu_kind, probe_ms=5.0, rounds=100, warm_s=1.0))
    best, median = rates[-1], rates[len(rates) // 2]
    return round(best, 1), round(best / median, 3)


def calibrate_cpu(meta: dict, cpu_kind: str) -> None:
    """Every session measures the CPU work rate; the run's first measurement is the one every cell's
    workers are given (a resume keeps it, so all cells do the same work).

    The fastest of 100 back-to-back probes after 1 s of warm-up. How much slower the median probe
    was says how steady this machine's CPU is; a shared host can make it swing by tens of percent.
    """
    best, spread = _measure_rate(cpu_kind)
    session = meta["sessions"][-1]
    session["cpu_units_per_ms"], session["cpu_speed_spread"] = best, spread
    if "cpu_units_per_ms" not in meta:
        meta["cpu_units_per_ms"], meta["cpu_speed_spread"] = best, spread
    elif abs(best / meta["cpu_units_per_ms"] - 1) > SPEED_DRIFT_WARNING:
        say(f"! this session's CPU runs at {best / meta['cpu_units_per_ms']:.0%} of the speed the run was "
            "calibrated at: its CPU-bound cells are not comparable with the earlier ones")
    if spread > SPEED_SPREAD_WARNING:
        say(f"! CPU speed is unsteady here: the median calibration probe ran {spread - 1:.0%} "
            "slower than the best. CPU-bound cells will scatter; expect some above or far below "
            "their ceilings.")


def cpu_rates(meta: dict, cpu_kind: str, kinds: set[str]) -> dict[str, float]:
    """Work rate per CPU kind. The run's own kind is `cpu_units_per_ms`; a run whose cells mix kinds
    (python work and GIL-releasing native work differ by orders of magnitude in units/ms) calibrates
    each other kind once too, in `cpu_units_per_ms_by_kind`. A session calibrates once: more cells
    measured in it later (run_more: repeats, re-runs, the audit's routes after its screen) keep its rate."""
    if "cpu_units_per_ms" not in meta["sessions"][-1]:
        calibrate_cpu(meta, cpu_kind)
    rates = meta.setdefault("cpu_units_per_ms_by_kind", {cpu_kind: meta["cpu_units_per_ms"]})
    for kind in sorted(kinds - set(rates)):
        rates[kind], _ = _measure_rate(kind)
    return rates


def _sessions(meta: dict) -> list[dict]:
    """A run's sessions; older run folders without them count their top-level fields as session 1."""
    return meta.setdefault("sessions", [{"session": 1, **{k: meta.get(k) for k in (
        "started_at", "git_commit", "versions", "cpu_count", "cores_available", "cpu_model", "pinning",
        "command", "cpu_units_per_ms", "cpu_speed_spread", "upstream_capacity")}}])


def check_same_machine(meta: dict) -> None:
    """Refuse to resume a run on a machine with other cores or another CPU: its cells would not be
    comparable with the ones already measured."""
    first = _sessions(meta)[0]
    for key, what, now in (("cores_available", "cores", cores_available()), ("cpu_model", "CPU model",
                                                                              cpu_model())):
        if first.get(key) is None:
            say(f"! --resume: the run folder does not record its {what}; cannot check it is this machine")
        elif first[key] != now:
            raise store.RunFolderError(
                f"--resume: the run was measured with {what} {first[key]!r}, this machine has {now!r}; "
                "cells from the two would not be comparable (start a new run)")


def resume_session(meta: dict) -> dict:
    """Open a new session in a resumed run's meta (after check_same_machine): a changed commit or
    package versions is said and recorded, and every row then says its session."""
    sessions = _sessions(meta)
    now = session_info(len(sessions) + 1)
    first = sessions[0]
    for key, what in (("git_commit", "commit"), ("versions", "package versions")):
        if first.get(key) != now[key]:
            if key == "versions" and isinstance(first.get(key), dict):
                changed = {k: (first[key].get(k), v) for k, v in now[key].items() if first[key].get(k) != v}
                detail = ", ".join(f"{k} {a} → {b}" for k, (a, b) in changed.items())
            else:
                detail = f"{first.get(key)} → {now[key]}"
            say(f"! --resume: {what} changed since session 1 ({detail}); recorded as session "
                f"{now['session']}, and each row says its session")
    sessions.append(now)
    return now


def start_database(cells: Sequence[Cell], run_dir: Path, meta: dict, db_url: str | None,
                   measure: bool = True) -> database.Database | None:
    """PostgreSQL for the db cells (None without any): started (or reached), then measured."""
    if not any(c.scenario == "db" for c in cells):
        return None
    db = database.start(run_dir, cells, db_url)
    try:
        say(f"database: {db.source} PostgreSQL {db.version.split()[0]} "
            f"({'ours, ' if db.owned else 'existing, '}max_connections {db.max_connections})")
        if measure:
            needed = database.connections_needed(cells)
            cap = database.measure_capacity(db, needed)
            say(f"  database: {cap['qps']:.0f} queries/s with {cap['connections']} connections × "
                f"pg_sleep({cap['sleep_ms']:g} ms) (ideal {cap['ideal_qps']:.0f})")
        meta["database"] = db.meta()
    except BaseException:
        db.stop()
        raise
    return db


def run_cells(cells: Sequence[Cell], run_dir: Path, meta: dict, *, cpu_kind: str = "python",
              measure_upstream: bool = True, profile: str | None = None,
              db_url: str | None = None) -> list[dict]:
    """Run `cells` in order, appending each row to results.csv as it ends; returns the rows.
    Cells whose id matches the glob `profile` are sampled with py-spy (harness/run/profile.py).
    With db cells, a PostgreSQL is started first (or `db_url` used) and stopped at the end."""
    meta_path = run_dir / "meta.json"
    store.write_meta(meta_path, meta)
    rates = cpu_rates(meta, cpu_kind, {c.cpu_kind for c in cells})
    session = meta["sessions"][-1]
    keeper = UpstreamKeeper(run_dir, measure=measure_upstream)
    rows: list[dict] = []
    spent_overhead: list[float] = []
    stopper = Stopper()
    completed = False
    db = None
    hub = start_hub(cells)
    try:
        db = start_database(cells, run_dir, meta, db_url, measure=measure_upstream)
        if db is not None:  # its capacity, in meta.json before the first cell
            store.write_meta(meta_path, meta)
        for i, cell in enumerate(cells, 1):
            upstream = keeper.ensure()
            if keeper.capacity and "upstream_capacity" not in session:
                session["upstream_capacity"] = keeper.capacity
                meta.setdefault("upstream_capacity", keeper.capacity)
                store.write_meta(meta_path, meta)
            t_cell = time.monotonic()
            say(f"[{i}/{len(cells)}] {cell.target} · {cell.scenario} · {cell_label(cell)} "
                f"repeat={cell.repeat} (window {cell.warmup_s:g}+{cell.duration_s:g} s)")
            run_env = {"CPU_UNITS_PER_MS": str(rates[cell.cpu_kind])}
            row = _measure_and_store(cell, run_dir, upstream, dict(
                extra_env=run_env, stopper=stopper, profile=profiled(cell, profile),
                session=session["session"], database=db, hub=hub))
            rows.append(row)
            spent_overhead.append(time.monotonic() - t_cell - cell.warmup_s - cell.duration_s)
            overhead = sum(spent_overhead) / len(spent_overhead)
            say(f"    {describe(row)}   [ETA {fmt_s(estimate_s(cells[i:], overhead))}]")
        completed = True
    finally:
        if hub is not None:
            hub.stop()  # the load workers hear that the run is over
        stopper.wait()  # the last target's shutdown
        keeper.stop()  # each cell stopped its own processes; the CLI's interrupt path has stop_all
        if db is not None:
            db.stop()  # after the targets: their pools close before the server goes
        meta["upstream_restarts"] = meta.get("upstream_restarts", 0) + keeper.restarts
        meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            store.write_meta(meta_path, meta)
        except store.DiskError:
            if completed:  # otherwise the error (or interrupt) already on its way up says enough
                raise
    return rows


def _measure_and_store(cell: Cell, run_dir: Path, upstream: Upstream, options: dict) -> dict:
    """One cell's row, measured and appended to results.csv (room for it checked first)."""
    try:
        store.check_room(run_dir, f"writing to the run folder before cell {cell.cell_id}")
        row = run_cell(cell, run_dir, upstream, **options)
        check_stored(row, run_dir / "raw" / cell.cell_id)
        store.append_row(run_dir / "results.csv", row)
    except store.DiskError:
        # The cell's raw files may be cut short: it is not recorded (no row, not even a
        # failed one) and --resume measures it again; its folder goes, to free space.
        shutil.rmtree(run_dir / "raw" / cell.cell_id, ignore_errors=True)
        raise
    return row


def start_hub(cells: Sequence[Cell]) -> Hub | None:
    """--remote-load-workers: the meeting point load workers on other machines poll, for the run."""
    if not cells or not cells[0].knobs.get("remote_load_workers"):
        return None
    knobs = cells[0].knobs
    host, port = parse_address(knobs["master_bind"], "--master-bind", bind=True)
    hub = Hub(host, port, expected=knobs["remote_load_workers"], wait_s=knobs["remote_wait"])
    try:
        hub.start()
    except OSError as exc:
        raise LaunchError(f"--master-bind {hub.address}: cannot listen there ({exc.strerror or exc})"
                          ) from None
    say(f"each cell waits up to {hub.wait_s:g} s for {hub.expected} remote load worker(s): run "
        f"`{prog.name()} load-worker --master {hub.address}` on each load machine")
    return hub


def check_stored(row: dict, raw_dir: Path) -> None:
    """DiskError if the cell's raw files may not all be on disk: the disk refuses a probe now, or
    the cell failed with a disk error (a child could not write its record or log)."""
    if row.get("status") == "failed":
        for message in store.DISK_MESSAGES:
            if message in str(row.get("error", "")):
                raise store.DiskError(f"writing the raw files of cell {raw_dir.name}", raw_dir, message)
    store.check_room(raw_dir if raw_dir.is_dir() else raw_dir.parent,
                     f"writing the raw files of cell {raw_dir.name}")


def _key_text(value: object) -> str:
    """A summary's parameter as results.csv writes it (`4`, not `4.0`; empty for none)."""
    if value is None or str(value) in ("nan", "<NA>", "None"):  # any frame's missing value
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def repeat_cells(plan: list[Config], run_dir: Path, wanted: Sequence[Mapping[str, object]],
                 repeats: int) -> list[Cell]:
    """The plan's cells whose parameters (all but the repeat) are `wanted`'s, at repeats 1 … repeats−1,
    less those results.csv already has: the hinge repeats of a one-repeat run."""
    def identity(params: Mapping[str, object]) -> tuple:
        return knobs.cell_key({**{k: _key_text(v) for k, v in params.items()}, "repeat": "0"})

    keys = {identity(w) for w in wanted}
    done = store.done_keys(run_dir / "results.csv")
    base = [c for c in plan_cells(plan, cores=procs.target_cores()) if identity(c.params()) in keys]
    extra = [dataclasses.replace(c, repeat=k) for k in range(1, repeats) for c in base]
    return [c for c in extra if c.key not in done]


def run_more(plan: list[Config], run_dir: Path, cells: Sequence[Cell]) -> int:
    """Measure extra repeats into a finished run folder, in the run's own session; exit code as
    run_sweep's."""
    if not cells:
        return 0
    meta = store.read_meta(run_dir / "meta.json")
    rows = run_cells(cells, run_dir, meta, cpu_kind=plan[0].cpu_kind[0], measure_upstream=False,
                     db_url=plan[0].db_url)
    return 1 if any(r["status"] != "ok" for r in rows) else 0


def run_sweep(plan: Config | list[Config], run_dir: Path, *, preset: str, resume: bool = False,
              measure_upstream: bool = True, profile: str | None = None) -> int:
    """Run every missing cell of a Config (or of every part of a preset in parts); returns the exit
    code (0 all ok, 1 some cell failed)."""
    plan = plan if isinstance(plan, list) else [plan]
    first = plan[0]
    procs.set_placement(first.pin)
    cells = plan_cells(plan, cores=procs.target_cores())
    if resume:  # a different machine is refused before anything is touched
        meta = store.read_meta(run_dir / "meta.json")
        store.check_columns(run_dir / "results.csv")
        check_same_machine(meta)
    else:
        meta = new_meta(run_dir, preset, first.knobs())
        if len(plan) > 1:
            meta["parts"] = [cfg.knobs() for cfg in plan]
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and store.drop_torn_row(run_dir / "results.csv"):
        say("note: results.csv ended in a half-written row (the harness was killed); it was cut")
    done = store.done_keys(run_dir / "results.csv") if resume else set()
    todo = [c for c in cells if c.key not in done]
    say(f"run folder: {run_dir}")
    say(f"{len(todo)} cells to run ({len(cells) - len(todo)} already done), about "
        f"{fmt_s(estimate_s(todo))}; {procs.placement_note()}")
    if not todo:  # nothing measured, so no session to record
        return 0
    if resume:
        resume_session(meta)
    if profile is not None:
        meta["profile_cells"] = profile
    try:
        rows = run_cells(todo, run_dir, meta, cpu_kind=first.cpu_kind[0], measure_upstream=measure_upstream,
                         profile=profile, db_url=first.db_url)
    except store.DiskError as exc:
        keys = {c.key for c in cells}
        exc.cells_safe = len(store.done_keys(run_dir / "results.csv") & keys)
        exc.cells_total = len(keys)
        raise
    return 1 if any(r["status"] != "ok" for r in rows) else 0
