"""The SLO rule on constructed run folders (no load is run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.answer import aggregate, recommend
from harness.cli import main
from tests.run_folders import pool_sweep_rows, row, write_run

SMALL_CSV = Path(__file__).parent / "data" / "results_small.csv"


def _one(results: list[recommend.GroupResult]) -> recommend.GroupResult:
    assert len(results) == 1
    return results[0]


def _decide(rows: list[dict], slo: float = 1000.0, fail: float = 0.01) -> recommend.GroupResult:
    return _one(recommend.recommend(aggregate.coerce(pd.DataFrame(rows)), slo, fail))


# ------------------------------------------------------------------------------------- the rule


def test_pool_sweep_loose_slo_picks_the_smallest_pool_at_full_throughput():
    # pool 64 is 0.3% faster than 32 (X*), 32 is within 5% and cheaper; 16 gives half.
    r = _decide(pool_sweep_rows([2, 4, 8, 16, 32, 64]))
    assert r.chosen is not None and r.chosen["pool_size"] == 32
    assert r.best is not None and r.best["pool_size"] == 64
    roles = dict(zip(r.cells["pool_size"], r.cells["role"], strict=True))
    assert roles[32] == "chosen" and roles[64] == "best"
    assert roles[2] == "infeasible"  # p99 ≈ 1728 ms > 1000
    assert list(r.cells["pool_size"]) == [2, 4, 8, 16, 32, 64]  # cheapest first
    assert "pool_size=16 reaches only 50% of the best" in r.why[0]


def test_slo_below_pool_32_says_none_meets_it_and_names_the_closest():
    rows = pool_sweep_rows([2, 4, 8, 16, 32, 64])
    p99_32 = next(x["p99_ms"] for x in rows if x["pool_size"] == 32)
    r = _decide(rows, slo=p99_32 - 5)
    assert r.chosen is None and r.best is None
    assert r.why[0] == "no configuration meets the SLO"
    assert r.closest is not None and r.closest["pool_size"] == 32  # lowest p99 (64's is 1 ms higher)
    text = recommend.report([r], p99_32 - 5, 0.01)
    assert "no configuration meets the SLO" in text and "closest: pool_size=32" in text


def test_infeasible_cells_are_excluded_for_their_reason():
    rows = [
        row(pool_size=8, rps=100.0, p99_ms=300.0),
        row(pool_size=16, rps=200.0, p99_ms=200.0, valid=False,
            invalid_reason="load generator CPU above 90%"),
        row(pool_size=32, rps=210.0, p99_ms=150.0, fail_ratio=0.05),
        row(pool_size=64, repeat=0, status="failed", error="boom"),
        row(pool_size=64, repeat=1, rps=220.0, p99_ms=150.0),
        row(pool_size=128, rps=150.0, p99_ms=float("nan")),
    ]
    r = _decide(rows)
    reasons = dict(zip(r.cells["pool_size"], r.cells["reason"], strict=True))
    assert reasons[8] == ""
    assert reasons[16].startswith("invalid: load generator")
    assert reasons[32].startswith("failures 5.0%")
    assert reasons[64] == "1 of 2 repeats failed"
    assert reasons[128].startswith("p99 unknown")
    assert r.chosen is not None and r.chosen["pool_size"] == 8  # the only feasible one


def test_none_feasible_and_no_p99_anywhere_says_so():
    r = _decide([row(pool_size=8, rps=6.0, p99_ms=float("nan"), valid=False, invalid_reason="few requests"),
                 row(pool_size=16, status="failed", error="boom")])
    assert r.chosen is None and r.closest is None
    assert r.why == ["no configuration meets the SLO",
                     "no cell has a measured p99 to call closest (too few requests, or every repeat failed)"]
    assert set(r.cells["role"]) == {"infeasible"}


@pytest.mark.parametrize("cheap_rps, chosen_pool", [(95.5, 8), (94.0, 16)])
def test_five_percent_rule(cheap_rps: float, chosen_pool: int):
    rows = [row(pool_size=8, rps=cheap_rps, p99_ms=300.0), row(pool_size=16, rps=100.0, p99_ms=300.0)]
    r = _decide(rows)
    assert r.chosen is not None and r.chosen["pool_size"] == chosen_pool


def test_cheapest_is_fewest_workers_then_pool_then_memory():
    rows = [
        row(workers=2, pool_size=8, rps=100.0, p99_ms=100.0),
        row(workers=1, pool_size=64, rps=99.0, p99_ms=100.0),
        row(workers=1, pool_size=32, rps=98.0, p99_ms=100.0),
    ]
    r = _decide(rows)
    assert [(int(c.workers), int(c.pool_size)) for c in r.cells.itertuples()] == [(1, 32), (1, 64), (2, 8)]
    assert r.chosen is not None and (r.chosen["workers"], r.chosen["pool_size"]) == (1, 32)
    # Equal sizes: memory decides (unmeasured memory sorts last); a target without a pool is cheapest.
    nan = float("nan")
    cells = pd.DataFrame([
        {"workers": 1, "pool_size": 4, "http_connections": 100, "target_rss_mb": rss, "rps": 1.0}
        for rss in (300.0, nan, 120.0)
    ] + [{"workers": 1, "pool_size": nan, "http_connections": 100, "target_rss_mb": 500.0, "rps": 1.0}])
    ordered = recommend.cheapest_first(cells)
    assert ordered["target_rss_mb"].tolist()[:3] == [500.0, 120.0, 300.0]
    assert pd.isna(ordered["target_rss_mb"].iloc[3])


def test_repeat_interval_overlap_counts_as_near_the_best():
    # Medians 100 vs 110: 91% of X*, outside 5%, but the cheap cell's range reaches X*'s.
    near = [row(pool_size=8, repeat=i, rps=v, p99_ms=200.0) for i, v in enumerate([90.0, 100.0, 104.0])]
    far = [row(pool_size=8, repeat=i, rps=v, p99_ms=200.0) for i, v in enumerate([80.0, 85.0, 90.0])]
    best = [row(pool_size=16, repeat=i, rps=v, p99_ms=200.0) for i, v in enumerate([100.0, 110.0, 120.0])]
    r = _decide(near + best)
    assert r.chosen is not None and r.chosen["pool_size"] == 8
    assert "repeat interval overlaps" in r.why[0]
    # ...and says what that "as good" rests on: how many repeats, and which intervals.
    assert "overlaps the best's (3 vs 3 repeats, min–max ranges)" in r.why[0]
    table = recommend.candidates_table(r)
    assert "(near: intervals overlap, 3 vs 3 repeats, min–max ranges)" in table
    eight = [row(pool_size=16, repeat=i, rps=v, p99_ms=200.0) for i, v in
             enumerate([100.0, 104.0, 106.0, 108.0, 110.0, 112.0, 114.0, 120.0])]
    r = _decide(near + eight)
    assert r.chosen is not None and r.chosen["pool_size"] == 8
    assert "(3 vs 8 repeats, min–max ranges and 95% intervals)" in r.why[0]
    r = _decide(far + best)
    assert r.chosen is not None and r.chosen["pool_size"] == 16


def test_groups_hold_non_size_knobs_fixed():
    rows = pool_sweep_rows([16, 32]) + [dict(x, users=64) for x in pool_sweep_rows([16, 32], users=64)] \
        + [row(target="correct-async", pool_size=40, rps=300.0, p99_ms=120.0)]
    results = recommend.recommend(aggregate.coerce(pd.DataFrame(rows)))
    keys = [(r.key["target"], r.key["users"]) for r in results]
    assert keys == [("correct-async", 32), ("thread-pool", 32), ("thread-pool", 64)]
    assert [int(r.chosen["pool_size"]) for r in results[1:]] == [32, 32]  # 64 users: pool 32 is all we swept
    assert "users=64" in recommend.report(results, 1000.0, 0.01)


# ------------------------------------------------------------------------------- Little's law


def test_little_check_against_pool_slots():
    queued = recommend.little_check(pd.Series(dict(target="thread-pool", workers=1, users=32, pool_size=16,
                                                   rps=160.0, mean_ms=float("nan"))))
    assert queued is not None and queued.in_flight == pytest.approx(32.0) and queued.slots == 16
    assert "requests queue for a slot" in queued.text() and "U/X" in queued.text()
    roomy = recommend.little_check(pd.Series(dict(target="thread-pool", workers=2, users=32, pool_size=32,
                                                  rps=300.0, mean_ms=90.0)))
    assert roomy is not None and roomy.in_flight == pytest.approx(27.0) and roomy.slots == 64
    assert "every request finds a slot" in roomy.text() and "37 slot(s) sit idle" in roomy.text()
    no_pool = recommend.little_check(pd.Series(dict(target="correct-async", workers=1, users=32,
                                                    pool_size=40, rps=320.0, mean_ms=100.0)))
    assert no_pool is not None and no_pool.slots is None and "no pool" in no_pool.text()


def test_chosen_pick_explains_itself_with_little(tmp_path: Path, capsys):
    run = write_run(tmp_path / "run", pool_sweep_rows([8, 16, 32, 64]))
    recommend.run(run)
    out = capsys.readouterr().out
    assert "use pool_size=32" in out
    assert "in flight = X × R = 320.0 rps × 100 ms = 32.0" in out and "≤ 32 pool slots" in out


# ------------------------------------------------------------------------- files and command line


def test_cli_writes_recommend_csv(tmp_path: Path, capsys):
    run = write_run(tmp_path / "run", pool_sweep_rows([2, 4, 8, 16, 32, 64]))
    assert main(["recommend", str(run), "--slo-p99", "2000"]) == 0
    out = capsys.readouterr().out
    assert "SLO: p99 ≤ 2000 ms and failures ≤ 1.0%" in out
    csv = pd.read_csv(run / "recommend.csv")
    assert len(csv) == 6 and set(csv["slo_p99_ms"]) == {2000}
    assert csv.loc[csv["role"] == "chosen", "pool_size"].tolist() == [32]
    assert csv.loc[csv["pool_size"] == 16, "in_flight"].iloc[0] == pytest.approx(32.0)
    assert csv.loc[csv["pool_size"] == 16, "pool_slots"].iloc[0] == 16


@pytest.mark.parametrize("args, message", [
    (["--slo-p99", "0"], "--slo-p99 must be > 0"),
    (["--max-fail-ratio", "2"], "--max-fail-ratio must be in [0, 1]"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, args: list[str], message: str):
    run = write_run(tmp_path / "run", pool_sweep_rows([8, 16]))
    assert main(["recommend", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (run / "recommend.csv").exists()


def test_cli_missing_folder_exit_2(tmp_path: Path, capsys):
    assert main(["recommend", str(tmp_path / "nope")]) == 2
    assert "results.csv not found" in capsys.readouterr().err


def test_old_format_results_still_recommend(tmp_path: Path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(SMALL_CSV, run / "results.csv")
    assert main(["recommend", str(run)]) == 0
    out = capsys.readouterr().out
    assert "thread-pool · io: use workers=1" in out
    assert "fake-async · io: no configuration meets the SLO" in out
    csv = pd.read_csv(run / "recommend.csv")
    assert csv["target_rss_mb"].isna().all()  # a column the old file predates: empty
    assert (csv["role"] == "closest").sum() >= 1


def test_end_of_run_summary_states_the_default_slo(tmp_path: Path, capsys):
    from harness.present import report

    run = write_run(tmp_path / "run", pool_sweep_rows([16, 32, 64]))
    report.finish(run, plot_charts=False, html=False)
    out = capsys.readouterr().out
    # The per-target lines are condensed into the answer: one verdict per workload, the SLO stated.
    assert "The answer, per workload (SLO: p99 ≤ 1000 ms and failures ≤ 1.0%" in out
    assert "- io: winner: thread-pool with workers=1 pool=32, 320 rps" in out
    assert (run / "recommend.csv").is_file() and (run / "answer.csv").is_file()


def test_rate_sweep_finds_the_highest_rate_within_the_slo():
    """Open loop: the rates of one configuration form one group; X* is the highest rate served with
    p99 within the SLO (beyond it the queue grows and the intended-time p99 explodes)."""
    rows = [row(users=0, pool_size=40, rate=r, rps=r * 0.99, p99_ms=p99)
            for r, p99 in [(100.0, 20.0), (200.0, 40.0), (400.0, 900.0), (800.0, 6000.0)]]
    r = _decide(rows)
    assert r.best is not None and r.best["rate"] == 400.0
    assert r.chosen is not None and r.chosen["rate"] == 400.0
    assert "at rate=400/s" in r.why[0]


def test_group_titles_name_only_knobs_that_tell_groups_of_one_endpoint_apart():
    """A tune run mixes /io, /cpu and /db groups: db knobs do not apply off /db, and a knob that
    only differs between scenarios says nothing the scenario does not."""
    from harness.answer.recommend import GroupResult, distinguishing_columns, group_title

    def group(target, scenario, **key):
        return GroupResult(key={"target": target, "scenario": scenario, **key}, cells=pd.DataFrame(),
                           chosen=None, best=None, closest=None)

    nan = float("nan")
    groups = [group("correct-async", "db", loop="uvloop", db_ms=20.0, db_driver="asyncpg"),
              group("correct-async", "io", loop="uvloop", db_ms=nan, db_driver=nan),
              group("correct-async", "io", loop="asyncio", db_ms=nan, db_driver=nan)]
    cols = distinguishing_columns(groups)
    assert cols == ["loop"]
    assert [group_title(g, cols) for g in groups] == ["correct-async · db · loop=uvloop",
                                                      "correct-async · io · loop=uvloop",
                                                      "correct-async · io · loop=asyncio"]
