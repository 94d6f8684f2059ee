"""An audit cell the harness distrusts for one reason only, its Locust process at the limit of its
core, is measured once more with as many load processes as there are cores: the route was not
the limit, the load generator was, and more processes can tell which. Only once: a second
saturation is the row's own verdict (its invalid_reason says so), not a reason to loop.

The re-run is a cell of its own in results.csv (its load_processes differ); harness.answer.audit
shows it in place of the saturated one and says so in the row.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from harness.data import knobs, store
from harness.data.matrix import Cell, Config, plan_cells
from harness.data.schema import read_results
from harness.judge.validity import saturated_only
from harness.system import procs


def load_cores() -> int:
    """The cores Locust may use: every core this process may run on (an audit does not pin)."""
    return max(1, len(os.sched_getaffinity(0)))


def _identity(params: dict) -> tuple:
    return knobs.cell_key({k: "" if str(v) in ("nan", "None") else
                           (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                           for k, v in params.items()})


def rerun_cells(plan: list[Config], run_dir: Path, cores: int | None = None) -> list[Cell]:
    """The plan's cells whose row is invalid only because Locust saturated, with `cores` load
    processes (default: load_cores()); none when they already had that many."""
    cores = cores or load_cores()
    results = run_dir / "results.csv"
    if not results.is_file():
        return []
    rows = read_results(results).to_dict("records")
    saturated = {_identity({k: r.get(k) for k in knobs.PARAM_COLUMNS}) for r in rows if saturated_only(r)}
    out = []
    for cell in plan_cells(plan, cores=procs.target_cores()):
        if _identity(cell.params()) not in saturated or cell.knobs["load_processes"] >= cores:
            continue
        swept = tuple(dict.fromkeys([*cell.swept, "load_processes"]))  # its own raw folder: …_lp2_r0
        out.append(dataclasses.replace(cell, knobs={**cell.knobs, "load_processes": cores}, swept=swept))
    done = store.done_keys(results)
    return [c for c in out if c.key not in done]


def rerun_saturated(plan: list[Config], run_dir: Path) -> int:
    """Measure the saturated-only cells once more into the run folder; exit code as run_sweep's."""
    from harness.run import sweep

    cells = rerun_cells(plan, run_dir)
    if not cells:
        return 0
    sweep.say(f"{len(cells)} cell(s) not valid only because Locust saturated its core: measuring them "
              f"once more with {cells[0].knobs['load_processes']} load processes")
    return sweep.run_more(plan, run_dir, cells)
