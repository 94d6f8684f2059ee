"""report.html's "Where the time went" section: one stacked bar per route and cell, from each cell's
raw/<cell>/wait_profile.csv (harness/judge/wait_profile.py), drawn as inline SVG."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from harness.judge import wait_profile

COLOURS = {"app": "#4c78a8", "io": "#72b7b2", "lock": "#e45756", "tokens": "#f58518", "stalled": "#b279a2"}
BAR_W, BAR_H, LABEL_W = 480, 18, 330


def _bar(label: str, shares: dict[str, float], y: int) -> str:
    parts = [f'<text x="0" y="{y + 13}" font-size="12">{html.escape(label)}</text>']
    x = float(LABEL_W)
    for cat in wait_profile.CATEGORIES:
        width = BAR_W * shares.get(cat, 0.0) / 100
        if width <= 0:
            continue
        tip = f"{wait_profile.LABELS[cat]} {shares[cat]:.0f}%"
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_H}" '
                     f'fill="{COLOURS[cat]}"><title>{html.escape(tip)}</title></rect>')
        x += width
    return "".join(parts)


def _bars(run_dir: Path, rows: pd.DataFrame) -> list[tuple[str, dict[str, float]]]:
    out = []
    for _, row in rows.iterrows():
        raw = row.get("raw_dir")
        if not isinstance(raw, str) or not raw:
            continue
        by_path: dict[str, dict[str, float]] = {}
        for r in wait_profile.read(run_dir / raw):
            by_path.setdefault(r["path"], {})[r["category"]] = float(r["share_pct"])
        tokens = row.get("thread_tokens")
        knobs = f"W={row.get('workers'):.0f}" + (f", {tokens:.0f} tokens" if tokens == tokens else "")
        for path, shares in sorted(by_path.items()):
            top = max((c for c in shares if c != "app"), key=shares.__getitem__, default="app")
            out.append((f"{path} ({knobs}): {wait_profile.LABELS[top]} {shares[top]:.0f}%", shares))
    return out


def section_waits(run_dir: Path, rows: pd.DataFrame) -> str:
    """An h2, the legend and one bar per route of each cell; "" when no cell has a wait profile."""
    bars = _bars(Path(run_dir), rows)
    if not bars:
        return ""
    svg = "".join(_bar(label, shares, 4 + i * (BAR_H + 6)) for i, (label, shares) in enumerate(bars))
    height = 8 + len(bars) * (BAR_H + 6)
    legend = " ".join(f'<span style="color:{COLOURS[c]}">■</span> {html.escape(wait_profile.LABELS[c])}'
                      for c in wait_profile.CATEGORIES)
    return ('<h2 id="waits">Where the time went</h2><p class="sub">Each bar: one route of one cell, its '
            "requests' wall time sampled in the workers (raw/&lt;cell&gt;/wait_profile.csv, waits.folded). "
            f"{legend}</p><svg id=\"wait-bars\" width=\"{LABEL_W + BAR_W}\" height=\"{height}\" "
            f'xmlns="http://www.w3.org/2000/svg">{svg}</svg>')
