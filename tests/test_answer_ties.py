"""The answer's tie rule and its neighbour SLO, on constructed run folders (no servers)."""

from __future__ import annotations

from pathlib import Path

from harness import cli, hinge
from harness.answer import answer, cost
from harness.data import matrix
from tests.run_folders import row, write_run


def _cell(target: str, rps: float, *, workers: int = 1, mem: float = 120.0, health: float = 4.0,
          repeat: int = 0, **kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(target=target, rps=rps, workers=workers, target_rss_mb=mem, p50_ms=100.0,
                                   p99_ms=300.0, health_p99_ms=health, repeat=repeat, requests=int(rps * 5),
                                   bound_by="pattern")
    if target not in ("thread-pool", "mixed", "process-pool"):
        base["pool_size"] = None
    base.update(kw)
    return row(**base)


def _one(rows: list[dict[str, object]], tmp_path: Path, **kw: float) -> answer.Workload:
    [work] = answer.run(write_run(tmp_path, rows), say=lambda _line: None, **kw)
    return work


def test_inside_the_noise_the_cheaper_pattern_wins_and_says_why(tmp_path: Path):
    rows = [_cell("correct-async", 326.6, workers=2, mem=168.0), _cell("mixed", 340.0, workers=4, mem=288.0,
                                                                       pool_size=4)]
    work = _one(rows, tmp_path)
    assert work.decided and work.winner is not None and work.winner.target == "correct-async"
    assert work.verdict == ("winner: correct-async with workers=2, 326.6 rps: within noise of the best "
                            "(0.96×, one repeat: within 5%) at 2 processes and 168 MB, against 4 processes "
                            "and 288 MB for mixed")
    assert work.losses == ["mixed: 1.04× the rps; within noise, at 4 processes and 288 MB"]
    assert [e.target for e in work.entries] == ["correct-async", "mixed"]  # the table ranks the winner first


def test_beyond_the_noise_throughput_wins_whatever_the_cost(tmp_path: Path):
    rows = [_cell("correct-async", 326.6, workers=2, mem=168.0), _cell("mixed", 354.6, workers=4, mem=288.0,
                                                                       pool_size=4)]
    work = _one(rows, tmp_path)
    assert work.verdict == "winner: mixed with workers=4 pool=4, 354.6 rps"
    assert work.losses == ["correct-async: 0.92× the rps"]


def test_a_process_pool_counts_its_processes(tmp_path: Path):
    # process-pool W=1 pool=2 runs 3 processes; thread-pool W=2 runs 2: the threads are cheaper.
    rows = [_cell("process-pool", 100.0, pool_size=2, mem=118.0), _cell("thread-pool", 98.0, workers=2,
                                                                        pool_size=4, mem=150.0)]
    work = _one(rows, tmp_path)
    assert work.winner is not None and work.winner.target == "thread-pool"
    assert "at 2 processes and 150 MB, against 3 processes and 118 MB for process-pool" in work.verdict


def test_a_stalling_pattern_misses_the_neighbour_slo_and_zero_turns_it_off(tmp_path: Path):
    rows = [_cell("thread-pool", 90.6, workers=4, mem=285.0, pool_size=40, health_p99_ms=None,
                  health_max_ms=309.0),
            _cell("process-pool", 76.8, mem=118.0, pool_size=2, health=3.9)]
    work = _one(rows, tmp_path / "on")
    assert work.winner is not None and work.winner.target == "process-pool"
    assert work.losses == ["thread-pool: no configuration meets the SLO (stalls neighbours: /health max "
                           "309 ms > 50 ms)"]
    off = _one(rows, tmp_path / "off", slo_health_ms=0.0)  # throughput alone: thread-pool, its stall said
    assert off.winner is not None and off.winner.target == "thread-pool"
    assert off.verdict.startswith("winner: thread-pool with workers=4 pool=40, 90.6 rps")
    assert "stalls neighbours" in off.verdict


def test_a_true_tie_still_cannot_decide_and_says_why(tmp_path: Path):
    rows = [_cell("correct-async", 600.0, mem=120.0, health=4.0), _cell("thread-pool", 590.0, mem=125.0,
                                                                      pool_size=40, health=5.0)]
    work = _one(rows, tmp_path)
    assert not work.decided
    assert work.verdict == ("cannot decide between correct-async (workers=1) and thread-pool (workers=1 "
                            "pool=40): a true tie: throughput within noise (0.98×, one repeat: within 5%), "
                            "the same cost (1 process and 120 MB against 1 process and 125 MB), /health "
                            "alike (4 ms against 5 ms); more repeats (--repeat 5) may part them")


def test_at_the_same_cost_a_clearly_lower_health_wins(tmp_path: Path):
    rows = [_cell("correct-async", 600.0, health=40.0), _cell("thread-pool", 590.0, pool_size=40, health=4.0)]
    work = _one(rows, tmp_path)
    assert work.winner is not None and work.winner.target == "thread-pool"
    assert "and /health 4 ms against 40 ms for correct-async" in work.verdict


def test_repeats_use_the_permutation_test(tmp_path: Path):
    """5 vs 5 repeats 4% apart: tight repeats tell them apart (the faster wins), wide ones do not (the
    cheaper wins)."""
    def rows(spread: float) -> list[dict[str, object]]:
        return [_cell(t, rps * (1 + spread * (k - 2)), workers=w, mem=m, repeat=k)
                for t, rps, w, m in (("mixed", 600.0, 4, 288.0), ("correct-async", 576.0, 1, 120.0))
                for k in range(5)]
    tight = _one(rows(0.002), tmp_path / "tight")
    assert tight.winner is not None and tight.winner.target == "mixed"
    assert tight.verdict.startswith("winner: mixed")
    wide = _one(rows(0.05), tmp_path / "wide")
    assert wide.winner is not None and wide.winner.target == "correct-async"
    assert "within noise of the best (0.96×, p = " in wide.verdict and "(5 vs 5 repeats))" in wide.verdict


def test_the_header_states_the_rule_and_the_cli_turns_the_neighbour_slo_off(tmp_path: Path, capsys):
    rows = [_cell("thread-pool", 90.6, workers=4, pool_size=40, health=309.0),
            _cell("process-pool", 76.8, pool_size=2)]
    run = write_run(tmp_path / "run", rows)
    assert cli.main(["answer", str(run)]) == 0
    out = capsys.readouterr().out
    assert "/health p99 ≤ 50 ms (the neighbours)" in out and cost.RULE_TEXT in out
    assert "- io: winner: process-pool" in out
    assert cli.main(["answer", str(run), "--slo-health-p99", "0"]) == 0
    out = capsys.readouterr().out
    assert "/health not bounded" in out and "- io: winner: thread-pool" in out
    assert cli.main(["answer", str(run), "--slo-health-p99", "-1"]) == 2
    assert "--slo-health-p99 must be ≥ 0 ms" in capsys.readouterr().err


def test_the_hinge_is_the_best_and_the_cheaper_pick_inside_its_noise(tmp_path: Path):
    rows = [_cell("correct-async", 326.6, workers=2, mem=168.0), _cell("mixed", 340.0, workers=4, mem=288.0,
                                                                       pool_size=4),
            _cell("thread-pool", 200.0, pool_size=40)]
    work = _one(rows, tmp_path / "one")
    assert sorted(c["target"] for c in answer.hinge_cells(work)) == ["correct-async", "mixed"]
    # The best is also the cheapest: the noise changes nothing, nothing to re-measure.
    cheap_best = _one([_cell("correct-async", 350.0), _cell("mixed", 340.0, workers=4, pool_size=4)],
                      tmp_path / "cheap")
    assert cheap_best.decided and answer.hinge_cells(cheap_best) == []
    # At 4 repeats each the permutation test has decided: nothing more to measure.
    four = [_cell(t, rps * (1 + 0.002 * k), workers=w, repeat=k) for t, rps, w in
            (("mixed", 340.0, 4), ("correct-async", 335.0, 1)) for k in range(4)]
    assert answer.hinge_cells(_one(four, tmp_path / "four")) == []


def test_hinge_repeats_are_the_plans_own_cells_at_later_repeats(tmp_path: Path):
    import pandas as pd

    from harness.data.matrix import make_plan
    from harness.run import sweep

    plan = make_plan("default", targets=["correct-async"], scenarios=["io"], workers=[1, 2])
    first = sweep.plan_cells(plan)[1]
    wanted = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)  # as a summary has it
              for k, v in first.params().items() if k != "repeat"}
    wanted["pool_size"] = pd.NA if first.params()["pool_size"] is None else wanted["pool_size"]
    extra = sweep.repeat_cells(plan, tmp_path, [wanted], 4)
    assert [(c.workers, c.repeat) for c in extra] == [(first.workers, k) for k in (1, 2, 3)]


def test_the_hinge_budget_shrinks_when_the_sweep_ran_long():
    assert hinge.budget(300.0) == hinge.HINGE_BUDGET_S  # a quick sweep: the whole allowance
    assert hinge.budget(450.0) == 60.0  # 600 − 90 install − 450: what is left of make bench's budget
    assert hinge.budget(780.0) == 0.0  # a shared machine already overran it: no extra repeats


def test_hinge_repeats_only_for_the_default_sweep_as_it_ships():
    """make bench's sweep buys repeats where its answer hinges; a sweep whose knobs a user changed
    (or a resume of one) gets no cells it did not ask for, unless asked with --hinge-repeats."""
    default = matrix.make_plan("default")
    narrowed = matrix.make_plan("default", targets=["fake-async", "mixed"])
    assert hinge.wanted(None, "default", default)
    assert not hinge.wanted(None, "default", narrowed)
    assert not hinge.wanted(None, "smoke", matrix.make_plan("smoke"))
    assert hinge.wanted(True, "default", narrowed)
    assert not hinge.wanted(False, "default", default)


def test_report_html_answers_at_the_neighbour_slo_the_folder_was_answered_with(tmp_path: Path):
    """A run answered with --slo-health-p99 0 shows that answer in report.html, not the default's."""
    from harness.present import html_report

    rows = [_cell("thread-pool", 90.6, workers=4, pool_size=40, health=309.0),
            _cell("process-pool", 76.8, pool_size=2)]
    run = write_run(tmp_path / "run", rows)
    assert cli.main(["recommend", str(run), "--slo-health-p99", "0"]) == 0
    page = html_report.write(run, draw_missing=False).read_text(encoding="utf-8")
    assert "/health not bounded" in page and "winner: thread-pool" in page
    assert cli.main(["recommend", str(run)]) == 0  # the default again: 309 ms stalls the neighbours
    page = html_report.write(run, draw_missing=False).read_text(encoding="utf-8")
    assert "/health p99 ≤ 50 ms (the neighbours)" in page and "winner: process-pool" in page
