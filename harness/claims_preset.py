"""`bench.py claims`: run exactly the cells the claims registry needs, then decide every claim.

Each claim lists the sweeps it needs (harness.answer.claims.Claim.runs, as Config overrides: loop, CPU kind,
pool sizes and connections are comma-list sweeps like workers). Their cells are pooled, a cell two
claims share is run once, and all of them go through the ordinary sweep machinery (`run_cells`) into
one run folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness.answer import claims
from harness.data import knobs, prog, store
from harness.data.matrix import Cell, Config, ConfigError, build_cells, make_config
from harness.run.sweep import estimate_s, fmt_s, new_meta, run_cells, say
from harness.system import procs

# Shared by every claims cell unless a claim asks otherwise: short windows, one worker, 32 users.
# 4.5 s: the probe (25 req/s per worker) then gets 112 samples, above the 100 a healthy cell's /health
# p99 needs; shorter than 5 s so that the five repeats of the cells a difference decides
# (claims.DIFF_REPEATS) fit the 10-minute budget.
BASE = dict(workers=[1], users=[32], duration=4.5, warmup=1.5)
# Start-up, shutdown and the run's fixed costs (upstream burst, PostgreSQL, calibration) per cell, as
# measured: the 38 cells of the 2026-11-25 plan took 5 min 49 s on the quiet 2-core build machine, of
# which 266 s were windows (fake-async /io's stretched to 5.8 + 18.8 s), leaving 83 s: 2.2 s a cell.
# The plan's estimate uses it instead of the sweep's 4 s guess.
OVERHEAD_S = 2.2
BUDGET_S = 10 * 60


def parse_only(text: str | None) -> tuple[str, ...] | None:
    """`--only 12,9b`: the claim ids to run (None: all); an id the registry lacks is refused with the list."""
    if text is None:
        return None
    ids = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    known = [c.id for c in claims.REGISTRY]
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        raise ConfigError(f"--only: unknown claim {', '.join(unknown) or '(none given)'}; the claims are "
                           f"{', '.join(known)}")
    return ids


def configs(cores: int, only: tuple[str, ...] | None = None) -> list[tuple[str, Config]]:
    """(claim id, Config) for every sweep the registry asks for (of the claims in `only`), in registry
    order."""
    out = []
    for claim in claims.REGISTRY:
        if only is not None and claim.id not in only:
            continue
        for overrides in claim.runs(cores):
            out.append((claim.id, make_config("default", **{**BASE, **overrides})))
    return out


def plan(cores: int, only: tuple[str, ...] | None = None) -> list[Cell]:
    """Every cell the registry needs, each once (the first claim to ask sets its window), grouped
    by repeat so that a late disturbance of the machine does not hit all repeats of one cell.

    Each sweep only knows the knobs *it* varies; across sweeps more vary (loop in one, pool size in
    another), so every cell is told the plan's varying knobs and its raw folder name carries them."""
    seen: dict[tuple, Cell] = {}
    for _, cfg in configs(cores, only):
        for cell in build_cells(cfg, cores=cores):
            seen.setdefault(cell.key, cell)
    varying = tuple(k.name for k in knobs.SWEEP_KNOBS
                    if len({c.knobs[k.name] for c in seen.values()}) > 1)
    cells = [dataclasses.replace(c, swept=varying) for c in seen.values()]
    cells.sort(key=lambda c: c.repeat)  # stable: registry order within a repeat
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids)), "two claims cells share a raw folder"
    return cells


def run_claims(run_dir: Path, only: tuple[str, ...] | None = None) -> int:
    """Run the claims cells (of the claims in `only`) into `run_dir`, decide the claims, write
    claims.csv and report.html."""
    from harness.present import report

    procs.set_placement(False)
    cores = procs.target_cores()
    cells = plan(cores, only)
    base = make_config("default", **BASE)
    meta = new_meta(run_dir, "claims", base.knobs())
    meta["claims_runs"] = [{"claim": cid, **{k: v for k, v in cfg.knobs().items() if k in _RUN_KNOBS}}
                           for cid, cfg in configs(cores, only)]
    meta["claims_only"] = list(only) if only else None
    say(f"run folder: {run_dir}")
    chosen = [c for c in claims.REGISTRY if only is None or c.id in only]
    say(f"{len(cells)} cells for {len(chosen)} claims, about {fmt_s(estimate_s(cells, OVERHEAD_S))} "
        f"({_repeats_text(cells)})")
    for c in chosen:
        if c.preset:  # said up front, so a "not measured" row is no surprise
            say(f"  claim {c.id} is decided by {prog.name()} run --preset {c.preset}, not by this run")
    t0 = time.monotonic()
    rows = run_cells(cells, run_dir, meta, cpu_kind=base.cpu_kind[0])
    # report.html and claims.csv; each verdict row carries its own evidence chart, so the generic
    # per-scenario grid (mostly flat ceilings for these cells) is not drawn.
    report.finish(run_dir, plot_charts=False)
    verdicts = [v for v in claims.decide_run(run_dir) if only is None or v.claim in only]
    say("")
    say(claims.format_table(verdicts))
    say(f"claims: {run_dir / 'claims.csv'}   report: {run_dir / 'report.html'}   "
        f"(cells took {fmt_s(time.monotonic() - t0)})")
    return 1 if any(r["status"] != "ok" for r in rows) else 0


def _repeats_text(cells: list[Cell]) -> str:
    """`20 cells × 5 repeats, 18 × 1`: how the plan's repeats are spread."""
    per_cell: dict[tuple, int] = {}
    for c in cells:
        key = tuple(sorted((k, str(v)) for k, v in c.params().items() if k != "repeat"))
        per_cell[key] = per_cell.get(key, 0) + 1
    spread: dict[int, int] = {}
    for n in per_cell.values():
        spread[n] = spread.get(n, 0) + 1
    return ", ".join(f"{count} × {n} repeat{'s' if n > 1 else ''}"
                     for n, count in sorted(spread.items(), reverse=True))


_RUN_KNOBS = ("targets", "scenarios", "workers", "users", "loop", "pool_size", "cpu_kind",
              "http_connections", "db_pool", "repeat", "duration")


def new_run_dir() -> Path:
    return store.results_dir() / store.new_run_id("claims")
