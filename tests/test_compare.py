"""Comparing two constructed run folders (no load is run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from harness.answer import compare
from harness.cli import main
from tests.run_folders import row, write_run

SMALL_CSV = Path(__file__).parent / "data" / "results_small.csv"
META = {"git_commit": "aaa", "cpu_count": 2, "cpu_model": "Test CPU", "versions": {"uvicorn": "0.30"},
        "knobs": {"duration": 5, "loop": "uvloop"}, "run_id": "x"}


def _cells(loop: str, rps: dict[str, list[float]], p99: float = 100.0, **extra: object) -> list[dict]:
    return [row(target=t, loop=loop, repeat=i, rps=v, p99_ms=p99, **extra)
            for t, values in rps.items() for i, v in enumerate(values)]


def test_join_names_the_knob_that_differs_and_the_meta(tmp_path: Path):
    a = write_run(tmp_path / "a", _cells("uvloop", {"correct-async": [100.0], "fake-async": [10.0]}), META)
    b = write_run(tmp_path / "b", _cells("asyncio", {"correct-async": [100.0], "thread-pool": [50.0]}),
                  {**META, "git_commit": "bbb", "knobs": {"duration": 5, "loop": "asyncio"}})
    ra, rb = compare.load_run(a), compare.load_run(b)
    join, differ = compare.knob_differences(ra.df, rb.df)
    assert differ == [("loop", "uvloop", "asyncio")]
    assert "loop" not in join and "target" in join
    table, _, _ = compare.compare(ra, rb)
    assert table["target"].tolist() == ["correct-async"]  # the one cell both runs measured
    assert compare.meta_differences(ra.meta, rb.meta) == [("git_commit", "aaa", "bbb")]
    assert compare.machine_warning(ra.meta, rb.meta) is None


def test_machines_that_differ_are_warned_about(tmp_path: Path, capsys):
    a = write_run(tmp_path / "a", _cells("uvloop", {"correct-async": [100.0]}), META)
    b = write_run(tmp_path / "b", _cells("uvloop", {"correct-async": [100.0]}),
                  {**META, "cpu_count": 8, "cpu_model": "Other CPU"})
    assert main(["compare", str(a), str(b)]) == 0
    captured = capsys.readouterr()
    assert ("warning: the runs come from different machines "
            "(cpu_count 2 vs 8; cpu_model Test CPU vs Other CPU)") in captured.err
    assert "cpu_count: 2 (A) vs 8 (B)" in captured.out


def test_verdicts_with_repeats_use_the_exact_permutation_test():
    spread = compare.Spread(1.05, "test")
    a, b = np.array([100.0, 102, 98, 101, 99]), np.array([120.0, 118, 121, 119, 122])
    faster = compare.verdict(a, b, True, spread)
    assert faster.verdict == "faster" and faster.ratio == pytest.approx(1.2)
    assert faster.p == pytest.approx(2 / 252) and faster.min_p == pytest.approx(2 / 252)
    assert 1 < faster.lo <= 1.2 <= faster.hi  # the bootstrap interval stays as the effect size
    assert "exact permutation test, 5 vs 5 repeats: p = 0.0079" in faster.method
    overlap = compare.verdict(np.array([100.0, 110, 90, 104, 97]), np.array([105.0, 95, 112, 99, 101]),
                              True, spread)
    assert overlap.verdict == "no significant difference" and overlap.p > 0.05 and overlap.lo < 1 < overlap.hi
    # For latency, a lower B is faster.
    lower_p99 = compare.verdict(b * 2, a, False, spread)
    assert lower_p99.verdict == "faster"


def test_three_against_three_cannot_show_a_difference_at_five_percent():
    # All of B above all of A is the most extreme of the 20 orderings: p = 0.1, never ≤ 0.05. The
    # old bootstrap called this "faster" (its interval excluded 1).
    v = compare.verdict(np.array([100.0, 102, 98]), np.array([120.0, 118, 121]), True,
                        compare.Spread(1.05, "test"))
    assert v.verdict == "cannot tell: 3 vs 3 repeats cannot show a difference at 5%: use --repeat 5"
    assert v.p == pytest.approx(0.1) and v.min_p == pytest.approx(0.1)
    # 3 vs 5 can (smallest p 2/56): the word is then the test's.
    v = compare.verdict(np.array([100.0, 102, 98]), np.array([120.0, 118, 121, 119, 122]), True,
                        compare.Spread(1.05, "test"))
    assert v.verdict == "faster" and v.p == pytest.approx(2 / 56)


def test_verdicts_without_repeats_use_the_observed_spread():
    spread = compare.Spread(1.08, "repeats of 3 cell(s)")
    assert compare.verdict(np.array([100.0]), np.array([106.0]), True, spread).verdict == "within noise"
    assert compare.verdict(np.array([100.0]), np.array([80.0]), True, spread).verdict == "probably slower"
    slower_p99 = compare.verdict(np.array([100.0, 101]), np.array([130.0]), False, spread)
    assert slower_p99.verdict == "probably slower"
    assert compare.verdict(np.array([100.0]), np.array([]), True, spread).verdict == "not measured"


def test_repeat_spread_comes_from_repeats_then_meta(tmp_path: Path):
    noisy = write_run(tmp_path / "noisy", _cells("uvloop", {"correct-async": [100.0, 110.0],
                                                            "fake-async": [10.0, 10.2]}), META)
    single = write_run(tmp_path / "single", _cells("uvloop", {"correct-async": [100.0]}),
                       {**META, "cpu_speed_spread": 1.15})
    s = compare.repeat_spread([compare.load_run(noisy)], "rps")
    assert s.ratio == pytest.approx(np.percentile([1.1, 1.02], 90)) and "2 cell(s)" in s.source
    s = compare.repeat_spread([compare.load_run(single)], "rps")
    assert s.ratio == 1.15 and "CPU-speed" in s.source


def test_cli_writes_table_csv_and_chart(tmp_path: Path, capsys):
    a = write_run(tmp_path / "a", _cells("uvloop", {"correct-async": [100.0, 101, 99, 102, 98],
                                                    "fake-async": [10.0, 10.1, 9.9, 10.3, 9.8]}, p99=200.0),
                  META)
    b = write_run(tmp_path / "b", _cells("asyncio", {"correct-async": [80.0, 81, 79, 82, 78],
                                                     "fake-async": [10.0, 10.2, 9.9, 9.7, 10.1]}, p99=250.0),
                  {**META, "knobs": {"duration": 5, "loop": "asyncio"}})
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "B differs from A in loop: uvloop (A) vs asyncio (B)" in text
    assert "100 → 80 (×0.80" in text and ": slower, p=0.0079" in text
    csv = pd.read_csv(out / "compare.csv")
    assert csv["target"].tolist() == ["correct-async", "fake-async"]
    assert csv["rps_verdict"].tolist() == ["slower", "no significant difference"]
    assert csv["p99_ms_verdict"].tolist() == ["slower", "slower"]  # 200 → 250 in every repeat
    assert csv["rps_ratio"].iloc[0] == pytest.approx(0.8)
    assert set(csv["a_repeats"]) == {5} and set(csv["b_repeats"]) == {5}
    assert csv["rps_p"].iloc[0] == pytest.approx(2 / 252)
    assert csv["rps_min_p"].iloc[0] == pytest.approx(2 / 252)
    img = mpimg.imread(out / "compare.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 600


def test_no_shared_cell_is_one_line_exit_2(tmp_path: Path, capsys):
    a = write_run(tmp_path / "a", _cells("uvloop", {"correct-async": [100.0]}), META)
    b = write_run(tmp_path / "b", _cells("uvloop", {"fake-async": [10.0]}), META)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "share no measured cell" in err and "target" in err
    assert not any(p.name.startswith("compare") for p in b.iterdir())


def test_old_format_results_still_compare(tmp_path: Path, capsys):
    a = tmp_path / "old"
    a.mkdir()
    shutil.copy(SMALL_CSV, a / "results.csv")  # no meta.json either
    df = pd.read_csv(SMALL_CSV)
    df.loc[df["target"] == "correct-async", "rps"] *= 1.5
    b = write_run(tmp_path / "new", [], META)
    df.to_csv(b / "results.csv", index=False)
    assert main(["compare", str(a), str(b)]) == 0
    capsys.readouterr()
    csv = pd.read_csv(b / "compare-vs-old" / "compare.csv")
    assert len(csv) == 17  # 18 cells, one failed in both
    faster = csv[csv["target"] == "correct-async"]
    assert (faster["rps_verdict"] == "probably faster").all()  # 2 repeats: no test, outside the spread
    assert (csv.loc[csv["target"] != "correct-async", "rps_verdict"] == "within noise").all()
