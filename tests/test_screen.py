"""The audit's screen: the judge on constructed windows (flag on a stall, on failures, on no request;
clear only on requests with no stall and no queue), the flag's defaults, a cleared row's validity;
then one real `audit --check --screen` of five routes of tests/screen_app (module-scoped)."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from harness.answer import screen_rows
from harness.audit_cmd import screen_on
from harness.data.matrix import ConfigError
from harness.judge import route_window, screen
from tests.test_audit_run import ROOT, audit_rows, bench

SHOP = str(ROOT / "tests" / "screen_app")
ROUTES = [("/a", "/a"), ("/b", "/b?limit=3"), ("POST /c", "/c")]
FINE_WINDOW = {"status": "ok", "workers": 1, "duration_s": 5.0, "fail_ratio": 0.0, "requests": 300,
               "loop_blocked_pct_max": 3.0, "thread_tokens_full_pct": 0.0, "worker_cpu_max_pct": 40.0,
               "wait_lock_pct": 0.0, "bound_by": "machine CPU"}


def _table(**figures: tuple[int, int]) -> pd.DataFrame:
    """route → (requests, failures) as route_window writes it."""
    rows = [{"route": r.replace("_", " "), "requests": n, "failures": f,
             "fail_ratio": f / n if n else float("nan"), "rps": (n - f) / 5, "p50_ms": 5.0, "p99_ms": 9.0,
             "max_ms": 10.0} for r, (n, f) in figures.items()]
    return pd.DataFrame(rows, columns=route_window.COLUMNS)


def _judge(table: pd.DataFrame, window: dict | None = None, on_loop: dict | None = None,
           shares: dict | None = None, own: Counter | None = None) -> dict[str, screen.Screened]:
    out = screen.judge(ROUTES, {**FINE_WINDOW, **(window or {})}, table, on_loop or {}, shares or {}, own)
    return {s.route: s for s in out}


FULL = {"/a": (100, 0), "/b": (90, 0), "POST_/c": (95, 0)}


def test_cleared_only_with_requests_and_no_stall_or_queue():
    judged = _judge(_table(**FULL), shares={"/a": {"io": 80.0, "app": 20.0}})
    assert not any(s.flagged for s in judged.values()), judged
    assert judged["/a"].wait == "network or database I/O 80%" and judged["/b"].rps == 18.0


def test_flagged_on_a_stall_sample_in_its_own_code():
    judged = _judge(_table(**FULL), window={"loop_blocked_pct_max": 80.0, "bound_by": "blocked loop"},
                    on_loop={"/b": Counter(wait=40)}, own=Counter({"/b": 1}))
    assert judged["/b"].reasons == ["1 stall sample(s) in the app's own code of its request"]
    assert not judged["/a"].flagged and not judged["POST /c"].flagged  # the blocked loop is /b's


def test_framework_samples_flag_only_from_the_noise_floor():
    assert screen.noise_floor(5.0, 1) == 5  # 1% of a 5 s window, at 10 ms a sample
    below = _judge(_table(**FULL), on_loop={"/a": Counter(cpu=4)})
    assert not below["/a"].flagged
    at = _judge(_table(**FULL), on_loop={"/a": Counter(cpu=5)})
    assert at["/a"].reasons == ["5 stall sample(s) with its request on the loop (noise floor 5)"]


def test_flagged_on_failures_and_on_no_request():
    judged = _judge(_table(**{"/a": (100, 1), "/b": (0, 0)}), window={"fail_ratio": 0.005})
    assert judged["/a"].reasons == ["1 of 100 requests failed"]  # one is enough: no 1% allowance
    assert judged["/b"].reasons == ["no request completed in the window"]
    assert judged["POST /c"].reasons == ["no request completed in the window"]  # never seen at all


def test_a_handful_of_requests_cannot_clear_a_route():
    judged = _judge(_table(**{**FULL, "/b": (19, 0)}))
    assert judged["/b"].reasons == [
        "only 19 requests completed in the window (fewer than 20 cannot clear it)"]
    assert not judged["/a"].flagged and not judged["POST /c"].flagged


def test_a_worker_wide_limit_flags_every_route():
    judged = _judge(_table(**FULL), window={"thread_tokens_full_pct": 70.0})
    assert all("every thread token was taken 70% of the window" in s.reasons for s in judged.values())
    unexplained = _judge(_table(**FULL), window={"fail_ratio": 0.02})  # failures, but no route's
    assert all(s.flagged for s in unexplained.values())
    bound = _judge(_table(**FULL), window={"bound_by": "unexplained"})
    assert all(s.reasons == ["the window was bound by unexplained"] for s in bound.values())
    failed = _judge(_table(**FULL), window={"status": "failed", "error": "LaunchError: boom"})
    assert all(s.reasons == ["the screen cell did not run (LaunchError: boom)"] for s in failed.values())


def test_a_token_share_counts_only_when_the_limiter_was_full():
    shares = {"/a": {"tokens": 30.0}}
    assert not _judge(_table(**FULL), shares=shares)["/a"].flagged  # never full: nobody waited for one
    judged = _judge(_table(**FULL), window={"thread_tokens_full_pct": 12.0}, shares=shares)
    assert judged["/a"].reasons == ["waited for a thread token 30% of its time"]


def test_stall_paths_read_path_and_kind_from_the_folded_file(tmp_path):
    (tmp_path / "stalls.folded").write_text("/a;x.py:f:1;[wait] 7\n/a;x.py:f:2;[cpu] 2\n?;y.py:g:3;[cpu] 9\n")
    assert screen.stall_paths(tmp_path) == {"/a": Counter(wait=7, cpu=2)}


def test_screen_defaults_on_under_check_off_with_baseline():
    args = argparse.Namespace
    assert screen_on(args(check=True, screen=None, baseline=None))
    assert not screen_on(args(check=False, screen=None, baseline=None))
    assert not screen_on(args(check=True, screen=None, baseline=Path("old")))
    assert screen_on(args(check=False, screen=True, baseline=None))
    assert not screen_on(args(check=True, screen=False, baseline=None))
    with pytest.raises(ConfigError, match="--screen with --baseline"):
        screen_on(args(check=True, screen=True, baseline=Path("old")))


def test_a_cleared_row_drops_only_the_failures_of_other_routes():
    failed = "5% of requests failed (most: 500 Internal Server Error 5%) (> 1%): latencies beyond"
    assert screen_rows.own_validity({"valid": False, "invalid_reason": failed}) == \
        {"valid": "True", "invalid_reason": ""}
    both = {"valid": False, "invalid_reason": f"{failed}; load generator saturated (97% of its core)"}
    assert screen_rows.own_validity(both) == {"valid": "False",
                                             "invalid_reason": "load generator saturated (97% of its core)"}


# One real audit: three fine routes, one `async def` that calls time.sleep, one that raises.
FIVE = ["--include", "/a/ping", "--include", "/a/wait", "--include", "/a/catalogue", "--include",
        "/blocking/sleep", "--include", "/failing"]


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    out = tmp_path_factory.mktemp("screen") / "audit"
    done = bench("audit", "shop:app", "--app-dir", SHOP, "--workers", "1", "--users", "8", "--duration", "2",
                 "--warmup", "0.5", "--check", "--screen", *FIVE, "--out", str(out),
                 "--summary", str(out.parent / "summary.md"))
    return done, out


def test_the_screen_flags_and_confirms_the_bad_routes_and_clears_the_fine(screened):
    done, out = screened
    assert done.returncode == 1, done.stdout + done.stderr
    rows = audit_rows(out)
    assert rows["/blocking/sleep"]["verdict"] == "blocks the event loop", rows["/blocking/sleep"]
    assert rows["/failing"]["verdict"].startswith("failing: 500 Internal Server Error"), rows["/failing"]
    assert rows["/blocking/sleep"]["source"] == rows["/failing"]["source"] == "alone"
    for route in ("/a/ping", "/a/wait", "/a/catalogue"):
        assert rows[route]["verdict"] == "fine at this load", rows[route]
        assert rows[route]["source"] == "screen" and float(rows[route]["rps"]) > 0, rows[route]
    assert "screen" not in rows  # the shared window is no route of its own
    with open(out / "screen.csv", newline="") as fh:
        lines = {r["route"]: r for r in csv.DictReader(fh)}
    assert "stall sample" in lines["/blocking/sleep"]["reasons"] and int(lines["/failing"]["failures"]) > 0


def test_the_screen_gate_names_the_failing_routes_last(screened):
    done, _ = screened
    lines = done.stdout.strip().splitlines()
    blocking = "gate: FAIL /blocking/sleep W=1: blocks the event loop at shop.py:"
    assert lines[-3].startswith(blocking), lines[-3:]
    assert lines[-3].endswith("in blocking_sleep → time.sleep")
    assert lines[-2].startswith("gate: FAIL /failing W=1: failing: 500 Internal Server Error")
    assert lines[-1].startswith("gate: failed, 2 of 5 measured cell(s)")
    assert "screen: 3 of 5 route(s) cleared in the shared window; 2 flagged" in done.stdout


def test_the_summary_says_where_each_row_was_measured(screened):
    _, out = screened
    table = {line.split(" | ")[1]: line for line in (out.parent / "summary.md").read_text().splitlines()
             if line.startswith("| ok") or line.startswith("| **fail**")}
    assert table["/a/ping"].startswith("| ok | /a/ping | 1 | fine at this load |")
    assert table["/a/ping"].endswith("| screen |") and table["/failing"].endswith("| alone |")


def test_the_screen_is_one_cell_per_workers_value_with_every_path():
    from harness.data.matrix import build_cells, make_config

    cfg = make_config("default", app="shop:app", app_dir=SHOP, paths=["/a/ping", "POST /x"], screen=True,
                      workers=[1, 2])
    cells = build_cells(cfg)
    assert [(c.scenario, c.workers) for c in cells] == [("screen", 1), ("screen", 2)]
    assert cells[0].knobs["screen"] == ["/a/ping", "POST /x"]
    with pytest.raises(ConfigError, match="--screen"):
        make_config("default", screen=True)  # no --app: nothing to screen


def test_screen_env_carries_each_routes_request():
    import json

    from harness.run.request_env import screen_env

    spec = {"routes": {"POST /x": {"method": "POST", "url": "/x", "body": '{"a": 1}',
                                   "content_type": "application/json"}}}
    env = screen_env(["/a/ping?n=1", "POST /x"], spec, {"Authorization": "Bearer t"})
    assert json.loads(env["BENCH_SCREEN"]) == [
        {"name": "/a/ping?n=1", "method": "GET", "url": "/a/ping?n=1", "body": None, "content_type": None},
        {"name": "POST /x", "method": "POST", "url": "/x", "body": '{"a": 1}',
         "content_type": "application/json"}]
    assert json.loads(env["BENCH_HEADERS"]) == {"Authorization": "Bearer t"}


def test_audit_help_documents_the_screen():
    done = bench("audit", "--help")
    assert done.returncode == 0, done.stderr  # an unescaped % in another flag's help once broke it
    assert "--screen, --no-screen" in done.stdout and "Default: on under --check" in done.stdout
