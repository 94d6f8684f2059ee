"""Charts for one run, drawn from results.csv alone (plotting never runs a benchmark).

One figure per scenario with three small multiples sharing the x-axis (uvicorn workers, log2):
throughput with the analytic ceiling, request latency p50/p99, and /health probe p99 latency.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

from harness.aggregate import CELL_COLUMNS, load_results, summarize  # noqa: E402
from harness.scenarios import SCENARIOS  # noqa: E402
from targets import TARGETS  # noqa: E402

# Fixed colours for the registered targets (registry order) so a target looks the same in every
# chart of every run.
KNOWN_TARGETS = list(TARGETS)
_PALETTE = list(plt.get_cmap("tab10").colors)
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]

DODGE = 0.03  # sideways offset between lines, in octaves of the workers axis
LOG_SPAN = 20.0  # a panel switches to a log y-scale when its positive values span more than this
MAX_FOOTNOTES = 14
LOW_EFFICIENCY = 0.8  # cells below this share of their ceiling get a footnote saying what bound them
WRAP = 170

CPU_KIND_TEXT = {
    "python": "Python CPU",
    "native": "native (GIL-releasing hashlib) CPU",
}
# Parameters a line may differ in besides target and workers.
_VARIANT_PARAMS = [c for c in CELL_COLUMNS if c not in ("target", "scenario", "workers")]

NOTE = (
    "Load generator and target share this machine's CPU cores, "
    "so absolute numbers understate a dedicated server."
)


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


def _knob(df: pd.DataFrame, col: str) -> str:
    v = _uniform(df, col)
    return "(varies, see legend)" if v is None else v


def _calls(fanout: str) -> str:
    if fanout.startswith("("):
        return f"{fanout} upstream calls"
    return "1 upstream call" if fanout == "1" else f"{fanout} upstream calls"


def scenario_title(scenario: str, rows: pd.DataFrame) -> str:
    """Plain-language headline built from the knob columns, e.g. '... 3 upstream calls × 50 ms each'."""
    io_ms, fanout, cpu_ms = _knob(rows, "io_ms"), _knob(rows, "fanout"), _knob(rows, "cpu_ms")
    users = _knob(rows, "users")
    kind = _uniform(rows, "cpu_kind")
    cpu_text = CPU_KIND_TEXT.get(kind or "", f"{kind} CPU" if kind and kind != "?" else "CPU")
    varies = users.startswith("(")
    users_text = "concurrent users vary (see legend)" if varies else f"{users} concurrent users"
    record = SCENARIOS.get(scenario)
    head = record.title if record else f"Scenario '{scenario}'"
    calls = None if record is None else record.upstream_calls
    if record is None:
        body = f"upstream {fanout} × {io_ms} ms, CPU {cpu_ms} ms ({cpu_text})"
    elif calls == "fanout" and not record.cpu:
        body = f"{_calls(fanout)} × {io_ms} ms each"
    elif calls and record.cpu:
        count = fanout if calls == "fanout" else str(calls)
        each = "" if count == "1" else " each"
        body = f"{_calls(count)} of {io_ms} ms{each} then {cpu_ms} ms of {cpu_text}"
    elif calls:
        body = f"{_calls(str(calls))} × {io_ms} ms each"
    elif record.cpu:
        body = f"{cpu_ms} ms of {cpu_text} per request"
    else:
        body = "no modelled work (framework overhead)"
    return f"{head} (/{scenario}): {body}, {users_text}"


def scenario_subtitle(rows: pd.DataFrame, summary: pd.DataFrame) -> str:
    pool = _uniform(rows, "pool_size")
    parts = [f"event loop: {_knob(rows, 'loop')}",
             "pool size: each target's own (legend)" if pool is None else f"pool size: {pool}"]
    parts.append(f"async client: {_knob(rows, 'http_client')}, "
                 f"{_knob(rows, 'http_connections')} connections per worker")
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


def _cells_label(rows: pd.DataFrame, variant_cols: list[str]) -> str:
    """'thread-pool @ 2, 4 workers (users=64)' for cells of one line that share a footnote."""
    first = rows.iloc[0]
    ws = [_fmt_num(w) for w in sorted(rows["workers"].dropna())]
    noun = "worker" if ws == ["1"] else "workers"
    extra = ", ".join(f"{c}={_fmt_num(first[c])}" for c in variant_cols)
    return f"{first['target']} @ {', '.join(ws)} {noun}" + (f" ({extra})" if extra else "")


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


# ------------------------------------------------------------------------------------- the figure


def _draw_series(
    ax: plt.Axes, s: pd.DataFrame, col: str, color: tuple, marker: str, linestyle: str = "-",
    msize: float = 6,
) -> list[float]:
    """Line through the non-NaN points of s[col]; filled markers for valid cells, hollow for invalid."""
    pts = s[np.isfinite(s[col].astype("float64"))]
    if pts.empty:
        return []
    x = pts["workers"].to_numpy(dtype="float64")
    y = pts[col].to_numpy(dtype="float64")
    valid = pts["valid"].to_numpy(dtype=bool)
    ax.plot(x, y, linestyle=linestyle, color=color, linewidth=1.6, zorder=2)
    if valid.any():
        ax.plot(x[valid], y[valid], linestyle="none", marker=marker, color=color, markersize=msize,
                zorder=3)
    if (~valid).any():
        ax.plot(x[~valid], y[~valid], linestyle="none", marker=marker, markerfacecolor="none",
                markeredgecolor=color, markeredgewidth=1.5, markersize=msize + 1, zorder=4)
    return list(y)


def _draw_throughput(ax: plt.Axes, s: pd.DataFrame, color: tuple, marker: str) -> list[float]:
    seen = _draw_series(ax, s, "rps", color, marker)
    pts = s[np.isfinite(s["rps"].astype("float64"))]
    if not pts.empty:
        y = pts["rps"].to_numpy(dtype="float64")
        lo = np.nan_to_num(pts["rps_lo"].to_numpy(dtype="float64"), nan=0.0)
        hi = np.nan_to_num(pts["rps_hi"].to_numpy(dtype="float64"), nan=0.0)
        lo_err = np.where(np.isfinite(pts["rps_lo"]), np.clip(y - lo, 0, None), 0)
        hi_err = np.where(np.isfinite(pts["rps_hi"]), np.clip(hi - y, 0, None), 0)
        ax.errorbar(pts["workers"].to_numpy(dtype="float64"), y, yerr=[lo_err, hi_err], fmt="none",
                    ecolor=color, elinewidth=1.1, capsize=3, zorder=2)
        seen += list(y - lo_err) + list(y + hi_err)
    ceil = s[np.isfinite(s["ceiling_rps"].astype("float64")) & (s["ceiling_rps"] > 0)]
    if not ceil.empty:
        cx = ceil["workers"].to_numpy(dtype="float64")
        cy = ceil["ceiling_rps"].to_numpy(dtype="float64")
        if len(cx) == 1:  # a lone point: draw a short horizontal dash so it is visible
            cx = np.array([cx[0] / 1.12, cx[0] * 1.12])
            cy = np.repeat(cy, 2)
        ax.plot(cx, cy, linestyle=(0, (5, 3)), color=color, linewidth=1.3, alpha=0.8, zorder=1)
        seen += list(cy)
    return seen


def _mark_failed(ax: plt.Axes, s: pd.DataFrame, color: tuple) -> None:
    failed = s[s["failed_repeats"] > 0]
    if failed.empty:
        return
    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(failed["workers"].to_numpy(dtype="float64"), np.full(len(failed), 0.035), linestyle="none",
            marker="x", color=color, markersize=9, markeredgewidth=2.2, transform=trans, clip_on=False,
            zorder=4)


def _draw_health_max(ax: plt.Axes, s: pd.DataFrame, color: tuple) -> list[float]:
    """Where a worker's probe got too few samples for a p99, its max instead (▲, never joined)."""
    pts = s[~np.isfinite(s["health_p99_ms"].astype("float64"))
            & np.isfinite(s["health_max_ms"].astype("float64"))]
    if pts.empty:
        return []
    ax.plot(pts["workers"].to_numpy(dtype="float64"), pts["health_max_ms"].to_numpy(dtype="float64"),
            linestyle="none", marker="^", color=color, markersize=7, zorder=3)
    return list(pts["health_max_ms"].astype("float64"))


def _health_note(summary: pd.DataFrame, variant_cols: list[str]) -> list[str]:
    """Which /health points rest on too few samples for a p99, with the count they had."""
    thin = summary[(summary["repeats"] > 0) & ~np.isfinite(summary["health_p99_ms"].astype("float64"))
                   & np.isfinite(summary["health_max_ms"].astype("float64"))]
    if thin.empty:
        return []
    cells = "; ".join(
        f"{_cells_label(rows, variant_cols)} n={_fmt_num(rows['health_min_samples'].min())}"
        for _, rows in thin.groupby(["target", *variant_cols], dropna=False, sort=False))
    return [f"▲ /health max shown where a worker's probe got < 100 samples (a p99 needs 100): "
            f"{cells}"]


def _footnotes(summary: pd.DataFrame, variant_cols: list[str]) -> list[str]:
    """Footnote lines: invalid cells with their reason, then failed cells with their error, then
    /health points that show a max for lack of samples.

    Cells of the same line (target + variant) with the same reason share one note listing their workers.
    """
    notes: list[str] = []
    bad = summary[(summary["repeats"] > 0) & ~summary["valid"].astype(bool)].copy()
    bad["_why"] = bad["invalid_reason"].replace("", "no reason recorded")
    for _, rows in bad.groupby(["target", *variant_cols, "_why"], dropna=False, sort=False):
        notes.append(f"○ invalid: {_cells_label(rows, variant_cols)}: {rows['_why'].iloc[0]}")
    failed = summary[summary["failed_repeats"] > 0].copy()
    failed["_why"] = [
        f"{f}/{f + n} repeats failed: "
        + textwrap.shorten(e or "no error text", width=110, placeholder=" …")
        for f, n, e in zip(failed["failed_repeats"], failed["repeats"], failed["error"].astype(str),
                           strict=True)
    ]
    for _, rows in failed.groupby(["target", *variant_cols, "_why"], dropna=False, sort=False):
        notes.append(f"✕ failed: {_cells_label(rows, variant_cols)}: {rows['_why'].iloc[0]}")
    # What held back the cells well below their ceiling (harness/bottleneck.py).
    if "bound_by" in summary:
        low = summary[(summary["repeats"] > 0) & (summary["efficiency"] < LOW_EFFICIENCY)
                      & (summary["bound_by"] != "")]
        for _, rows in low.groupby(["target", *variant_cols, "bound_by"], dropna=False, sort=False):
            effs = ", ".join(f"{e:.0%}" for e in rows["efficiency"])
            notes.append(f"▽ below {LOW_EFFICIENCY:.0%} of ceiling ({effs}): "
                         f"{_cells_label(rows, variant_cols)}: bound by {rows['bound_by'].iloc[0]}")
    if len(notes) > MAX_FOOTNOTES:
        notes = notes[:MAX_FOOTNOTES - 1] + [f"… and {len(notes) - MAX_FOOTNOTES + 1} more (see summary.csv)"]
    notes += _health_note(summary, variant_cols)
    lines: list[str] = []
    for n in notes:
        lines += textwrap.wrap(n, WRAP, subsequent_indent="      ") or [""]
    return lines


def plot_scenario(scenario: str, rows: pd.DataFrame, summary: pd.DataFrame, colors: dict[str, tuple],
                  out: Path) -> Path:
    """Draw one scenario's three-panel figure to `out` (rows: its results, summary: its cells)."""
    summary = (summary.assign(_rank=summary["target"].astype(str).map(_target_rank))
               .sort_values(["_rank", "target", "workers"], kind="stable").drop(columns="_rank"))
    # A parameter makes extra lines only if it varies *within* a target: pool sizes that differ
    # between targets (each target's own default) are a property of the target, said in the legend.
    variant_cols = [c for c in _VARIANT_PARAMS
                    if summary.groupby("target")[c].nunique(dropna=False).max() > 1]
    workers = sorted({float(w) for w in summary["workers"].dropna() if float(w) > 0})
    all_failed = bool((summary["repeats"] == 0).all())

    footnotes = _footnotes(summary, variant_cols)
    series = sorted(summary.groupby(["target", *variant_cols], dropna=False, sort=True),
                    key=lambda kv: _target_rank(str(kv[0][0] if isinstance(kv[0], tuple) else kv[0])))
    legend_cols = min(max(len(series), 1), 6)
    n_legend_rows = int(np.ceil(len(series) / legend_cols)) + 1  # targets, then the style key

    # Layout in inches, converted to figure fractions below.
    width, panel_h, top_h = 17.0, 4.3, 1.35
    xlabel_h, legend_h = 0.55, 0.3 * n_legend_rows + 0.15
    foot_h = 0.19 * len(footnotes) + (0.1 if footnotes else 0)
    note_h = 0.3
    bottom_h = xlabel_h + legend_h + foot_h + note_h
    height = top_h + panel_h + bottom_h

    fig, axes = plt.subplots(1, 3, figsize=(width, height), sharex=True)
    fig.subplots_adjust(left=0.055, right=0.985, wspace=0.24, top=1 - top_h / height,
                        bottom=bottom_h / height)
    ax_rps, ax_lat, ax_health = axes

    seen: dict[str, list[float]] = {"rps": [], "lat": [], "health": []}
    handles: list[Line2D] = []  # one per line (target colour)
    for i, (key, s) in enumerate(series):
        key = key if isinstance(key, tuple) else (key,)
        target = str(key[0])
        color = colors.get(target, "0.3")
        marker = _MARKERS[i % len(_MARKERS)] if variant_cols else _MARKERS[
            (KNOWN_TARGETS.index(target) if target in KNOWN_TARGETS else i) % len(_MARKERS)]
        s = s.sort_values("workers").copy()
        # Dodge lines sideways a little (log2 x) so equal values of different targets stay visible.
        s["workers"] = s["workers"].astype("float64") * 2 ** (DODGE * (i - (len(series) - 1) / 2))
        seen["rps"] += _draw_throughput(ax_rps, s, color, marker)
        _mark_failed(ax_rps, s, color)
        seen["lat"] += _draw_series(ax_lat, s, "p50_ms", color, marker, "-")
        seen["lat"] += _draw_series(ax_lat, s, "p99_ms", color, marker, ":", msize=4.5)
        seen["health"] += _draw_series(ax_health, s, "health_p99_ms", color, marker)
        seen["health"] += _draw_health_max(ax_health, s, color)
        label = target + "".join(f", {c}={_fmt_num(v)}" for c, v in zip(variant_cols, key[1:], strict=True))
        pools = s["pool_size"].dropna().unique()
        if "pool_size" not in variant_cols and len(pools) == 1:
            label += f" (pool {_fmt_num(pools[0])})"
        handles.append(Line2D([], [], color=color, marker=marker, linewidth=1.6, label=label))

    grey = "0.35"
    key = [
        Line2D([], [], color=grey, linestyle=(0, (5, 3)), label="analytic ceiling (throughput)"),
        Line2D([], [], color=grey, linestyle=":", marker="o", markersize=4.5, label="p99 (latency panel)"),
        Line2D([], [], color=grey, linestyle="none", marker="o", markerfacecolor="none",
               markeredgewidth=1.5, label="hollow = invalid cell"),
        Line2D([], [], color=grey, linestyle="none", marker="x", markeredgewidth=2, label="x = failed cell"),
    ]

    ax_rps.set_title("Throughput (successful requests/s)\nhigher is better; dashed = analytic ceiling",
                     fontsize=10.5)
    ax_rps.set_ylabel("successful requests per second")
    ax_lat.set_title("Request latency\nsolid = median (p50), dotted = p99; lower is better", fontsize=10.5)
    ax_lat.set_ylabel("latency (ms)")
    ax_health.set_title("/health probe latency, p99 of the worst worker (▲ = max: too few samples)\n"
                        "high = event loop stalled for a cheap endpoint", fontsize=10.5)
    ax_health.set_ylabel("/health p99 latency (ms)")

    _apply_yscale(ax_rps, seen["rps"], zero_based=True)
    _apply_yscale(ax_lat, seen["lat"], zero_based=True)
    _apply_yscale(ax_health, seen["health"], zero_based=True)

    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("uvicorn worker processes")
        ax.grid(True, which="major", alpha=0.3)
        if workers:
            ax.set_xticks(workers)
            ax.set_xticklabels([_fmt_num(w) for w in workers])
            ax.set_xlim(min(workers) / 1.4, max(workers) * 1.4)
        ax.xaxis.set_minor_locator(NullLocator())
        if all_failed:
            ax.text(0.5, 0.5, "every run in this scenario failed\n(see footnote)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="firebrick", zorder=10,
                    bbox={"facecolor": "white", "edgecolor": "firebrick", "boxstyle": "round,pad=0.4"})

    fig.suptitle(scenario_title(scenario, rows), fontsize=13.5, fontweight="bold",
                 y=1 - 0.12 / height, va="top")
    fig.text(0.5, 1 - 0.47 / height, scenario_subtitle(rows, summary), ha="center", va="top",
             fontsize=9.5, color="0.25")

    y_legend = (bottom_h - xlabel_h) / height
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, y_legend), ncol=legend_cols,
                   fontsize=9.5, frameon=False, handlelength=2.6, columnspacing=2.2)
    y_key = y_legend - 0.3 * (n_legend_rows - 1) / height
    fig.legend(handles=key, loc="upper center", bbox_to_anchor=(0.5, y_key), ncol=len(key), fontsize=8.5,
               frameon=False, handlelength=2.6, columnspacing=2.2, labelcolor="0.3")
    if footnotes:
        fig.text(0.055, (foot_h + note_h) / height, "\n".join(footnotes), ha="left", va="top",
                 fontsize=8.3, family="DejaVu Sans", linespacing=1.35, color="0.15")
    fig.text(0.055, 0.1 / height, NOTE, ha="left", va="bottom", fontsize=8.5, style="italic", color="0.35")

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_run(run_dir: Path) -> list[Path]:
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
        paths.append(plot_scenario(scenario, rows, cells, colors, charts / f"{safe}.png"))
    return paths
