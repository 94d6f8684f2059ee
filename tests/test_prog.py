"""Messages name the command the user typed: `bench.py` in the clone, `fastapi-bench` installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data import prog

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("argv0", "expected"), [
    ("/x/bin/fastapi-bench", "fastapi-bench"),
    (str(ROOT / "harness" / "__main__.py"), "fastapi-bench"),
    (str(ROOT / "bench.py"), "bench.py"),
    ("/x/site-packages/pytest/__main__.py", "bench.py"),  # another package's __main__ is not us
    ("", "bench.py"),
])
def test_the_name_typed(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.delenv(prog.ENV, raising=False)
    assert prog.typed() == prog.name() == expected


def test_what_was_typed_wins_over_an_inherited_name(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/bin/fastapi-bench"])
    monkeypatch.setenv(prog.ENV, "bench.py")
    assert prog.remember() == "fastapi-bench"
    assert os.environ[prog.ENV] == "fastapi-bench"  # what the children read


@pytest.mark.parametrize(("command", "name"), [
    (["bench.py"], "bench.py"),
    (["-m", "harness"], "fastapi-bench"),
])
def test_an_error_line_names_the_command(command, name):
    env = {**os.environ, prog.ENV: "something-else"}
    done = subprocess.run([sys.executable, *command, "run", "--workers", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"{name}: error:"), done.stderr
    if name == "fastapi-bench":
        assert "bench.py" not in done.stderr, done.stderr


def test_run_help_shows_the_installed_name():
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: fastapi-bench run [--preset NAME]" in done.stdout
    assert "fastapi-bench run --resume results/<run-id>" in done.stdout
    assert "bench.py" not in done.stdout
