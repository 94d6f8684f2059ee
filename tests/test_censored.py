"""Censored p99 on charts: a ▲ at the bound it exceeds, and a footnote saying so."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.answer import aggregate  # noqa: E402
from harness.present import plot  # noqa: E402
from tests.run_folders import row, write_run  # noqa: E402


def _open_loop_run(tmp_path: Path) -> Path:
    """fake-async /io at 10 and 30 rps: the 30 rps cell's failures reach its p99."""
    rows = [row(target="fake-async", pool_size=None, users=0, rate=10.0, rps=9.9, p50_ms=60.0, p99_ms=120.0),
            row(target="fake-async", pool_size=None, users=0, rate=30.0, rps=19.0, p50_ms=848.0,
                p99_ms=np.nan, p99_lower_ms=10_000.0, fail_ratio=0.06, failures=9, valid=True)]
    return write_run(tmp_path / "run", rows)


def test_the_bound_is_drawn_as_a_triangle_and_footnoted(tmp_path: Path):
    summary = aggregate.summarize(aggregate.load_results(_open_loop_run(tmp_path)))
    censored = summary[summary["rate"] == 30.0]
    assert np.isnan(censored["p99_ms"].iloc[0]) and censored["p99_lower_ms"].iloc[0] == 10_000.0
    fig, ax = plt.subplots()
    drawn = plot._draw_p99_bound(ax, summary.assign(_x=summary["rate"].astype(float)), (0.2, 0.2, 0.8))
    assert drawn == [10_000.0]
    [line] = ax.get_lines()
    assert line.get_marker() == "^"
    assert list(line.get_xdata()) == [30.0] and list(line.get_ydata()) == [10_000.0]
    plt.close(fig)
    notes = plot._footnotes(summary, "rate", [])
    assert any(n.startswith("▲ latency: failures reach the p99") and "p99 > 10000 ms" in n for n in notes)


def test_an_old_summary_without_the_column_draws_nothing_extra():
    frame = pd.DataFrame({"_x": [1.0], "p99_ms": [5.0]})
    fig, ax = plt.subplots()
    assert plot._draw_p99_bound(ax, frame, (0, 0, 0)) == [] and ax.get_lines() == []
    plt.close(fig)


def test_the_chart_of_a_censored_run_renders(tmp_path: Path):
    [png] = plot.plot_run(_open_loop_run(tmp_path))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
