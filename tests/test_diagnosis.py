"""docs/diagnosis.md: why requests failed (fail_top), where the loop stalled
(stall_site, from the probe's stack samples) and whether `def` routes waited for a thread token."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.answer import aggregate
from harness.data.matrix import make_config
from harness.judge import bottleneck, collect, failures, stalls
from harness.run.sweep import run_sweep
from tests.conftest import leftover_children

THREADS_DIR = str(Path(__file__).parent / "fixture_threads")
ITEMS = Path(__file__).parent / "fixture_app" / "items.py"
# Locust's own Error strings, as FastHttpUser wrote them on this machine (2026-12-04)
TIMEOUT_ERROR = "RetriesExceeded('http://127.0.0.1:8779/slow', 0, original=timed out)"


@pytest.mark.parametrize("error, kind", [
    ("LocustBadStatusCode(code=404)", "404 Not Found"),
    ("LocustBadStatusCode(code=503)", "503 Service Unavailable"),
    (TIMEOUT_ERROR, "timeout"),
    ("RetriesExceeded('http://x/', 0, original=[Errno 111] Connection refused)", "Connection refused"),
    ("ConnectionResetError(104, 'Connection reset by peer')", "ConnectionResetError"),
    ("LocustBadStatusCode(code=599)", "status 599"),
])
def test_failure_labels(error, kind):
    assert failures.label(error) == kind


def _locust_files(raw: Path, work: int, errors: dict[str, int]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    failed = sum(errors.values())
    (raw / "locust_stats.csv").write_text("Type,Name,Request Count,Failure Count\nGET,health,50,3\n"
                                          f"GET,work,{work},{failed}\n,Aggregated,{work + 50},{failed + 3}\n")
    rows = "".join(f'GET,work,"{e}",{n},x,y\n' for e, n in errors.items())
    (raw / "locust_failures.csv").write_text("Method,Name,Error,Occurrences,First Seen,Last Seen\n"
                                             "GET,health,\"LocustBadStatusCode(code=500)\",3,x,y\n" + rows)


def test_fail_top_of_a_404_cell_and_a_timeout_cell(tmp_path):
    _locust_files(tmp_path / "a", 4815, {"LocustBadStatusCode(code=404)": 4815})
    assert failures.fail_top(tmp_path / "a") == "404 Not Found 100%"
    # two timeouts of different requests add up; the health probe's failures are not the work's
    _locust_files(tmp_path / "b", 1000, {TIMEOUT_ERROR: 200, TIMEOUT_ERROR.replace("slow", "x"): 40,
                                         "ConnectionResetError(104, 'reset')": 30})
    assert failures.fail_top(tmp_path / "b") == "timeout 24%"
    _locust_files(tmp_path / "c", 1000, {})
    assert failures.fail_top(tmp_path / "c") == ""
    assert failures.fail_top(tmp_path / "missing") == ""  # a cell that never started Locust


def _frame(file: str, qualname: str, line: int) -> str:
    return f"{file}:{qualname}:{line}"


SITE = "/venv/lib/python3.11/site-packages"


def test_stall_site_is_the_innermost_app_frame_and_the_library_call_under_it():
    stack = ";".join([_frame(f"{SITE}/uvicorn/main.py", "run", 1), _frame("/app/targets/probe.py",
                      "CountRequests.__call__", 40), _frame("/app/targets/fake_async.py", "io", 36),
                      _frame("/app/targets/fake_async.py", "io.<locals>.<listcomp>", 36),
                      _frame(f"{SITE}/httpx/_client.py", "Client.get", 1041),
                      _frame(f"{SITE}/httpcore/_sync/x.py", "read", 9)])
    assert stalls.site(stack, "wait") == ("fake_async.py:{line} in io → httpx.Client.get", "36")
    cpu = ";".join([_frame("/app/targets/common.py", "compute", 117), _frame("/app/targets/cpu_work.py",
                    "_python_units", 19)])
    assert stalls.site(cpu, "cpu") == ("cpu_work.py:{line} in _python_units (CPU)", "19")
    # a call into C has no frame of its own: it is read from the app's source line
    line = ITEMS.read_text().splitlines().index("    time.sleep(WAIT_S)") + 1
    blocking = _frame(str(ITEMS), "read_items_blocking", line)
    assert stalls.site(blocking, "wait") == ("items.py:{line} in read_items_blocking → time.sleep", str(line))
    assert stalls.site(_frame(f"{SITE}/uvicorn/main.py", "run", 1), "wait") is None  # no app frame


def test_a_few_stall_samples_name_no_site():
    """A busy machine preempts a healthy loop now and then: below 1% of the window, no site."""
    key = "/io\twait\t" + _frame("/app/targets/correct_async.py", "io", 20)
    few = stalls.reduce([(key, 1)], window_s=5.0, workers=2)
    assert few.site == "" and few.samples == 1
    many = stalls.reduce([(key, 12)], window_s=5.0, workers=2)
    assert many.site == "correct_async.py:20 in io"  # no source here to read a C call from


def test_thread_tokens_and_stalls_from_probe_files(tmp_path):
    base = {"pid": 1, "lag_ms": [0.1], "lag_t": [10.0], "stalled_ms": 0.0, "work": 0, "health": 0,
            "pool_busy": None}
    key = "/x\twait\t" + _frame("/app/x.py", "f", 3)
    lines = [{**base, "t": 10.0 + i, "tokens_busy": busy, "tokens_total": 40, "tokens_full": full,
              "tokens_beats": 100, "stalls": {key: 5}} for i, (busy, full) in enumerate([(40, 90), (38, 0)])]
    (tmp_path / "worker-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    row, workers = collect.probe_stats(tmp_path, 9.5, 12.0)
    assert row["thread_tokens_busy_max"] == 40 and row["thread_tokens_total"] == 40
    assert row["thread_tokens_full_pct"] == pytest.approx(45.0)
    assert row["stall_samples"] == 10 and row["_stalls"].sites[0][2] == 10
    old = [{k: v for k, v in x.items() if not k.startswith(("tokens", "stalls"))} for x in lines]
    (tmp_path / "worker-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in old))
    row, _ = collect.probe_stats(tmp_path, 9.5, 12.0)  # a probe file from before the stall sampler
    assert math.isnan(row["thread_tokens_total"]) and row["stall_samples"] == 0 and row["stall_site"] == ""


CTX = bottleneck.Context(target_cores=2, machine_cores=2)


def _row(**kw) -> dict:
    return {"target": "app", "scenario": "/x", "workers": 1, "users": 60, "cpu_kind": "python",
            "fanout": 1, "efficiency": math.nan, "ceiling_rps": math.nan, **kw}


def test_all_failed_cell_is_bound_by_failing_requests_never_a_resource():
    row = _row(requests=4815, failures=4815, rps=0.0, fail_top="404 Not Found 100%",
               worker_cpu_max_pct=99.0, worker_busy_threads=3, worker_thread_cpu_pct=80.0)
    v = bottleneck.attribute(row, CTX)
    assert v.bound_by == "failing requests" and "404 Not Found 100%" in v.detail


def test_thread_pool_rule_names_the_tokens_and_the_knob():
    row = _row(requests=500, failures=0, rps=160.0, thread_tokens_busy_max=40, thread_tokens_total=40,
               thread_tokens_full_pct=97.0, worker_cpu_max_pct=30.0)
    v = bottleneck.attribute(row, CTX)
    assert v.bound_by == "thread pool"
    assert "limited by the thread pool (40 of 40 tokens busy" in v.detail
    assert "current_default_thread_limiter().total_tokens" in v.detail
    # tokens that touched the limit once are not the limit
    assert bottleneck.attribute({**row, "thread_tokens_full_pct": 3.0}, CTX).bound_by != "thread pool"


def test_a_cell_near_its_ceiling_gets_the_closest_rule_not_unexplained():
    """The documented case: thread-pool /io at 87% of its ceiling, the machine at 101% of 200%."""
    row = {"target": "thread-pool", "scenario": "io", "workers": 1, "users": 64, "io_ms": 50, "cpu_ms": 20,
           "fanout": 3, "pool_size": 40, "cpu_kind": "python", "http_connections": 100, "requests": 2000,
           "failures": 0, "rps": 232.0, "ceiling_rps": 266.7, "efficiency": 0.87, "efficiency_cpu": 0.87,
           "worker_cpu_max_pct": 45.0, "target_cpu_pct": 45.0, "locust_cpu_pct": 40.0,
           "upstream_cpu_pct": 16.0, "machine_cpu_pct": 101.0}
    v = bottleneck.attribute(row, CTX)
    assert v.bound_by == "pattern: thread tokens" and "closest" in v.detail and "87%" in v.detail
    far = {**row, "efficiency": 0.7, "efficiency_cpu": 0.7}
    assert bottleneck.attribute(far, CTX).bound_by == "unexplained"


def test_def_route_behind_thread_tokens_on_a_real_worker(tmp_path):
    """60 users of a 250 ms `def` route: 40 tokens are all busy ("thread pool"); 80 tokens are not.
    An unknown path fails every request: 'failing requests', with the 404 named."""
    cfg = make_config("default", app="slow_def:app", app_dir=THREADS_DIR, paths=["/slow-def", "/nope"],
                      workers=[1], users=[60], thread_tokens=[40, 80], duration=2.0, warmup=1.0)
    already = {p.pid for p in leftover_children()}
    assert run_sweep(cfg, tmp_path / "run", preset="default", measure_upstream=False) == 0
    assert leftover_children(exclude=already) == []
    df = aggregate.load_results(tmp_path / "run").set_index(["scenario", "thread_tokens"])
    assert (df["status"] == "ok").all()
    at40, at80 = df.loc[("/slow-def", 40)], df.loc[("/slow-def", 80)]
    assert at40["thread_tokens_total"] == 40 and at40["thread_tokens_busy_max"] == 40
    assert at40["bound_by"] == "thread pool", at40["bound_detail"]
    assert at80["thread_tokens_total"] == 80 and 40 < at80["thread_tokens_busy_max"] <= 60
    assert at80["bound_by"] != "thread pool"
    for tokens in (40, 80):
        nope = df.loc[("/nope", tokens)]
        assert nope["fail_top"] == "404 Not Found 100%" and nope["bound_by"] == "failing requests"
        assert "404 Not Found 100%" in nope["invalid_reason"]
