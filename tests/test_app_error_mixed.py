"""A route whose requests mostly fail 400 and a few 500 (the RealWorld follow route: a check, then an
insert that races, "400 you follow this user already" for most and asyncpg's UniqueViolationError for
the rest) still names what the app raised, in the row and in the advice."""

from __future__ import annotations

from pathlib import Path

from harness.answer import refusals
from harness.judge.collect import app_error

LOG = '''ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/venv/lib/python3.9/site-packages/starlette/routing.py", line 670, in __call__
    await route.handle(scope, receive, send)
  File "/srv/rw/app/db/repositories/profiles.py", line 67, in add_user_into_followers
    await queries.subscribe_user_to_another(
asyncpg.exceptions.UniqueViolationError: duplicate key value violates unique constraint "pk_followers"
'''


def _cell(tmp_path: Path, failures: str) -> Path:
    (tmp_path / "uvicorn.log").write_text(LOG)
    (tmp_path / "locust_failures.csv").write_text("Method,Name,Error,Occurrences\n" + failures)
    (tmp_path / "locust_stats.csv").write_text("Type,Name,Request Count\nPOST,work,1000\n")
    return tmp_path


def test_a_few_500s_behind_400s_name_the_exception_and_the_advice_says_so(tmp_path: Path) -> None:
    raw = _cell(tmp_path, "POST,work,LocustBadStatusCode(code=400),990\n"
                          "POST,work,LocustBadStatusCode(code=500),10\n")
    raised = app_error(raw, "/srv/rw")
    assert raised == ('asyncpg.exceptions.UniqueViolationError: duplicate key value violates unique '
                      'constraint "pk_followers" at app/db/repositories/profiles.py:67')
    row = {"app_error": raised}
    text = refusals.with_app_error("the app refused the request (400, ...)", row)
    assert text.endswith("; some requests answered 5xx: the app raised " + raised)


def test_only_400s_name_no_exception_even_when_the_log_has_one(tmp_path: Path) -> None:
    raw = _cell(tmp_path, "POST,work,LocustBadStatusCode(code=400),1000\n")
    assert app_error(raw, "/srv/rw") == ""
    assert refusals.with_app_error("advice", {"app_error": ""}) == "advice"


def test_a_compiled_extensions_frame_is_not_the_apps(tmp_path: Path) -> None:
    """asyncpg's Cython frame is 'asyncpg/protocol/protocol.pyx' (relative): the innermost app frame
    is the app's own line above it, not protocol.pyx:201."""
    cython = LOG.replace(
        "asyncpg.exceptions.",
        '  File "/venv/lib/python3.9/site-packages/asyncpg/connection.py", line 1731, in _do_execute\n'
        '  File "asyncpg/protocol/protocol.pyx", line 201, in bind_execute\nasyncpg.exceptions.', 1)
    raw = _cell(tmp_path, "POST,work,LocustBadStatusCode(code=500),10\n")
    (raw / "uvicorn.log").write_text(cython)
    assert app_error(raw, "/srv/rw").endswith("at app/db/repositories/profiles.py:67")
