"""The table of verdict kinds: every verdict audit.verdict writes has exactly the kind its words say,
the verdicts other rules are adding are recognised by prefix, and --fail-on refuses a name it lacks."""

import pytest

from harness.answer import audit, verdict_kinds
from tests.test_audit_routes import HEALTHY


@pytest.mark.parametrize(("changes", "kind"), [
    ({}, "fine"),
    ({"fail_ratio": 1.0, "fail_top": "404 Not Found 100%"}, "failing"),
    ({"status": "failed", "error": "LaunchError: boom"}, "failing"),
    ({"loop_blocked_pct_max": 95.0}, "blocks"),
    ({"thread_tokens_busy_max": 40, "thread_tokens_total": 40, "thread_tokens_full_pct": 97.0},
     "thread-pool"),
    ({"worker_cpu_max_pct": 99.0}, "cpu"),
    ({"wait_lock_pct": 74.0, "wait_site": "gate.py:15 (asyncio.Semaphore.acquire)"}, "lock"),
])
def test_every_verdict_of_the_audit_has_its_kind(changes, kind):
    assert verdict_kinds.kind_of(audit.verdict({**HEALTHY, **changes})).name == kind


@pytest.mark.parametrize(("text", "kind"), [
    ("failing: no response within the window", "failing"),
    ("failing: timeout 12%", "failing"),
    ("failing: 401 Unauthorized 100%", "failing"),
    ("limited by the database pool (10 of 10 connections busy)", "db-pool"),
    ("waits on a lock at store.py:41", "lock"),
    ("something new", "unknown"),
])
def test_verdicts_being_added_are_recognised_by_prefix(text, kind):
    assert verdict_kinds.kind_of(text).name == kind


def test_no_prefix_of_one_kind_shadows_a_later_one():
    kinds = verdict_kinds.KINDS
    for i, early in enumerate(kinds):
        for late in kinds[i + 1:]:
            assert not any(p.startswith(q) for p in late.prefixes for q in early.prefixes), (early, late)


def test_default_fail_on_is_blocks_and_failing():
    assert set(verdict_kinds.DEFAULT_FAIL_ON) == {"blocks", "failing"}


def test_fail_on_names_parsed_and_an_unknown_one_refused_with_the_list():
    assert verdict_kinds.parse_names("blocks, cpu") == ("blocks", "cpu")
    with pytest.raises(verdict_kinds.UnknownKind) as err:
        verdict_kinds.parse_names("blocks,slow")
    assert "'slow'" in str(err.value) and "thread-pool" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(verdict_kinds.UnknownKind):
        verdict_kinds.parse_names(" , ")
