"""Shared fixtures: a real upstream simulator for the session, targets pointed at it, leak checks,
the one audit of the fixture app that docs/ci.md's step makes (read by the gate's and the browser's tests)."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from harness.run.launch import start_upstream

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixture_app"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    server = start_upstream(tmp_path_factory.mktemp("upstream") / "upstream.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def target_common(upstream):
    """targets.common with its settings pointed at the session's upstream (settings are read once
    at import, so the URL is swapped in rather than set in the environment)."""
    from targets import common

    original = common.settings
    common.settings = dataclasses.replace(original, upstream_url=upstream.url)
    yield common
    common.settings = original


def leftover_children(exclude: set[int] = frozenset()) -> list[psutil.Process]:
    """Descendants of this test process still running (zombies already reaped are not listed)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in exclude and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real throwaway PostgreSQL, started by the harness's own code (harness.run.database), once."""
    from harness.run import database

    db = database.start_cluster(tmp_path_factory.mktemp("postgres") / "postgres.log", max_connections=100)
    yield db
    db.stop()


def _documented_step() -> str:
    """The `audit every route` step's shell lines from docs/ci.md's workflow."""
    text = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)  # type: ignore[union-attr]
    step = block.split("- name: audit every route", 1)[1].split("- uses:", 1)[0]
    return "\n".join(line.strip() for line in step.split("run: |", 1)[1].splitlines() if line.strip())


@dataclass
class DocumentedRun:
    done: subprocess.CompletedProcess
    repo: Path
    summary: Path


@pytest.fixture(scope="session")
def documented_run(tmp_path_factory) -> DocumentedRun:
    """docs/ci.md's step, run once on a copy of the fixture app: the gate's and the browser's tests
    read its outputs (one audit of the same app and flags for the session, not one per test)."""
    tmp_path = tmp_path_factory.mktemp("documented")
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo)
    summary = tmp_path / "step_summary.md"
    bench_py = shlex.quote(str(ROOT / "bench.py"))
    script = f'fastapi-bench() {{ {shlex.quote(sys.executable)} {bench_py} "$@"; }}\n'
    script += _documented_step()
    assert "fastapi-bench audit" in script
    done = subprocess.run(["bash", "-c", script], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "APP": "items:app", "GITHUB_ACTIONS": "true",
                               "GITHUB_STEP_SUMMARY": str(summary)})
    return DocumentedRun(done, repo, summary)
