"""`bench.py claims`: run exactly the cells the claims registry needs, then decide every claim.

Each claim lists the sweeps it needs (harness.claims.Claim.runs, as Config overrides). Knobs that
one Config cannot sweep as a list (loop, cpu kind, pool size, connections) are separate Configs; their
cells are pooled, duplicates across claims are run once, and all of them go through the ordinary
sweep machinery (`run_cells`) into one run folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import claims, procs, store
from harness.matrix import Cell, Config, build_cells, make_config
from harness.sweep import fmt_s, new_meta, run_cells, say
from targets import default_pool_size

# Shared by every claims cell unless a claim asks otherwise: short windows, one worker, 32 users.
BASE = dict(workers=[1], users=[32], duration=4.0, warmup=1.5)

# Knobs that make a cell differ from its plain namesake; they go into the raw folder's name so two
# cells never share (and clobber) one folder.
_ID_KNOBS = ("loop", "cpu_kind", "pool_size", "http_connections", "http_client", "io_ms", "cpu_ms",
             "fanout", "launch")
_SHORT = {"loop": "", "cpu_kind": "", "pool_size": "p", "http_connections": "h", "http_client": "",
          "io_ms": "io", "cpu_ms": "cpu", "fanout": "f", "launch": ""}


@dataclass(frozen=True)
class ClaimCell(Cell):
    """A Cell whose raw folder name also names the knobs it differs in from the defaults."""

    raw_name: str = ""

    @property
    def cell_id(self) -> str:
        return self.raw_name or super().cell_id


def configs(cores: int) -> list[tuple[str, Config]]:
    """(claim id, Config) for every run the registry asks for, in registry order."""
    out = []
    for claim in claims.REGISTRY:
        for overrides in claim.runs(cores):
            out.append((claim.id, make_config("default", **{**BASE, **overrides})))
    return out


def _raw_name(cell: Cell, default: Config) -> str:
    base = cell.cell_id
    parts = []
    for knob in _ID_KNOBS:
        value = getattr(cell, knob)
        usual = default_pool_size(cell.target) if knob == "pool_size" else getattr(default, knob)[0]
        if value != usual:
            parts.append(f"{_SHORT[knob]}{value}")
    if not parts:
        return base
    stem, repeat = base.rsplit("_r", 1)
    return f"{stem}_{'_'.join(parts)}_r{repeat}"


def plan(cores: int) -> list[ClaimCell]:
    """Every cell the registry needs, each once (the first claim to ask sets its window), grouped
    by repeat so that a late disturbance of the machine does not hit all repeats of one cell."""
    default = make_config("default")
    seen: dict[tuple, ClaimCell] = {}
    for _, cfg in configs(cores):
        for cell in build_cells(cfg, cores=cores):
            key = tuple(sorted(cell.params().items(), key=lambda kv: kv[0]))
            if key not in seen:
                seen[key] = ClaimCell(**asdict(cell), raw_name=_raw_name(cell, default))
    cells = sorted(seen.values(), key=lambda c: c.repeat)  # stable: registry order within a repeat
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids)), "two claims cells share a raw folder"
    return cells


def run_claims(run_dir: Path) -> int:
    """Run the claims cells into `run_dir`, decide the claims, write claims.csv and report.html."""
    from harness import report

    procs.set_placement(False)
    cores = procs.target_cores()
    cells = plan(cores)
    base = make_config("default", **BASE)
    meta = new_meta(run_dir, "claims", base.knobs())
    meta["claims_runs"] = [{"claim": cid, **{k: v for k, v in cfg.knobs().items() if k in _RUN_KNOBS}}
                           for cid, cfg in configs(cores)]
    say(f"run folder: {run_dir}")
    say(f"{len(cells)} cells for {len(claims.REGISTRY)} claims, about "
        f"{fmt_s(sum(c.warmup_s + c.duration_s + 4.0 for c in cells))}")
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
              "http_connections", "repeat", "duration")


def new_run_dir() -> Path:
    return store.ROOT / "results" / store.new_run_id("claims")
