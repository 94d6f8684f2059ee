"""The claims registry decided on constructed runs (nothing is launched), and the claims preset's plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import claims_preset
from harness.answer import aggregate, claims, evidence
from harness.data import schema
from harness.data.matrix import build_cells
from harness.run.sweep import estimate_s

CORES = 2


def row(target: str, scenario: str, rps: float, *, repeat: int = 1, **over: object) -> dict:
    r: dict[str, object] = dict.fromkeys(schema.COLUMNS, np.nan)
    r.update(target=target, scenario=scenario, workers=1, users=32, loop="uvloop", pool_size=np.nan,
             io_ms=50, cpu_ms=20, fanout=3, cpu_kind="python", http_client="httpx", http_connections=100,
             launch="uvicorn", probe=True, repeat=repeat, status="ok", error="", valid=True,
             invalid_reason="", rps=rps, p50_ms=32 / rps * 1000, p99_ms=40 / rps * 1000, health_p99_ms=5.0,
             ceiling_rps=rps / 0.9, efficiency=0.9, requests=int(rps * 4), warmup_s=1.5, duration_s=4)
    r.update(over)
    return r


def repeats(target: str, scenario: str, values: list[float], **over: object) -> list[dict]:
    """One row per repeat; `values` are rps, unless a `vary` column is named."""
    vary = over.pop("vary", "rps")
    out = []
    for i, v in enumerate(values, 1):
        extra = {**over, vary: v}
        base_rps = extra.pop("rps", 50.0)
        out.append(row(target, scenario, base_rps, repeat=i, **extra))
    return out


def run_of(rows: list[dict], cores: int | None = CORES) -> evidence.Run:
    df = aggregate.coerce(pd.DataFrame(rows, columns=schema.COLUMNS + [c for c in rows[0] if c not in
                                                                         schema.COLUMNS]))
    meta = {"cores_available": cores} if cores else {}
    return evidence.Run(aggregate.summarize(df), df, meta)


def verdict(claim_id: str, rows: list[dict], cores: int | None = CORES) -> evidence.Verdict:
    return claims.BY_ID[claim_id].decide(run_of(rows, cores))


# ------------------------------------------------------------------------------ noise and helpers


def test_compare_uses_the_permutation_test_and_a_margin_for_single_repeats():
    s = run_of(repeats("correct-async", "io", [100, 104, 108, 102, 106]) +
               repeats("correct-async", "io", [101, 105, 109, 103, 107], loop="asyncio") +
               repeats("correct-async", "io", [120, 122, 125, 121.2, 123.2], loop="asyncio", users=64) +
               repeats("correct-async", "io", [100, 102, 104, 101.2, 102.8], users=64)).summary
    a, b = s[(s["loop"] == "uvloop") & (s["users"] == 32)].iloc[0], s[(s["loop"] == "asyncio") &
                                                                       (s["users"] == 32)].iloc[0]
    assert evidence.compare(a, b, "rps") == 0  # p > 5%
    c, d = s[(s["loop"] == "asyncio") & (s["users"] == 64)].iloc[0], s[(s["loop"] == "uvloop") &
                                                                        (s["users"] == 64)].iloc[0]
    assert evidence.compare(c, d, "rps") == 1 and evidence.compare(d, c, "rps") == -1
    assert evidence.noise_words(c, d, "rps") == "p = 0.0079 (5 vs 5 repeats)"
    # 3 vs 3 apart in every repeat is still no difference: the test cannot reach 5% (smallest p 0.1);
    # the old rule (min–max ranges apart) called it one.
    three = run_of(repeats("correct-async", "io", [120, 122, 125]) +
                   repeats("correct-async", "io", [100, 102, 104], loop="asyncio")).summary
    e, f = three[three["loop"] == "uvloop"].iloc[0], three[three["loop"] == "asyncio"].iloc[0]
    assert evidence.compare(e, f, "rps") == 0 and evidence.compare(f, e, "rps") == 0
    assert evidence.noise_words(e, f, "rps") == \
        "3 vs 3 repeats cannot show a difference at 5%: use --repeat 5"
    one = run_of([row("correct-async", "io", 100), row("fake-async", "io", 108),
                  row("thread-pool", "io", 120)]).summary.set_index("target")
    assert evidence.compare(one.loc["fake-async"], one.loc["correct-async"], "rps") == 0  # 8% < 10%
    assert evidence.compare(one.loc["thread-pool"], one.loc["correct-async"], "rps") == 1


def test_every_claim_is_not_measured_on_an_empty_kind_of_run():
    rows = [row("thread-pool", "io", 100)]
    verdicts = claims.decide(run_of(rows))
    assert [v.claim for v in verdicts] == ["1", "1b", "2", "3", "4", "4b", "5", "6", "7", "8", "9", "9b",
                                           "10", "11", "12", "21"]
    for v in verdicts:
        assert v.verdict == evidence.NOT_MEASURED and v.condition, v
    assert "asyncio" in claims.BY_ID["7"].decide(run_of(rows)).condition


def test_every_claim_states_its_rule_and_needs():
    for c in claims.REGISTRY:
        assert c.statement and c.needs and c.rule
        assert c.runs(CORES) or c.preset, c.id  # cells in the claims plan, or a preset that runs them


# ---------------------------------------------------------------------------------- each claim


def test_claim_1_async_io_against_fake_async():
    rows = (repeats("correct-async", "io", [180, 185, 190, 183, 187], health_p99_ms=12.0)
            + repeats("fake-async", "io", [6, 6.1, 6.2, 6.06, 6.14], health_p99_ms=1500.0))
    v = verdict("1", rows)
    assert v.verdict == evidence.HOLDS
    assert "30" in v.evidence[0] and "1500 ms" in v.evidence[0]  # the ratio and the stall are printed
    # Same rps but no stall: only half the claim.
    rows = (repeats("correct-async", "io", [180, 185, 190, 183, 187])
            + repeats("fake-async", "io", [6, 6.1, 6.2, 6.06, 6.14]))
    assert verdict("1", rows).verdict == evidence.PARTLY


def test_claim_1_reads_a_stalled_workers_max_when_its_p99_is_empty():
    """A stalled worker answers too few probes for a p99 (the harness leaves it empty): its max is
    the evidence, and the text says it is a max."""
    rows = (repeats("correct-async", "io", [180, 185, 190, 183, 187], health_p99_ms=12.0,
                    health_max_ms=30.0)
            + repeats("fake-async", "io", [6.0, 6.1, 6.2, 6.06, 6.14], health_p99_ms=None,
                      health_max_ms=2100.0, health_min_samples=9))
    v = verdict("1", rows)
    assert v.verdict == evidence.HOLDS
    assert "/health p99 12.0 ms vs max 2100 ms (n=9, too few for a p99)" in v.evidence[0]


DB = dict(db_queries=2, db_ms=20, db_pool=10, db_driver="asyncpg", db_pool_timeout=30)


def test_claim_1b_sync_database_driver_in_async_def():
    """fake-async's sync driver is paired with correct-async whatever DB_DRIVER the async one used."""
    rows = (repeats("correct-async", "db", [230, 236, 240, 233.6, 237.6], health_p99_ms=3.5, **DB)
            + repeats("fake-async", "db", [23.5, 23.6, 24, 23.56, 23.76], health_p99_ms=720.0,
                      **{**DB, "db_driver": None}))
    v = verdict("1b", rows)
    assert v.verdict == evidence.HOLDS, v
    assert "synchronous database driver" in v.evidence[0] and "720 ms" in v.evidence[0]
    assert verdict("1", rows).verdict == evidence.NOT_MEASURED  # /io's claim does not read /db cells
    # no /health stall on the sync side: only the throughput half
    rows = (repeats("correct-async", "db", [230, 236, 240, 233.6, 237.6], **DB)
            + repeats("fake-async", "db", [23.5, 24, 23.625, 23.75, 23.875], **DB))
    assert verdict("1b", rows).verdict == evidence.PARTLY


@pytest.mark.parametrize("wait, lag, expected", [
    (270.0, 2.0, evidence.HOLDS),     # the queue is at the pool, the loop is free
    (20.0, 2.0, evidence.PARTLY),     # slower, but not from waiting for a connection
    (270.0, 150.0, evidence.PARTLY),  # slower, and the loop is lagging too: not the pool alone
])
def test_claim_9b_database_pool_exhaustion(wait, lag, expected):
    rows = [row("correct-async", "db", 49, users=16, p50_ms=320.0, db_pool_wait_p50_ms=wait,
                loop_lag_p99_ms=lag, **{**DB, "db_pool": 2}),
            row("correct-async", "db", 190, users=16, p50_ms=80.0, db_pool_wait_p50_ms=38.0,
                loop_lag_p99_ms=1.5, **{**DB, "db_pool": 8})]
    v = verdict("9b", rows)
    assert v.verdict == expected, v
    assert f"of which {evidence.fmt(wait, 'ms')} (median) waiting for a connection" in v.evidence[0]


def test_claim_9b_needs_two_pool_sizes_and_not_a_slowdown_alone():
    assert verdict("9b", [row("correct-async", "db", 49, **DB)]).verdict == evidence.NOT_MEASURED
    same = [row("correct-async", "db", 190, p50_ms=80.0, db_pool_wait_p50_ms=1.0, loop_lag_p99_ms=1.0,
                **{**DB, "db_pool": p}) for p in (8, 16)]
    assert verdict("9b", same).verdict == evidence.FAILS  # a bigger pool did not help: nothing queued


def test_claim_2_needs_an_unsaturated_cell():
    calm = [row("correct-async", "io", 70, users=4, p50_ms=55.0, efficiency=0.88)]
    assert verdict("2", calm).verdict == evidence.HOLDS
    serial = [row("correct-async", "io", 30, users=4, p50_ms=140.0, efficiency=0.8)]
    assert verdict("2", serial).verdict == evidence.FAILS
    short_of_connections = [row("correct-async", "io", 36, http_connections=6, p50_ms=870.0, efficiency=0.9)]
    assert verdict("2", short_of_connections).verdict == evidence.NOT_MEASURED
    saturated = [row("correct-async", "io", 150, p50_ms=210.0, efficiency=0.23)]
    v = verdict("2", saturated)
    assert v.verdict == evidence.NOT_MEASURED and "queueing" in v.condition


def test_claim_3_health_waits_with_the_cpu_work():
    stalled = [row("correct-async", "cpu", 45, p50_ms=700.0, health_p99_ms=650.0)]
    assert verdict("3", stalled).verdict == evidence.HOLDS
    free = [row("correct-async", "cpu", 45, p50_ms=700.0, health_p99_ms=20.0)]
    assert verdict("3", free).verdict == evidence.FAILS


def test_claim_4_process_pool_against_thread_pool_needs_two_cores():
    rows = (repeats("process-pool", "cpu", [80, 82, 85, 81.2, 83.2], pool_size=2)
            + repeats("thread-pool", "cpu", [44, 45, 46, 44.6, 45.4], pool_size=40))
    assert verdict("4", rows).verdict == evidence.HOLDS
    v = verdict("4", rows, cores=1)
    assert v.verdict == evidence.NOT_MEASURED and "≥ 2 cores" in v.condition
    same = (repeats("process-pool", "cpu", [44, 46, 48, 45.2, 46.8], pool_size=2)
            + repeats("thread-pool", "cpu", [45, 46, 47, 45.6, 46.4], pool_size=40))
    assert verdict("4", same).verdict == evidence.NO_DIFF


def test_claim_4b_native_work_runs_threads_in_parallel():
    rows = (repeats("mixed", "cpu", [45, 46, 45.25, 45.5, 45.75], pool_size=4)
            + repeats("mixed", "cpu", [70, 72, 70.5, 71, 71.5], pool_size=4, cpu_kind="native"))
    v = verdict("4b", rows)
    assert v.verdict == evidence.HOLDS and "1.42 cores" in v.evidence[0]
    slow = (repeats("mixed", "cpu", [45, 46, 45.25, 45.5, 45.75], pool_size=4)
            + repeats("mixed", "cpu", [44, 47, 44.75, 45.5, 46.25], pool_size=4, cpu_kind="native"))
    assert verdict("4b", slow).verdict == evidence.FAILS


def test_claim_5_blocking_future_blocks_the_loop():
    rows = (repeats("blocking-future", "cpu", [44, 45, 46, 44.6, 45.4], pool_size=2, health_p99_ms=650.0)
            + repeats("process-pool", "cpu", [80, 82, 84, 81.2, 82.8], pool_size=2, health_p99_ms=9.0))
    v = verdict("5", rows)
    assert v.verdict == evidence.HOLDS and "650 ms" in v.evidence[0]
    no_stall = (repeats("blocking-future", "cpu", [44, 45, 46, 44.6, 45.4], pool_size=2, health_p99_ms=9.5)
                + repeats("process-pool", "cpu", [80, 82, 84, 81.2, 82.8], pool_size=2, health_p99_ms=9.0))
    assert verdict("5", no_stall).verdict == evidence.FAILS


def test_claim_6_workers_beyond_cores_add_nothing():
    rows = (repeats("correct-async", "cpu", [45, 46, 47, 45.6, 46.4])
            + repeats("correct-async", "cpu", [80, 82, 84, 81.2, 82.8], workers=2)
            + repeats("correct-async", "cpu", [79, 81, 85, 80.2, 82.6], workers=4))
    assert verdict("6", rows).verdict == evidence.HOLDS
    rising = rows[:10] + repeats("correct-async", "cpu", [120, 122, 125, 121.2, 123.2], workers=4)
    assert verdict("6", rising).verdict == evidence.FAILS
    # Measurably more, but by less than the stated 10%: still "adds nothing".
    a_little = rows[:10] + repeats("correct-async", "cpu", [86, 87, 88, 86.6, 87.4], workers=4)
    v = verdict("6", a_little)
    assert v.verdict == evidence.HOLDS and "W=4 ÷ W=2 = 1.06×" in v.evidence[0]
    v = verdict("6", rows[:10])
    assert v.verdict == evidence.NOT_MEASURED and "W = 1, 2 and 4" in v.condition


def test_claim_7_loop_inside_the_noise_is_no_measurable_difference():
    rows = (repeats("correct-async", "io", [150, 160, 170, 156, 164])
            + repeats("correct-async", "io", [155, 165, 175, 161, 169], loop="asyncio"))
    assert verdict("7", rows).verdict == evidence.NO_DIFF
    rows = (repeats("correct-async", "io", [200, 205, 210, 203, 207])
            + repeats("correct-async", "io", [150, 155, 160, 153, 157], loop="asyncio"))
    assert verdict("7", rows).verdict == evidence.HOLDS
    assert "p = 0.0079 (5 vs 5 repeats)" in verdict("7", rows).evidence[0]


def test_claim_7_with_three_repeats_says_they_cannot_show_a_difference():
    """uvloop above asyncio in every repeat, 3 against 3: the smallest p is 0.1, so the verdict is no
    measurable difference and says why, in compare's words, instead of a 95% claim it cannot carry."""
    rows = (repeats("correct-async", "io", [200, 205, 210])
            + repeats("correct-async", "io", [150, 155, 160], loop="asyncio"))
    v = verdict("7", rows)
    too_few = "3 vs 3 repeats cannot show a difference at 5%: use --repeat 5"
    assert v.verdict == evidence.NO_DIFF and v.condition == too_few
    assert too_few in v.evidence[0]


def test_the_other_difference_claims_name_their_test_in_the_evidence():
    six = (repeats("correct-async", "cpu", [45, 46, 47, 45.6, 46.4])
           + repeats("correct-async", "cpu", [80, 82, 84, 81.2, 82.8], workers=2)
           + repeats("correct-async", "cpu", [79, 81, 85, 80.2, 82.6], workers=4))
    line = verdict("6", six).evidence[0]
    assert "W=2 vs W=1: p = 0.0079 (5 vs 5 repeats)" in line and "W=4 vs W=2: p = " in line
    four_b = (repeats("mixed", "cpu", [45, 46, 45.25], pool_size=4)
              + repeats("mixed", "cpu", [70, 72, 70.5], pool_size=4, cpu_kind="native"))
    v = verdict("4b", four_b)
    assert v.verdict == evidence.FAILS  # not measurably more: 3 vs 3 cannot show it
    assert "rps: 3 vs 3 repeats cannot show a difference at 5%: use --repeat 5" in v.evidence[0]
    five = (repeats("blocking-future", "cpu", [44, 45, 46, 44.6, 45.4], pool_size=2, health_p99_ms=650.0)
            + repeats("process-pool", "cpu", [80, 82, 84, 81.2, 82.8], pool_size=2, health_p99_ms=9.0))
    line = verdict("5", five).evidence[0]
    assert "/health: p = 0.0079 (5 vs 5 repeats)" in line and "rps: p = 0.0079 (5 vs 5 repeats)" in line


def test_claim_8_knee_with_and_without_memory():
    sizes = {1: 45, 2: 82, 4: 83, 8: 81}
    rows = [row("process-pool", "cpu", rps, pool_size=p) for p, rps in sizes.items()]
    v = verdict("8", rows)
    assert v.verdict == evidence.PARTLY and "target_rss_mb" in v.condition
    assert "knee at pool 2" in v.evidence[0]
    with_memory = [{**r, "target_rss_mb": 60.0 + 30 * r["pool_size"]} for r in rows]
    assert verdict("8", with_memory).verdict == evidence.HOLDS
    rising = [row("process-pool", "cpu", 40 * p, pool_size=p) for p in (1, 2, 4)]
    assert verdict("8", rising).verdict == evidence.FAILS


def test_claim_9_small_connection_pool_queues():
    rows = [row("correct-async", "io", 38, http_connections=6, p50_ms=820.0),
            row("correct-async", "io", 180, http_connections=100, p50_ms=170.0)]
    v = verdict("9", rows)
    assert v.verdict == evidence.HOLDS and "770 ms waiting" in v.evidence[0]


def test_claim_10_two_stage_only_keeps_neighbours_fast_for_native_work():
    rows = (repeats("mixed", "cpu", [45, 46, 45.25, 45.5, 45.75], pool_size=4, health_p99_ms=300.0)
            + repeats("mixed", "cpu", [70, 72, 70.5, 71, 71.5], pool_size=4, cpu_kind="native",
                      health_p99_ms=12.0))
    v = verdict("10", rows)
    assert v.verdict == evidence.PARTLY and "native" in v.condition
    only_python = repeats("mixed", "cpu", [45, 46, 45.25, 45.5, 45.75], pool_size=4, health_p99_ms=300.0)
    v = verdict("10", only_python)
    assert v.verdict == evidence.FAILS and "native" in v.condition


def test_untrusted_cells_are_named_in_the_evidence():
    rows = (repeats("correct-async", "io", [180, 185, 190, 183, 187], health_p99_ms=12.0)
            + repeats("fake-async", "io", [6, 6.1, 6.2, 6.06, 6.14], health_p99_ms=1500.0, valid=False,
                      invalid_reason="only 80 requests in the window"))
    assert "untrusted: only 80 requests" in verdict("1", rows).evidence[0]


# ------------------------------------------------------------------------------------- files


def test_write_csv_and_terminal_table(tmp_path: Path):
    rows = (repeats("blocking-future", "cpu", [44, 45, 46, 44.6, 45.4], pool_size=2, health_p99_ms=650.0)
            + repeats("process-pool", "cpu", [80, 82, 84, 81.2, 82.8], pool_size=2, health_p99_ms=9.0))
    verdicts = claims.decide(run_of(rows))
    claims.write_csv(verdicts, tmp_path / "claims.csv")
    df = pd.read_csv(tmp_path / "claims.csv", dtype=str).fillna("")
    assert list(df.columns) == claims.CSV_COLUMNS
    assert list(df["claim"]) == [c.id for c in claims.REGISTRY]
    assert set(df["verdict"]) <= set(evidence.VERDICTS)
    five = df.set_index("claim").loc["5"]
    assert five["verdict"] == evidence.HOLDS and "blocking-future /cpu W=1 U=32" in five["cells"]
    table = claims.format_table(verdicts)
    assert table.splitlines()[0].split() == ["claim", "verdict", "statement"]
    assert "5     holds" in table


def test_decide_run_reads_an_old_run_folder():
    verdicts = claims.decide_run(Path(__file__).parent / "data" / "run_v1")
    assert {v.verdict for v in verdicts} <= set(evidence.VERDICTS)
    meta = json.loads((Path(__file__).parent / "data" / "run_v1" / "meta.json").read_text())
    assert meta["schema_version"] == 1


# ------------------------------------------------------------------------------ the preset plan


def test_claims_plan_covers_every_claim_once_per_cell_and_fits_ten_minutes():
    cells = claims_preset.plan(CORES)
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids))  # no two cells share a raw folder
    keys = [tuple(sorted(c.params().items())) for c in cells]
    assert len(keys) == len(set(keys))
    names = {(c.target, c.scenario, c.loop, c.cpu_kind, c.pool_size, c.http_connections) for c in cells}
    assert ("correct-async", "io", "asyncio", "python", None, 100) in names
    assert ("mixed", "cpu", "uvloop", "native", 4, 100) in names
    assert ("blocking-future", "cpu", "uvloop", "python", CORES, 100) in names
    assert {c.pool_size for c in cells if c.target == "process-pool"} == {1, 2, 4, 8}
    assert {c.workers for c in cells if c.target == "correct-async" and c.scenario == "cpu"} == {1, 2, 4}
    assert any(c.http_connections < 100 for c in cells)
    # The plan's own estimate (windows + the measured 2.2 s start/stop per cell) leaves a twentieth of
    # the 10-minute budget spare: measured on 2026-12-04, 64 cells, estimate 544 s, wall 538 s (and
    # 60 cells, estimate 512 s, wall 507 s), so the estimate errs by about 1%.
    assert estimate_s(cells, claims_preset.OVERHEAD_S) < 0.95 * claims_preset.BUDGET_S


def test_claims_plan_repeats_five_times_the_cells_a_difference_decides():
    """Claims 4, 4b, 5, 6 and 7 test a difference on repeats: every cell they need runs
    claims.DIFF_REPEATS (5) times, where the exact test can reach 5% (3 vs 3 cannot)."""
    from harness.answer import significance
    from harness.data.matrix import build_cells

    assert claims.DIFF_REPEATS == 5
    assert significance.smallest_p(claims.DIFF_REPEATS, claims.DIFF_REPEATS) <= significance.LEVEL
    plan = claims_preset.plan(CORES)

    def identity(c) -> tuple:
        return tuple(sorted((k, str(v)) for k, v in c.params().items() if k != "repeat"))

    runs = {identity(c): 0 for c in plan}
    for c in plan:
        runs[identity(c)] += 1
    hinge = [(cid, cfg) for cid, cfg in claims_preset.configs(CORES) if cid in ("4", "4b", "5", "6", "7")]
    assert {cid for cid, _ in hinge} == {"4", "4b", "5", "6", "7"}
    for cid, cfg in hinge:
        for cell in build_cells(cfg, cores=CORES):
            assert runs[identity(cell)] == claims.DIFF_REPEATS, (cid, cell.cell_id)
    # The 4.5 s window still gets the probe its 100 samples for a /health p99 (25 req/s per worker).
    windows = {c.duration_s for c in plan if c.target != "fake-async"}
    assert min(windows) * 25 >= 100 * 1.1


def test_a_run_built_from_the_plan_is_decided_for_every_claim(tmp_path: Path):
    """Rows shaped like the preset's cells (measures made up, plausible): no claim is left unmeasured."""
    rows = []
    for c in claims_preset.plan(CORES):
        rps = c.ceiling_rps * 0.8 if math.isfinite(c.ceiling_rps) else 2000.0  # /health has no ceiling
        health = 600.0 if c.target in ("correct-async", "blocking-future") and c.scenario == "cpu" else 8.0
        rows.append(row(c.target, c.scenario, rps, repeat=c.repeat, workers=c.workers, users=c.users,
                        loop=c.loop, pool_size=c.pool_size if c.pool_size is not None else np.nan,
                        cpu_kind=c.cpu_kind, http_connections=c.http_connections, health_p99_ms=health,
                        http_client=c.knobs["http_client"], fail_ratio=0.5 if c.users > 64 else 0.0,
                        loop_lag_p99_ms=c.users * 10.0,
                        p50_ms=min(c.users, 32) / rps * 1000, ceiling_rps=c.ceiling_rps, efficiency=0.8,
                        server=c.server, **{k: c.knobs[k] for k in DB}))
        if c.scenario == "db":  # the small pool waits most of its p50 for a connection, on a free loop
            rows[-1].update(db_pool_wait_p50_ms=0.8 * rows[-1]["p50_ms"] if c.knobs["db_pool"] == 2 else 1.0,
                            loop_lag_p99_ms=1.0)
    verdicts = claims.decide(run_of(rows))
    unmeasured = [v.claim for v in verdicts if v.verdict == evidence.NOT_MEASURED]
    assert unmeasured == [c.id for c in claims.REGISTRY if c.preset]  # claim 21: --preset servers


@pytest.mark.parametrize("cores", [1, 4])
def test_plan_follows_the_core_count(cores: int):
    cells = claims_preset.plan(cores)
    assert {c.workers for c in cells if c.target == "correct-async" and c.scenario == "cpu"} == \
        {1, cores, 2 * cores}


def test_claims_refuses_a_used_folder_before_launching_anything(tmp_path: Path, capsys):
    from harness import cli
    from tests.conftest import leftover_children

    (tmp_path / "someone-else.txt").write_text("x")
    already = {p.pid for p in leftover_children()}
    assert cli.main(["claims", "--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["someone-else.txt"]
    assert leftover_children(exclude=already) == []


def test_progress_line_names_only_the_knobs_that_apply_to_the_cell():
    """The claims plan varies pool and db knobs; a correct-async /cpu cell has neither."""
    from harness.run.sweep import cell_label

    cells = claims_preset.plan(CORES)
    cpu = next(c for c in cells if c.target == "correct-async" and c.scenario == "cpu")
    db = next(c for c in cells if c.scenario == "db" and c.knobs["db_pool"] == 2)
    assert "None" not in cell_label(cpu) and "db_pool" not in cell_label(cpu)
    assert cell_label(cpu).startswith("workers=") and "cpu_kind=python" in cell_label(cpu)
    assert "db_pool=2" in cell_label(db)


def test_only_plans_the_named_claims_cells_and_refuses_an_unknown_id(tmp_path: Path, capsys):
    from harness import cli

    only = claims_preset.parse_only("12, 9b,12")
    assert only == ("12", "9b")
    wanted = {c.key for cid, cfg in claims_preset.configs(CORES) if cid in only
              for c in build_cells(cfg, cores=CORES)}
    cells = claims_preset.plan(CORES, only)
    assert {c.key for c in cells} == wanted and len(cells) < len(claims_preset.plan(CORES))
    assert {(c.target, c.scenario) for c in cells} == {("fake-async", "io"), ("correct-async", "db")}
    out = tmp_path / "run"
    assert cli.main(["claims", "--only", "12,99", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown claim 99" in err and "the claims are 1, 1b" in err and not out.exists()
