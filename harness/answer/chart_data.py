"""The evidence a decider read, as data a chart can draw: panels of bars or lines, each point one
cell's figure, with the rule's thresholds. Deciders build it from the very cells they compare, so
the chart cannot show a different selection than the verdict used (harness.present.claim_charts
draws it; nothing here imports matplotlib).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from harness.answer.evidence import NOISE_MARGIN, Verdict


@dataclass(frozen=True)
class Point:
    x: str                      # the bar's label, or the tick label on a line panel
    y: float
    lo: float = math.nan        # the repeats' interval, when there is one
    hi: float = math.nan
    series: str = ""            # colour group (a target, a client, a CPU kind)
    xval: float = math.nan      # line panels: the numeric x (users, pool size, workers)
    hollow: bool = False        # a cell the harness does not fully trust


@dataclass(frozen=True)
class Threshold:
    y: float
    label: str                  # "≥ 2× fake-async", "noise edge", "midpoint"
    at: tuple[str, ...] = ()    # the bars (x labels) it applies to; () = the whole panel


@dataclass
class Panel:  # filled point by point as a decider walks its cells
    title: str
    ylabel: str
    points: list[Point]
    thresholds: list[Threshold] = field(default_factory=list)
    kind: str = "bars"          # "bars" or "line"
    xlabel: str = ""
    marks: list[tuple[float, str]] = field(default_factory=list)  # line panels: (x, "knee")

    def measured(self) -> list[Point]:
        return [p for p in self.points if math.isfinite(p.y)]


@dataclass(frozen=True)
class Chart:
    panels: list[Panel]

    def drawable(self) -> list[Panel]:
        """Panels with at least one measured point (an empty panel is never drawn)."""
        return [p for p in self.panels if p.measured()]


def point(cell: pd.Series, col: str, x: str, series: str = "", xval: float = math.nan) -> Point:
    """One cell's `col` (its median) with the repeats' interval when ≥ 2 repeats gave one."""
    lo, hi = math.nan, math.nan
    if int(cell["repeats"]) >= 2 and f"{col}_lo" in cell.index:
        lo, hi = float(cell[f"{col}_lo"]), float(cell[f"{col}_hi"])
    return Point(x, _f(cell[col]), lo, hi, series, xval, hollow=not bool(cell["valid"]))


def value_point(value: float, x: str, series: str = "", xval: float = math.nan,
                hollow: bool = False) -> Point:
    """A derived figure (cores of work, a median over rows) without an interval."""
    return Point(x, _f(value), series=series, xval=xval, hollow=hollow)


def noise_edge(a: pd.Series, b: pd.Series, col: str) -> float:
    """Where `a`'s `col` becomes measurably above `b`'s under evidence.compare: b's interval top
    when both have ≥ 2 repeats, else b × (1 + NOISE_MARGIN)."""
    if int(a["repeats"]) >= 2 and int(b["repeats"]) >= 2:
        return _f(b[f"{col}_hi"])
    return _f(b[col]) * (1 + NOISE_MARGIN)


def with_chart(verdict: Verdict, *panels: Panel) -> Verdict:
    return replace(verdict, chart=Chart(list(panels)))


def _f(v: object) -> float:
    try:
        out = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan
