"""Repeats where `make bench`'s answer hinges on one repeat's noise: after the default sweep, only
the cells the answer rests on are measured again (docs/report.md, "Repeats where the answer hinges")."""

from __future__ import annotations

from pathlib import Path

from harness.data.matrix import make_plan

HINGE_PRESETS = ("default",)  # the presets whose answer may buy repeats where it hinges on the noise
HINGE_BUDGET_S = 150.0  # what they may spend at most: make bench stays within 10 minutes with its install
MAKE_BENCH_S, INSTALL_S = 600.0, 90.0  # make bench's budget, and what its install took here (1.5 min)


def wanted(asked: bool | None, preset: str, plan: list) -> bool:
    """Whether to buy repeats where the answer hinges: as asked, else only for a preset in
    HINGE_PRESETS run as it ships (a sweep with knobs changed is the user's own question, and its
    cell count is theirs: nothing is added to it unasked)."""
    if asked is not None:
        return asked
    return preset in HINGE_PRESETS and list(plan) == make_plan(preset)


def budget(sweep_s: float) -> float:
    """Seconds the hinge repeats may spend after a sweep of `sweep_s`: HINGE_BUDGET_S, less whatever
    a slow (shared) machine already took beyond make bench's budget; 0 when it is spent."""
    return max(0.0, min(HINGE_BUDGET_S, MAKE_BENCH_S - INSTALL_S - sweep_s))


def repeat(plan, run_dir: Path, sweep_s: float, slo_health_ms: float) -> int:
    """Where a workload's answer hinges on one repeat's noise (harness.answer.answer.hinge_cells),
    re-measure only those cells, to 5 repeats when the budget allows, else 4 (the fewest the
    permutation test can decide on), for as many workloads as the budget holds; said up front."""
    from harness.answer import aggregate, answer, cost, recommend
    from harness.run import sweep

    df = aggregate.load_results(run_dir)
    workloads = answer.answer(df, recommend.DEFAULT_SLO_P99_MS, recommend.DEFAULT_MAX_FAIL_RATIO,
                              slo_health_ms)
    named = answer.distinguishing(workloads)
    hinges = [(answer.workload_title(w, named), cells) for w in workloads if (cells := answer.hinge_cells(w))]
    if not hinges:
        return 0
    per_cell, allowed = sweep_s / max(1, len(df)), budget(sweep_s)

    def fitting(n: int) -> list[tuple[str, list]]:
        out, spent = [], 0.0
        for title, cells in hinges:
            spent += len(cells) * (n - 1) * per_cell
            if spent > allowed:
                break
            out.append((title, cells))
        return out

    n = max((cost.MAX_REPEATS, cost.TEST_REPEATS), key=lambda k: len(fitting(k)))
    chosen = fitting(n)
    if not chosen:
        sweep.say(f"\nthe answer hinges on one repeat's noise in {', '.join(t for t, _ in hinges)}, but the "
                  f"sweep took {sweep.fmt_s(sweep_s)}: no time is left for repeats in make bench's budget")
        return 0
    again = [{c: cell[c] for c in aggregate.CELL_COLUMNS} for _, cells in chosen for cell in cells]
    extra = sweep.repeat_cells(plan, run_dir, again, n)
    skipped = [t for t, _ in hinges[len(chosen):]]
    sweep.say(f"\nthe answer hinges on one repeat's noise in {', '.join(t for t, _ in hinges)}: re-measuring "
              f"{len(again)} cell(s) of {', '.join(t for t, _ in chosen)} to {n} repeats each "
              f"({len(extra)} more cells, about {sweep.fmt_s(len(extra) * per_cell)})"
              + (f"; not {', '.join(skipped)} (over the {allowed:.0f} s left of the budget)"
                 if skipped else ""))
    return sweep.run_more(plan, run_dir, extra)
