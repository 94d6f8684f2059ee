"""An app that pins a uvicorn older than 0.22 (the RealWorld example pins 0.18.2) has no
--timeout-graceful-shutdown: given it, uvicorn exits 2 with "No such option" and every cell fails.
Under --python the flag is passed only when that interpreter's uvicorn.Config takes it."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.data import servers
from harness.run import app_python
from harness.run.launch import target_command

OLD_CONFIG = '''
class Config:
    def __init__(self, app, host="127.0.0.1", port=8000, timeout_keep_alive=5):
        self.app = app
'''


def _interpreter_with_uvicorn(tmp_path: Path, config_source: str) -> str:
    """A wrapper 'python' whose uvicorn package is a stub with the given Config."""
    package = tmp_path / "site" / "uvicorn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(config_source)
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "site"} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_an_old_uvicorn_is_launched_without_the_graceful_flag(tmp_path: Path) -> None:
    python = _interpreter_with_uvicorn(tmp_path, OLD_CONFIG)
    assert app_python.uvicorn_graceful(python) is False
    cmd = target_command("app.main:app", 1, 8000, "uvloop", python=python, root=str(tmp_path))
    assert cmd[:3] == [python, "-m", "uvicorn"]
    assert "--timeout-graceful-shutdown" not in cmd
    assert cmd[cmd.index("--workers") + 1] == "1"


def test_a_new_uvicorn_keeps_the_graceful_flag(tmp_path: Path) -> None:
    new_config = OLD_CONFIG.replace("=5)", "=5, timeout_graceful_shutdown=None)")
    python = _interpreter_with_uvicorn(tmp_path, new_config)
    assert app_python.uvicorn_graceful(python) is True
    cmd = target_command("app.main:app", 1, 8000, "uvloop", python=python, root=str(tmp_path))
    assert cmd[cmd.index("--timeout-graceful-shutdown") + 1] == servers.GRACE_S


def test_the_harness_own_uvicorn_is_not_asked() -> None:
    cmd = target_command("targets.correct_async:app", 2, 8000, "uvloop")
    assert cmd[cmd.index("--timeout-graceful-shutdown") + 1] == servers.GRACE_S
