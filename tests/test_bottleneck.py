"""Bottleneck rules on hand-made rows (one per rule, plus unexplained), the parts of the pattern
named from the model, per-process CPU accounting, and the profile summary and flame graph drawn
from constructed stacks. No process is started here."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from harness.answer import aggregate
from harness.data.matrix import build_cells, make_config
from harness.judge import bottleneck, resources
from harness.judge.bottleneck import Context, attribute
from harness.present import flamegraph
from harness.run import profile
from harness.run.sweep import describe, profiled

CTX = Context(target_cores=2, machine_cores=2, upstream_capacity_rps=19000.0)


def row(target="correct-async", scenario="io", workers=1, users=32, pool_size=None, cpu_kind="python",
        **measures) -> dict:
    """A measured row: the knobs, its ceiling from the model, and quiet measures unless given."""
    r = {"target": target, "scenario": scenario, "workers": workers, "users": users,
         "pool_size": pool_size, "io_ms": 50, "cpu_ms": 20, "fanout": 3, "cpu_kind": cpu_kind,
         "http_connections": 100, "status": "ok",
         "worker_cpu_max_pct": 40.0, "worker_cpu_min_pct": 35.0, "worker_share_max": 1 / workers,
         "worker_thread_cpu_pct": 0.5, "worker_busy_threads": 0.0, "target_cpu_pct": 40.0 * workers,
         "locust_cpu_pct": 30.0, "upstream_cpu_pct": 10.0}
    from harness.data import model

    r["ceiling_rps"] = model.ceiling_rps(target, scenario, workers=workers, users=users, io_ms=50, cpu_ms=20,
                                         fanout=3, pool_size=pool_size, cpu_kind=cpu_kind, cores=2)
    efficiency = measures.pop("efficiency", 0.5)
    r.update(measures)
    r["rps"] = efficiency * r["ceiling_rps"]
    r["efficiency"] = efficiency
    return r


# ------------------------------------------------------------------------- the pattern and its part

@pytest.mark.parametrize("kwargs, part", [
    (dict(target="fake-async", scenario="io", workers=2), "blocked loop"),
    (dict(target="thread-pool", scenario="io", pool_size=8, users=32), "thread tokens"),
    (dict(target="thread-pool", scenario="io", pool_size=40, users=32), "users"),
    (dict(target="process-pool", scenario="cpu", workers=2, pool_size=2), "cores"),
    (dict(target="process-pool", scenario="cpu", workers=1, pool_size=1), "pool"),
    (dict(target="thread-pool", scenario="cpu", pool_size=40), "GIL"),
    (dict(target="correct-async", scenario="cpu"), "blocked loop"),
    (dict(target="fake-async", scenario="cpu", workers=4), "cores"),
    (dict(target="correct-async", scenario="io", users=32), "users"),
    (dict(target="correct-async", scenario="io", users=64), "HTTP connections"),  # 100 // 3 per worker
])
def test_pattern_names_the_part_of_the_model_that_binds(kwargs, part):
    v = attribute(row(**kwargs, efficiency=0.95), CTX)
    assert v.bound_by == f"pattern: {part}"
    assert v.detail.startswith("95% of the ")


def test_pattern_below_09_when_the_cpu_part_it_names_is_saturated():
    # process-pool /cpu, W·P = 4 > 2 cores: the pool children fill both cores, yet 86% of the ceiling
    v = attribute(row(target="process-pool", scenario="cpu", workers=2, pool_size=2, efficiency=0.86,
                      worker_cpu_max_pct=5.4, worker_cpu_min_pct=5.2, pool_cpu_pct=183.6,
                      target_cpu_pct=194.2, locust_cpu_pct=4.2, upstream_cpu_pct=0.0), CTX)
    assert v.bound_by == "pattern: cores"
    assert "the target used 194% of 200% (cores saturated): a request cost more CPU than the calibrated " \
           "20 ms" in v.detail and v.detail.endswith("also machine CPU")
    # fake-async /cpu on one worker: its loop computes, at a full core
    v = attribute(row(target="fake-async", scenario="cpu", efficiency=0.8, worker_cpu_max_pct=98.0,
                      worker_cpu_min_pct=98.0, cpu_cost_ms=24.6), CTX)
    assert v.bound_by == "pattern: blocked loop"
    assert "every worker at ≥ 98% of a core (blocked loop saturated): a request cost more CPU than the " \
           "calibrated 20 ms (it cost 24.6 ms of CPU)" in v.detail
    # the same efficiency with the cores not full is not the pattern
    v = attribute(row(target="process-pool", scenario="cpu", workers=2, pool_size=2, efficiency=0.6,
                      pool_cpu_pct=110.0, target_cpu_pct=120.0), CTX)
    assert v.bound_by == "unexplained"


def test_pattern_at_the_measured_cpu_cost():
    # 80% of the nominal ceiling, 95% of the ceiling recomputed with the 21 ms a request really cost
    v = attribute(row(target="fake-async", scenario="cpu", efficiency=0.8, efficiency_cpu=0.95,
                      ceiling_cpu_rps=47.6, cpu_cost_ms=21.0), CTX)
    assert v.bound_by == "pattern: blocked loop"
    assert v.detail.startswith("80% of the 50 rps ceiling, 95% of the 48 rps ceiling at the measured CPU "
                               "cost (it cost 21.0 ms of CPU): ")


def test_pattern_comes_first_and_lists_what_else_held():
    v = attribute(row(efficiency=0.92, locust_cpu_pct=95.0), CTX)
    assert v.bound_by == "pattern: users"
    assert v.detail.endswith("also load generator")


# ------------------------------------------------------------------------------- one row per rule

def test_worker_cpu():
    v = attribute(row(worker_cpu_max_pct=99.0, worker_cpu_min_pct=99.0, target_cpu_pct=99.0), CTX)
    assert v.bound_by == "worker CPU"
    assert "busiest worker at 99% of one core" in v.detail and v.detail.startswith("50% of the 640 rps")


def test_worker_cpu_says_when_the_cpu_stage_ran_slow():
    # native CPU in 40 threads could use both cores; one worker at a full core is short of that
    v = attribute(row(target="thread-pool", scenario="cpu", pool_size=40, cpu_kind="native", efficiency=0.5,
                      worker_cpu_max_pct=98.0, target_cpu_pct=98.0, cpu_cost_ms=24.6), CTX)
    assert v.bound_by == "worker CPU"
    assert v.detail.endswith("its CPU stage cost 24.6 ms of CPU, not the 20 ms calibrated")


def test_machine_cpu():
    v = attribute(row(workers=4, worker_cpu_max_pct=45.0, worker_cpu_min_pct=40.0, target_cpu_pct=170.0,
                      locust_cpu_pct=20.0), CTX)
    assert v.bound_by == "machine CPU"
    assert "= 200% of 200% (2 cores)" in v.detail


def test_machine_cpu_taken_by_other_processes():
    # a shared machine: our processes use 68% of 200%, something else the rest
    v = attribute(row(worker_cpu_max_pct=64.0, target_cpu_pct=64.0, locust_cpu_pct=2.0,
                      upstream_cpu_pct=2.0, machine_cpu_pct=195.0), CTX)
    assert v.bound_by == "machine CPU"
    assert v.detail.endswith("= 68% of 200% (2 cores); other processes on this machine used 127% more "
                             "(busy 195% in all)")


def test_load_generator():
    v = attribute(row(locust_cpu_pct=93.0), CTX)
    assert v.bound_by == "load generator" and "Locust at 93%" in v.detail


def test_upstream_cpu_and_upstream_demand():
    assert attribute(row(upstream_cpu_pct=95.0), CTX).bound_by == "upstream"
    # 300 rps × 3 calls = 900 calls/s > half of a 1000/s capacity
    v = attribute(row(efficiency=300 / 640), Context(2, 2, upstream_capacity_rps=1000.0))
    assert v.bound_by == "upstream" and "900 calls/s > half its measured capacity 1000/s" in v.detail


def test_accept_imbalance():
    v = attribute(row(target="fake-async", workers=2, worker_share_max=0.98, worker_cpu_max_pct=12.0,
                      worker_cpu_min_pct=0.5), CTX)
    assert v.bound_by == "accept imbalance"
    assert "served 98% of requests (even share 50%)" in v.detail
    # the same share with both workers busy is not an imbalance of accept
    busy = row(target="fake-async", workers=2, worker_share_max=0.98, worker_cpu_max_pct=12.0,
               worker_cpu_min_pct=10.0)
    assert attribute(busy, CTX).bound_by == "unexplained"


def test_gil():
    gil = dict(target="thread-pool", scenario="cpu", pool_size=40, worker_cpu_max_pct=97.0,
               worker_thread_cpu_pct=90.0, worker_busy_threads=32.0)
    v = attribute(row(**gil), CTX)
    assert v.bound_by == "GIL" and "32 threads running pure-Python CPU" in v.detail
    # at 0.9 the same row is the pattern's GIL, not listed twice
    assert attribute(row(**{**gil, "efficiency": 0.92}), CTX).detail.endswith("also worker CPU")
    assert v.detail.endswith("also worker CPU")
    # native CPU releases the GIL: the same figures are then a busy worker, not the GIL
    assert attribute(row(**{**gil, "cpu_kind": "native"}), CTX).bound_by == "worker CPU"


def test_unexplained_says_so_with_the_figures():
    v = attribute(row(efficiency=0.6), CTX)
    assert v.bound_by == "unexplained"
    assert v.detail == ("60% of the 640 rps ceiling; no rule matched (busiest worker 40%, target 40%, "
                        "Locust 30%, upstream 10%; 2 cores)")


def test_missing_measures_never_fire_a_rule():
    r = row(efficiency=float("nan"))
    for key in ("worker_cpu_max_pct", "worker_cpu_min_pct", "worker_share_max", "locust_cpu_pct",
                "upstream_cpu_pct", "target_cpu_pct", "worker_busy_threads", "worker_thread_cpu_pct"):
        r[key] = float("nan")
    v = attribute(r, CTX)
    assert v.bound_by == "unexplained" and v.detail.startswith("no finite ceiling")


# --------------------------------------------------------------------------- per-process CPU

def test_worker_cpu_separates_workers_pool_children_and_threads():
    # root 10 (supervisor), workers 11 and 12, pool child 13 of worker 11; 2 s window
    before = {10: 1.0, 11: 5.0, 12: 5.0, 13: 0.0}
    after = {10: 1.1, 11: 6.9, 12: 5.2, 13: 1.6, 14: 0.4}  # 14: a pool child born in the window
    threads_before = {11: {11: 2.0, 21: 1.0, 22: 2.0}, 12: {12: 5.0}}
    threads_after = {11: {11: 2.4, 21: 1.7, 22: 2.8, 23: 0.01}, 12: {12: 5.2}}
    out = resources.worker_cpu(before, after, 2.0, root=10, workers=[11, 12],
                               threads_before=threads_before, threads_after=threads_after)
    assert out["worker_cpu_max_pct"] == pytest.approx(95.0)
    assert out["worker_cpu_min_pct"] == pytest.approx(10.0)
    assert out["pool_cpu_pct"] == pytest.approx(100.0)  # (1.6 + 0.4) / 2 s
    assert out["worker_thread_cpu_pct"] == pytest.approx(75.5)  # threads 21, 22, 23 of worker 11
    assert out["worker_busy_threads"] == 2  # thread 23 used 0.5% of a core: not doing work
    assert math.isnan(resources.worker_cpu({}, {}, 2.0, root=1, workers=[5])["worker_cpu_max_pct"])


# ------------------------------------------------------------------ profile summary and flame graph

STACKS = [
    (["main (app.py:1)", "send (httpx/_client.py:9)",
      "Pool._assign.<locals>.<listcomp> (httpcore/_async/connection_pool.py:305)"], 30),
    (["main (app.py:1)", "send (httpx/_client.py:9)",
      "Pool._assign (httpcore/_async/connection_pool.py:270)"], 20),
    (["main (app.py:1)", "Origin.__eq__ (httpcore/_models.py:167)"], 25),
    (["main (app.py:1)", "send (httpx/_client.py:9)"], 15),
    (["Thread.run (threading.py:971)", "sleep (<frozen time>)"], 10),
]


def test_profile_summary_folds_comprehensions_into_their_function():
    assert profile.function_of("Pool._assign.<locals>.<listcomp> (httpcore/_async/pool.py:305)") == \
        ("httpcore", "Pool._assign")
    assert profile.function_of("main (app.py)") == ("app", "main")
    text = profile.summarize(STACKS)
    assert text == ("100 samples: self time 50% httpcore Pool._assign, 25% httpcore Origin.__eq__, "
                    "15% httpx send; by package httpcore 75%, httpx 15%, <frozen time> 10%")
    assert profile.summarize([]) == "no samples: the worker's threads were all idle"


def test_read_stacks_skips_empty_stacks(tmp_path):
    path = tmp_path / "profile.txt"
    path.write_text("a (x.py:1);b (x.py:2) 3\n 1\n\nc (y.py:4) 2\n")
    assert profile.read_stacks(path) == [(["a (x.py:1)", "b (x.py:2)"], 3), (["c (y.py:4)"], 2)]


def test_flamegraph_widths_are_sample_shares():
    svg = ET.fromstring(flamegraph.render(STACKS, title="t"))
    ns = "{http://www.w3.org/2000/svg}"
    frames = {g.find(f"{ns}title").text.split(":")[0]: float(g.find(f"{ns}rect").get("width"))
              for g in svg.iter(f"{ns}g")}
    full = frames["all (100 samples)"]
    assert frames["main (app.py"] == pytest.approx(0.9 * full, abs=0.2)
    assert frames["send (httpx/_client.py"] == pytest.approx(0.65 * full, abs=0.2)
    assert frames["Origin.__eq__ (httpcore/_models.py"] == pytest.approx(0.25 * full, abs=0.2)


# ------------------------------------------------------------- where the verdict shows, and --profile

def test_terminal_line_and_summary_carry_the_bound():
    r = {**row(worker_cpu_max_pct=99.0), "p50_ms": 1.0, "health_p99_ms": 2.0, "loop_lag_p99_ms": 3.0,
         "valid": True}
    r.update(bound_by="worker CPU", bound_detail="x")
    assert describe(r).endswith("; bound by worker CPU")


def test_summary_takes_the_most_common_bound(tmp_path):
    import pandas as pd

    from harness.data.schema import COLUMNS

    base = {c: "" for c in COLUMNS}
    base.update(target="fake-async", scenario="io", workers=1, users=32, loop="uvloop", pool_size=40,
                io_ms=50, cpu_ms=20, fanout=3, cpu_kind="python", http_client="httpx", http_connections=100,
                launch="uvicorn", probe=True, status="ok", valid=True, rps=6.0, ceiling_rps=6.67)
    rows = [{**base, "repeat": i, "bound_by": b, "bound_detail": f"d{i}"}
            for i, b in enumerate(["pattern: blocked loop", "unexplained", "pattern: blocked loop"])]
    summary = aggregate.summarize(aggregate.coerce(pd.DataFrame(rows)))
    assert summary.loc[0, "bound_by"] == "pattern: blocked loop" and summary.loc[0, "bound_detail"] == "d0"


def test_profile_cells_glob_selects_cells():
    cells = build_cells(make_config("default", targets=["correct-async", "fake-async"], scenarios=["io"],
                                    workers=[1, 2], repeat=2), cores=2)
    chosen = [c.cell_id for c in cells if profiled(c, "correct-async_io_*_r1")]
    assert chosen == ["correct-async_io_w1_u32_r1", "correct-async_io_w2_u32_r1"]
    assert all(profiled(c, "*") for c in cells) and not any(profiled(c, None) for c in cells)


def test_bound_columns_are_in_the_schema():
    from harness.data.schema import COLUMNS

    assert {"bound_by", "bound_detail", "worker_cpu_max_pct", "profile_svg", "profiled"} <= set(COLUMNS)
    assert bottleneck.RULES[0][0] == "accept imbalance"


def test_chart_footnote_names_the_bound_of_cells_below_80_percent():
    import pandas as pd

    from harness.data.schema import COLUMNS
    from harness.present import plot

    base = {c: "" for c in COLUMNS}
    base.update(target="correct-async", scenario="io", users=32, loop="uvloop", pool_size="", io_ms=50,
                cpu_ms=20, fanout=3, cpu_kind="python", http_client="httpx", http_connections=100,
                launch="uvicorn", probe=True, status="ok", valid=True, repeat=1, ceiling_rps=640.0)
    rows = [{**base, "workers": 1, "rps": 200.0, "bound_by": "worker CPU"},
            {**base, "workers": 2, "rps": 600.0, "bound_by": "pattern: users"}]
    summary = aggregate.summarize(aggregate.coerce(pd.DataFrame(rows)))
    notes = plot._footnotes(summary, "workers", [])
    assert notes == ["▽ below 80% of ceiling (31%): correct-async @ 1 worker: bound by worker CPU"]


def test_html_report_lists_bounds_and_links_flame_graphs():
    import pandas as pd

    from harness.present import html_report

    rows = pd.DataFrame([
        {"target": "correct-async", "scenario": "io", "workers": 1, "users": 64, "repeat": 1, "status": "ok",
         "efficiency": 0.12, "bound_by": "worker CPU", "bound_detail": "busiest worker at 100% <of> a core",
         "profile_svg": "raw/c/flamegraph.svg"},
        {"target": "fake-async", "scenario": "io", "workers": 1, "users": 32, "repeat": 1, "status": "ok",
         "efficiency": 0.93, "bound_by": "pattern: blocked loop", "bound_detail": "x", "profile_svg": ""},
    ])
    text = html_report.section_bounds(rows)
    assert text.count("<tr><td>") == 2 and text.count('href="raw/c/flamegraph.svg"') == 1
    assert "100% &lt;of&gt; a core" in text and "pattern: blocked loop" in text
    old = rows.drop(columns=["bound_by", "bound_detail", "profile_svg"])
    assert "not available" in html_report.section_bounds(old)


def test_machine_busy_seconds_counts_a_busy_loop():
    import time

    before, t0 = resources.machine_busy_seconds(), time.monotonic()
    while time.monotonic() - t0 < 0.3:  # this process alone keeps one core busy
        pass
    used = resources.machine_busy_seconds() - before
    assert used >= 0.2  # at least most of our own 0.3 s of CPU (other processes only add to it)


@pytest.mark.parametrize("cpu, what", [(5.0, "a blocking call on the event loop"),
                                       (97.0, "CPU work on the event loop")])
def test_an_app_without_a_model_is_bound_by_its_blocked_loop(cpu, what):
    """Your own app (no ceiling): a loop late on its heartbeat for most of the window is named, and
    what blocked it is read from the worker's CPU."""
    r = row(efficiency=float("nan"), ceiling_rps=float("nan"), loop_blocked_pct_max=98.0,
            loop_lag_p99_ms=639.0, worker_cpu_max_pct=cpu)
    v = attribute(r, CTX)
    assert v.bound_by == "blocked loop" and what in v.detail and "blocked 98%" in v.detail, v
    unseen = attribute({**r, "worker_cpu_max_pct": float("nan")}, CTX)  # --url: no CPU seen
    assert unseen.bound_by == "blocked loop" and "nan" not in unseen.detail, unseen
    free = attribute({**r, "loop_blocked_pct_max": 3.0}, CTX)  # a free loop: not this rule
    assert free.bound_by != "blocked loop"
    modelled = attribute(row(efficiency=0.6, loop_blocked_pct_max=98.0), CTX)  # a known target: its model
    assert modelled.bound_by != "blocked loop"


def test_an_app_without_a_model_and_nothing_saturated_is_bound_by_its_users():
    r = row(efficiency=float("nan"), ceiling_rps=float("nan"), users=16, p50_ms=22.8, rps=681.0,
            thread_tokens_total=40, thread_tokens_busy_max=3, thread_tokens_full_pct=0.0)
    r["rps"] = 681.0  # row() recomputes rps from the ceiling
    v = attribute(r, CTX)
    assert v.bound_by == "users" and "about 702 rps (measured 681)" in v.detail, v
    far = attribute({**r, "rps": 300.0}, CTX)  # far from U / p50: not the users' doing
    assert far.bound_by == "unexplained" and "closest: worker CPU at 44% of its threshold" in far.detail, far


def test_users_are_not_named_without_evidence_that_nothing_queued():
    # The pool-bound shape: 32 users, 40 tokens never all taken, p50 815 ms, 39.6 rps = 32 / 0.815 s.
    base = row(efficiency=float("nan"), ceiling_rps=float("nan"), users=32, p50_ms=815.0)
    base["rps"] = 39.6
    unseen = attribute(base, CTX)  # the worker's waits not measured (--url): U / p50 proves nothing
    assert unseen.bound_by == "unexplained" and "does not show the users are the limit" in unseen.detail
    assert "were not measured" in unseen.detail, unseen
    queued = attribute({**base, "thread_tokens_total": 40, "thread_tokens_busy_max": 40,
                        "thread_tokens_full_pct": 30.0}, CTX)
    assert queued.bound_by == "unexplained", queued
    assert "closest: thread pool at 60% of its threshold" in queued.detail, queued
    assert "requests queued: all 40 thread tokens taken 30% of the window" in queued.detail, queued
    pool = attribute({**base, "thread_tokens_total": 40, "thread_tokens_busy_max": 32,
                      "thread_tokens_full_pct": 0.0, "app_pool_size": 2, "app_pool_full_pct": 98.0}, CTX)
    assert pool.bound_by != "users", pool


def test_a_cell_with_no_response_in_its_window_is_bound_by_no_response():
    v = attribute(row(requests=0, failures=0, users=8), CTX)
    assert v == bottleneck.Verdict("no response", "no response within the window (8 in flight)")


def test_a_frame_name_xml_cannot_hold_leaves_the_svg_readable():
    """A sampled process's frame may carry a control character: the SVG still parses, the name shown."""
    svg = flamegraph.render([(["main (app.py:1)", "odd\x01name (app.py:2)"], 3)], title="t\x1b")
    titles = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("odd?name (app.py:2)") for t in titles), titles
