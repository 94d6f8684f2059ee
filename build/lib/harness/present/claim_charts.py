"""One small chart per claim verdict: exactly the cells its decider read (the verdict's
harness.answer.chart_data.Chart), with the rule's thresholds drawn, so a reader sees why the badge
says what it says. Panels without a measured point are never drawn.

A cell with repeats shows each repeat as a dot (the values the permutation test read); the test's
outcome is written over the bar it decides, since a test has no line. A margin rule (single repeats)
is a dashed line, or a shaded band when either direction counts (claim 21).
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.answer.chart_data import Chart, Panel, Point  # noqa: E402
from harness.answer.evidence import Verdict  # noqa: E402

PANEL_W, PANEL_H = 3.3, 2.6  # inches: small, inline in the verdict row
BAR_W = 0.42  # inches a bar needs at least: a panel of many bars grows past PANEL_W
CHAR_W = 0.055  # inches a tick label's character needs at its font size (a bar is as wide as its label)
THRESHOLD_COLOR = "#c0392b"
LOG_SPAN = 20.0  # a y axis whose measured values span more than this is drawn on a log scale
_PALETTE = [plt.get_cmap("tab10")(i) for i in range(10)]


def draw(chart: Chart) -> plt.Figure | None:
    """The figure of a chart's measured panels, or None when no panel has a measured point."""
    panels = chart.drawable()
    if not panels:
        return None
    widths = [_width(panel) for panel in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths), PANEL_H), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, panel in zip(axes[0], panels, strict=True):
        colors = _series_colors(panel.points)
        if panel.kind == "line":
            _draw_lines(ax, panel, colors)
        else:
            _draw_bars(ax, panel, colors)
        ax.set_title(panel.title, fontsize=8.5)
        ax.set_ylabel(panel.ylabel, fontsize=7.5)
        ax.tick_params(labelsize=6.5)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(pad=0.4)
    return fig


def _width(panel: Panel) -> float:
    if panel.kind != "bars":
        return PANEL_W
    labels = list(dict.fromkeys(p.x for p in panel.points))
    longest = max((len(line) for x in labels for line in x.split("\n")), default=0)
    return max(PANEL_W, len(labels) * max(BAR_W, CHAR_W * longest))


def _merged(panel: Panel) -> list[tuple[float, str, tuple[str, ...]]]:
    """Thresholds of one value and label (a rule applied to several bars alike) as one line over all
    their bars, so its label is written once."""
    out: dict[tuple[float, str], list[str]] = {}
    for t in panel.thresholds:
        if math.isfinite(t.y):
            at = out.setdefault((t.y, t.label), [])
            at += [x for x in t.at if x not in at] if t.at else []
            if not t.at:
                at.append("")  # the whole panel
    return [(y, label, () if "" in at else tuple(at)) for (y, label), at in out.items()]


def _series_colors(points: list[Point]) -> dict[str, tuple]:
    names = list(dict.fromkeys(p.series for p in points))
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def _values(panel: Panel) -> list[float]:
    vals = [p.y for p in panel.measured()] + [t.y for t in panel.thresholds if math.isfinite(t.y)]
    vals += [v for p in panel.measured() for v in p.values] + [b.hi for b in panel.bands]
    return [v for v in vals if math.isfinite(v) and v > 0]


def _yscale(ax: plt.Axes, panel: Panel) -> None:
    vals = _values(panel)
    if vals and max(vals) / min(vals) > LOG_SPAN:
        ax.set_yscale("log")
        ax.set_ylim(top=max(vals) * 2.5)  # room for the value labels and the test's notes
    else:
        ax.set_ylim(bottom=0, top=max(vals, default=1.0) * 1.25)


def _draw_bars(ax: plt.Axes, panel: Panel, colors: dict[str, tuple]) -> None:
    xs = {x: i for i, x in enumerate(dict.fromkeys(p.x for p in panel.points))}
    for p in panel.points:
        i, color = xs[p.x], colors[p.series]
        if not math.isfinite(p.y):
            ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
            continue
        ax.bar(i, p.y, width=0.7, color="white" if p.hollow else color, edgecolor=color,
               hatch="//" if p.hollow else None, linewidth=1.2)
        if p.values:
            _repeat_dots(ax, i, p.values)
        elif math.isfinite(p.lo) and math.isfinite(p.hi):
            ax.errorbar(i, p.y, yerr=[[max(p.y - p.lo, 0)], [max(p.hi - p.y, 0)]], color="0.2",
                        capsize=3, linewidth=0.9)
        ax.annotate(_num(p.y), (i, max((p.y, *p.values))), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=6.5)
    for b in panel.bands:
        spots = [xs[x] for x in b.at if x in xs] or list(xs.values())
        lo, hi = min(spots) - 0.45, max(spots) + 0.45
        ax.fill_between([lo, hi], b.lo, b.hi, color=THRESHOLD_COLOR, alpha=0.18, linewidth=0)
        ax.annotate(b.label, (hi, b.hi), xytext=(0, 1.5), textcoords="offset points", ha="right",
                    va="bottom", fontsize=6, color=THRESHOLD_COLOR)
    _draw_notes(ax, panel, {x: float(i) for x, i in xs.items()})
    for y, text, at in _merged(panel):
        spots = [xs[x] for x in at if x in xs] or list(xs.values())
        lo, hi = min(spots) - 0.45, max(spots) + 0.45
        ax.hlines(y, lo, hi, colors=THRESHOLD_COLOR, linestyles="--", linewidth=1.2)
        ax.annotate(text, (hi, y), xytext=(0, 1.5), textcoords="offset points", ha="right", va="bottom",
                    fontsize=6, color=THRESHOLD_COLOR)
    ax.set_xticks(list(xs.values()), list(xs), fontsize=6.5)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    _yscale(ax, panel)


def _draw_lines(ax: plt.Axes, panel: Panel, colors: dict[str, tuple]) -> None:
    for series, color in colors.items():
        pts = sorted((p for p in panel.measured() if p.series == series), key=lambda p: p.xval)
        ax.plot([p.xval for p in pts], [p.y for p in pts], "-", color=color, linewidth=1.2, label=series)
        for p in pts:
            ax.plot(p.xval, p.y, "o", color=color, markerfacecolor="white" if p.hollow else color)
            if p.values:
                ax.plot([p.xval] * len(p.values), p.values, ".", color="0.15", markersize=3, zorder=3)
            elif math.isfinite(p.lo) and math.isfinite(p.hi):
                ax.vlines(p.xval, p.lo, p.hi, colors="0.2", linewidth=0.9)
    for b in panel.bands:
        ax.axhspan(b.lo, b.hi, color=THRESHOLD_COLOR, alpha=0.18, linewidth=0)
    _draw_notes(ax, panel, {p.x: p.xval for p in panel.measured()})
    for t in panel.thresholds:
        if math.isfinite(t.y):
            ax.axhline(t.y, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.1)
            ax.annotate(t.label, (1, t.y), xycoords=("axes fraction", "data"), xytext=(-2, 1.5),
                        textcoords="offset points", ha="right", va="bottom", fontsize=6,
                        color=THRESHOLD_COLOR)
    for x, text in panel.marks:
        ax.axvline(x, color="0.35", linestyle=":", linewidth=1.1)
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), xytext=(2, -9),
                    textcoords="offset points", fontsize=6.5, color="0.25")
    xvals = sorted({p.xval for p in panel.measured()})
    if xvals and xvals[0] > 0 and xvals[-1] / xvals[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xvals, [_num(x) for x in xvals])
    ax.set_xlabel(panel.xlabel, fontsize=7)
    if len(colors) > 1:
        ax.legend(fontsize=6, frameon=False)
    _yscale(ax, panel)


def _repeat_dots(ax: plt.Axes, i: int, values: tuple[float, ...]) -> None:
    """Each repeat's value as a dot on its bar, spread a little sideways so equal ones stay visible."""
    n = len(values)
    xs = [i + 0.5 * (k - (n - 1) / 2) / max(n, 1) for k in range(n)]
    ax.plot(xs, values, ".", color="0.15", markersize=3.5, zorder=3)


def _draw_notes(ax: plt.Axes, panel: Panel, where: dict[str, float]) -> None:
    """The permutation test's outcome for the cell it decided. A bar panel writes it at the top, over
    the bar (notes on one bar stack); a line panel lists `W=2 vs W=1: p = ...` in its lower right
    corner, which the rising sweeps these panels draw leave free."""
    notes = [n for n in panel.notes if n.at in where and n.text]
    if panel.kind == "line":
        if notes:
            ax.text(0.98, 0.04, "\n".join(f"{n.at} {n.text}" for n in notes), transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=6, color=THRESHOLD_COLOR, linespacing=1.3)
        return
    stacked: dict[float, int] = {}
    for note in notes:
        x = where[note.at]
        k = stacked.get(x, 0)
        stacked[x] = k + 1
        ax.annotate(note.text, (x, 1), xycoords=("data", "axes fraction"), xytext=(0, -2 - 8 * k),
                    textcoords="offset points", ha="center", va="top", fontsize=6, color=THRESHOLD_COLOR)


def _num(v: float) -> str:
    if float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}" if abs(v) < 1 else f"{v:.1f}"


def png(chart: Chart | None) -> bytes | None:
    """The chart as PNG bytes, or None when there is nothing measured to draw."""
    fig = draw(chart) if chart is not None else None
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def img_tag(verdict: Verdict) -> str:
    """An inline <img> of the verdict's evidence, or "" when its rule read no measured cell."""
    data = png(verdict.chart)
    if data is None:
        return ""
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<img class="claim-chart" alt="evidence for claim {verdict.claim}" src="{src}">'
