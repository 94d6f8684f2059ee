"""The endpoint contract every registered target satisfies, checked in-process with TestClient.

Every target is imported from its registry import string and served with
`TestClient(app)` as a context manager, so its lifespan (clients, pools, calibration) really runs.
Its upstream calls go to the session's real upstream simulator (`target_common`).

Timing assertions: lower bounds are physics (an upstream wait cannot be shorter than asked); the
only tight upper bound (a concurrent fan-out beats the sequential sum) takes the best of a few tries.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import socket
import time
from multiprocessing import resource_tracker

import psutil
import pytest
from fastapi.testclient import TestClient

from harness.data import knobs
from targets import TARGETS, common, cpu_work, default_pool_size
from tests.conftest import leftover_children

NAMES = list(TARGETS)

# How each target runs the FANOUT upstream calls of one /io request, from its registry record:
# blocking calls and thread tokens call in sequence; async and blocked-future ones overlap.
SEQUENTIAL_IO = {n for n, t in TARGETS.items() if t.concurrency in ("blocking", "threads")}
CONCURRENT_IO = {n for n, t in TARGETS.items() if t.concurrency in ("async", "blocked-future")}
# Targets whose lifespan starts a ProcessPoolExecutor (children exist while serving).
PROCESS_POOLS = {n for n, t in TARGETS.items() if t.pool_kind == "processes"}

LOOSE_S = 2.0  # generous upper bound for "this is quick"
KNOB_ENV = knobs.TARGET_ENV_VARS  # every variable a target reads, from the knob table


def load_module(name: str):
    module_name, _, attr = TARGETS[name].app.partition(":")
    assert attr == "app", TARGETS[name].app
    return importlib.import_module(module_name)


def load_app(name: str):
    return load_module(name).app


class OpenClients:
    """One TestClient per target, entered lazily and kept open across this module's tests (process
    pools take seconds to spawn). A test that must own a target's lifespan closes it first: two
    lifespans of one app object at once would overwrite each other's `app.state`."""

    def __init__(self) -> None:
        self._open: dict[str, TestClient] = {}

    def get(self, name: str) -> TestClient:
        if name not in self._open:
            client = TestClient(load_app(name))
            client.__enter__()
            self._open[name] = client
        return self._open[name]

    def close(self, name: str) -> None:
        client = self._open.pop(name, None)
        if client is not None:
            client.__exit__(None, None, None)

    def close_all(self) -> None:
        for name in list(self._open):
            self.close(name)


@pytest.fixture(scope="module")
def clients(target_common):
    opened = OpenClients()
    yield opened
    opened.close_all()


@pytest.fixture
def client(clients, name) -> TestClient:
    return clients.get(name)


def _wall(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def timed_get(client: TestClient, url: str):
    t0 = time.perf_counter()
    response = client.get(url)
    return response, time.perf_counter() - t0


def test_registry_is_classified():
    """Every shipped target says how it waits (the model and these tests depend on it), and its
    pool default agrees with its pool kind."""
    assert set(NAMES) == SEQUENTIAL_IO | CONCURRENT_IO
    assert not SEQUENTIAL_IO & CONCURRENT_IO
    assert PROCESS_POOLS == {"process-pool", "blocking-future"}
    for name, target in TARGETS.items():
        assert (target.pool_kind == "none") == (target.pool_default is None), name
        assert (default_pool_size(name) is None) == (target.pool_kind == "none"), name


def test_settings_fields_are_the_env_knobs(target_common):
    """targets.common.Settings has one field per env-var knob of the table, nothing else."""
    fields = [f.name for f in dataclasses.fields(target_common.Settings)]
    assert sorted(fields) == sorted(k.name for k in knobs.ENV_KNOBS)


# --- docstrings ---

@pytest.mark.parametrize("name", NAMES)
def test_docstring_says_what_to_expect(name, target_common):
    module = load_module(name)
    assert module.__doc__ and "Expect" in module.__doc__
    assert module.app.title == name


# --- /health, /io, /cpu, /mixed ---

@pytest.mark.parametrize("name", NAMES)
def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "pid": os.getpid()}  # the probe learns its worker


@pytest.mark.parametrize("name", NAMES)
def test_io_default_fanout(client, target_common):
    response = client.get("/io?io_ms=1")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == target_common.settings.fanout  # FANOUT, 3 unless set in the environment
    assert results == [{"delay_ms": 1}] * target_common.settings.fanout


@pytest.mark.parametrize("name", NAMES)
def test_io_query_fanout(client):
    response = client.get("/io?fanout=2&io_ms=5")
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [{"delay_ms": 5}, {"delay_ms": 5}]}


@pytest.mark.parametrize("name", NAMES)
def test_io_elapsed(name, client, target_common):
    io_ms, fanout = 30, 3
    url = f"/io?io_ms={io_ms}&fanout={fanout}"
    times = []
    for _ in range(3):
        response, elapsed = timed_get(client, url)
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == fanout
        times.append(elapsed)
    # Physics: every call waits io_ms, so no request can beat one wait.
    assert min(times) >= io_ms / 1000, times
    if name in SEQUENTIAL_IO:
        assert min(times) >= fanout * io_ms / 1000, times
        assert min(times) < LOOSE_S, times
    else:
        threads = target_common.pool_size(default_pool_size(name)) if name == "blocking-future" else None
        if threads is not None:
            # blocking-future's fan-out runs on POOL_SIZE threads (default: CPU count).
            rounds = math.ceil(fanout / threads)
            assert min(times) >= rounds * io_ms / 1000, (threads, times)
            if rounds == fanout:
                pytest.skip(f"blocking-future has {threads} thread(s): its fan-out is sequential here")
        # Concurrent fan-out: clearly less than the sequential sum (best of three tries).
        assert min(times) < fanout * io_ms / 1000, times


@pytest.mark.parametrize("name", NAMES)
def test_cpu_quick_at_zero(client):
    response, elapsed = timed_get(client, "/cpu?cpu_ms=0")
    assert response.status_code == 200, response.text
    assert response.json()["processed"] is True
    assert elapsed < LOOSE_S


@pytest.mark.parametrize("name", NAMES)
def test_cpu_takes_its_calibrated_time(client):
    cpu_ms = 50
    response, elapsed = timed_get(client, f"/cpu?cpu_ms={cpu_ms}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["processed"] is True
    assert isinstance(body["value"], int)
    # The same units burnt here, now, are the yardstick: the lifespan's calibration may have run on
    # a slower or faster core than this moment's (a VM counts stolen time as thread time), so the
    # nominal 50 ms is not. Work skipped would take ~0 s; half the yardstick is a generous floor.
    units = common.Work(io_ms=0, fanout=1, cpu_ms=cpu_ms).cpu_units()
    yardstick = min(_wall(lambda: cpu_work.burn_units(units, common.settings.cpu_kind)) for _ in range(3))
    assert elapsed >= 0.5 * yardstick, (elapsed, yardstick)
    assert elapsed < LOOSE_S + cpu_ms / 1000 * 3


@pytest.mark.parametrize("name", NAMES)
def test_mixed(client):
    response, elapsed = timed_get(client, "/mixed?io_ms=10&cpu_ms=5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["processed"] is True
    assert isinstance(body["score"], int) and body["score"] > 0
    assert elapsed >= 0.010


# --- bounded query parameters ---

BAD_QUERIES = ["io_ms=-1", "io_ms=5001", "fanout=0", "fanout=17", "cpu_ms=1001", "cpu_ms=abc"]


@pytest.fixture
def handler_spy(target_common, monkeypatch):
    """Counts calls of the Work methods every handler uses to do its I/O or CPU work."""
    calls: list[str] = []
    for method in ("delay_url", "cpu_units"):
        original = getattr(target_common.Work, method)

        def spy(self, _original=original, _method=method):
            calls.append(_method)
            return _original(self)

        monkeypatch.setattr(target_common.Work, method, spy)
    return calls


@pytest.mark.parametrize("query", BAD_QUERIES)
@pytest.mark.parametrize("name", NAMES)
def test_out_of_bounds_is_422(client, handler_spy, query):
    param = query.partition("=")[0]
    for path in ("/io", "/cpu", "/mixed"):
        response, elapsed = timed_get(client, f"{path}?{query}")
        assert response.status_code == 422, (path, response.text)
        assert any(err["loc"] == ["query", param] for err in response.json()["detail"]), response.text
        assert elapsed < LOOSE_S
    assert handler_spy == [], "a handler ran despite invalid parameters"
    # The spy does see a valid request (so the empty list above means something).
    assert client.get("/mixed?io_ms=0&cpu_ms=0").status_code == 200
    assert handler_spy


# --- upstream failures ---

@pytest.fixture
def closed_upstream(target_common):
    """settings.upstream_url pointing at a bound but non-listening port (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    original = target_common.settings
    target_common.settings = dataclasses.replace(
        original, upstream_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    try:
        yield
    finally:
        target_common.settings = original
        sock.close()


@pytest.mark.parametrize("name", NAMES)
def test_upstream_unreachable_is_502(client, closed_upstream):
    for path in ("/io?io_ms=0", "/mixed?io_ms=0&cpu_ms=0"):
        response, elapsed = timed_get(client, path)
        assert response.status_code == 502, (path, response.status_code, response.text)
        assert "ConnectError" in response.json()["detail"]
        assert elapsed < LOOSE_S * 5


@pytest.fixture
def erroring_upstream(target_common, upstream):
    """settings.upstream_url pointing at a path the upstream answers with 404."""
    original = target_common.settings
    target_common.settings = dataclasses.replace(original, upstream_url=f"{upstream.url}/missing")
    try:
        yield
    finally:
        target_common.settings = original


@pytest.mark.parametrize("name", NAMES)
def test_upstream_error_status_is_502_not_a_success(client, erroring_upstream):
    for path in ("/io?io_ms=0", "/mixed?io_ms=0&cpu_ms=0"):
        response = client.get(path)
        assert response.status_code == 502, (path, response.status_code, response.text)
        assert "HTTPStatusError" in response.json()["detail"]


@pytest.mark.parametrize("name", NAMES)
def test_recovers_after_upstream_failure(client, target_common):
    """Runs after the 502 test on the same open client: the shared HTTP clients still work."""
    assert client.get("/io?io_ms=0&fanout=2").status_code == 200


# --- lifespan: pools are shut down ---

@pytest.mark.parametrize("name", NAMES)
def test_lifespan_leaves_no_children(name, clients, upstream, target_common):
    clients.close(name)  # this test owns the app's lifespan
    # multiprocessing's resource tracker lives as long as this process, by design: start it first
    # so it is part of the baseline rather than mistaken for a leaked pool child.
    resource_tracker.ensure_running()
    me = psutil.Process()
    before = {p.pid for p in leftover_children()} | {upstream.proc.pid}
    with TestClient(load_app(name)) as client:
        assert client.get("/cpu?cpu_ms=1").status_code == 200
        during = {p.pid for p in me.children(recursive=True)} - before
        if name in PROCESS_POOLS:
            size = target_common.pool_size(default_pool_size(name))
            assert len(during) == size, f"expected {size} pool processes, saw {during}"
        else:
            assert during == set()
    left = leftover_children(exclude=before)
    assert left == [], [(p.pid, p.cmdline()) for p in left]


# --- knobs ---

@pytest.fixture
def clean_env(monkeypatch):
    for key in KNOB_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_knob_defaults(clean_env, target_common):
    s = target_common.Settings.from_env()
    assert (s.io_ms, s.fanout, s.cpu_ms, s.cpu_kind) == (50, 3, 20, "python")
    assert s.pool_size is None
    assert s.upstream_url == "http://127.0.0.1:8001"


@pytest.mark.parametrize("env, needle", [
    ({"IO_MS": "abc"}, "IO_MS"),
    ({"IO_MS": "5001"}, "IO_MS"),
    ({"FANOUT": "0"}, "FANOUT"),
    ({"FANOUT": "17"}, "FANOUT"),
    ({"CPU_MS": "-1"}, "CPU_MS"),
    ({"CPU_KIND": "gpu"}, "CPU_KIND"),
    ({"POOL_SIZE": "0"}, "POOL_SIZE"),
    ({"POOL_SIZE": "many"}, "POOL_SIZE"),
    ({"CPU_UNITS_PER_MS": "abc"}, "CPU_UNITS_PER_MS"),
    ({"CPU_UNITS_PER_MS": "0"}, "CPU_UNITS_PER_MS"),
])
def test_bad_knobs_raise(clean_env, target_common, env, needle):
    for key, value in env.items():
        clean_env.setenv(key, value)
    with pytest.raises(ValueError, match=needle):
        target_common.Settings.from_env()


def test_good_knobs(clean_env, target_common):
    for key, value in {"POOL_SIZE": "8", "IO_MS": "0", "FANOUT": "16", "CPU_MS": "1000",
                       "CPU_KIND": "native", "UPSTREAM_URL": "http://127.0.0.1:9/"}.items():
        clean_env.setenv(key, value)
    s = target_common.Settings.from_env()
    assert s.pool_size == 8
    assert (s.io_ms, s.fanout, s.cpu_ms, s.cpu_kind) == (0, 16, 1000, "native")
    assert s.upstream_url == "http://127.0.0.1:9"
    assert target_common.pool_size(4) == 4  # the module's settings are untouched


# --- cpu_work ---

@pytest.mark.parametrize("kind", ["python", "native"])
def test_calibrate_positive(kind):
    from targets import cpu_work

    rate = cpu_work.calibrate(kind)
    assert rate > 0 and math.isfinite(rate)


def test_burn_units():
    from targets import cpu_work

    assert cpu_work.burn_units(0) == 0
    assert cpu_work.burn_units(-3, "native") == 0
    assert cpu_work.burn_units(10, "python") == sum(i % 7 for i in range(10))
    value = cpu_work.burn_units(3, "native")
    assert isinstance(value, int) and 0 <= value < 256
