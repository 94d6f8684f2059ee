"""`bench.py audit` for real: the fixture app's three routes told apart from its schema alone, the
SQLModel hero app seeded by --setup, bad input refused before anything starts, and Ctrl-C mid-audit
leaving no process behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_hard_endings import kill_mid_cell
from tests.test_reliability import Bench

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = str(ROOT / "tests" / "fixture_app")
HEROES = str(ROOT / "tests" / "sqlmodel_app")
SEED = str(ROOT / "tests" / "sqlmodel_app" / "seed_heroes.py")
THREE = str(ROOT / "tests" / "fixture_threads")
LOGIN = str(ROOT / "tests" / "login_app")
LOGIN_SETUP = str(ROOT / "tests" / "login_app" / "login_setup.py")
SHORT = ["--workers", "1", "--users", "4", "--duration", "2", "--warmup", "0.5"]


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def audit_rows(run_dir: Path) -> dict[str, dict]:
    with open(run_dir / "audit.csv", newline="") as fh:
        return {row["route"]: row for row in csv.DictReader(fh)}


# The fixture app's own audit (its three routes told apart, the blocking line named) is read from
# the one run of docs/ci.md's step in tests/test_gate.py.


def _line_after(path: Path, text: str) -> int:
    """The line number of the line after the one holding `text` (a function's first statement)."""
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if text in t) + 1


def test_thread_pool_blocking_and_404_routes_told_apart(tmp_path):
    """60 users: a `def` route on 250 ms of I/O holds all 40 of anyio's tokens; an `async def` route
    calling time.sleep blocks the loop, named at its line; a route whose thing does not exist fails 404."""
    out = tmp_path / "audit"
    done = bench("audit", "three_kinds:app", "--app-dir", THREE, "--workers", "1", "--users", "60",
                 "--duration", "2", "--warmup", "1", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = audit_rows(out)
    assert set(rows) == {"/slow-def", "/blocking", "/things/{thing_id}"}
    pool, blocked, missing = rows["/slow-def"], rows["/blocking"], rows["/things/{thing_id}"]
    assert pool["verdict"].startswith("limited by the thread pool (40 of 40 tokens busy, all of them "), pool
    assert pool["verdict"].endswith("% of the window)"), pool
    assert "--thread-tokens 40,80,160" in pool["advice"] and "total_tokens" in pool["advice"]
    assert 40 / 0.25 * 0.7 < float(pool["rps"]) <= 40 / 0.25 * 1.05  # min(U, tokens) / L = 160 rps
    line = _line_after(Path(THREE, "three_kinds.py"), "async def blocking")
    assert blocked["verdict"] == "blocks the event loop", blocked
    assert blocked["stall_site"] == f"three_kinds.py:{line} in blocking → time.sleep"
    assert blocked["advice"].startswith(f"move `time.sleep` at three_kinds.py:{line} out of `async def`")
    assert missing["url"] == "/things/7"  # the schema's example
    assert missing["verdict"] == "failing: 404 Not Found 100% (no such thing)", missing  # the app's detail
    assert "--setup" in missing["advice"]
    table = done.stdout
    assert "limited by the thread pool (40 of 40 tokens busy, all of them " in table
    assert f"blocks the event loop at three_kinds.py:{line} in blocking → time.sleep" in table
    assert "failing: 404 Not Found 100%" in table


def test_heroes_app_seeded_by_setup(tmp_path):
    out = tmp_path / "audit"
    done = bench("audit", "heroes:app", "--app-dir", HEROES, *SHORT, "--param", "hero_id=2",
                 "--methods", "get", "--setup", SEED, "--out", str(out),
                 env={"HEROES_DB": str(tmp_path / "heroes.db")})
    assert done.returncode == 0, done.stdout + done.stderr
    rows = audit_rows(out)
    assert set(rows) == {"/heroes/", "/heroes/{hero_id}", "POST /heroes/"}
    assert rows.pop("POST /heroes/")["verdict"] == "skipped: method not selected (--methods GET)"
    assert rows["/heroes/{hero_id}"]["url"] == "/heroes/2"
    for row in rows.values():  # seeded: hero 2 exists, so nothing fails
        assert not row["verdict"].startswith("failing"), row
        assert float(row["rps"]) > 0
    assert (next((out / "raw").iterdir()) / "setup.log").exists()


def test_login_app_measured_with_the_token_setup_returned(tmp_path):
    out = tmp_path / "audit"
    done = bench("audit", "login:app", "--app-dir", LOGIN, *SHORT, "--setup", LOGIN_SETUP, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = audit_rows(out)
    assert set(rows) == {"POST /login", "/me", "POST /items"}  # every operation, the POSTs with bodies
    for route, row in rows.items():
        # the token and the bodies were accepted; on a loaded 2-core machine the verdict may name its CPU
        assert not row["verdict"].startswith(("failing", "blocks")), (route, row)
        assert float(row["rps"]) > 0
    assert "security scheme" not in done.stdout  # credentials come from setup: no warning
    sent = json.loads((out / "requests.json").read_text())["routes"]
    assert json.loads(sent["POST /login"]["body"]) == {"username": "alice", "password": "wonderland"}


def test_login_app_without_token_reads_401_and_a_bad_body_422(tmp_path):
    out = tmp_path / "audit"
    done = bench("audit", "login:app", "--app-dir", LOGIN, *SHORT, "--body", 'POST /items={"name": "x"}',
                 "--methods", "GET,POST,DELETE", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: /me declares a security scheme and no credentials are given" in done.stdout
    rows = audit_rows(out)
    assert not rows["POST /login"]["verdict"].startswith(("failing", "blocks")), rows["POST /login"]
    assert rows["/me"]["verdict"] == "failing: 401 Unauthorized 100% (Not authenticated)", rows["/me"]
    assert "--header 'Authorization: Bearer TOKEN'" in rows["/me"]["advice"]
    assert rows["POST /items"]["verdict"] == ("failing: 422 Unprocessable Entity 100% "
                                              "(body.price: Field required)"), rows["POST /items"]
    assert "--body 'POST /items=@body.json'" in rows["POST /items"]["advice"]


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch:app", "--app-dir", FIXTURE], "no module 'nosuch'"),
    (["items:app", "--app-dir", FIXTURE, "--param", "hero_id"], "expected name=value"),
    (["items:app", "--app-dir", FIXTURE, "--include", "/nothing/*"], "nothing to audit"),
    (["heroes:app", "--app-dir", HEROES, "--include", "/heroes/{*"], "nothing to audit"),
    (["items:app", "--app-dir", FIXTURE, "--setup", FIXTURE + "/items.py"], "no top-level function setup"),
    (["items:notthere", "--app-dir", FIXTURE], "reading its OpenAPI schema failed"),
    (["login:app", "--app-dir", LOGIN, "--header", "Authorization Bearer x"], "expected 'Name: value'"),
    (["login:app", "--app-dir", LOGIN, "--header", "Bad Name: x"], "expected 'Name: value'"),
    (["login:app", "--app-dir", LOGIN, "--header", "X-A: 1", "--header", "x-a: 2"], "given twice"),
    (["login:app", "--app-dir", LOGIN, "--methods", "GET,FETCH"], "expected a comma list of GET"),
    (["login:app", "--app-dir", LOGIN, "--methods", ","], "expected a comma list of GET"),
    (["login:app", "--app-dir", LOGIN, "--body", "POST /nope={}"], "'POST /nope': no such operation"),
    (["login:app", "--app-dir", LOGIN, "--body", "POST /items={name"], "POST /items: not JSON"),
    (["login:app", "--app-dir", LOGIN, "--body", "/items={}"], "expected 'METHOD /path=JSON'"),
    (["login:app", "--app-dir", LOGIN, "--body", "POST /items=@/no/such.json"], "is not a file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = bench("audit", *args, "--out", str(tmp_path / "audit"), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "audit").exists()  # refused before a run folder was made


def test_ctrl_c_mid_audit_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HEROES_DB", str(tmp_path / "heroes.db"))  # Bench's child inherits it
    b = Bench(tmp_path, "audit", "heroes:app", "--app-dir", HEROES, *SHORT, "--workers", "2",
              "--param", "hero_id=1", "--setup", SEED, "--out", str(tmp_path / "audit"))
    before, left = kill_mid_cell(b, lambda: b.family.running("locust") and b.family.running("uvicorn"),
                                 "an audited route under load", signal.SIGINT)
    assert b.proc.returncode == 130, b.output()
    assert len(before) >= 4, before  # uvicorn + 2 workers, Locust, the reaper
    assert left == [], f"still running after Ctrl-C: {left}"
