"""Results stay readable: a results.csv written before the cost columns existed (schema 1) still
loads, plots, recommends and compares with those columns empty; an unknown version is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.answer import aggregate, compare, recommend
from harness.data import schema
from harness.present import plot

DATA = Path(__file__).parent / "data"
OLD_CSV = DATA / "results_small.csv"  # written by the harness's schema 1, before this format change


def test_history_adds_columns_only_and_ends_at_the_current_format():
    assert schema.SCHEMA_VERSION == max(schema.HISTORY)
    assert sorted(schema.columns_of(schema.SCHEMA_VERSION)) == sorted(schema.COLUMNS)
    every = [c for v in schema.HISTORY for c in schema.HISTORY[v]]
    assert len(every) == len(set(every)), "a column was added twice"
    for v in schema.HISTORY:
        assert set(schema.columns_of(v - 1)) < set(schema.columns_of(v)) or v == min(schema.HISTORY)
    assert schema.HISTORY[3] == ["target_rss_mb", "ctx_switches_per_req"]
    assert "bound_by" in schema.HISTORY[2]
    assert schema.OPTIONAL_COLUMNS == [c for c in schema.columns_of(schema.SCHEMA_VERSION)
                                       if c not in schema.HISTORY[1]]


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(OLD_CSV, run / "results.csv")
    return run


def test_old_file_reads_with_newer_columns_empty(old_run: Path):
    header = (old_run / "results.csv").read_text().splitlines()[0].split(",")
    assert "target_rss_mb" not in header  # the fixture really is the old format
    assert schema.file_version(old_run / "results.csv", header) == 1
    df = aggregate.load_results(old_run)
    assert list(df.columns[: len(schema.COLUMNS)]) == schema.COLUMNS
    assert df["target_rss_mb"].isna().all() and df["ctx_switches_per_req"].isna().all()
    assert df["rps"].notna().sum() > 0


def test_old_run_still_plots_recommends_and_compares(old_run: Path, tmp_path: Path):
    paths = plot.plot_run(old_run)
    assert sorted(p.name for p in paths) == ["cpu.png", "io.png"]
    df = aggregate.load_results(old_run)
    texts = plot.chart_texts(df[df["scenario"] == "io"], aggregate.summarize(df[df["scenario"] == "io"]))
    assert "mem" not in texts.panels  # nothing measured, no memory panel
    lines: list[str] = []
    results = recommend.run(old_run, say=lines.append)
    assert results and (old_run / "recommend.csv").is_file()
    other = tmp_path / "other"
    shutil.copytree(old_run, other)
    table = compare.run(old_run, other, out=tmp_path / "cmp", say=lines.append, warn=lines.append)
    assert len(table) > 0 and (tmp_path / "cmp" / "compare.csv").is_file()


def test_meta_version_beside_the_file_is_used(old_run: Path):
    (old_run / "meta.json").write_text(json.dumps({"schema_version": 1}))
    assert aggregate.load_results(old_run)["target_rss_mb"].isna().all()


def test_unknown_version_is_refused(old_run: Path):
    (old_run / "meta.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(aggregate.ResultsFormatError, match="schema version 99"):
        aggregate.load_results(old_run)


def test_unknown_column_without_meta_is_refused(old_run: Path):
    df = pd.read_csv(old_run / "results.csv")
    df["from_the_future_ms"] = 1.0
    df.to_csv(old_run / "results.csv", index=False)
    with pytest.raises(aggregate.ResultsFormatError, match="from_the_future_ms"):
        aggregate.load_results(old_run)


def test_a_column_its_version_should_have_is_named(old_run: Path):
    df = pd.read_csv(old_run / "results.csv").drop(columns=["p99_ms"])
    df.to_csv(old_run / "results.csv", index=False)
    with pytest.raises(aggregate.ResultsFormatError, match="p99_ms"):
        aggregate.load_results(old_run)
