"""A package app's stall site names its file from --app-dir: the RealWorld example's bcrypt call
is in app/services/security.py, not just "security.py" (a name a larger app may have twice, which
the GitHub annotation then cannot place)."""

from __future__ import annotations

from harness.judge import stalls

SITE = "/venv/lib/python3.9/site-packages"


def _frame(file: str, qualname: str, line: int) -> str:
    return f"{file}:{qualname}:{line}"


STACK = ";".join([
    _frame(f"{SITE}/fastapi/routing.py", "run_endpoint_function", 160),
    _frame("/srv/rw/app/api/routes/authentication.py", "login", 38),
    _frame("/srv/rw/app/models/domain/users.py", "UserInDB.check_password", 20),
    _frame("/srv/rw/app/services/security.py", "verify_password", 12),
    _frame(f"{SITE}/passlib/context.py", "CryptContext.verify", 2347),
    _frame(f"{SITE}/bcrypt/__init__.py", "hashpw", 102),
])


def test_the_site_file_is_relative_to_the_app_dir() -> None:
    assert stalls.site(STACK, "cpu", "/srv/rw") == (
        "app/services/security.py:{line} in verify_password → passlib.CryptContext.verify (CPU)", "12")
    assert stalls.site(STACK, "cpu", "/srv/rw/")[0].startswith("app/services/security.py:")


def test_without_an_app_dir_or_outside_it_the_site_is_the_file_name() -> None:
    assert stalls.site(STACK, "cpu")[0].startswith("security.py:{line} in verify_password")
    assert stalls.site(STACK, "cpu", "/elsewhere")[0].startswith("security.py:")
    assert stalls.site(STACK, "cpu", "/srv/r")[0].startswith("security.py:")  # a prefix is not a parent


def test_reduce_names_the_row_site_from_the_app_dir() -> None:
    samples = [(f"POST /api/users/login\tcpu\t{STACK}", 500)]
    found = stalls.reduce(samples, window_s=5.0, workers=1, app_dir="/srv/rw")
    assert found.site == "app/services/security.py:12 in verify_password → passlib.CryptContext.verify (CPU)"


def test_timeouts_behind_a_blocked_loop_get_the_blocking_advice() -> None:
    from harness.answer import audit

    site = "app/services/security.py:12 in verify_password → passlib.verify (CPU)"
    row = {"stall_site": site, "loop_blocked_pct_max": 66.0}
    advice = audit.advice(row, "failing: timeout 13%", "POST /api/users/login")
    assert advice.startswith("the requests timed out queued behind a blocked loop")
    assert "`passlib.verify` at app/services/security.py:12 off the loop" in advice
    healthy = audit.advice({**row, "loop_blocked_pct_max": 5.0}, "failing: timeout 13%")
    assert "blocked loop" not in healthy  # a slow upstream, not the loop: the generic advice


def test_the_app_interpreters_own_standard_library_is_not_the_app() -> None:
    """Under --python the app's stdlib is another interpreter's (3.9 here, the harness on 3.11):
    asyncio's runners.py was named as the app's site of a stall inside pydantic's serialisation."""
    py39 = "/root/.pyenv/versions/3.9.18/lib/python3.9"
    only_libraries = ";".join([_frame(f"{py39}/asyncio/runners.py", "run", 44),
                               _frame(f"{SITE}/uvicorn/protocols/http/httptools_impl.py", "run_asgi", 401),
                               _frame(f"{SITE}/pydantic/main.py", "dict", 10)])
    assert stalls.site(only_libraries, "cpu", "/srv/rw") is None
    assert stalls.short(_frame(f"{py39}/asyncio/runners.py", "run", 44)) == "asyncio/runners.py:run:44"
    app_then_json = ";".join([_frame("/srv/rw/app/api/routes/comments.py", "list_comments", 30),
                              _frame(f"{py39}/json/__init__.py", "dumps", 231)])
    assert stalls.site(app_then_json, "cpu", "/srv/rw")[0] == (
        "app/api/routes/comments.py:{line} in list_comments → json.dumps (CPU)")


def test_a_lock_site_names_its_file_from_the_app_dir_too() -> None:
    from harness.judge import wait_profile

    stack = ";".join([
        _frame(f"{SITE}/fastapi/routing.py", "run_endpoint_function", 160),
        _frame("/srv/rw/app/db/events.py", "get_connection", 21),
        _frame(f"{SITE}/asyncpg/pool.py", "Pool.acquire", 840),
        _frame(f"{SITE}/asyncpg/pool.py", "Pool._acquire", 860),
    ])
    site = "app/db/events.py:21 (asyncpg.Pool._acquire)"
    assert wait_profile.classify("wait", stack, "/srv/rw") == ("lock", site)
    assert wait_profile.classify("wait", stack) == ("lock", "events.py:21 (asyncpg.Pool._acquire)")
    found = wait_profile.reduce([(f"/articles\twait\t{stack}", 10)], app_dir="/srv/rw")
    assert found.sites["/articles"] == {site: 10}
