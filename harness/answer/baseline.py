"""`bench.py audit APP --baseline DIR`: each route (per workers value) of this audit against the same
route in an earlier audit folder, on throughput and p99, from the two folders alone.

The cells are joined and judged by `bench.py compare`'s own code (harness.answer.compare: the join on
every parameter but the one that differs, the exact permutation test of harness.answer.significance
at 5% two-sided). A route *regressed* when that test calls it slower on a metric and the change is
larger than the allowed share: throughput below (1 − max) × the baseline's, or p99 above (1 + max) ×.
Fewer repeats than the test can show a difference with (1 or 2 a side: no test; 3 vs 3: smallest p
0.1) is said in the row and is never a regression: no data of that size could show one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.answer import compare, significance
from harness.answer.audit import AUDIT_JSON
from harness.answer.reruns import drop_superseded

BASELINE_CSV = "baseline.csv"
DEFAULT_MAX_REGRESSION = 0.10
METRICS = [("rps", "rps", True), ("p99_ms", "p99 ms", False)]  # (column, label, higher is better)


class BaselineError(ValueError):
    """The baseline cannot be compared with (one line): not an audit folder, no route in common."""


@dataclass(frozen=True)
class Change:
    """One metric of one route: the baseline's median, this audit's, the ratio and compare's word."""

    metric: str
    before: float
    after: float
    ratio: float
    word: str  # "slower", "faster", "no significant difference", "cannot tell: …"
    p: float

    def regressed(self, max_regression: float, higher_is_better: bool) -> bool:
        if self.word != "slower" or math.isnan(self.ratio):
            return False
        return self.ratio < 1 - max_regression if higher_is_better else self.ratio > 1 + max_regression


@dataclass(frozen=True)
class RouteChange:
    route: str
    workers: str
    thread_tokens: str
    n_before: int
    n_after: int
    changes: tuple[Change, ...]
    regressions: tuple[Change, ...]

    @property
    def label(self) -> str:
        tokens = f" tokens={self.thread_tokens}" if self.thread_tokens else ""
        return f"{self.route} W={self.workers}{tokens}"


def audit_routes(run_dir: Path) -> dict[str, str]:
    """scenario → route template, from the folder's audit.json; BaselineError if it is no audit."""
    found = Path(run_dir) / AUDIT_JSON
    if not Path(run_dir).is_dir():
        raise BaselineError(f"--baseline {run_dir}: no such folder")
    if not found.is_file() or not (Path(run_dir) / "results.csv").is_file():
        raise BaselineError(f"--baseline {run_dir}: not an audit folder (no {AUDIT_JSON} and results.csv)")
    try:
        routes = json.loads(found.read_text())["routes"]
        return {r.get("scenario", r["url"]): r["template"] for r in routes}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BaselineError(f"--baseline {run_dir}: {AUDIT_JSON} is unreadable ({exc})") from None


def check_routes(baseline_dir: Path, scenarios: list[str]) -> None:
    """Before anything is launched: the baseline is an audit and shares at least one route."""
    before = audit_routes(baseline_dir)
    if not set(before) & set(scenarios):
        raise BaselineError(f"--baseline {baseline_dir}: no route in common (baseline: "
                            f"{', '.join(sorted(before.values())) or 'none'})")


def _text(value: object) -> str:
    return compare.norm(value)


def _change(row: pd.Series, metric: str) -> Change:
    word = str(row[f"{metric}_verdict"])
    n_a, n_b = int(row["a_repeats"]), int(row["b_repeats"])
    if min(n_a, n_b) < compare.MIN_REPEATS_FOR_TEST:  # compare guesses against a band here: no test
        word = "cannot tell: " + significance.too_few(n_a, n_b)
    return Change(metric, float(row[f"{metric}_a"]), float(row[f"{metric}_b"]), float(row[f"{metric}_ratio"]),
                  word, float(row[f"{metric}_p"]))


def load_audit(path: Path) -> compare.Run:
    """compare's Run of an audit folder, each Locust-saturated cell replaced by its re-run; the load
    processes are how the route was measured, not what it is, so they do not split the join."""
    run = compare.load_run(path)
    rows = drop_superseded(run.df.to_dict("records"))
    df = pd.DataFrame(rows, columns=run.df.columns) if rows else run.df.iloc[0:0]
    return compare.Run(run.path, df.assign(load_processes=1), run.meta)


def _table(baseline_dir: Path, run_dir: Path) -> pd.DataFrame:
    try:
        table, _, _ = compare.compare(load_audit(baseline_dir), load_audit(run_dir))
    except (compare.CompareError, ValueError) as exc:  # ValueError: a results.csv of no known format
        raise BaselineError(f"--baseline {baseline_dir}: {exc}") from None
    return table


def knob_warnings(baseline_dir: Path, run_dir: Path) -> list[str]:
    """A knob set differently in the two audits (--users 4 then 32): the ratios mix it with the code."""
    try:
        a, b = load_audit(baseline_dir), load_audit(run_dir)
    except (compare.CompareError, ValueError):
        return []
    _, differ = compare.knob_differences(a.df, b.df)
    return [f"baseline: warning: the audits differ in {knob}: {va} (baseline) vs {vb}: the figures "
            "mix that change with the code's" for knob, va, vb in differ]


def route_changes(baseline_dir: Path, run_dir: Path,
                  max_regression: float = DEFAULT_MAX_REGRESSION) -> list[RouteChange]:
    """Every route measured in both audits, in this audit's order; BaselineError if none is shared."""
    routes = {**audit_routes(baseline_dir), **audit_routes(run_dir)}
    table = _table(baseline_dir, run_dir)
    out = []
    for _, row in table.iterrows():
        changes = tuple(_change(row, m) for m, _, _ in METRICS)
        bad = tuple(c for c, (_, _, higher) in zip(changes, METRICS, strict=True)
                    if c.regressed(max_regression, higher))
        scenario = _text(row["scenario"])
        out.append(RouteChange(routes.get(scenario, scenario), _text(row["workers"]),
                               _text(row.get("thread_tokens")), int(row["a_repeats"]), int(row["b_repeats"]),
                               changes, bad))
    return out


def _figure(c: Change) -> str:
    label = dict((m, lbl) for m, lbl, _ in METRICS)[c.metric]
    p = f", p = {c.p:.2g}" if not math.isnan(c.p) and not c.word.startswith("cannot") else ""
    return f"{label} {c.before:.4g} → {c.after:.4g} (×{c.ratio:.2f}: {c.word}{p})"


def lines(changes: list[RouteChange], max_regression: float, baseline_dir: Path) -> list[str]:
    """One line per route, FAIL for a regression, then the baseline's own verdict line."""
    out = []
    for rc in changes:
        mark = "FAIL" if rc.regressions else "ok"
        out.append(f"baseline: {mark} {rc.label} ({rc.n_before} vs {rc.n_after} repeats): "
                   + "; ".join(_figure(c) for c in rc.changes))
    bad = [rc for rc in changes if rc.regressions]
    if bad:
        out.append(f"baseline: failed, {len(bad)} of {len(changes)} route(s) significantly slower than "
                   f"{baseline_dir} by more than {max_regression:.0%}")
    else:
        out.append(f"baseline: passed, no route of {len(changes)} significantly slower than {baseline_dir} "
                   f"by more than {max_regression:.0%}")
    return out


def write_csv(changes: list[RouteChange], run_dir: Path) -> Path:
    rows = []
    for rc in changes:
        row: dict[str, object] = {"route": rc.route, "workers": rc.workers, "thread_tokens": rc.thread_tokens,
                                  "repeats_baseline": rc.n_before, "repeats": rc.n_after,
                                  "regressed": bool(rc.regressions)}
        for c in rc.changes:
            row.update({f"{c.metric}_baseline": c.before, c.metric: c.after, f"{c.metric}_ratio": c.ratio,
                        f"{c.metric}_verdict": c.word, f"{c.metric}_p": c.p})
        rows.append(row)
    path = Path(run_dir) / BASELINE_CSV
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
