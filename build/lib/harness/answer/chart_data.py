"""The evidence a decider read, as data a chart can draw: panels of bars or lines, each point one
cell's figure, with the rule's thresholds. Deciders build it from the very cells they compare, so
the chart cannot show a different selection than the verdict used (harness.present.claim_charts
draws it; nothing here imports matplotlib).

The noise rule (harness.answer.evidence.compare) is drawn the way it decides: between cells with one
repeat a side it is a line (the other cell × (1 + NOISE_MARGIN)); between cells with repeats it is the
exact permutation test on the repeats' values, which has no line to draw, so the chart shows those
values as dots and writes the test's p (or that the repeats cannot show a difference) over the bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from harness.answer import significance
from harness.answer.evidence import NOISE_MARGIN, Verdict, repeat_test


@dataclass(frozen=True)
class Point:
    x: str                      # the bar's label, or the tick label on a line panel
    y: float
    lo: float = math.nan        # the repeats' interval, when there is one
    hi: float = math.nan
    series: str = ""            # colour group (a target, a client, a CPU kind)
    xval: float = math.nan      # line panels: the numeric x (users, pool size, workers)
    hollow: bool = False        # a cell the harness does not fully trust
    values: tuple[float, ...] = ()  # the repeats' values the permutation test read (≥ 2), else ()


@dataclass(frozen=True)
class Threshold:
    y: float
    label: str                  # "≥ 2× fake-async", "noise edge", "midpoint"
    at: tuple[str, ...] = ()    # the bars (x labels) it applies to; () = the whole panel


@dataclass(frozen=True)
class Band:
    """The noise band around a reference: a cell inside it does not differ measurably."""
    lo: float
    hi: float
    label: str
    at: tuple[str, ...] = ()


@dataclass(frozen=True)
class Note:
    """Text over a bar (or a line's point): the permutation test's outcome for that cell."""
    text: str
    at: str


@dataclass
class Panel:  # filled point by point as a decider walks its cells
    title: str
    ylabel: str
    points: list[Point]
    thresholds: list[Threshold] = field(default_factory=list)
    kind: str = "bars"          # "bars" or "line"
    xlabel: str = ""
    marks: list[tuple[float, str]] = field(default_factory=list)  # line panels: (x, "knee")
    bands: list[Band] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def measured(self) -> list[Point]:
        return [p for p in self.points if math.isfinite(p.y)]


@dataclass(frozen=True)
class Chart:
    panels: list[Panel]

    def drawable(self) -> list[Panel]:
        """Panels with at least one measured point (an empty panel is never drawn)."""
        return [p for p in self.panels if p.measured()]


def point(cell: pd.Series, col: str, x: str, series: str = "", xval: float = math.nan) -> Point:
    """One cell's `col` (its median) with the repeats' interval when ≥ 2 repeats gave one, and the
    repeats' own values when the noise rule tests them (evidence.NOISE_COLUMNS)."""
    lo, hi = math.nan, math.nan
    values: tuple[float, ...] = ()
    if int(cell["repeats"]) >= 2 and f"{col}_lo" in cell.index:
        lo, hi = float(cell[f"{col}_lo"]), float(cell[f"{col}_hi"])
        raw = cell.get(f"{col}_values", ())
        values = tuple(float(v) for v in raw) if isinstance(raw, tuple) and len(raw) >= 2 else ()
    return Point(x, _f(cell[col]), lo, hi, series, xval, hollow=not bool(cell["valid"]), values=values)


def value_point(value: float, x: str, series: str = "", xval: float = math.nan,
                hollow: bool = False) -> Point:
    """A derived figure (cores of work, a median over rows) without an interval."""
    return Point(x, _f(value), series=series, xval=xval, hollow=hollow)


def tested(a: pd.Series, b: pd.Series) -> bool:
    """evidence.compare tests repeats (no line) when both cells have ≥ 2, else applies the margin."""
    return int(a["repeats"]) >= 2 and int(b["repeats"]) >= 2


def noise_edge(a: pd.Series, b: pd.Series, col: str) -> float:
    """Where `a`'s `col` becomes measurably above `b`'s under evidence.compare's margin rule,
    b × (1 + NOISE_MARGIN); nan when both have repeats, as the permutation test then decides."""
    return math.nan if tested(a, b) else _f(b[col]) * (1 + NOISE_MARGIN)


def p_text(a: pd.Series, b: pd.Series, col: str) -> str:
    """The permutation test of a's repeats against b's in a few words: `p = 0.008 ≤ 5%`,
    `p = 0.31 > 5%`, `3 vs 3: cannot show` (smallest p 0.1), or "" when the margin rule decides."""
    if not tested(a, b):
        return ""
    t = repeat_test(a, b, col)
    if t is None:
        return "no repeat values"
    if not t.can_show():
        return f"{t.n_a} vs {t.n_b}: cannot show"
    return f"p = {t.p:.2g} {'≤' if t.p <= significance.LEVEL else '>'} {significance.LEVEL:.0%}"


def noise_rule(panel: Panel, a: pd.Series, b: pd.Series, col: str, label: str, at: str,
               versus: str = "") -> None:
    """Draw evidence.compare(a, b, col) > 0 on `panel` at bar `at`: the margin line (labelled
    `label`; none when label is "", for a rule whose own line lies beyond it) for single repeats,
    the test's outcome over the bar for repeats (`vs W=1: p = ...` when `versus` names b)."""
    if tested(a, b):
        panel.notes.append(Note((f"vs {versus}: " if versus else "") + p_text(a, b, col), at))
    elif label:
        panel.thresholds.append(Threshold(noise_edge(a, b, col), label, (at,)))


def noise_band(panel: Panel, a: pd.Series, ref: pd.Series, col: str, at: str, name: str) -> None:
    """Draw evidence.compare(a, ref, col) != 0 at bar `at`: ref's band (÷ and × (1 + NOISE_MARGIN))
    for single repeats, the test's outcome over the bar for repeats."""
    if tested(a, ref):
        panel.notes.append(Note(p_text(a, ref, col), at))
        return
    y = _f(ref[col])
    panel.bands.append(Band(y / (1 + NOISE_MARGIN), y * (1 + NOISE_MARGIN),
                            f"{name} ±{NOISE_MARGIN:.0%}", (at,)))


def with_chart(verdict: Verdict, *panels: Panel) -> Verdict:
    return replace(verdict, chart=Chart(list(panels)))


def _f(v: object) -> float:
    try:
        out = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan
