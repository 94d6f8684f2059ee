"""Claim 21: "the server matters only where the framework's own cost dominates" (issue 21).

Every cell under another server is paired with the same cell under uvicorn (every other parameter
equal). A workload is *framework-bound* when its work leaves the framework as the cost: /health
(no work at all), or a uvicorn cell below UNSATURATED of its analytic ceiling (the work is not what
limits it). It is *work-bound* when uvicorn's cell reaches ≥ UNSATURATED of its ceiling (a blocked
loop, an upstream wait, the CPU pattern decides). uvicorn's cell classifies the pair, so a slow
server cannot move its own workload into the class that excuses it.

"Matters" is the usual noise rule (evidence.compare on rps): with one repeat, a difference beyond
NOISE_MARGIN; with repeats, intervals that do not overlap.
"""

from __future__ import annotations

import math

import pandas as pd

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

CLAIM = "21"


def framework_bound(uvicorn_cell: pd.Series) -> bool:
    """/health, or a cell whose work does not reach UNSATURATED of its ceiling under uvicorn."""
    if uvicorn_cell["scenario"] == "health":
        return True
    eff = float(uvicorn_cell.get("efficiency", math.nan))
    return math.isfinite(eff) and eff < UNSATURATED


def decide_server(run: Run) -> Verdict:
    if "server" not in run.summary.columns:
        return not_measured(CLAIM, "the run predates the server knob (bench.py run --preset servers)")
    others = sorted({str(s) for s in run.summary["server"].dropna()} - {"uvicorn"})
    found = [(uv, other) for s in others for uv, other in pairs(run, dict(server="uvicorn"), dict(server=s))]
    known = [(uv, o) for uv, o in found if uv["scenario"] == "health" or math.isfinite(
        float(uv.get("efficiency", math.nan)))]
    if not known:
        return not_measured(CLAIM, "the run has no cell under another server to set against uvicorn "
                            "(bench.py run --preset servers runs them)")
    framework = [(uv, o) for uv, o in known if framework_bound(uv)]
    work = [(uv, o) for uv, o in known if not framework_bound(uv)]
    if not framework or not work:
        missing = "framework-bound (/health)" if not framework else "work-bound (near their ceiling)"
        return not_measured(CLAIM, f"the run has no {missing} cells under two servers")
    evidence, cells = [], []
    differ: dict[str, list[str]] = {"framework": [], "work": []}
    for kind, found_kind in (("framework", framework), ("work", work)):
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
    return Verdict(CLAIM, verdict, cond, evidence, cells)
