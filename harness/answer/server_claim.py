"""Claim 21: "the server matters only where the framework's own cost dominates".

Every cell under another server is paired with the same cell under uvicorn (every other parameter
equal). A workload is *work-bound* when its analytic ceiling (a blocked loop, an upstream wait, the
CPU pattern) is at most WORK_SHARE of what the framework alone serves: uvicorn's /health rps at
the same W in the same run. Otherwise, and always on /health, it is *framework-bound*. The ceiling is
the model's, not a measured rps, so neither a slow server nor a machine busy with other work moves a
workload into the class that would excuse a difference. Without a /health cell at that W, uvicorn's
cell decides: work-bound when it reaches UNSATURATED of its ceiling.

"Matters" is the usual noise rule (evidence.compare on rps): with one repeat, a difference beyond
NOISE_MARGIN; with repeats, the exact permutation test of harness.answer.significance at 5%.

The verdict's chart (harness.answer.chart_data) has a panel per class: each pair's rps bars, uvicorn's
and the other server's, with uvicorn's ±NOISE_MARGIN band over the other's bar (or the test's p).
"""

from __future__ import annotations

import math

import pandas as pd

from harness.answer.chart_data import Panel, noise_band, point, with_chart
from harness.answer.evidence import (
    FAILS,
    HOLDS,
    NO_DIFF,
    PARTLY,
    UNSATURATED,
    Run,
    Verdict,
    compare,
    fmt,
    label,
    measure,
    not_measured,
    pairs,
    ratio,
)
from harness.data import prog

CLAIM = "21"
WORK_SHARE = 0.5  # work-bound: the work's ceiling is at most half of the framework's own rps


def framework_rps(run: Run, workers: object) -> float:
    """The framework alone at W workers: uvicorn's best /health rps in this run (nan if none)."""
    health = run.cells(scenario="health", server="uvicorn")
    health = health[health["workers"] == workers]
    return float(health["rps"].max()) if len(health) else math.nan


def framework_bound(run: Run, uvicorn_cell: pd.Series) -> bool:
    """/health, or a workload whose ceiling the framework's own rps does not dwarf (module docstring)."""
    if uvicorn_cell["scenario"] == "health":
        return True
    capacity, ceiling = framework_rps(run, uvicorn_cell["workers"]), float(uvicorn_cell["ceiling_rps"])
    if math.isfinite(capacity) and math.isfinite(ceiling):
        return ceiling > WORK_SHARE * capacity
    eff = float(uvicorn_cell.get("efficiency", math.nan))
    return not (math.isfinite(eff) and eff >= UNSATURATED)


def decide_server(run: Run) -> Verdict:
    if "server" not in run.summary.columns:
        return not_measured(CLAIM, f"the run predates the server knob ({prog.name()} run --preset servers)")
    others = sorted({str(s) for s in run.summary["server"].dropna()} - {"uvicorn"})
    found = [(uv, other) for s in others for uv, other in pairs(run, dict(server="uvicorn"), dict(server=s))]
    known = [(uv, o) for uv, o in found if uv["scenario"] == "health" or math.isfinite(
        float(uv.get("ceiling_rps", math.nan)))]
    if not known:
        return not_measured(CLAIM, "the run has no cell under another server to set against uvicorn "
                            f"({prog.name()} run --preset servers runs them)")
    framework = [(uv, o) for uv, o in known if framework_bound(run, uv)]
    work = [(uv, o) for uv, o in known if not framework_bound(run, uv)]
    if not framework or not work:
        missing = "framework-bound (/health)" if not framework else "work-bound (near their ceiling)"
        return not_measured(CLAIM, f"the run has no {missing} cells under two servers")
    evidence, cells, panels = [], [], []
    differ: dict[str, list[str]] = {"framework": [], "work": []}
    for kind, found_kind in (("framework", framework), ("work", work)):
        panel = Panel(f"{kind}-bound: rps against uvicorn", "requests/s", [])
        panels.append(panel)
        for uv, other in sorted(found_kind, key=_workload_order):  # a workload's bars side by side
            _chart_pair(panel, uv, other)
        for uv, other in found_kind:
            d = compare(other, uv, "rps")
            case = f"{other['server']} on {uv['target']} /{uv['scenario']} W={uv['workers']}"
            if d != 0:
                differ[kind].append(case)
            evidence.append(f"{kind}-bound: {case}: {measure(other, 'rps', 'rps')} vs uvicorn "
                            f"{measure(uv, 'rps', 'rps')} ({fmt(ratio(other['rps'], uv['rps']))}×)"
                            + ("" if d else ", inside the noise"))
            cells += [label(uv, "server"), label(other, "server")]
    if differ["work"]:
        verdict = PARTLY if differ["framework"] else FAILS
        cond = "the server also matters where the work dominates: " + ", ".join(differ["work"])
    elif differ["framework"]:
        verdict, cond = HOLDS, "the server matters at " + ", ".join(differ["framework"])
    else:
        verdict, cond = NO_DIFF, "no server differs measurably from uvicorn anywhere"
    return with_chart(Verdict(CLAIM, verdict, cond, evidence, cells), *panels)


def _workload_order(pair: tuple[pd.Series, pd.Series]) -> tuple[str, str, int, str]:
    uv, other = pair
    return str(uv["target"]), str(uv["scenario"]), int(uv["workers"]), str(other["server"])


def _chart_pair(panel: Panel, uv: pd.Series, other: pd.Series) -> None:
    """uvicorn's bar (once per workload) and the other server's, with the noise rule at the latter."""
    workload = f"{uv['target']} /{uv['scenario']}\nW={uv['workers']}"
    xu, xo = f"uvicorn\n{workload}", f"{other['server']}\n{workload}"
    if all(p.x != xu for p in panel.points):
        panel.points.append(point(uv, "rps", xu, "uvicorn"))
    panel.points.append(point(other, "rps", xo, str(other["server"])))
    noise_band(panel, other, uv, "rps", xo, "uvicorn")
