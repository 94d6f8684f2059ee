"""A "users" bound is withdrawn where the same configuration at fewer users answered clearly faster."""

from __future__ import annotations

import pandas as pd

from harness.answer import audit
from harness.judge.users_bound import LATENCY_GROWTH, withdraw_grown


def _row(users: int, p50: float, bound: str = "users", workers: int = 1, status: str = "ok",
         repeat: int = 1) -> dict:
    return {"target": "app", "scenario": "/items", "workers": workers, "users": users, "repeat": repeat,
            "load_processes": 1, "status": status, "p50_ms": p50, "bound_by": bound,
            "bound_detail": "a closed loop of users", "rps": users / (p50 / 1000), "fail_ratio": 0.0,
            "requests": 500}


def test_latency_flat_as_users_grow_keeps_the_users():
    out = withdraw_grown(pd.DataFrame([_row(4, 50.0), _row(16, 52.0), _row(64, 60.0)]))
    assert list(out["bound_by"]) == ["users", "users", "users"]


def test_latency_that_grew_with_users_is_not_the_users():
    # the small-pool shape: 4 users at 50 ms, 32 users queued to 815 ms, the rate pinned
    out = withdraw_grown(pd.DataFrame([_row(4, 50.0), _row(32, 815.0, bound="pattern: users")]))
    assert list(out["bound_by"]) == ["users", "unexplained"]
    detail = out["bound_detail"].iloc[1]
    assert detail.startswith("not the users: p50 grew ×16.3 from 50 ms at 4 users to 815 ms at 32")
    assert detail.endswith("was: pattern: users: a closed loop of users")
    verdict = audit.verdict(out.iloc[1].to_dict())
    assert not verdict.startswith("fine") and verdict.startswith("unexplained"), verdict


def test_the_threshold_and_the_median_of_the_fewest_users_repeats():
    just_under = 50.0 * LATENCY_GROWTH - 1
    rows = [_row(4, 40.0, repeat=1), _row(4, 50.0, repeat=2), _row(4, 60.0, repeat=3),
            _row(8, just_under), _row(16, 50.0 * LATENCY_GROWTH)]
    assert list(withdraw_grown(pd.DataFrame(rows))["bound_by"]) == ["users"] * 4 + ["unexplained"]


def test_only_the_same_configuration_is_compared_and_other_bounds_are_left():
    rows = [_row(4, 50.0, workers=2), _row(32, 815.0, workers=1),  # other workers: nothing to compare
            _row(4, 50.0, workers=3), _row(32, 815.0, bound="thread pool", workers=3)]
    out = withdraw_grown(pd.DataFrame(rows))
    assert list(out["bound_by"]) == ["users", "users", "users", "thread pool"]


def test_a_failed_cell_at_fewer_users_is_not_the_reference():
    rows = [_row(2, 5.0, status="failed"), _row(4, 50.0), _row(8, 55.0)]
    assert list(withdraw_grown(pd.DataFrame(rows))["bound_by"]) == ["users", "users", "users"]
