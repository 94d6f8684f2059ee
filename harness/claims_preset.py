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
from harness.data import knobs, store
from harness.data.matrix import Cell, Config, build_cells, make_config
from harness.run.sweep import estimate_s, fmt_s, new_meta, run_cells, say
from harness.system import procs

# Shared by every claims cell unless a claim asks otherwise: short windows, one worker, 32 users.
# 5 s: the probe (25 req/s per worker) then gets the 100 samples a healthy cell's /health p99 needs.
BASE = dict(workers=[1], users=[32], duration=5.0, warmup=1.5)


def configs(cores: int) -> list[tuple[str, Config]]:
    """(claim id, Config) for every sweep the registry asks for, in registry order."""
    out = []
    for claim in claims.REGISTRY:
        for overrides in claim.runs(cores):
            out.append((claim.id, make_config("default", **{**BASE, **overrides})))
    return out


def plan(cores: int) -> list[Cell]:
    """Every cell the registry needs, each once (the first claim to ask sets its window), grouped
    by repeat so that a late disturbance of the machine does not hit all repeats of one cell.

    Each sweep only knows the knobs *it* varies; across sweeps more vary (loop in one, pool size in
    another), so every cell is told the plan's varying knobs and its raw folder name carries them."""
    seen: dict[tuple, Cell] = {}
    for _, cfg in configs(cores):
        for cell in build_cells(cfg, cores=cores):
            seen.setdefault(cell.key, cell)
    varying = tuple(k.name for k in knobs.SWEEP_KNOBS
                    if len({c.knobs[k.name] for c in seen.values()}) > 1)
    cells = [dataclasses.replace(c, swept=varying) for c in seen.values()]
    cells.sort(key=lambda c: c.repeat)  # stable: registry order within a repeat
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids)), "two claims cells share a raw folder"
    return cells


def run_claims(run_dir: Path) -> int:
    """Run the claims cells into `run_dir`, decide the claims, write claims.csv and report.html."""
    from harness.present import report

    procs.set_placement(False)
    cores = procs.target_cores()
    cells = plan(cores)
    base = make_config("default", **BASE)
    meta = new_meta(run_dir, "claims", base.knobs())
    meta["claims_runs"] = [{"claim": cid, **{k: v for k, v in cfg.knobs().items() if k in _RUN_KNOBS}}
                           for cid, cfg in configs(cores)]
    say(f"run folder: {run_dir}")
    say(f"{len(cells)} cells for {len(claims.REGISTRY)} claims, about {fmt_s(estimate_s(cells))}")
    t0 = time.monotonic()
    rows = run_cells(cells, run_dir, meta, cpu_kind=base.cpu_kind[0])
    report.finish(run_dir)  # charts, report.html and claims.csv
    verdicts = claims.decide_run(run_dir)
    say("")
    say(claims.format_table(verdicts))
    say(f"claims: {run_dir / 'claims.csv'}   report: {run_dir / 'report.html'}   "
        f"(cells took {fmt_s(time.monotonic() - t0)})")
    return 1 if any(r["status"] != "ok" for r in rows) else 0


_RUN_KNOBS = ("targets", "scenarios", "workers", "users", "loop", "pool_size", "cpu_kind",
              "http_connections", "db_pool", "repeat", "duration")


def new_run_dir() -> Path:
    return store.ROOT / "results" / store.new_run_id("claims")
