"""HTTP_CLIENT=aiohttp: the async targets keep the same contract with the other client library."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from fastapi.testclient import TestClient

from targets import import_string

ASYNC_CLIENT_TARGETS = ["correct-async", "process-pool", "mixed", "blocking-future"]


@pytest.fixture
def aiohttp_settings(target_common):
    original = target_common.settings
    target_common.settings = dataclasses.replace(original, http_client="aiohttp")
    yield target_common
    target_common.settings = original


def _app(name: str):
    module, attr = import_string(name).split(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", ASYNC_CLIENT_TARGETS)
def test_aiohttp_client_serves_the_contract(name, aiohttp_settings, upstream):
    with TestClient(_app(name)) as client:
        assert type(client.app.state.client).__name__ == "AiohttpClient"
        io = client.get("/io?fanout=2&io_ms=5")
        assert io.status_code == 200 and io.json()["results"] == [{"delay_ms": 5}] * 2
        assert client.get("/mixed?io_ms=1&cpu_ms=1").json()["processed"] is True
        # an upstream error status is a 502, exactly as with httpx
        aiohttp_settings.settings = dataclasses.replace(
            aiohttp_settings.settings, upstream_url=f"{upstream.url}/missing")
        failed = client.get("/mixed?io_ms=0&cpu_ms=0")  # /mixed awaits the async client everywhere
        assert failed.status_code == 502 and "ClientResponseError" in failed.json()["detail"]


def test_unknown_http_client_is_refused(target_common, monkeypatch):
    monkeypatch.setenv("HTTP_CLIENT", "requests")
    with pytest.raises(ValueError, match="HTTP_CLIENT"):
        target_common.Settings.from_env()
