"""The app's own environment: --python (its interpreter and virtualenv), --env-file, --cwd; its import
and settings errors as one line; the exception behind a 5xx, named from the worker's log.

The end-to-end test builds (once, cached) a virtualenv with FastAPI 0.95 and pydantic 1 from the
registry (tests/app_venv.py) and audits tests/fixture_oldapp in it: an app the harness's own
interpreter (pydantic 2) cannot import at all."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

from harness.data import app_env
from harness.data.knobs import KNOBS
from harness.data.matrix import ConfigError, make_config
from harness.judge import app_errors
from harness.run import app_python, routes
from targets import probe
from tests.conftest import leftover_children
from tests.test_cli_input import run_bench

ROOT = Path(__file__).resolve().parent.parent
OLD_APP_DIR = str(ROOT / "tests" / "fixture_oldapp")
FIXTURE_DIR = str(ROOT / "tests" / "fixture_app")


@pytest.mark.parametrize("raw", ["", "1", "40", "10000", "0", "10001", "-3", "x", "2.5"])
def test_probe_reads_thread_tokens_as_the_knob_table_does(monkeypatch, raw):
    monkeypatch.setenv("THREAD_TOKENS", raw)
    try:
        expected: object = KNOBS["thread_tokens"].from_env(os.environ)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: object = probe.thread_tokens()
    except ValueError as exc:
        got = str(exc)
    assert got == expected
    assert probe.THREAD_TOKENS_BOUNDS == KNOBS["thread_tokens"].bounds


def test_env_file_reads_as_dotenv(tmp_path):
    path = tmp_path / ".env"
    path.write_text('# settings\nexport A=1\nB="two words"\nC=${A}x\nBARE\n')
    assert app_env.read_env_file(str(path)) == {"A": "1", "B": "two words", "C": "1x"}


def _app(**kw):
    return make_config("default", **{"app": "items:app", "app_dir": FIXTURE_DIR, "paths": ["/items/sync"],
                                     **kw})


@pytest.mark.parametrize("overrides, message", [
    (dict(python="/nonexistent/bin/python"), "no such interpreter"),
    (dict(cwd="/nonexistent-dir"), "--cwd '/nonexistent-dir' is not a directory"),
    (dict(env_file="/nonexistent.env"), "cannot be read"),
    (dict(python=sys.executable, launch=["reuseport"]), "use --launch uvicorn with --python"),
    (dict(app=None, url="http://127.0.0.1:1", python=sys.executable), "give --app"),
])
def test_bad_app_env_input_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _app(**overrides)


def test_an_env_file_that_does_not_parse_is_one_line(tmp_path):
    path = tmp_path / "bad.env"
    path.write_text("A=1\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"line 2 does not parse: 'this is not a setting'"):
        _app(env_file=str(path))


def test_a_venv_folder_names_its_python():
    venv = Path(sys.executable).parent.parent
    assert app_env.check_python(str(venv)) == str(venv / "bin" / "python")


def test_an_interpreter_too_old_or_without_the_server_is_refused(tmp_path):
    with pytest.raises(app_env.AppEnvError, match="has no nosuchserver_mod"):
        app_python.check_interpreter(sys.executable, ["nosuchserver_mod"])
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 3.8\necho\n")
    fake.chmod(0o755)
    with pytest.raises(app_env.AppEnvError, match=r"is Python 3.8; the in-worker probe needs 3.9"):
        app_python.check_interpreter(str(fake))


@pytest.mark.parametrize("flag, value, message", [
    ("--python", "/nonexistent/python", "no such interpreter"),
    ("--env-file", "BADENV", "does not parse"),
    ("--cwd", "/nonexistent-dir", "is not a directory"),
])
def test_bad_flags_exit_2_with_one_line_and_start_nothing(tmp_path, flag, value, message):
    if value == "BADENV":
        value = str(tmp_path / "bad.env")
        Path(value).write_text("=oops\n")
    code, out, err, children, _ = run_bench("audit", "items:app", "--app-dir", FIXTURE_DIR, flag, value,
                                            "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not children and not (tmp_path / "run").exists()


def test_an_import_error_reads_as_the_exceptions_own_line(tmp_path):
    (tmp_path / "broken.py").write_text("import os\nimport nosuch_dependency_xyz\n")
    with pytest.raises(routes.RouteError) as info:
        routes.read_schema("broken:app", str(tmp_path))
    expected = "ModuleNotFoundError: No module named 'nosuch_dependency_xyz' at broken.py:2"
    assert str(info.value).endswith(expected)


def test_a_settings_error_reads_as_the_validation_error_not_a_url(tmp_path):
    (tmp_path / "settings_app.py").write_text(
        "from pydantic import BaseModel\nclass S(BaseModel):\n    key: int\nS(key='x')\n")
    with pytest.raises(routes.RouteError) as info:
        routes.read_schema("settings_app:app", str(tmp_path))
    text = str(info.value)
    assert "pydantic_core._pydantic_core.ValidationError: 1 validation error for S; key;" in text
    assert text.endswith("at settings_app.py:4") and "errors.pydantic.dev" not in text
    assert "\n" not in text


LOG = '''INFO:     Started server process [1]
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/venv/lib/python3.9/site-packages/uvicorn/protocols/http/httptools_impl.py", line 435, in run_asgi
    result = await app(  # type: ignore[func-returns-value]
  File "/work/targets/instrument.py", line 55, in __call__
    await self.app(scope, receive, send)
  File "/srv/app/billing.py", line 9, in report
    return parse(text)
  File "/srv/app/billing.py", line 14, in parse
    raise RuntimeError("invoice parser choked")
  File "/usr/lib/python3.9/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
RuntimeError: invoice parser choked
'''


def test_app_errors_name_the_exception_and_the_innermost_app_frame(tmp_path):
    assert app_errors.tracebacks(LOG, "/srv/app") == ["RuntimeError: invoice parser choked at billing.py:14"]
    (tmp_path / "uvicorn.log").write_text(LOG * 3 + LOG.replace("invoice parser choked", "other"))
    assert app_errors.top(tmp_path) == "RuntimeError: invoice parser choked at billing.py:14"
    assert app_errors.top(tmp_path / "missing") == ""


@pytest.fixture(scope="module")
def old_python():
    from tests.app_venv import app_venv

    try:
        return str(app_venv())
    except Exception as exc:  # no registry here: say so rather than pass
        pytest.skip(f"could not build the FastAPI 0.95 / pydantic 1 virtualenv: {exc}")


def test_an_app_on_pydantic_1_does_not_import_next_to_the_harness():
    with pytest.raises(routes.RouteError, match=r"PydanticImportError: `BaseSettings` has been moved"):
        routes.read_schema("oldapp:app", OLD_APP_DIR, env={"GREETING": "hi"})


def test_audit_with_the_apps_own_python_env_file_and_cwd(tmp_path, old_python):
    env_file = tmp_path / "app.env"
    env_file.write_text("GREETING='hello from .env'\n")
    before = {p.pid for p in leftover_children()}
    code, out, err, _, _ = run_bench(
        "audit", "oldapp:app", "--app-dir", OLD_APP_DIR, "--python", old_python, "--env-file", str(env_file),
        "--cwd", str(tmp_path), "--workers", "1", "--duration", "2", "--warmup", "0.5",
        "--out", str(tmp_path / "run"), timeout=240)
    assert code in (0, 1), err
    with open(tmp_path / "run" / "audit.csv", newline="") as fh:
        rows = {r["route"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"/hello", "/slow", "/report"}
    assert float(rows["/hello"]["rps"]) > 0  # it imported (pydantic 1) and read GREETING from the file
    assert rows["/slow"]["verdict"] == "blocks the event loop" and "time.sleep" in rows["/slow"]["stall_site"]
    assert rows["/report"]["verdict"].startswith("failing: 500 Internal Server Error")
    assert rows["/report"]["app_error"] == "RuntimeError: invoice parser choked at oldapp.py:38"
    assert "the app raised RuntimeError: invoice parser choked at oldapp.py:38" in rows["/report"]["advice"]
    # the workers imported the in-worker modules from their copy, never the harness
    log = next((tmp_path / "run" / "raw").glob("*hello*/uvicorn.log")).read_text()
    assert "harness" not in log
    assert {p.pid for p in leftover_children()} <= before


def test_the_in_worker_copy_holds_every_targets_module_the_wrapper_imports():
    """Under --python the worker imports the wrapper from a copy of IN_WORKER alone: every
    `targets` module those files import must be in it, or the app's worker fails to start."""
    import ast

    from harness import ROOT
    from harness.run import app_python

    for name in app_python.IN_WORKER:
        tree = ast.parse((ROOT / "targets" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "targets":
                wanted = [f"{a.name}.py" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("targets."):
                wanted = [node.module.split(".")[1] + ".py"]
            else:
                continue
            assert set(wanted) <= set(app_python.IN_WORKER), (name, wanted)
