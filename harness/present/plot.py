"""Charts for one run, drawn from results.csv alone (plotting never runs a benchmark).

One figure per scenario. The x axis is the swept knob (`bench.py plot DIR --x pool_size`; by
default the numeric knob with the most values within a target), one line per target. Panels:
throughput with the analytic ceiling, request latency p50/p99, /health probe p99, and the target's
peak memory when it varies. Other swept knobs become rows of small multiples (at most MAX_ROWS),
each row titled with its values; beyond that they become extra lines named in the legend.

The work is split in three steps, each small: `chart_texts` decides what the chart says (axis,
rows, panels, titles, legend, footnotes: tested on its own), `_draw_row` draws the series of one
row, `_decorate` adds the legend, key and footnotes.

Why one module over 300 lines: those three steps share the chart's vocabulary (series styles,
censored-bound markers, dropped rows and their footnotes), which would otherwise be passed between
modules piece by piece; no function in it is over 60 lines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

from harness.answer.aggregate import CELL_COLUMNS, load_results, summarize  # noqa: E402
from harness.data import knobs  # noqa: E402
from harness.data.scenarios import SCENARIOS  # noqa: E402
from targets import TARGETS  # noqa: E402

# Fixed colours for the registered targets (registry order) so a target looks the same in every
# chart of every run.
KNOWN_TARGETS = list(TARGETS)
_PALETTE: list[Any] = list(matplotlib.color_sequences["tab10"])  # RGB tuples
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]

# Knobs that can be an x axis: the numeric sweepable ones, in the table's order (ties → first).
X_KNOBS = [k.col for k in knobs.SWEEP_KNOBS if k.type is int]
X_LABELS = {
    "workers": "uvicorn worker processes",
    "users": "concurrent users",
    "pool_size": "pool size (POOL_SIZE: threads or processes per worker)",
    "io_ms": "upstream wait per call (ms)",
    "cpu_ms": "CPU work per request (ms)",
    "fanout": "upstream calls per /io request",
    "http_connections": "HTTP client connections per worker",
    "db_pool": "database connections per worker (DB_POOL)",
    "db_queries": "queries per /db request",
    "db_ms": "pg_sleep per query (ms)",
}

DODGE = 0.03  # sideways offset between lines, in octaves (log x) or x-range fractions (linear)
LOG_SPAN = 20.0  # a panel switches to a log y-scale when its positive values span more than this
MAX_FOOTNOTES = 14
LOW_EFFICIENCY = 0.8  # cells below this share of their ceiling get a footnote saying what bound them
MAX_ROWS = 4  # small multiples for other swept knobs; more combinations become extra lines
WRAP = 170

CPU_KIND_TEXT = {
    "python": "Python CPU",
    "native": "native (GIL-releasing hashlib) CPU",
}

NOTE = (
    "Load generator and target share this machine's CPU cores, "
    "so absolute numbers understate a dedicated server."
)

PANELS = {
    "rps": "Throughput (successful requests/s)\nhigher is better; dashed = analytic ceiling",
    "lat": "Request latency\nsolid = median (p50), dotted = p99; lower is better",
    "health": "/health probe latency, p99 of the worst worker (▲ = max: too few samples)\n"
              "high = event loop stalled for a cheap endpoint",
    "mem": "Target memory: peak RSS of all its processes\nworkers and pool children together",
}
Y_LABELS = {"rps": "successful requests per second", "lat": "latency (ms)",
            "health": "/health p99 latency (ms)", "mem": "peak RSS (MB)"}
KEY = ["analytic ceiling (throughput)", "p99 (latency panel)", "hollow = invalid cell", "x = failed cell"]


# --------------------------------------------------------------------------------------- helpers


def target_colors(targets: Iterable[str]) -> dict[str, tuple]:
    """Colour per target: fixed for known targets, then unknown ones in sorted order."""
    colors: dict[str, tuple] = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(KNOWN_TARGETS)}
    extra = sorted({str(t) for t in targets} - set(colors))
    for i, t in enumerate(extra, start=len(KNOWN_TARGETS)):
        colors[t] = _PALETTE[i % len(_PALETTE)]
    return colors


def _target_rank(target: str) -> int:
    """Known targets in their fixed order (anti-pattern first), unknown ones after."""
    return KNOWN_TARGETS.index(target) if target in KNOWN_TARGETS else len(KNOWN_TARGETS)


def _fmt_num(v: object) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    if np.isnan(f):
        return "?"
    return f"{f:g}"


def _uniform(df: pd.DataFrame, col: str) -> str | None:
    """The single value of `col` across df as text, None if it varies ('?' if missing)."""
    vals = df[col].drop_duplicates()
    if len(vals) != 1:
        return None
    v = vals.iloc[0]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "?"
    return _fmt_num(v) if not isinstance(v, str) else v


def _knob(df: pd.DataFrame, col: str, x: str = "", rows: tuple[str, ...] = ()) -> str:
    if col == x:
        return "(x axis)"
    if col in rows:
        return "(one row each)"
    v = _uniform(df, col)
    return "(varies, see legend)" if v is None else v


def _calls(fanout: str) -> str:
    if fanout.startswith("("):
        return f"{fanout} upstream calls"
    return "1 upstream call" if fanout == "1" else f"{fanout} upstream calls"


def _varies_within_target(df: pd.DataFrame, col: str) -> bool:
    """A knob is swept if it takes several values for one target (per-target pool defaults are not)."""
    return bool(len(df)) and df.groupby("target")[col].nunique(dropna=True).max() > 1


def choose_x(rows: pd.DataFrame, requested: str | None = None) -> str:
    """The x axis: `requested`, else the numeric knob with the most values within a target."""
    if requested is not None:
        if requested not in X_KNOBS:
            raise ValueError(f"--x {requested!r} cannot be an x axis; choose from {', '.join(X_KNOBS)}")
        return requested
    counts = {c: rows.groupby("target")[c].nunique(dropna=True).max() if len(rows) else 0 for c in X_KNOBS}
    best = max(counts.values(), default=0)
    return next(c for c in X_KNOBS if counts[c] == best) if best > 1 else "workers"


def scenario_title(scenario: str, rows: pd.DataFrame, x: str = "") -> str:
    """Plain-language headline built from the knob columns, e.g. '... 3 upstream calls × 50 ms each'."""
    io_ms, fanout, cpu_ms = _knob(rows, "io_ms", x), _knob(rows, "fanout", x), _knob(rows, "cpu_ms", x)
    users = _knob(rows, "users", x)
    kind = _uniform(rows, "cpu_kind")
    cpu_text = CPU_KIND_TEXT.get(kind or "", f"{kind} CPU" if kind and kind != "?" else "CPU")
    users_text = f"{users} concurrent users" if not users.startswith("(") else f"concurrent users {users}"
    record = SCENARIOS.get(scenario)
    head = record.title if record else f"Scenario '{scenario}'"
    calls = None if record is None else record.upstream_calls
    if record is None:
        body = f"upstream {fanout} × {io_ms} ms, CPU {cpu_ms} ms ({cpu_text})"
    elif scenario == "db":
        pool = _knob(rows, "db_pool", x) if rows["db_pool"].notna().any() else "default"
        body = (f"{_knob(rows, 'db_queries', x)} × pg_sleep({_knob(rows, 'db_ms', x)} ms) in one "
                f"transaction, pool {pool} per worker")
    elif calls and record.cpu:
        count = fanout if calls == "fanout" else str(calls)
        each = "" if count == "1" else " each"
        body = f"{_calls(count)} of {io_ms} ms{each} then {cpu_ms} ms of {cpu_text}"
    elif calls:
        body = f"{_calls(fanout if calls == 'fanout' else str(calls))} × {io_ms} ms each"
    elif record.cpu:
        body = f"{cpu_ms} ms of {cpu_text} per request"
    else:
        body = "no modelled work (framework overhead)"
    return f"{head} ({record.path if record else '/' + scenario}): {body}, {users_text}"


def scenario_subtitle(rows: pd.DataFrame, summary: pd.DataFrame, x: str = "",
                      row_cols: tuple[str, ...] = ()) -> str:
    parts = [f"rows: one per {' × '.join(row_cols)}"] if row_cols else []
    parts.append(f"event loop: {_knob(rows, 'loop', x, row_cols)}")
    pool = _uniform(rows, "pool_size")
    if x != "pool_size" and pool != "?":  # '?': no target drawn has a thread/process pool
        parts.append("pool size: each target's own (legend)" if pool is None else f"pool size: {pool}")
    parts.append(f"async client: {_knob(rows, 'http_client', x, row_cols)}, "
                 f"{_knob(rows, 'http_connections', x, row_cols)} connections per worker")
    if x != "workers":
        parts.append(f"workers: {_knob(rows, 'workers', x, row_cols)}")
    reps = summary.loc[summary["repeats"] > 0, "repeats"]
    if len(reps):
        n = f"{reps.min()}" if reps.min() == reps.max() else f"{reps.min()}–{reps.max()}"
        kinds = set(summary.loc[summary["repeats"] > 0, "interval"])
        if kinds == {"range"}:
            bars = "bars = min–max across repeats"
        elif "range" in kinds:
            bars = "bars = 95% interval of the median (min–max where too few repeats)"
        else:
            bars = "bars = 95% order-statistic interval of the median"
        parts.append(f"points = median of {n} repeats, {bars}")
    return "   ·   ".join(parts)


def _cells_label(rows: pd.DataFrame, x: str, variant_cols: list[str]) -> str:
    """'thread-pool @ pool_size 2, 4 (loop=asyncio)' for cells of one line that share a footnote."""
    first = rows.iloc[0]
    xs = [_fmt_num(v) for v in sorted(rows[x].dropna())]
    if x == "workers":
        where = f"{', '.join(xs)} {'worker' if xs == ['1'] else 'workers'}"
    else:
        where = f"{x} {', '.join(xs) or '—'}"
    extra = ", ".join(f"{c}={_fmt_num(first[c])}" for c in variant_cols)
    return f"{first['target']} @ {where}" + (f" ({extra})" if extra else "")


def _health_note(summary: pd.DataFrame, x: str, variant_cols: list[str]) -> list[str]:
    """Which /health points rest on too few samples for a p99, with the count they had."""
    thin = summary[(summary["repeats"] > 0) & ~np.isfinite(summary["health_p99_ms"].astype("float64"))
                   & np.isfinite(summary["health_max_ms"].astype("float64"))]
    if thin.empty:
        return []
    cells = "; ".join(
        f"{_cells_label(rows, x, variant_cols)} n={_fmt_num(rows['health_min_samples'].min())}"
        for _, rows in thin.groupby(["target", *variant_cols], dropna=False, sort=False))
    return [f"▲ /health max shown where a worker's probe got < 100 samples (a p99 needs 100): "
            f"{cells}"]


def _footnotes(summary: pd.DataFrame, x: str, variant_cols: list[str]) -> list[str]:
    """Footnote lines: invalid cells with their reason, then failed cells with their error.

    Cells of the same line (target + variant) with the same reason share one note listing their x.
    """
    notes: list[str] = []
    bad = summary[(summary["repeats"] > 0) & ~summary["valid"].astype(bool)].copy()
    bad["_why"] = bad["invalid_reason"].replace("", "no reason recorded")
    for _, rows in bad.groupby(["target", *variant_cols, "_why"], dropna=False, sort=False):
        notes.append(f"○ invalid: {_cells_label(rows, x, variant_cols)}: {rows['_why'].iloc[0]}")
    failed = summary[summary["failed_repeats"] > 0].copy()
    failed["_why"] = [
        f"{f}/{f + n} repeats failed: "
        + textwrap.shorten(e or "no error text", width=110, placeholder=" …")
        for f, n, e in zip(failed["failed_repeats"], failed["repeats"], failed["error"].astype(str),
                           strict=True)
    ]
    for _, rows in failed.groupby(["target", *variant_cols, "_why"], dropna=False, sort=False):
        notes.append(f"✕ failed: {_cells_label(rows, x, variant_cols)}: {rows['_why'].iloc[0]}")
    # What held back the cells well below their ceiling (harness/judge/bottleneck.py).
    if "bound_by" in summary:
        low = summary[(summary["repeats"] > 0) & (summary["efficiency"] < LOW_EFFICIENCY)
                      & (summary["bound_by"] != "")]
        for _, rows in low.groupby(["target", *variant_cols, "bound_by"], dropna=False, sort=False):
            effs = ", ".join(f"{e:.0%}" for e in rows["efficiency"])
            notes.append(f"▽ below {LOW_EFFICIENCY:.0%} of ceiling ({effs}): "
                         f"{_cells_label(rows, x, variant_cols)}: bound by {rows['bound_by'].iloc[0]}")
    if len(notes) > MAX_FOOTNOTES:
        notes = notes[:MAX_FOOTNOTES - 1] + [f"… and {len(notes) - MAX_FOOTNOTES + 1} more (see summary.csv)"]
    notes += _health_note(summary, x, variant_cols)
    notes += _p99_bound_note(summary, x, variant_cols)
    lines: list[str] = []
    for n in notes:
        lines += textwrap.wrap(n, WRAP, subsequent_indent="      ") or [""]
    return lines


# ------------------------------------------------------------------------------- what it says


@dataclass
class ChartTexts:
    """Everything a scenario's chart says, decided before anything is drawn."""

    x: str                                # the x-axis column
    x_label: str
    panels: list[str]                     # keys of PANELS, left to right
    row_cols: list[str]                   # swept knobs shown as rows of small multiples
    rows: list[tuple]                     # their value combinations, one per row ([()] for one row)
    row_titles: list[str]
    line_cols: list[str]                  # swept knobs that make extra lines (beyond MAX_ROWS rows)
    title: str
    subtitle: str
    legend: list[str]                     # one label per line (target + line knobs)
    footnotes: list[str]
    lines: list[tuple] = field(default_factory=list)  # (target, *line_cols values) per legend label


def _line_label(rows: pd.DataFrame, key: tuple, line_cols: list[str], x: str) -> str:
    target = str(key[0])
    label = target + "".join(f", {c}={_fmt_num(v)}" for c, v in zip(line_cols, key[1:], strict=True))
    if x == "pool_size" and rows["pool_size"].isna().all():
        return label + " (no pool: flat line)"
    pools = rows["pool_size"].dropna().unique()
    if x != "pool_size" and "pool_size" not in line_cols and len(pools) == 1:
        label += f" (pool {_fmt_num(pools[0])})"
    return label


def _natural(values: tuple) -> list[tuple]:
    """Sort key: numbers by value (2 before 16), then text, then missing values."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append((2, 0.0, ""))
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out.append((0, float(v), ""))
        else:
            out.append((1, 0.0, str(v)))
    return out


def _group_key(key: object) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def chart_texts(rows: pd.DataFrame, summary: pd.DataFrame, x: str | None = None) -> ChartTexts:
    """Decide the chart of one scenario (rows: its results; summary: its cells)."""
    scenario = str(rows["scenario"].iloc[0]) if len(rows) else "?"
    x = choose_x(rows, x)
    swept = [c for c in CELL_COLUMNS
             if c not in ("target", "scenario", x) and _varies_within_target(summary, c)]
    combos = summary[swept].drop_duplicates() if swept else pd.DataFrame()
    if swept and len(combos) <= MAX_ROWS:
        row_cols, line_cols = swept, []
        row_keys = sorted((tuple(r) for r in combos.itertuples(index=False)), key=_natural)
    else:
        row_cols, line_cols, row_keys = [], swept, [()]
    row_keys, dropped = _rows_worth_drawing(summary, x, row_cols, line_cols, row_keys)
    row_titles = [", ".join(f"{c}={_fmt_num(v)}" for c, v in zip(row_cols, key, strict=True))
                  for key in row_keys]
    panels = ["rps", "lat", "health"]
    mem = pd.to_numeric(rows.get("target_rss_mb", pd.Series(dtype="float64")), errors="coerce").dropna()
    if mem.nunique() > 1:
        panels.append("mem")
    groups = sorted(summary.groupby(["target", *line_cols], dropna=False, sort=True),
                    key=lambda kv: (_target_rank(str(_group_key(kv[0])[0])), _natural(_group_key(kv[0]))))
    lines = [_group_key(k) for k, _ in groups]
    legend = [_line_label(g, _group_key(k), line_cols, x) for k, g in groups]
    return ChartTexts(
        x=x, x_label=X_LABELS.get(x, x), panels=panels, row_cols=row_cols, rows=row_keys,
        row_titles=row_titles, line_cols=line_cols, title=scenario_title(scenario, rows, x),
        subtitle=scenario_subtitle(rows, summary, x, tuple(row_cols)), legend=legend,
        footnotes=_footnotes(summary, x, [*row_cols, *line_cols]) + dropped, lines=lines)


def _measured_points(cells: pd.DataFrame, x: str, line_cols: list[str]) -> int:
    """The most measured points (x known, rps measured) any one line of `cells` has."""
    ok = cells[(cells["repeats"] > 0) & cells[x].notna() & cells["rps"].notna()]
    if ok.empty:
        return 0
    return int(ok.groupby(["target", *line_cols], dropna=False).size().max())


def _rows_worth_drawing(summary: pd.DataFrame, x: str, row_cols: list[str], line_cols: list[str],
                        row_keys: list[tuple]) -> tuple[list[tuple], list[str]]:
    """Small-multiples rows whose lines are only ceilings or single points are dropped:
    keep rows with a line of ≥ 2 measured points, else rows with any measured point, else all (a run
    where everything failed still shows its x marks). Returns the rows and a footnote naming the rest."""
    if not row_cols:
        return row_keys, []
    counts = []
    for key in row_keys:
        cells = summary
        for col, value in zip(row_cols, key, strict=True):
            cells = cells[cells[col].isna()] if pd.isna(value) else cells[cells[col] == value]
        counts.append(_measured_points(cells, x, line_cols))
    for least in (2, 1):
        kept = [k for k, n in zip(row_keys, counts, strict=True) if n >= least]
        if kept:
            break
    else:
        return row_keys, []
    gone = [", ".join(f"{c}={_fmt_num(v)}" for c, v in zip(row_cols, k, strict=True))
            for k in row_keys if k not in kept]
    note = [f"not drawn (only ceilings or single points; their cells are in the report's tables): "
            f"{'; '.join(gone)}"] if gone else []
    return kept, note


# ------------------------------------------------------------------------------------ drawing


def _positive(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype="float64")
    return a[np.isfinite(a) & (a > 0)]


def _apply_yscale(ax: plt.Axes, values: Iterable[float], zero_based: bool) -> None:
    pos = _positive(values)
    if len(pos) and pos.max() / pos.min() > LOG_SPAN:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7.5, labelcolor="0.35")
        ax.set_ylabel(f"{ax.get_ylabel()}  [log scale]")
    elif len(pos) and zero_based:
        ax.set_ylim(bottom=0, top=pos.max() * 1.12)
    elif not len(pos):
        ax.set_ylim(0, 1)


@dataclass
class _XAxis:
    values: list[float]
    log: bool

    def span(self) -> tuple[float, float]:
        lo, hi = min(self.values), max(self.values)
        if self.log:
            return lo / 1.4, hi * 1.4
        pad = (hi - lo) * 0.08 or max(abs(lo) * 0.2, 1.0)
        return lo - pad, hi + pad

    def dodge(self, x: np.ndarray, i: int, n: int) -> np.ndarray:
        shift = DODGE * (i - (n - 1) / 2)
        if self.log:
            return x * 2 ** shift
        lo, hi = self.span()
        return x + shift * (hi - lo) / 3


def _x_axis(summary: pd.DataFrame, x: str) -> _XAxis:
    values = sorted({float(v) for v in summary[x].dropna()})
    if not values:
        return _XAxis([1.0], log=False)
    positive = values[0] > 0
    return _XAxis(values, log=positive and values[-1] / values[0] >= 4)


def _draw_series(ax: plt.Axes, s: pd.DataFrame, col: str, color: tuple, marker: str, linestyle: str = "-",
                 msize: float = 6) -> list[float]:
    """Line through the non-NaN points of s[col] at s['_x']; filled markers for valid cells, hollow
    for invalid."""
    pts = s[np.isfinite(s[col].astype("float64")) & np.isfinite(s["_x"])]
    if pts.empty:
        return []
    x = pts["_x"].to_numpy(dtype="float64")
    y = pts[col].to_numpy(dtype="float64")
    valid = pts["valid"].to_numpy(dtype=bool)
    ax.plot(x, y, linestyle=linestyle, color=color, linewidth=1.6, zorder=2)
    if valid.any():
        ax.plot(x[valid], y[valid], linestyle="none", marker=marker, color=color, markersize=msize, zorder=3)
    if (~valid).any():
        ax.plot(x[~valid], y[~valid], linestyle="none", marker=marker, markerfacecolor="none",
                markeredgecolor=color, markeredgewidth=1.5, markersize=msize + 1, zorder=4)
    return list(y)


def _draw_flat(ax: plt.Axes, s: pd.DataFrame, col: str, color: tuple, axis: _XAxis,
               linestyle: object = "-.") -> list[float]:
    """A cell without an x value (a pool-less target on a pool-size axis): a flat reference line."""
    y = s[col].astype("float64").dropna()
    if y.empty:
        return []
    lo, hi = min(axis.values), max(axis.values)
    ax.plot([lo, hi], [float(y.iloc[0])] * 2, linestyle=linestyle, color=color, linewidth=1.3, alpha=0.9,
            zorder=1)
    return [float(y.iloc[0])]


def _draw_throughput(ax: plt.Axes, s: pd.DataFrame, color: tuple, marker: str) -> list[float]:
    seen = _draw_series(ax, s, "rps", color, marker)
    pts = s[np.isfinite(s["rps"].astype("float64")) & np.isfinite(s["_x"])]
    if not pts.empty:
        y = pts["rps"].to_numpy(dtype="float64")
        lo = np.nan_to_num(pts["rps_lo"].to_numpy(dtype="float64"), nan=0.0)
        hi = np.nan_to_num(pts["rps_hi"].to_numpy(dtype="float64"), nan=0.0)
        lo_err = np.where(np.isfinite(pts["rps_lo"]), np.clip(y - lo, 0, None), 0)
        hi_err = np.where(np.isfinite(pts["rps_hi"]), np.clip(hi - y, 0, None), 0)
        ax.errorbar(pts["_x"].to_numpy(dtype="float64"), y, yerr=[lo_err, hi_err], fmt="none",
                    ecolor=color, elinewidth=1.1, capsize=3, zorder=2)
        seen += list(y - lo_err) + list(y + hi_err)
    ceil = s[np.isfinite(s["ceiling_rps"].astype("float64")) & (s["ceiling_rps"] > 0) & np.isfinite(s["_x"])]
    if not ceil.empty:
        cx = ceil["_x"].to_numpy(dtype="float64")
        cy = ceil["ceiling_rps"].to_numpy(dtype="float64")
        if len(cx) == 1:  # a lone point: draw a short horizontal dash so it is visible
            cx = np.array([cx[0] / 1.12, cx[0] * 1.12]) if cx[0] > 0 else np.array([cx[0] - 0.5, cx[0] + 0.5])
            cy = np.repeat(cy, 2)
        ax.plot(cx, cy, linestyle=(0, (5, 3)), color=color, linewidth=1.3, alpha=0.8, zorder=1)
        seen += list(cy)
    return seen


def _mark_failed(ax: plt.Axes, s: pd.DataFrame, color: tuple) -> None:
    failed = s[(s["failed_repeats"] > 0) & np.isfinite(s["_x"])]
    if failed.empty:
        return
    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(failed["_x"].to_numpy(dtype="float64"), np.full(len(failed), 0.035), linestyle="none",
            marker="x", color=color, markersize=9, markeredgewidth=2.2, transform=trans, clip_on=False,
            zorder=4)


def _draw_health_max(ax: plt.Axes, s: pd.DataFrame, color: tuple) -> list[float]:
    """Where a worker's probe got too few samples for a p99, its max instead (▲, never joined)."""
    pts = s[~np.isfinite(s["health_p99_ms"].astype("float64"))
            & np.isfinite(s["health_max_ms"].astype("float64")) & np.isfinite(s["_x"])]
    if pts.empty:
        return []
    ax.plot(pts["_x"].to_numpy(dtype="float64"), pts["health_max_ms"].to_numpy(dtype="float64"),
            linestyle="none", marker="^", color=color, markersize=7, zorder=3)
    return list(pts["health_max_ms"].astype("float64"))


def _draw_p99_bound(ax: plt.Axes, s: pd.DataFrame, color: tuple) -> list[float]:
    """Where failures reached the p99 (left empty), the bound it is known to exceed: ▲, never joined."""
    if "p99_lower_ms" not in s:
        return []
    pts = s[np.isfinite(s["p99_lower_ms"].astype("float64")) & np.isfinite(s["_x"])]
    if pts.empty:
        return []
    ax.plot(pts["_x"].to_numpy(dtype="float64"), pts["p99_lower_ms"].to_numpy(dtype="float64"),
            linestyle="none", marker="^", color=color, markersize=7, zorder=3)
    return list(pts["p99_lower_ms"].astype("float64"))


def _p99_bound_note(summary: pd.DataFrame, x: str, variant_cols: list[str]) -> list[str]:
    if "p99_lower_ms" not in summary:
        return []
    censored = summary[np.isfinite(summary["p99_lower_ms"].astype("float64"))]
    if censored.empty:
        return []
    cells = "; ".join(f"{_cells_label(rows, x, variant_cols)} p99 > {_fmt_num(rows['p99_lower_ms'].min())} ms"
                      for _, rows in censored.groupby(["target", *variant_cols], dropna=False, sort=False))
    return [f"▲ latency: failures reach the p99, so it is only known to exceed the bound drawn "
            f"(the timeout, or the largest success): {cells}"]


def _draw_row(axes: dict[str, plt.Axes], cells: pd.DataFrame, texts: ChartTexts, colors: dict[str, tuple],
              axis: _XAxis, seen: dict[str, list[float]]) -> None:
    """One row of panels: every line (target + line knobs) of the cells of this row."""
    for i, key in enumerate(texts.lines):
        mask = np.ones(len(cells), dtype=bool)
        for col, value in zip(["target", *texts.line_cols], key, strict=True):
            mask &= (cells[col].isna() if pd.isna(value) else cells[col] == value).to_numpy()
        s = cells[mask].sort_values(texts.x).copy()
        if s.empty:
            continue
        target = str(key[0])
        color = colors.get(target, (0.3, 0.3, 0.3))
        marker = _MARKERS[(i if texts.line_cols else _target_rank(target) if target in KNOWN_TARGETS else i)
                          % len(_MARKERS)]
        s["_x"] = axis.dodge(s[texts.x].astype("float64").to_numpy(), i, len(texts.lines))
        if not np.isfinite(s["_x"]).any():  # no x value at all: a flat reference line
            for panel, col in (("rps", "rps"), ("lat", "p50_ms"), ("health", "health_p99_ms"),
                               ("mem", "target_rss_mb")):
                if panel in axes and col in s:
                    seen[panel] += _draw_flat(axes[panel], s, col, color, axis)
            continue
        seen["rps"] += _draw_throughput(axes["rps"], s, color, marker)
        _mark_failed(axes["rps"], s, color)
        seen["lat"] += _draw_series(axes["lat"], s, "p50_ms", color, marker, "-")
        seen["lat"] += _draw_series(axes["lat"], s, "p99_ms", color, marker, ":", msize=4.5)
        seen["lat"] += _draw_p99_bound(axes["lat"], s, color)
        seen["health"] += _draw_series(axes["health"], s, "health_p99_ms", color, marker)
        seen["health"] += _draw_health_max(axes["health"], s, color)
        if "mem" in axes:
            seen["mem"] += _draw_series(axes["mem"], s, "target_rss_mb", color, marker)


def _format_axes(ax: plt.Axes, axis: _XAxis, texts: ChartTexts, all_failed: bool) -> None:
    if axis.log:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(texts.x_label)
    ax.tick_params(axis="x", labelbottom=True)  # every row of small multiples keeps its tick labels
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xticks(axis.values)
    ax.set_xticklabels([_fmt_num(v) for v in axis.values])
    ax.set_xlim(*axis.span())
    ax.xaxis.set_minor_locator(NullLocator())
    if all_failed:
        ax.text(0.5, 0.5, "every run in this scenario failed\n(see footnote)", transform=ax.transAxes,
                ha="center", va="center", fontsize=11, color="firebrick", zorder=10,
                bbox={"facecolor": "white", "edgecolor": "firebrick", "boxstyle": "round,pad=0.4"})


def _key_handles() -> list[Line2D]:
    grey = "0.35"
    return [
        Line2D([], [], color=grey, linestyle=(0, (5, 3)), label=KEY[0]),
        Line2D([], [], color=grey, linestyle=":", marker="o", markersize=4.5, label=KEY[1]),
        Line2D([], [], color=grey, linestyle="none", marker="o", markerfacecolor="none",
               markeredgewidth=1.5, label=KEY[2]),
        Line2D([], [], color=grey, linestyle="none", marker="x", markeredgewidth=2, label=KEY[3]),
    ]


def _decorate(fig: plt.Figure, texts: ChartTexts, colors: dict[str, tuple], height: float,
              bottom_h: float, foot_h: float, note_h: float) -> None:
    """Title, subtitle, the per-target legend, the style key, footnotes and the machine note."""
    fig.suptitle(texts.title, fontsize=13.5, fontweight="bold", y=1 - 0.12 / height, va="top")
    fig.text(0.5, 1 - 0.47 / height, texts.subtitle, ha="center", va="top", fontsize=9.5, color="0.25")
    handles = []
    for i, (key, label) in enumerate(zip(texts.lines, texts.legend, strict=True)):
        target = str(key[0])
        marker = _MARKERS[(i if texts.line_cols else _target_rank(target) if target in KNOWN_TARGETS else i)
                          % len(_MARKERS)]
        flat = label.endswith("(no pool: flat line)")
        handles.append(Line2D([], [], color=colors.get(target, (0.3, 0.3, 0.3)), linewidth=1.6,
                              marker=None if flat else marker, linestyle="-." if flat else "-", label=label))
    cols = min(max(len(handles), 1), 6)
    legend_rows = int(np.ceil(len(handles) / cols)) + 1
    y_legend = (bottom_h - 0.55) / height
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, y_legend), ncol=cols,
                   fontsize=9.5, frameon=False, handlelength=2.6, columnspacing=2.2)
    y_key = y_legend - 0.3 * (legend_rows - 1) / height
    fig.legend(handles=_key_handles(), loc="upper center", bbox_to_anchor=(0.5, y_key), ncol=len(KEY),
               fontsize=8.5, frameon=False, handlelength=2.6, columnspacing=2.2, labelcolor="0.3")
    if texts.footnotes:
        fig.text(0.055, (foot_h + note_h) / height, "\n".join(texts.footnotes), ha="left", va="top",
                 fontsize=8.3, family="DejaVu Sans", linespacing=1.35, color="0.15")
    fig.text(0.055, 0.1 / height, NOTE, ha="left", va="bottom", fontsize=8.5, style="italic", color="0.35")


def plot_scenario(scenario: str, rows: pd.DataFrame, summary: pd.DataFrame, colors: dict[str, tuple],
                  out: Path, x: str | None = None) -> Path:
    """Draw one scenario's figure to `out` (rows: its results, summary: its cells)."""
    texts = chart_texts(rows, summary, x)
    axis = _x_axis(summary, texts.x)
    n_rows, n_panels = len(texts.rows), len(texts.panels)
    legend_rows = int(np.ceil(len(texts.legend) / min(max(len(texts.legend), 1), 6))) + 1
    top_h, panel_h = 1.25, 4.1
    note_h, foot_h = 0.35, 0.2 * len(texts.footnotes) + (0.15 if texts.footnotes else 0.0)
    bottom_h = 0.55 + 0.3 * legend_rows + 0.2 + foot_h + note_h
    height = top_h + n_rows * panel_h + bottom_h
    width = max(5.4 * n_panels, 17.0)
    fig, grid = plt.subplots(n_rows, n_panels, figsize=(width, height), sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.055, right=0.985, wspace=0.24, hspace=0.42, top=1 - top_h / height,
                        bottom=bottom_h / height)
    all_failed = bool((summary["repeats"] == 0).all())
    for r, key in enumerate(texts.rows):
        axes = dict(zip(texts.panels, grid[r], strict=True))
        cells = summary
        for col, value in zip(texts.row_cols, key, strict=True):
            cells = cells[cells[col].isna()] if pd.isna(value) else cells[cells[col] == value]
        seen: dict[str, list[float]] = {p: [] for p in texts.panels}
        _draw_row(axes, cells, texts, colors, axis, seen)
        for panel, ax in axes.items():
            ax.set_title(PANELS[panel], fontsize=10.5)
            ax.set_ylabel(Y_LABELS[panel])
            _apply_yscale(ax, seen[panel], zero_based=True)
            _format_axes(ax, axis, texts, all_failed)
        if texts.row_titles[r]:
            grid[r][0].annotate(texts.row_titles[r], xy=(0, 1), xycoords="axes fraction", xytext=(0, 30),
                                textcoords="offset points", fontsize=11, fontweight="bold", color="0.15",
                                ha="left", va="bottom")
    _decorate(fig, texts, colors, height, bottom_h, foot_h, note_h)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_run(run_dir: Path, x: str | None = None) -> list[Path]:
    """Write run_dir/charts/<scenario>.png for each scenario in run_dir/results.csv, plus
    run_dir/charts/summary.csv (the aggregate.summarize table). Returns the PNG paths."""
    run_dir = Path(run_dir)
    df = load_results(run_dir / "results.csv")
    summary = summarize(df)
    charts = run_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    summary.to_csv(charts / "summary.csv", index=False)
    colors = target_colors(df["target"].dropna().astype(str).unique())
    paths: list[Path] = []
    for scenario in sorted(df["scenario"].dropna().astype(str).unique()):
        rows = df[df["scenario"] == scenario]
        cells = summary[summary["scenario"] == scenario]
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in scenario)
        paths.append(plot_scenario(scenario, rows, cells, colors, charts / f"{safe}.png", x=x))
    from harness.present.plot_db import plot_db  # the db scenario's second chart: against the pool

    db_chart = plot_db(df, charts / "db_pool.png")
    if db_chart is not None:
        paths.append(db_chart)
    return paths
