"""Shared fixtures: a real upstream simulator for the session, targets pointed at it, leak checks."""

from __future__ import annotations

import dataclasses

import psutil
import pytest

from harness.run.launch import start_upstream


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
