"""`bench.py audit APP --baseline DIR`: each route against an earlier audit with compare's permutation
test; a significant regression beyond --max-regression fails --check, too few repeats never does,
bad input is one line and exit 2; then for real, a route made 30% slower between two audits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.answer import baseline
from tests.run_folders import row, write_run
from tests.test_audit_run import ROOT, bench

DELAY = str(ROOT / "tests" / "fixture_delay")
SCENARIO = "/wait"


def _audit(path: Path, rps: list[float], p99: list[float], scenario: str = SCENARIO) -> Path:
    rows = [row(target="app", scenario=scenario, repeat=i, rps=r, p99_ms=p) for i, (r, p) in
            enumerate(zip(rps, p99, strict=True))]
    write_run(path, rows, meta={"preset": "audit"})
    (path / "audit.json").write_text(json.dumps({"routes": [{"template": "/wait", "url": "/wait",
                                                             "scenario": scenario}], "skipped": []}))
    return path


FAST = [100.0, 101.0, 99.0, 100.5, 99.5]


def test_a_significant_regression_beyond_the_limit_fails(tmp_path):
    a = _audit(tmp_path / "a", FAST, [40.0, 41, 40.5, 39.5, 40.2])
    b = _audit(tmp_path / "b", [v * 0.7 for v in FAST], [52.0, 53, 52.5, 51.5, 52.2])
    (rc,) = baseline.route_changes(a, b, 0.10)
    assert rc.label == "/wait W=1" and (rc.n_before, rc.n_after) == (5, 5)
    assert [c.word for c in rc.changes] == ["slower", "slower"]
    assert [c.metric for c in rc.regressions] == ["rps", "p99_ms"]
    assert rc.changes[0].ratio == pytest.approx(0.7) and rc.changes[0].p < 0.01
    first, last = baseline.lines([rc], 0.10, a)
    assert first.startswith("baseline: FAIL /wait W=1 (5 vs 5 repeats): rps 100 → 70 (×0.70: slower, p = 0.0")
    assert "p99 ms 40.2 → 52.2 (×1.30: slower" in first
    assert last.startswith("baseline: failed, 1 of 1 route(s)")
    # the same change allowed by a larger limit: significant, yet no regression
    (rc,) = baseline.route_changes(a, b, 0.35)
    assert not rc.regressions and rc.changes[0].word == "slower"


def test_a_significant_change_smaller_than_the_limit_passes(tmp_path):
    a = _audit(tmp_path / "a", FAST, [40.0] * 5)
    b = _audit(tmp_path / "b", [v * 0.95 for v in FAST], [40.0] * 5)
    (rc,) = baseline.route_changes(a, b, 0.10)
    assert rc.changes[0].word == "slower" and not rc.regressions


@pytest.mark.parametrize("n", [1, 3])
def test_too_few_repeats_is_said_and_never_a_regression(tmp_path, n):
    a = _audit(tmp_path / "a", FAST[:n], [40.0] * n)
    b = _audit(tmp_path / "b", [v * 0.5 for v in FAST[:n]], [80.0] * n)
    (rc,) = baseline.route_changes(a, b, 0.10)
    assert not rc.regressions
    assert rc.changes[0].word == (f"cannot tell: {n} vs {n} repeats cannot show a difference at 5%: "
                                  "use --repeat 5")
    assert baseline.lines([rc], 0.10, a)[-1].startswith("baseline: passed")


def test_a_folder_that_is_no_audit_or_shares_no_route_is_one_line(tmp_path):
    with pytest.raises(baseline.BaselineError, match="no such folder"):
        baseline.check_routes(tmp_path / "nowhere", [SCENARIO])
    write_run(tmp_path / "run", [row()])
    with pytest.raises(baseline.BaselineError, match="not an audit folder"):
        baseline.check_routes(tmp_path / "run", [SCENARIO])
    _audit(tmp_path / "a", FAST, [40.0] * 5)
    with pytest.raises(baseline.BaselineError, match=r"no route in common \(baseline: /wait\)"):
        baseline.check_routes(tmp_path / "a", ["/other"])
    baseline.check_routes(tmp_path / "a", [SCENARIO, "/other"])  # one in common is enough


def test_bad_baseline_input_is_refused_before_the_app_starts(tmp_path):
    done = bench("audit", "delay_app:app", "--app-dir", DELAY, "--baseline", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "not an audit folder" in done.stderr and "route(s) to measure" not in done.stdout
    _audit(tmp_path / "a", FAST, [40.0] * 5)
    done = bench("audit", "delay_app:app", "--app-dir", DELAY, "--baseline", str(tmp_path / "a"),
                 "--max-regression", "ten")
    assert done.returncode == 2 and "--max-regression 'ten': expected a percent" in done.stderr


# short windows and few users: 5 repeats of one route, three audits, in about a minute
QUICK = ["--workers", "1", "--users", "4", "--duration", "1", "--warmup", "0.5", "--repeat", "5"]


def test_a_route_made_30_percent_slower_fails_the_same_code_twice_passes(tmp_path):
    def audit(name: str, delay_ms: int, *more: str):
        return bench("audit", "delay_app:app", "--app-dir", DELAY, *QUICK, "--out", str(tmp_path / name),
                     *more, env={"DELAY_MS": str(delay_ms)})

    first = audit("a", 40)
    assert first.returncode == 0, first.stdout + first.stderr
    slower = audit("b", 52, "--check", "--baseline", str(tmp_path / "a"))
    lines = slower.stdout.strip().splitlines()
    assert slower.returncode == 1, slower.stdout + slower.stderr
    fail = next(line for line in lines if line.startswith("baseline: FAIL /wait W=1 (5 vs 5 repeats)"))
    ratio = float(re.search(r"\(×([0-9.]+): slower, p = 0\.0", fail).group(1))
    # 1/1.3 = 0.77 at most: the per-request overhead the delay does not scale dilutes it; the gate's
    # own line is what matters: a significant drop beyond --max-regression's 10%
    assert ratio < 0.9, fail
    assert any(line.startswith("baseline: failed, 1 of 1 route(s)") for line in lines)
    assert (tmp_path / "b" / baseline.BASELINE_CSV).is_file()
    same = audit("c", 40, "--check", "--baseline", str(tmp_path / "a"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert any(line.startswith("baseline: passed") for line in same.stdout.splitlines()), same.stdout
