"""One self-contained report.html per run folder, built from the folder alone (never re-runs).

Order: the answer per workload, the claims' verdicts, the charts with their reading guide,
the tuning recommendations, the cells the harness does not trust and the failed ones, what limited
each cell, what was run (collapsed), the tidy table.
Images are inlined as base64 and a Content-Security-Policy forbids every fetch, so the file reads
the same offline, attached to a ticket. A section the folder cannot fill says so.

Why one module over 300 lines: the page is one document with one style sheet and one escaping
rule; each section is its own short function, and the audit section and the claims' charts come
from their own modules (audit_section, claim_charts).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from harness.answer import aggregate, claims, evidence
from harness.data import prog, schema
from harness.present import claim_charts
from harness.present.audit_charts import section_routes
from harness.present.audit_section import section_audit
from harness.present.wait_chart import section_waits

REPORT_NAME = "report.html"
SPREAD_WARNING = 1.2  # harness.run.sweep warns above this CPU-speed spread too

# docs/reading-results.md, "Reading a chart", in two lines.
READING_GUIDE = (
    "Throughput: a point near its dashed ceiling means the concurrency pattern is the limit; far "
    "below it, something else is (framework CPU, the HTTP client, the load generator on the same cores).",
    "Latency: solid p50, dotted p99. When /health p99 climbs to the work endpoint's latency, the event "
    "loop is blocked. Hollow markers are cells the harness does not trust, ✕ marks a failed cell.",
)

KEY_MEASURES = ["status", "rps", "p50_ms", "p99_ms", "health_p99_ms", "loop_lag_p99_ms", "efficiency",
                "target_cpu_pct", "locust_cpu_pct", "valid"]
OPTIONAL_MEASURES = ["target_rss_mb", "ctx_switches_per_req"]  # columns newer runs may add

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1500px;
padding:16px 28px;color:#1d1d1f}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:3px;
margin-top:30px}h3{font-size:15px;margin:18px 0 4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d5d5d5;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sub{color:#555}.na{color:#8a5a00;background:#fff7e0;border:1px solid #f0d68a;padding:6px 10px;
border-radius:4px;display:inline-block}
.v{font-weight:600;white-space:nowrap;padding:1px 6px;border-radius:3px}
.v-holds{background:#dff3e0;color:#14532d}.v-does-not-hold{background:#fde2e1;color:#7f1d1d}
.v-holds-only-partly{background:#fff1cc;color:#713f12}.v-no-measurable-difference{background:#e6eefc;
color:#1e3a8a}.v-not-measured{background:#eee;color:#444}
ul.ev{margin:2px 0;padding-left:18px}.cells,.rule{color:#555;font-size:12px}
figure{margin:10px 0 22px}figure img{max-width:100%;border:1px solid #ddd}
img.claim-chart{display:block;max-width:100%;margin-top:6px;border:1px solid #eee}
figcaption{font-size:13px;color:#333;margin-top:4px}
.scroll{overflow-x:auto}tr.bad td{background:#fff4f4}
.grid{display:flex;flex-wrap:wrap;gap:6px 28px;align-items:flex-start}.grid>div{min-width:220px}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(v: object) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def plain(v: object) -> str:
    """A knob's value as a reader writes it: `fake-async, thread-pool`, `–` for none (no Python reprs)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, list | tuple):
        return ", ".join(plain(x) for x in v) if v else "–"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {plain(x)}" for k, x in v.items()) if v else "–"
    return _num(v)


def _na(text: str) -> str:
    return f'<p class="na">{esc(text)}</p>'


def _kv_table(pairs: list[tuple[str, object]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(plain(v))}</td></tr>" for k, v in pairs)
    return f"<table{ident}><tbody>{rows}</tbody></table>"


def _frame_table(df: pd.DataFrame, table_id: str, bad: pd.Series | None = None) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cls = ' class="bad"' if bad is not None and bool(bad.iloc[i]) else ""
        cells = "".join(
            f'<td class="num">{esc(_num(v))}</td>' if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{esc(_num(v))}</td>" for v in r)
        body.append(f"<tr{cls}>{cells}</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


# ---------------------------------------------------------------------------------- the sections


def section_run(meta: dict, run_dir: Path) -> str:
    """What was run, collapsed: the reader comes for the answer; the machine and knobs are the record."""
    return ('<details id="run-details"><summary><b>What was run</b>: machine, versions, knobs</summary>'
            f"{_section_run(meta, run_dir)}</details>")


MISSING = "not recorded in this run folder"


def _section_run(meta: dict, run_dir: Path) -> str:
    if not meta:
        return '<h2 id="run">What was run</h2>' + _na(
            "meta.json is missing or unreadable: the machine, versions and calibration are not recorded.")
    boxes = [("Machine", _machine_box(meta, run_dir)), ("CPU calibration", _calibration_box(meta)),
             ("Upstream capacity", _upstream_box(meta)), ("Database capacity", _database_box(meta)),
             ("Versions", _kv_table(list(meta["versions"].items()), "versions")
              if isinstance(meta.get("versions"), dict) else _na("versions not recorded"))]
    knobs, runs = meta.get("knobs"), meta.get("claims_runs")
    if isinstance(knobs, dict):
        heading = "Knobs (each claim's sweep below overrides them)" if runs else "Knobs"
        boxes.append((heading, _kv_table(list(knobs.items()), "knobs")))
    parts = ['<h2 id="run">What was run</h2><div class="grid">']
    parts += [f"<div><h3>{esc(title)}</h3>{body}</div>" for title, body in boxes]
    parts.append("</div>")
    if isinstance(runs, list) and runs:
        table = pd.DataFrame([{k: plain(v) if isinstance(v, list | dict) or v is None else v
                               for k, v in r.items()}
                              for r in runs if isinstance(r, dict)])
        parts.append(f"<h3>The sweeps <code>{prog.name()} claims</code> ran, per claim</h3>"
                     + _frame_table(table, "claims-runs"))
    return "".join(parts)


def _machine_box(meta: dict, run_dir: Path) -> str:
    machine = [
        ("run id", meta.get("run_id", run_dir.name)), ("preset", meta.get("preset", MISSING)),
        ("command", meta.get("command", MISSING)), ("started", meta.get("started_at", MISSING)),
        ("finished", meta.get("finished_at", MISSING)), ("git commit", meta.get("git_commit", MISSING)),
        ("CPU model", meta.get("cpu_model", MISSING)), ("CPUs", meta.get("cpu_count", MISSING)),
        ("cores available", meta.get("cores_available", MISSING)), ("pinning", meta.get("pinning", MISSING)),
        ("host", meta.get("host", MISSING)),
    ]
    return _kv_table(machine, "machine")


def _calibration_box(meta: dict) -> str:
    if "cpu_units_per_ms" not in meta:
        return _na("no CPU calibration recorded")
    spread = meta.get("cpu_speed_spread")
    cal = [("work rate (units/ms, fastest probe)", meta["cpu_units_per_ms"])]
    for kind, rate in (meta.get("cpu_units_per_ms_by_kind") or {}).items():
        cal.append((f"work rate, {kind} work", rate))
    cal.append(("spread (best ÷ median probe)", spread if spread is not None else MISSING))
    out = _kv_table(cal, "calibration")
    if isinstance(spread, int | float) and spread > SPREAD_WARNING:
        out += _na(f"CPU speed was unsteady: the median probe ran {spread - 1:.0%} slower than the "
                   "best, so CPU-bound cells scatter.")
    return out


def _upstream_box(meta: dict) -> str:
    cap = meta.get("upstream_capacity")
    if not (isinstance(cap, dict) and cap):
        return _na("not measured in this run (no upstream_capacity in meta.json)")
    rows = [(k, v) for k, v in cap.items() if not isinstance(v, dict | list)]
    rows.append(("restarts during the run", meta.get("upstream_restarts", 0)))
    return _kv_table(rows, "upstream")


def _database_box(meta: dict) -> str:
    db = {k: v for k, v in meta.items() if k.startswith("database") or k.startswith("db_")}
    if not db:
        return _na("no database in this run")
    flat: list[tuple[str, object]] = []
    for k, v in db.items():
        if isinstance(v, dict):
            flat += [(f"{k}.{kk}", vv) for kk, vv in v.items() if not isinstance(vv, dict | list)]
        else:
            flat.append((k, v))
    return _kv_table(flat, "database")


def section_verdicts(verdicts: list[evidence.Verdict]) -> str:
    rows = []
    for v in verdicts:
        claim = claims.BY_ID[v.claim]
        cls = "v-" + v.verdict.replace(" ", "-")
        evidence = "".join(f"<li>{esc(e)}</li>" for e in v.evidence)
        cells = "; ".join(dict.fromkeys(v.cells))
        rows.append(
            f'<tr id="claim-{esc(v.claim)}"><td>{esc(v.claim)}</td><td>{esc(claim.statement)}'
            f'<div class="rule">rule: {esc(claim.rule)}</div></td>'
            f'<td><span class="v {cls}">{esc(v.verdict)}</span></td>'
            f"<td>{esc(v.condition)}{f'<ul class=ev>{evidence}</ul>' if evidence else ''}"
            f'{f"<div class=cells>cells: {esc(cells)}</div>" if cells else ""}'
            f"{claim_charts.img_tag(v)}</td></tr>")  # the cells its rule read, thresholds drawn
    return ('<h2 id="verdicts-h">The article\'s claims: verdicts from this run</h2>'
            '<p class="sub">Decided from the cells this run holds; a claim whose cells are missing says '
            "&ldquo;not measured&rdquo;. A difference the noise rule does not show (the permutation test "
            "on the repeats at p &le; 5%, or the 10% margin with one repeat) is &ldquo;no measurable "
            "difference&rdquo;. Each row's chart holds the cells its rule read: thresholds dashed, each "
            "repeat a dot, the test's p over the bar it decides. "
            f"<code>{prog.name()} claims</code> runs every cell the claims need.</p>"
            '<table id="verdicts"><thead><tr><th>#</th><th>claim</th><th>verdict</th>'
            f"<th>why, and the numbers</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def run_preset(run_dir: Path) -> str:
    """The preset meta.json records ("audit" for bench.py audit); "" when unreadable."""
    try:
        return str(json.loads((run_dir / "meta.json").read_text()).get("preset", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def compares_patterns(run_dir: Path) -> bool:
    """False for an audit: it runs the app's routes, not the patterns, so it gets no pattern answer,
    claims, recommendations nor pattern charts (they need cells it did not run)."""
    return run_preset(run_dir) != "audit"


def _png_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def section_charts(run_dir: Path) -> str:
    pngs = sorted((run_dir / "charts").glob("*.png"))
    parts = ['<h2 id="charts">Charts</h2>']
    if not pngs:
        if run_preset(run_dir) == "claims":
            return parts[0] + _na("a claims run draws one evidence chart per claim, in its verdict row "
                                  f"({prog.name()} plot DIR draws the per-scenario grid)")
        return parts[0] + _na(f"no charts in this run folder ({prog.name()} plot DIR draws them)")
    guide = "<br>".join(esc(line) for line in READING_GUIDE)
    for png in pngs:
        parts.append(f'<figure><img alt="{esc(png.stem)} chart" src="{_png_data(png)}">'
                     f"<figcaption><b>{esc(png.stem)}</b><br>{guide}</figcaption></figure>")
    return "".join(parts)


def _recommendations(run_dir: Path, rows: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """recommend.csv when the run folder has one, else harness.answer.recommend's rule applied to the rows
    at its default SLO (nothing is written); (None, why) when neither is possible."""
    from harness.answer import recommend

    path = run_dir / recommend.CSV_NAME
    if path.is_file():
        try:
            return pd.read_csv(path), f"from {recommend.CSV_NAME}"
        except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
            return None, f"not available: {recommend.CSV_NAME} cannot be read ({exc})"
    try:
        slo, fail = recommend.DEFAULT_SLO_P99_MS, recommend.DEFAULT_MAX_FAIL_RATIO
        frame = recommend.to_frame(recommend.recommend(rows, slo, fail), slo, fail)
    except (KeyError, ValueError) as exc:
        return None, f"not available: the rule could not be applied to these results ({exc})"
    return frame, (f"computed from results.csv at the default SLO (this folder has no {recommend.CSV_NAME}; "
                   f"{prog.name()} recommend DIR --slo-p99 MS writes one)")


def section_recommend(run_dir: Path, rows: pd.DataFrame) -> str:
    head = '<h2 id="recommendations">Tuning recommendations</h2>'
    frame, source = _recommendations(run_dir, rows)
    if frame is None:
        return head + _na(source)
    if frame.empty:
        return head + _na("not available: no group of cells to recommend from")
    slo = frame["slo_p99_ms"].dropna()
    fail = frame["max_fail_ratio"].dropna()
    rule = (f"SLO: p99 ≤ {_num(float(slo.iloc[0]))} ms, failures ≤ {float(fail.iloc[0]):.1%}. "
            if len(slo) and len(fail) else "")
    params = [c for c in schema.PARAM_COLUMNS if c in frame.columns and c != "repeat"
              and (frame[c].nunique(dropna=False) > 1 or c in ("target", "scenario"))]
    measures = [c for c in ("rps", "p99_ms", "fail_ratio", "target_rss_mb", "in_flight", "pool_slots",
                            "reason") if c in frame.columns and frame[c].notna().any()]
    picks = []
    for _, group in frame.groupby("group", sort=True):
        chosen = group[group["role"] == "chosen"]
        row = (chosen if len(chosen) else group[group["role"] == "closest"]).head(1)
        if len(row):
            picks.append(row.assign(pick="use this" if len(chosen) else "no configuration meets the SLO; "
                                    "closest"))
    table = pd.concat(picks)[["pick", *params, *measures]] if picks else pd.DataFrame()
    out = [head, f'<p class="sub">{esc(rule)}The cheapest configuration within 5% of the best feasible '
           f"throughput, per group of cells ({esc(source)}).</p>"]
    out.append(_frame_table(table.reset_index(drop=True), "recommend") if len(table)
               else _na("no group had a configuration to name"))
    full = frame[["group", "role", *params, *measures]].reset_index(drop=True)
    out.append("<details><summary>every candidate</summary>" + _frame_table(full, "recommend-all")
               + "</details>")
    return "".join(out)


def _slo_of_run(run_dir: Path) -> tuple[float, float, float, str]:
    """The SLOs recommend.csv was written with (bench.py recommend/answer --slo-p99 --slo-health-p99),
    else the defaults: (p99 ms, failure ratio, /health p99 ms, where they came from)."""
    from harness.answer import recommend

    slo, fail = recommend.DEFAULT_SLO_P99_MS, recommend.DEFAULT_MAX_FAIL_RATIO
    health = recommend.DEFAULT_SLO_HEALTH_P99_MS
    try:
        frame = pd.read_csv(run_dir / recommend.CSV_NAME)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return slo, fail, health, "the default SLO"
    cols = ["slo_p99_ms", "max_fail_ratio"]
    if not len(frame) or not set(cols) <= set(frame.columns) or not frame[cols].notna().all(axis=None):
        return slo, fail, health, "the default SLO"
    if "slo_health_p99_ms" in frame.columns and frame["slo_health_p99_ms"].notna().all():
        health = float(frame["slo_health_p99_ms"].iloc[0])  # older folders lack it: the default then
    first = frame.iloc[0]
    return float(first["slo_p99_ms"]), float(first["max_fail_ratio"]), health, recommend.CSV_NAME


def section_answer(run_dir: Path, rows: pd.DataFrame) -> str:
    """The answer first: per workload, every pattern's pick ranked under the SLO, and the verdict."""
    from harness.answer import answer, recommend

    head = ('<section id="answer"><h2 id="answer-h">The answer: which pattern and which sizes, '
            "per workload</h2>")
    slo, fail, health, source = _slo_of_run(run_dir)
    try:
        workloads = answer.answer(rows, slo, fail, health)
    except (KeyError, ValueError) as exc:
        why = f"not available: the rule could not be applied to these results ({exc})"
        return head + _na(why) + "</section>"
    if not workloads:
        return head + _na("not available: no measured cell") + "</section>"
    out = [head, f'<p class="sub">{esc(recommend.slo_text(slo, fail, health))} (from {esc(source)}). '
           "Each pattern at its recommended configuration: the cheapest within 5% of its best feasible "
           "throughput. "
           f"<code>{prog.name()} answer DIR --slo-p99 MS --slo-health-p99 MS</code> for other SLOs.</p>"]
    named = answer.distinguishing(workloads)
    for i, w in enumerate(workloads):
        cls = "v-holds" if w.decided else "v-holds-only-partly"
        losses = "".join(f"<li>{esc(loss)}</li>" for loss in w.losses)
        body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in answer.rows(w))
        heads = "".join(f"<th>{esc(h)}</th>" for h in answer.table_header(w))
        out.append(f"<h3>{esc(answer.workload_title(w, named))}</h3>"
                   f'<p><span class="v {cls}">{esc(w.verdict)}</span></p>'
                   f"{f'<ul class=ev>{losses}</ul>' if losses else ''}"
                   f'<table id="answer-{i}" class="answer"><thead><tr>{heads}</tr></thead>'
                   f"<tbody>{body}</tbody></table>")
    return "".join(out) + "</section>"


def section_untrusted(df: pd.DataFrame, summary: pd.DataFrame) -> str:
    parts = ['<h2 id="untrusted">Cells the harness does not trust, and failed cells</h2>']
    invalid = summary[~summary["valid"] & (summary["repeats"] > 0)]
    if len(invalid):
        cols = ["target", "scenario", "workers", "users", "invalid_reason"]
        parts.append(f"<h3>{len(invalid)} untrusted cell(s) (drawn hollow)</h3>")
        parts.append(_frame_table(invalid[cols].reset_index(drop=True), "invalid"))
    else:
        parts.append("<p>Every measured cell passed the validity checks.</p>")
    failed = aggregate.failures(df)
    if len(failed):
        parts.append(f"<h3>{len(failed)} failed cell(s)</h3>")
        parts.append(_frame_table(failed, "failed"))
    else:
        parts.append("<p>No cell failed.</p>")
    noisy = aggregate.noisy_cells(summary)
    if len(noisy):
        parts.append(f"<h3>{len(noisy)} cell(s) whose rps varies &gt; 5% across repeats</h3>")
        parts.append(_frame_table(noisy[["target", "scenario", "workers", "users", "rps_cv"]], "noisy"))
    return "".join(parts)


def _diagnosis(r: pd.Series) -> str:
    """'; failed: 404 Not Found 100%; loop stalled at items.py:29 in ...' (docs/diagnosis.md)."""
    out = ""
    for col, label in (("fail_top", "failed"), ("stall_site", "loop stalled at")):
        value = r.get(col)
        if isinstance(value, str) and value:
            out += f"; {label}: {value}" if col == "fail_top" else f"; {label} {value}"
    return out


def section_bounds(df: pd.DataFrame) -> str:
    """What limited each measured cell (judge/bottleneck.py), linked to its flame graph if profiled."""
    head = '<h2 id="bounds">What limited each cell</h2>'
    if "bound_by" not in df.columns or not (df["bound_by"].astype(str) != "").any():
        return head + _na("not available: this run predates bottleneck attribution (bound_by)")
    ok = df[(df["status"] == "ok") & (df["bound_by"].astype(str) != "")]
    body = []
    for _, r in ok.iterrows():
        svg = str(r.get("profile_svg") or "")
        link = f'<a href="{esc(svg)}">flame graph</a>' if svg else ""
        nums = "".join(f'<td class="num">{esc(_num(r[c]))}</td>'
                       for c in ("workers", "users", "repeat", "efficiency"))
        body.append(f"<tr><td>{esc(r['target'])}</td><td>{esc(r['scenario'])}</td>{nums}"
                    f"<td>{esc(r['bound_by'])}</td><td>{esc(r['bound_detail'])}{esc(_diagnosis(r))}</td>"
                    f"<td>{link}</td></tr>")
    cols = "".join(f"<th>{c}</th>" for c in ("target", "scenario", "workers", "users", "repeat",
                                              "efficiency", "bound by", "figures", "profile"))
    return (head + '<p class="sub">The rules are in docs/reading-results.md ("What limited a cell"): '
            "the first that holds "
            "names the bound. Flame graphs are in the run folder (run with --profile).</p>"
            f'<div class="scroll"><table id="bounds-table"><thead><tr>{cols}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def section_results(df: pd.DataFrame) -> str:
    params = [c for c in schema.PARAM_COLUMNS if c in df.columns]
    varying = [c for c in params if df[c].nunique(dropna=False) > 1 or c in ("target", "scenario")]
    fixed = [(c, df[c].iloc[0]) for c in params if c not in varying and len(df)]
    measures = KEY_MEASURES + [c for c in OPTIONAL_MEASURES if c in df.columns]
    table = df[varying + measures].copy()
    table["note"] = [r["error"] or r["invalid_reason"] for _, r in df.iterrows()]
    bad = (df["status"] != "ok") | ~df["valid"].astype(bool)
    same = ", ".join(f"{k}={_num(v)}" for k, v in fixed)
    return ('<h2 id="results-h">Results: one row per cell and repeat</h2>'
            f'<p class="sub">Same in every row: {esc(same) or "nothing"}. All columns are in results.csv '
            "(see docs/results-format.md).</p>" + _frame_table(table.reset_index(drop=True), "results", bad))


# ------------------------------------------------------------------------------------ the page


def render(run_dir: Path, verdicts: list[evidence.Verdict] | None = None) -> str:
    """The report's HTML for `run_dir` (results.csv must exist; everything else is optional)."""
    run = claims.load_run(run_dir)
    if verdicts is None:
        verdicts = claims.decide(run)
    title = f"FastAPI concurrency bench: {run.meta.get('run_id', run_dir.name)}"
    patterns = compares_patterns(run_dir)
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{len(run.rows)} rows, {len(run.summary)} cells. Generated from the run folder '
        "alone: results.csv, meta.json and charts/.</p>",
        section_audit(run_dir),  # bench.py audit's table (empty for other runs)
        section_waits(run_dir, run.rows),  # one stacked bar per route: where its requests' time went
        *([] if patterns else [section_routes(run_dir)]),  # the audit's chart and stalls per route
        *([section_answer(run_dir, run.rows), section_verdicts(verdicts), section_charts(run_dir),
           section_recommend(run_dir, run.rows)] if patterns else []),
        section_untrusted(run.rows, run.summary),
        section_bounds(run.rows),
        section_run(run.meta, run_dir),
        section_results(run.rows),
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def write(run_dir: Path, verdicts: list[evidence.Verdict] | None = None, draw_missing: bool = True) -> Path:
    """Write run_dir/report.html (and claims.csv); draws the charts first if the folder has none."""
    run_dir = Path(run_dir)
    # an audit draws its own per-route charts (audit_charts), not the patterns' grid
    if draw_missing and compares_patterns(run_dir) and run_preset(run_dir) != "claims" \
            and not any((run_dir / "charts").glob("*.png")):
        from harness.present import plot

        plot.plot_run(run_dir)
    if verdicts is None:
        verdicts = claims.decide_run(run_dir)
    claims.write_csv(verdicts, run_dir / "claims.csv")
    out = run_dir / REPORT_NAME
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render(run_dir, verdicts), encoding="utf-8")
    tmp.replace(out)
    return out
