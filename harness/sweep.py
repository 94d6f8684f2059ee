"""The whole run: validate → run folder → upstream (+ capacity burst) → cells → summary → charts.

Rows are appended as cells finish; the upstream is checked between cells and restarted if it died
(the restart is recorded in meta.json and printed); Ctrl-C / SIGTERM stop every child and keep
every finished row.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from harness import burst, procs, store
from harness.cell import Upstream, run_cell
from harness.launch import LOOPBACK, Server, start_upstream
from harness.matrix import Cell, Config, build_cells, cores_available
from harness.resources import cpu_model
from targets import cpu_work

CELL_OVERHEAD_GUESS_S = 4.0  # start-up + shutdown per cell, until measured


def say(msg: str) -> None:
    print(msg, flush=True)


def fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def estimate_s(cells: list[Cell], overhead: float = CELL_OVERHEAD_GUESS_S) -> float:
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
        cap = self.capacity["rps"] if self.capacity else None
        return Upstream(self.server.url, self.server.proc.pid, cap)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def describe(row: dict) -> str:
    if row["status"] != "ok":
        return f"FAILED: {row['error']}"
    eff = row.get("efficiency")
    eff_s = f", {eff:.0%} of ceiling {row['ceiling_rps']:.0f}" if eff == eff and math.isfinite(eff) else ""
    out = (f"{row['rps']:.1f} rps{eff_s}; p50 {row['p50_ms']:.1f} ms; "
           f"/health p99 {row['health_p99_ms']:.1f} ms; loop lag p99 {row['loop_lag_p99_ms']:.1f} ms")
    if not row["valid"]:
        out += f"  [invalid: {row['invalid_reason']}]"
    return out


def run_sweep(cfg: Config, run_dir: Path, *, preset: str, resume: bool = False,
              target_alias: dict[str, str] | None = None, measure_upstream: bool = True) -> int:
    """Run every missing cell; returns the exit code (0 all ok, 1 some cell failed)."""
    cells = build_cells(cfg)
    results = run_dir / "results.csv"
    run_dir.mkdir(parents=True, exist_ok=True)
    done = store.done_keys(results) if resume else set()
    todo = [c for c in cells if c.key not in done]
    meta_path = run_dir / "meta.json"
    meta = store.read_meta(meta_path) if resume else {
        "run_id": run_dir.name, "preset": preset, "git_commit": store.git_commit(),
        "versions": store.versions(), "cpu_count": cores_available(), "cpu_model": cpu_model(),
        "pinning": "none: target, load generator and upstream share all cores", "knobs": cfg.knobs(),
        "command": " ".join(sys.argv), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": LOOPBACK,
    }
    if "cpu_units_per_ms" not in meta:
        # Calibrated once, while the machine is quiet; every cell (and a resume) reuses it.
        meta["cpu_units_per_ms"] = round(cpu_work.calibrate(cfg.cpu_kind, probe_ms=50.0), 1)
    store.write_meta(meta_path, meta)
    run_env = {"CPU_UNITS_PER_MS": str(meta["cpu_units_per_ms"])}
    say(f"run folder: {run_dir}")
    say(f"{len(todo)} cells to run ({len(cells) - len(todo)} already done), "
        f"about {fmt_s(estimate_s(todo))}; target, Locust and upstream share {cores_available()} cores")
    keeper = UpstreamKeeper(run_dir, measure=measure_upstream)
    failed = 0
    spent_overhead: list[float] = []
    try:
        for i, cell in enumerate(todo, 1):
            upstream = keeper.ensure()
            if keeper.capacity and "upstream_capacity" not in meta:
                meta["upstream_capacity"] = keeper.capacity
                store.write_meta(meta_path, meta)
            t_cell = time.monotonic()
            say(f"[{i}/{len(todo)}] {cell.target} · {cell.scenario} · workers={cell.workers} "
                f"users={cell.users} repeat={cell.repeat} (window {cell.warmup_s:g}+{cell.duration_s:g} s)")
            row = run_cell(cell, run_dir, upstream, target_name=(target_alias or {}).get(cell.target),
                           extra_env=run_env)
            store.append_row(results, row)
            failed += row["status"] != "ok"
            spent_overhead.append(time.monotonic() - t_cell - cell.warmup_s - cell.duration_s)
            overhead = sum(spent_overhead) / len(spent_overhead)
            say(f"    {describe(row)}   [ETA {fmt_s(estimate_s(todo[i:], overhead))}]")
    finally:
        keeper.stop()
        procs.stop_all()
        meta["upstream_restarts"] = keeper.restarts
        meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        store.write_meta(meta_path, meta)
    return 1 if failed else 0
