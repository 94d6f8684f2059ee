"""The answer per workload: recommend's picks of every target ranked under one SLO (constructed folders)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness import cli
from harness.answer import answer
from tests.run_folders import row, write_run

RUN_V1 = Path(__file__).parent / "data" / "run_v1"


def _cell(target: str, rps: float, *, repeat: int = 0, **kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(target=target, rps=rps, p50_ms=100.0, p99_ms=300.0, health_p99_ms=4.0,
                                   repeat=repeat, requests=int(rps * 5), bound_by="pattern")
    if target != "thread-pool":
        base["pool_size"] = None
    base.update(kw)
    return row(**base)


def _answer(rows: list[dict[str, object]], tmp_path: Path, **kw: float) -> list[answer.Workload]:
    run = write_run(tmp_path / "run", rows)
    return answer.run(run, say=lambda _line: None, **kw)


def test_winner_and_what_the_losers_lose_by(tmp_path: Path):
    rows = [_cell("correct-async", 600.0), _cell("thread-pool", 348.0),
            _cell("fake-async", 20.0, p50_ms=1500.0, p99_ms=900.0, health_p99_ms=2200.0)]
    [work] = _answer(rows, tmp_path)
    assert work.decided and work.winner is not None and work.winner.target == "correct-async"
    assert work.verdict == "winner: correct-async with workers=1, 600 rps"
    assert [e.target for e in work.entries] == ["correct-async", "thread-pool", "fake-async"]
    assert work.losses == ["thread-pool: 0.58× the rps", "fake-async: no configuration meets the SLO "
                           "(stalls neighbours: /health p99 2200 ms > 50 ms)"]
    # Without the neighbour SLO fake-async is ranked on throughput, its stall named beside it.
    [off] = _answer(rows, tmp_path / "off", slo_health_ms=0.0)
    assert off.losses[1] == "fake-async: 0.03× the rps; /health 2.2 s, stalls neighbours"
    table = answer.rows(work)
    assert table[1][:5] == ["2", "thread-pool", "1", "40", "348 (n=1)"]
    assert table[0][3] == "–"  # correct-async has no pool: no size to name


def test_nothing_meets_the_slo_says_so_with_each_reason(tmp_path: Path):
    rows = [_cell("correct-async", 600.0, p99_ms=1500.0), _cell("thread-pool", 300.0, fail_ratio=0.2)]
    [work] = _answer(rows, tmp_path)
    assert work.winner is None and not work.decided
    assert work.verdict == "cannot decide: no configuration of any pattern meets the SLO"
    reasons = " ".join(work.losses)
    assert "correct-async: no configuration meets the SLO (p99 1500 ms > SLO 1000 ms)" in reasons
    assert "thread-pool: no configuration meets the SLO (failures 20.0% > 1.0%)" in reasons
    # A looser SLO through the same rule makes correct-async feasible and the winner.
    [loose] = _answer(rows, tmp_path / "loose", slo_p99_ms=2000.0)
    assert loose.decided and loose.winner is not None and loose.winner.target == "correct-async"


def test_an_infeasible_target_is_listed_but_never_ranked(tmp_path: Path):
    rows = [_cell("thread-pool", 300.0), _cell("correct-async", 900.0, valid=False, invalid_reason="x")]
    [work] = _answer(rows, tmp_path)
    assert work.winner is not None and work.winner.target == "thread-pool" and work.decided
    last = answer.rows(work)[-1]
    assert last[0] == "–" and last[1] == "correct-async" and last[-1] == "no (closest): invalid: x"


def test_workloads_are_compared_apart_and_sizes_come_from_recommend(tmp_path: Path):
    """/io and /cpu never compete; users=16 and users=64 are two workloads; each target's pick is
    recommend's (the cheaper of two sizes within 5%), not its top rps."""
    rows = [_cell("thread-pool", 300.0, pool_size=16), _cell("thread-pool", 310.0, pool_size=64),
            _cell("process-pool", 50.0, scenario="cpu", pool_size=None),
            _cell("thread-pool", 40.0, scenario="cpu", pool_size=16),
            _cell("thread-pool", 100.0, users=64, pool_size=16)]
    works = _answer(rows, tmp_path)
    named = answer.distinguishing(works)
    titles = {answer.workload_title(w, named): w for w in works}
    assert set(titles) == {"io · users=32", "io · users=64", "cpu · users=32"}
    io = titles["io · users=32"]
    assert [e.target for e in io.entries] == ["thread-pool"] and answer.rows(io)[0][3] == "16"
    assert titles["cpu · users=32"].winner.target == "process-pool"  # type: ignore[union-attr]


def test_a_server_sweep_ranks_each_target_under_each_server(tmp_path: Path):
    """The server is a knob of recommend's group, not of the workload: each target under each server
    is one entry of the same workload, the winner names its server and the table shows it."""
    rows = [_cell("correct-async", 600.0), _cell("correct-async", 900.0, server="granian"),
            _cell("thread-pool", 348.0), _cell("thread-pool", 340.0, server="granian"),
            _cell("correct-async", 2000.0, scenario="health", pool_size=None),
            _cell("correct-async", 1400.0, scenario="health", pool_size=None, server="granian")]
    works = _answer(rows, tmp_path)
    assert len(works) == 2 and all(w.by_server for w in works)  # /io and /health, not four
    io = next(w for w in works if w.key["scenario"] == "io")
    assert io.verdict == "winner: correct-async under granian with workers=1, 900 rps"
    assert [e.name for e in io.entries] == ["correct-async under granian", "correct-async under uvicorn",
                                            "thread-pool under uvicorn", "thread-pool under granian"]
    assert io.losses[0] == "correct-async under uvicorn: 0.67× the rps"
    assert answer.table_header(io)[:3] == ["rank", "pattern", "server"]
    assert [r[:3] for r in answer.rows(io)][:2] == [["1", "correct-async", "granian"],
                                                     ["2", "correct-async", "uvicorn"]]
    health = next(w for w in works if w.key["scenario"] == "health")
    assert health.winner is not None and health.winner.name == "correct-async under uvicorn"
    csv = pd.read_csv(tmp_path / "run" / answer.CSV_NAME)
    assert set(csv["server"]) == {"uvicorn", "granian"} and set(csv["workload"]) == {"io", "health"}


def test_a_run_under_uvicorn_alone_names_no_server(tmp_path: Path):
    [work] = _answer([_cell("correct-async", 600.0), _cell("thread-pool", 348.0)], tmp_path)
    assert not work.by_server and work.verdict == "winner: correct-async with workers=1, 600 rps"
    assert answer.table_header(work) == answer.TABLE_HEADER and len(answer.rows(work)[0]) == 10
    assert "server" not in pd.read_csv(tmp_path / "run" / answer.CSV_NAME).columns


def test_a_max_is_called_a_max():
    cell = pd.Series({"health_p99_ms": float("nan"), "health_max_ms": 711.0, "health_min_samples": 9.0})
    assert answer.health_text(cell) == "max 711 ms (n=9, too few for a p99)"
    cell = pd.Series({"health_p99_ms": 650.0, "health_max_ms": 711.0, "health_min_samples": 200.0})
    assert answer.health_text(cell) == "650 ms"
    # No p99 and no sample count (an older row): the figure shown is still the max, and says so; the
    # stall test reads that same figure, so a loser is never "stalling" beside a /health of "–".
    cell = pd.Series({"health_p99_ms": float("nan"), "health_max_ms": 900.0, "health_min_samples": None,
                      "p50_ms": 1000.0})
    assert answer.health_text(cell) == "max 900 ms (too few for a p99)" and answer.stalls_neighbours(cell)


def test_a_winner_that_stalls_its_loop_says_so(tmp_path: Path):
    rows = [_cell("fake-async", 600.0, p50_ms=200.0, health_p99_ms=180.0), _cell("thread-pool", 300.0)]
    [work] = _answer(rows, tmp_path, slo_health_ms=0.0)  # the neighbour SLO off: it wins, and is named
    assert work.decided and "(but its /health 180 ms: it stalls neighbours)" in work.verdict


def test_cli_answer_prints_and_writes_csv_on_an_old_folder(tmp_path: Path, capsys):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(RUN_V1, run)
    assert cli.main(["answer", str(run), "--slo-p99", "20000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The answer, per workload (SLO: p99 ≤ 20000 ms")
    csv = pd.read_csv(run / answer.CSV_NAME)
    assert set(csv["pattern"]) == set(pd.read_csv(run / "results.csv")["target"])
    assert (csv["slo_p99_ms"] == 20000).all()


@pytest.mark.parametrize("args, message", [(["--slo-p99", "0"], "--slo-p99 must be > 0 ms"),
                                           (["--max-fail-ratio", "2"], "--max-fail-ratio must be in [0, 1]")])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, args: list[str], message: str):
    run = write_run(tmp_path / "run", [_cell("thread-pool", 300.0)])
    assert cli.main(["answer", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (run / answer.CSV_NAME).exists()


def test_cli_missing_folder_exit_2(tmp_path: Path, capsys):
    assert cli.main(["answer", str(tmp_path / "nope")]) == 2
    assert "results.csv not found" in capsys.readouterr().err


def test_a_censored_p99_is_infeasible_with_its_bound(tmp_path: Path):
    """Failures reached the p99: recommend (and so the answer) rejects the cell, saying the bound."""
    rows = [_cell("fake-async", 30.0, rate=30.0, users=0, p99_ms=None, p99_lower_ms=10_000.0,
                  fail_ratio=0.06),
            _cell("fake-async", 10.0, rate=10.0, users=0, p99_ms=80.0)]
    [work] = _answer(rows, tmp_path, max_fail_ratio=0.1)  # allowed failures: the bound alone decides
    [entry] = work.entries
    assert entry.feasible and entry.cell is not None and entry.cell["rate"] == 10.0
    from harness.answer import recommend

    cells = recommend.recommend(pd.read_csv(tmp_path / "run" / "results.csv"), max_fail_ratio=0.1)[0].cells
    censored = cells[cells["rate"] == 30.0].iloc[0]
    assert censored["reason"] == "p99 > 10000 ms (failures reach the p99, 6.0% failed)"


def test_terminal_line_prints_the_bound_of_a_censored_p99():
    from harness.run.sweep import p99_text

    assert p99_text({"p99_ms": float("nan"), "p99_lower_ms": 10_012.0, "fail_ratio": 0.06}) == \
        "p99 > 10.0 s (6% failed or timed out)"
    assert p99_text({"p99_ms": 412.0, "p99_lower_ms": float("nan")}) == "p99 412.0 ms"
