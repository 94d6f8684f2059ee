"""The audit's per-route part of report.html, from the run folder alone: for each route a chart of its
throughput, its p99 against the /health p99 (a loop stalled by the route shows as a /health p99 that
climbs to the route's), and the worst worker's loop lag, against the workers values, each repeat a
point; then, for a route the sampler caught stalling the loop, its flame graph (raw/<cell>/stalls.svg)
and its heaviest stall stacks (raw/<cell>/stalls.folded).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import pandas as pd

from harness.answer import aggregate, audit
from harness.data.matrix import SCREEN
from harness.judge.stalls import FOLDED_FILE

CHART_DIR = "charts/audit"
STALL_SVG = "stalls.svg"
TOP_STACKS = 5
FRAMES_SHOWN = 6  # the innermost frames of a stall stack: the blocking call and the route above it
PANELS = [("throughput (rps)", [("rps", "route", "tab:blue")]),
          ("latency p99 (ms)", [("p99_ms", "route p99", "tab:blue"),
                                ("health_p99_ms", "/health p99", "tab:red")]),
          ("worst worker's loop lag p99 (ms)", [("loop_lag_p99_ms", "loop lag", "tab:purple")])]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "root"


def _draw(route: str, cells: pd.DataFrame, path: Path) -> Path:
    """One figure of three panels; x: the workers values, each repeat a point, the median a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 3.1), squeeze=False)
    workers = sorted(cells["workers"].dropna().unique())
    for ax, (title, series) in zip(axes[0], PANELS, strict=True):
        for col, label, color in series:
            medians = [cells.loc[cells["workers"] == w, col].median() for w in workers]
            ax.plot(cells["workers"], cells[col], "o", color=color, alpha=0.45, ms=5)
            ax.plot(workers, medians, "-", color=color, label=label, lw=1.6)
        if not any(cells[col].notna().any() for col, _, _ in series):  # e.g. under 100 requests: no p99
            ax.text(0.5, 0.5, "not measured in these windows", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9, color="0.4")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("uvicorn workers")
        ax.set_xticks(workers)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"{route}: each repeat a point, the median a line", fontsize=10.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    path.write_bytes(buffer.getvalue())
    return path


def top_stacks(folded: Path, n: int = TOP_STACKS) -> list[tuple[int, list[str]]]:
    """The n heaviest stall stacks: (samples, innermost frames first)."""
    stacks: list[tuple[int, list[str]]] = []
    for line in folded.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((int(count), frames.split(";")[::-1]))
    return sorted(stacks, key=lambda s: -s[0])[:n]


def _stall_block(run_dir: Path, raw: str, label: str) -> str:
    cell_dir = run_dir / raw
    parts = []
    if (cell_dir / STALL_SVG).is_file():  # our own flamegraph.render output: plain SVG, no script
        svg = (cell_dir / STALL_SVG).read_text()
        parts.append(f'<div class="scroll stall-flame">{svg}</div>')
    if (cell_dir / FOLDED_FILE).is_file():
        stacks = top_stacks(cell_dir / FOLDED_FILE)
        total = sum(n for n, _ in top_stacks(cell_dir / FOLDED_FILE, n=10**6)) or 1
        rows = "".join(f'<tr><td class="num">{n}</td><td class="num">{n / total:.0%}</td><td><code>'
                       + "<br>".join(html.escape(f) for f in frames[:FRAMES_SHOWN]) + "</code></td></tr>"
                       for n, frames in stacks)
        parts.append('<table class="stall-stacks"><thead><tr><th>samples</th><th>share</th>'
                     f"<th>stack, innermost first</th></tr></thead><tbody>{rows}</tbody></table>")
    if not parts:
        return ""
    return f"<h4>Where the loop stalled: {html.escape(label)}</h4>" + "".join(parts)


def _templates(run_dir: Path) -> dict[str, str]:
    """scenario → the route as the schema names it, from audit.json."""
    try:
        found = json.loads((run_dir / audit.AUDIT_JSON).read_text())
        return {r.get("scenario", r["url"]): r["template"] for r in found["routes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _stalls(run_dir: Path, route: str, cells: pd.DataFrame) -> list[str]:
    """The stall block of the first cell per workers value whose verdict is "blocks the event loop"."""
    out, shown = [], set()
    for _, cell in cells.iterrows():
        if cell["workers"] in shown or audit.verdict(cell.to_dict()) != "blocks the event loop":
            continue
        block = _stall_block(run_dir, str(cell["raw_dir"]), f"{route} W={cell['workers']:g}")
        if block:
            shown.add(cell["workers"])
            out.append(block)
    return out


SCREEN_TITLE = "every route at once (the screen; the routes it cleared have no cell of their own)"


def section_routes(run_dir: Path) -> str:
    """An h2, then per route its chart and, if it blocks the loop, its stalls; "" without audit.csv."""
    run_dir = Path(run_dir)
    if not (run_dir / audit.AUDIT_CSV).is_file() or not (run_dir / "results.csv").is_file():
        return ""
    df = aggregate.load_results(run_dir)
    ok = df[df["status"] == "ok"]
    names = _templates(run_dir)
    parts = ['<h2 id="audit-routes">Each route: throughput, p99 against /health, loop lag</h2>',
             '<p class="sub">When /health p99 climbs to the route\'s p99, the route holds the event loop; '
             "loop lag is the worst worker's.</p>"]
    for scenario, cells in ok.groupby("scenario", sort=False):
        route = SCREEN_TITLE if scenario == SCREEN else names.get(str(scenario), str(scenario))
        png = _draw(route, cells, run_dir / CHART_DIR / f"{slug(str(scenario))}.png")
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f'<section class="audit-route"><h3>{html.escape(route)}</h3>'
                     f'<img alt="{html.escape(route)} chart" src="data:image/png;base64,{data}">')
        parts.extend(_stalls(run_dir, route, cells))
        parts.append("</section>")
    return "".join(parts)
