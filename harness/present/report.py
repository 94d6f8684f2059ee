"""End of a run: the summary a user reads in the terminal, the charts and report.html (from files only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.answer import aggregate, answer, recommend
from harness.data import knobs, prog
from harness.present import plot


def finish(run_dir: Path, plot_charts: bool = True, html: bool = True, x: str | None = None,
           slo_health_ms: float = recommend.DEFAULT_SLO_HEALTH_P99_MS) -> None:
    """Print invalid / failed / noisy cells, draw the charts (x axis `x`, else the knob swept most)
    and write report.html for `run_dir`; an audit folder gets neither the patterns' charts nor their
    answer (html_report.compares_patterns)."""
    from harness.present import html_report

    results = run_dir / "results.csv"
    if not results.exists():
        print(f"no results in {run_dir}")
        return
    df = aggregate.load_results(results)
    summary = aggregate.summarize(df)
    ok = df[df["status"] == "ok"]
    print(f"\n{len(df)} rows: {len(ok)} measured, {len(df) - len(ok)} failed")
    bounds = ok["bound_by"].replace("", "(none)").value_counts()
    if len(bounds):
        print("bound by: " + ", ".join(f"{name} {n}" for name, n in bounds.items()))
    invalid = summary[~summary["valid"] & (summary["repeats"] > 0)]
    if len(invalid):
        print(f"{len(invalid)} cell(s) the harness cannot fully trust (drawn hollow):")
        for _, r in invalid.iterrows():
            print(f"  - {cell_name(r, df)}: {r['invalid_reason']}")
    failed = aggregate.failures(df)
    if len(failed):
        print(f"{len(failed)} failed cell(s):")
        for _, r in failed.iterrows():
            print(f"  - {cell_name(r, df)} repeat={r['repeat']}: {r['error']}")
    noisy = aggregate.noisy_cells(summary)
    if len(noisy):
        print(f"{len(noisy)} cell(s) with rps varying > 5% across repeats (coefficient of variation):")
        for _, r in noisy.iterrows():
            print(f"  - {cell_name(r, df)}: cv {r['rps_cv']:.1%}")
    patterns = html_report.compares_patterns(run_dir)
    if plot_charts and patterns:
        for path in plot.plot_run(run_dir, x=x):
            print(f"chart: {path}")
    # recommend.csv for the report (its 15 per-target lines are condensed into the answer below); the
    # default SLO is stated in the answer's first line.
    if patterns:
        _answer(run_dir, slo_health_ms)
    if html:  # last: it shows the recommend.csv just written
        print(f"report: {html_report.write(run_dir, draw_missing=False)}")
    print(f"results: {results}")


def _answer(run_dir: Path, slo_health_ms: float) -> None:
    groups = recommend.run(run_dir, full=False, say=lambda _line: None, slo_health_ms=slo_health_ms)
    workloads = answer.from_groups(groups)
    slo, fail = recommend.DEFAULT_SLO_P99_MS, recommend.DEFAULT_MAX_FAIL_RATIO
    print(answer.text(workloads, slo, fail, slo_health_ms=slo_health_ms))
    answer.to_frame(workloads, slo, fail, slo_health_ms).to_csv(run_dir / answer.CSV_NAME, index=False)
    name = prog.name()
    print(f"  per-target candidates: {name} recommend {run_dir}; another SLO: {name} answer {run_dir} "
          "--slo-p99 MS --slo-health-p99 MS")


def cell_name(row: pd.Series, df: pd.DataFrame) -> str:
    """`target scenario workers=W users=U` plus every other knob this run sweeps (pool_size=8, rate=100):
    two cells of a pool sweep must not read the same in the lists above."""
    shown = ["workers", "users"]
    shown += [k.name for k in knobs.SWEEP_KNOBS if k.name not in shown and k.name in df.columns
              and df[k.name].nunique(dropna=True) > 1]
    parts = [f"{k}={_plain(row[k])}" for k in shown if k in row.index and pd.notna(row[k])]
    return " ".join([str(row["target"]), str(row["scenario"]), *parts])


def _plain(v: object) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
