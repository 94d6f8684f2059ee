"""Aggregation and plotting from a synthetic results.csv (no benchmark is run)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.answer.aggregate import (
    ResultsFormatError,
    coerce,
    failures,
    load_results,
    median_interval,
    noisy_cells,
    summarize,
)
from harness.data import schema
from harness.present.plot import plot_run

DATA = Path(__file__).parent / "data"
SMALL_CSV = DATA / "results_small.csv"

TARGETS = ["fake-async", "correct-async", "thread-pool"]
WORKERS = [1, 2, 4]
REPEAT_FACTORS = [0.90, 0.94]  # rps = ceiling × factor, per repeat
# Per-target shading of rps (1.0 for the hand-checked cpu/correct-async cell) and /health p99 (ms).
TARGET_FACTOR = {("io", t): 1.0 for t in TARGETS} | {
    ("cpu", "fake-async"): 0.97, ("cpu", "correct-async"): 1.0, ("cpu", "thread-pool"): 0.8,
}
HEALTH_P99 = {
    ("io", "fake-async"): 150.0, ("io", "correct-async"): 2.0, ("io", "thread-pool"): 4.0,
    ("cpu", "fake-async"): 150.0, ("cpu", "correct-async"): 140.0, ("cpu", "thread-pool"): 30.0,
}
INVALID_CELL = ("thread-pool", "cpu", 2)
FAILED_CELL = ("fake-async", "io", 4)


def _ceiling(target: str, scenario: str, workers: int) -> float:
    if scenario == "cpu":  # 20 ms of CPU per request, at most 2 cores
        return min(workers, 2) * 50.0
    # io: 3 upstream calls × 50 ms, 32 users
    if target == "fake-async":
        return workers / 0.150
    if target == "correct-async":
        return 32 / 0.050
    return min(32, 40 * workers) / 0.150


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(schema.COLUMNS, np.nan)
    row.update(
        target="correct-async", scenario="cpu", workers=1, users=32, loop="uvloop", pool_size=40,
        io_ms=50, cpu_ms=20, fanout=3, cpu_kind="python", http_client="httpx", http_connections=100,
        launch="uvicorn", server="uvicorn", probe=True, repeat=0,
        status="ok", error="", valid=True, invalid_reason="", warmup_s=2, duration_s=10,
        started_at="2024-01-01T00:00:00", raw_dir="raw/x",
    )
    row.update(overrides)
    return row


def small_results() -> pd.DataFrame:
    """2 scenarios × 3 targets × workers 1,2,4 × 2 repeats; one invalid cell, one failed cell."""
    rows = []
    for scenario in ("io", "cpu"):
        for target in TARGETS:
            for workers in WORKERS:
                ceiling = round(_ceiling(target, scenario, workers), 3)
                for repeat, factor in enumerate(REPEAT_FACTORS):
                    cell = (target, scenario, workers)
                    common = dict(target=target, scenario=scenario, workers=workers, repeat=repeat,
                                  ceiling_rps=ceiling, cpu_ms=0 if scenario == "io" else 20)
                    if cell == FAILED_CELL:
                        rows.append(_row(**common, status="failed", valid=False,
                                         error="target did not become ready within 30 s"))
                        continue
                    rps = round(ceiling * factor * TARGET_FACTOR[scenario, target], 2)
                    p50 = round(32 / rps * 1000, 2)
                    rows.append(_row(
                        **common, requests=int(rps * 10), failures=0, fail_ratio=0.0, rps=rps,
                        p50_ms=p50, p90_ms=round(p50 * 1.2, 2), p95_ms=round(p50 * 1.3, 2),
                        p99_ms=round(p50 * 1.6, 2), p999_ms=round(p50 * 2, 2), max_ms=round(p50 * 3, 2),
                        health_requests=100, health_p99_ms=HEALTH_P99[scenario, target] + repeat,
                        loop_lag_p99_ms=HEALTH_P99[scenario, target] - 1.0,
                        efficiency=round(rps / ceiling, 4),
                        valid=cell != INVALID_CELL,
                        invalid_reason="load generator CPU above 90%" if cell == INVALID_CELL else "",
                    ))
    return pd.DataFrame(rows, columns=schema.COLUMNS)


def write_fixture() -> None:
    """Regenerate tests/data/results_small.csv, in schema version 1 (the columns it had when it was
    written: it is the old-format fixture): python -c 'from tests.test_plot import *; write_fixture()'."""
    DATA.mkdir(exist_ok=True)
    small_results()[schema.columns_of(1)].to_csv(SMALL_CSV, index=False)


def _write(df: pd.DataFrame, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(run_dir / "results.csv", index=False)
    return run_dir


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(SMALL_CSV, run / "results.csv")
    return run


def _one_cell(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame([_row(repeat=i, rps=v, ceiling_rps=100.0) for i, v in enumerate(values)])


# ------------------------------------------------------------------------------------------ load


def test_fixture_file_matches_helper():
    """tests/data/results_small.csv is small_results() as schema 1 wrote it (before the columns of
    versions 2 and 3 existed): those columns load empty (so old run folders keep plotting)."""
    header = SMALL_CSV.read_text().splitlines()[0].split(",")
    assert header == schema.columns_of(1)
    assert not set(schema.OPTIONAL_COLUMNS) & set(header)
    pd.testing.assert_frame_equal(load_results(SMALL_CSV), coerce(small_results()), check_exact=False,
                                  check_like=True)


def test_load_results_dtypes_and_run_folder(small_run: Path):
    df = load_results(small_run)  # the folder, not the CSV
    assert len(df) == 2 * 3 * 3 * 2
    assert df["valid"].dtype == bool
    assert df["rps"].dtype == "float64" and df["health_p99_ms"].dtype == "float64"
    assert df["workers"].tolist()[:3] == [1, 1, 2]
    assert df.loc[df["status"] == "failed", "rps"].isna().all()


def test_load_results_accepts_string_booleans(tmp_path: Path):
    df = small_results()
    df["valid"] = df["valid"].map({True: "True", False: "False"})
    _write(df, tmp_path)
    assert load_results(tmp_path / "results.csv")["valid"].sum() == len(df) - 2 - 2  # failed + invalid


def test_load_results_names_missing_columns(tmp_path: Path):
    _write(small_results().drop(columns=["health_p99_ms", "ceiling_rps"]), tmp_path)
    with pytest.raises(ResultsFormatError, match="health_p99_ms") as err:
        load_results(tmp_path)
    assert "ceiling_rps" in str(err.value)
    assert isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------------- summarize


def test_summarize_one_row_per_cell_with_median(small_run: Path):
    s = summarize(load_results(small_run))
    assert len(s) == 2 * 3 * 3
    assert not s.duplicated(["target", "scenario", "workers"]).any()
    # Hand check: cpu / correct-async / 1 worker: ceiling 50 → rps 45.0 and 47.0.
    cell = s[(s["scenario"] == "cpu") & (s["target"] == "correct-async") & (s["workers"] == 1)].iloc[0]
    assert cell["rps"] == pytest.approx(46.0)
    assert cell["repeats"] == 2
    assert cell["ceiling_rps"] == 50.0
    assert cell["efficiency"] == pytest.approx(0.92)
    assert cell["health_p99_ms"] == pytest.approx(140.5)
    assert cell["rps_cv"] == pytest.approx(math.sqrt(2) / 46.0)
    assert bool(cell["valid"]) and cell["failed_repeats"] == 0


def test_summarize_range_interval_for_two_repeats(small_run: Path):
    s = summarize(load_results(small_run))
    ok = s[s["repeats"] == 2]
    assert (ok["interval"] == "range").all()
    cell = ok[(ok["scenario"] == "cpu") & (ok["target"] == "correct-async") & (ok["workers"] == 1)].iloc[0]
    assert (cell["rps_lo"], cell["rps_hi"]) == (45.0, 47.0)
    assert cell["p50_ms_lo"] == pytest.approx(min(32 / 45 * 1000, 32 / 47 * 1000), abs=0.01)
    assert (ok["rps_lo"] <= ok["rps"]).all() and (ok["rps"] <= ok["rps_hi"]).all()


def test_summarize_invalid_and_failed_cells(small_run: Path):
    s = summarize(load_results(small_run)).set_index(["target", "scenario", "workers"])
    bad = s.loc[INVALID_CELL]
    assert not bad["valid"] and bad["invalid_reason"] == "load generator CPU above 90%"
    failed = s.loc[FAILED_CELL]
    assert failed["failed_repeats"] == 2 and failed["repeats"] == 0
    assert np.isnan(failed["rps"]) and failed["interval"] == "none"
    assert "did not become ready" in failed["error"]
    assert s["valid"].sum() == len(s) - 2


def _binom_coverage(n: int, j: int) -> float:
    """P(x_(j) <= median <= x_(n+1-j)) = P(j <= B <= n - j), B ~ Bin(n, 1/2), by hand."""
    return sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2**n


def test_order_statistic_interval_eight_repeats():
    values = [10.0, 12.0, 11.0, 15.0, 9.0, 13.0, 14.0, 8.0]
    # n = 8: j=2 covers 1 - 2·(1+8)/256 = 0.930 < 0.95; j=1 covers 1 - 2/256 = 0.992 → [x_(1), x_(8)].
    assert _binom_coverage(8, 2) == pytest.approx(0.9297, abs=1e-4) and _binom_coverage(8, 1) > 0.95
    s = summarize(_one_cell(values)).iloc[0]
    assert s["interval"] == "95%"
    assert (s["rps_lo"], s["rps"], s["rps_hi"]) == (8.0, 11.5, 15.0)
    assert s["repeats"] == 8
    assert s["rps_cv"] == pytest.approx(np.std(values, ddof=1) / np.mean(values))


def test_order_statistic_interval_ten_repeats_is_inner():
    values = [float(v) for v in (5, 1, 9, 3, 7, 2, 10, 4, 8, 6)]
    # n = 10: j=2 covers 1 - 2·(1+10)/1024 = 0.979; j=3 covers 1 - 2·56/1024 = 0.891 → [x_(2), x_(9)].
    assert _binom_coverage(10, 2) >= 0.95 > _binom_coverage(10, 3)
    assert median_interval(values) == (2.0, 9.0, "95%")
    s = summarize(_one_cell(values)).iloc[0]
    assert (s["rps_lo"], s["rps"], s["rps_hi"], s["interval"]) == (2.0, 5.5, 9.0, "95%")


def test_interval_falls_back_to_range_below_six_repeats():
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0, "range")  # best coverage 0.9375
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])[2] == "95%"  # coverage 0.96875
    assert median_interval([7.0]) == (7.0, 7.0, "range")
    s = summarize(_one_cell([42.0])).iloc[0]
    assert s["interval"] == "range" and np.isnan(s["rps_cv"])


def test_failures_and_noisy_cells(small_run: Path):
    df = load_results(small_run)
    f = failures(df)
    assert list(f.columns) == ["target", "scenario", "workers", "users", "repeat", "error"]
    assert len(f) == 2 and set(f["target"]) == {"fake-async"}
    s = summarize(df)
    assert noisy_cells(s).empty  # factors 0.90 / 0.94 → cv ≈ 0.031
    assert len(noisy_cells(s, threshold=0.02)) == len(s) - 1  # every cell but the failed one


# ------------------------------------------------------------------------------------------ plot


def test_plot_run_writes_one_png_per_scenario_and_summary(small_run: Path):
    paths = plot_run(small_run)
    assert sorted(p.name for p in paths) == ["cpu.png", "io.png"]
    for p in paths:
        assert p.parent == small_run / "charts"
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    summary = pd.read_csv(small_run / "charts" / "summary.csv")
    assert len(summary) == 18 and {"rps", "rps_lo", "rps_hi", "interval", "valid"} <= set(summary.columns)


def test_plot_run_when_every_row_failed(tmp_path: Path):
    df = small_results()
    df["status"] = "failed"
    df["error"] = "connection refused"
    for col in schema.MEASURE_COLUMNS:
        if col not in ("status", "error", "valid", "invalid_reason", "ceiling_rps", "started_at", "raw_dir"):
            df[col] = np.nan
    paths = plot_run(_write(df, tmp_path / "run"))
    assert len(paths) == 2 and all(p.stat().st_size > 0 for p in paths)
    summary = pd.read_csv(tmp_path / "run" / "charts" / "summary.csv")
    assert (summary["repeats"] == 0).all() and (summary["failed_repeats"] == 2).all()


def test_plot_run_single_worker_value_and_nan_measures(tmp_path: Path):
    df = small_results()
    df = df[(df["workers"] == 2) & (df["scenario"] == "io")].copy()
    df.loc[df["target"] == "thread-pool", ["health_p99_ms", "p99_ms", "ceiling_rps"]] = np.nan
    paths = plot_run(_write(df, tmp_path / "run"))
    assert [p.name for p in paths] == ["io.png"] and paths[0].stat().st_size > 0


# ------------------------------------------------------------------------- what the chart says


def _texts(df: pd.DataFrame, scenario: str, x: str | None = None):
    from harness.present.plot import chart_texts

    rows = coerce(df[df["scenario"] == scenario])
    return chart_texts(rows, summarize(rows), x)


def test_chart_texts_of_the_small_run():
    df = small_results()
    io = _texts(df, "io")
    assert io.x == "workers" and io.x_label == "uvicorn worker processes"
    assert io.title == "I/O-bound endpoint (/io): 3 upstream calls × 50 ms each, 32 concurrent users"
    assert io.panels == ["rps", "lat", "health"]  # no memory measured
    assert io.rows == [()] and io.row_cols == [] and io.line_cols == []
    assert io.legend == ["fake-async (pool 40)", "correct-async (pool 40)", "thread-pool (pool 40)"]
    assert io.footnotes == ["✕ failed: fake-async @ 4 workers: 2/2 repeats failed: "
                            "target did not become ready within 30 s"]
    cpu = _texts(df, "cpu")
    assert cpu.title == "CPU-bound endpoint (/cpu): 20 ms of Python CPU per request, 32 concurrent users"
    assert cpu.footnotes == ["○ invalid: thread-pool @ 2 workers: load generator CPU above 90%"]
    mixed = _texts(df.assign(scenario="mixed"), "mixed")
    assert mixed.title.startswith("Mixed endpoint (/mixed): 1 upstream call of 50 ms then ")


def _sweep_rows(**knobs) -> pd.DataFrame:
    """Rows of a constructed sweep: rps at 90% of each cell's ceiling, memory growing with the pool."""
    from harness.data.matrix import build_cells, make_config

    rows = []
    for cell in build_cells(make_config("default", **knobs), cores=2):
        rps = 0.9 * cell.ceiling_rps
        pool = cell.pool_size or 1
        rows.append(_row(**cell.params(), ceiling_rps=cell.ceiling_rps, rps=rps, requests=int(rps * 5),
                         failures=0, fail_ratio=0.0, p50_ms=32 / rps * 1000, p99_ms=48 / rps * 1000,
                         health_p99_ms=5.0, efficiency=0.9, target_rss_mb=60.0 + 20 * pool,
                         valid=cell.pool_size != 64,
                         invalid_reason="" if cell.pool_size != 64 else "load generator saturated"))
    return pd.DataFrame(rows)


def test_pool_sweep_puts_pool_size_on_x_and_adds_memory():
    df = _sweep_rows(targets=["thread-pool", "correct-async"], scenarios=["io"], workers=[1], fanout=[1],
                     io_ms=[100], pool_size={"thread-pool": [2, 4, 8, 16, 32, 64]})
    t = _texts(df, "io")
    assert t.x == "pool_size" and t.x_label.startswith("pool size")
    assert t.panels == ["rps", "lat", "health", "mem"]
    assert t.legend == ["correct-async (no pool: flat line)", "thread-pool"]
    assert t.footnotes == ["○ invalid: thread-pool @ pool_size 64: load generator saturated"]
    assert "pool size:" not in t.subtitle and "workers: 1" in t.subtitle
    assert t.title == "I/O-bound endpoint (/io): 1 upstream call × 100 ms each, 32 concurrent users"
    # the axis can be asked for: workers (one value); six pool sizes are too many rows, so lines
    w = _texts(df, "io", x="workers")
    assert w.x == "workers" and w.row_cols == [] and w.line_cols == ["pool_size"]
    assert w.legend[0] == "correct-async, pool_size=?" and w.legend[1] == "thread-pool, pool_size=2"


def test_other_swept_knobs_become_rows_with_titles():
    df = _sweep_rows(targets=["thread-pool", "correct-async"], scenarios=["io"], workers=[1, 2, 4],
                     loop=["uvloop", "asyncio"])
    t = _texts(df, "io")
    assert t.x == "workers"
    assert t.row_cols == ["loop"] and t.row_titles == ["loop=asyncio", "loop=uvloop"]
    assert t.subtitle.startswith("rows: one per loop") and "event loop: (one row each)" in t.subtitle
    assert t.legend == ["correct-async", "thread-pool (pool 40)"]


def test_more_combinations_than_rows_become_labelled_lines():
    df = _sweep_rows(targets=["correct-async"], scenarios=["io"], workers=[1, 2], io_ms=[10, 20, 30],
                     fanout=[1, 2])
    t = _texts(df, "io", x="workers")
    assert t.rows == [()] and t.line_cols == ["io_ms", "fanout"]
    assert len(t.legend) == 6 and t.legend[0] == "correct-async, io_ms=10, fanout=1"


def test_plot_run_draws_a_sweep_with_rows_and_memory(tmp_path: Path):
    df = _sweep_rows(targets=["thread-pool", "process-pool"], scenarios=["cpu"], workers=[1],
                     loop=["uvloop", "asyncio"], pool_size=[1, 2, 4])
    paths = plot_run(_write(df, tmp_path / "run"))
    assert [p.name for p in paths] == ["cpu.png"] and paths[0].stat().st_size > 10_000
    with pytest.raises(ValueError, match="cannot be an x axis"):
        plot_run(tmp_path / "run", x="loop")


def _drawn_points(ax) -> int:
    """Data points drawn on a panel: cell markers with a finite x (flat reference lines, ceilings
    and error-bar caps carry none of the cell markers)."""
    from harness.present.plot import _MARKERS

    return sum(int(np.isfinite(np.asarray(ln.get_xdata(), dtype="float64")).sum())
               for ln in ax.lines if ln.get_marker() in _MARKERS)


def test_rows_of_only_ceilings_or_flat_lines_are_not_drawn(tmp_path: Path, monkeypatch):
    """The issue's case: pool size on x, and rows W=2/W=4 that hold only a pool-less target's flat
    line. Those rows are dropped (named in a footnote); every panel drawn has measured points."""
    from harness.present import plot

    df = pd.concat([_sweep_rows(targets=["process-pool"], scenarios=["cpu"], workers=[1],
                                pool_size=[1, 2, 4]),
                    _sweep_rows(targets=["correct-async"], scenarios=["cpu"], workers=[1, 2, 4])])
    t = _texts(df, "cpu", x="pool_size")
    assert t.x == "pool_size" and t.row_cols == ["workers"] and t.rows == [(1,)]
    assert t.footnotes[-1].startswith("not drawn (only ceilings or single points")
    assert "workers=2; workers=4" in t.footnotes[-1]
    figs = []
    monkeypatch.setattr(plot.plt, "close", figs.append)
    plot_run(_write(df, tmp_path / "run"), x="pool_size")
    axes = [ax for ax in figs[0].axes if ax.get_title()]
    assert len(axes) == 4  # one row: rps, latency, /health, memory
    counts = {ax.get_title(): _drawn_points(ax) for ax in axes}
    assert all(n > 0 for n in counts.values()), counts
    assert counts[plot.PANELS["rps"]] == 3  # the three process-pool sizes
