"""Hostile query strings against every target: never a 5xx, never more work than the bounds allow.

A property test sends /io, /cpu and /mixed arbitrary values for io_ms, fanout and cpu_ms (negative,
huge, non-numeric, numeric-looking text, repeated parameters) plus unknown extra parameters. An
oracle parses the values the way the targets declare them (pydantic, same bounds) to know whether
the request must be accepted and, if so, how long its work may take. Examples whose accepted values
would be expensive are discarded, so each example costs at most a few hundred milliseconds.
"""

from __future__ import annotations

import importlib
import time
from typing import Annotated

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from targets import TARGETS
from targets.common import MAX_CPU_MS, MAX_FANOUT, MAX_IO_MS

NAMES = list(TARGETS)
ENDPOINTS = ("/io", "/cpu", "/mixed")
BOUNDS = {"io_ms": (0, MAX_IO_MS), "fanout": (1, MAX_FANOUT), "cpu_ms": (0, MAX_CPU_MS)}
# Largest accepted value an example may send explicitly (keeps every example cheap).
CHEAP = {"io_ms": 20, "fanout": 4, "cpu_ms": 20}
CPU_FACTOR = 3  # calibrated CPU may run this much slower than asked on a busy machine
SLACK_S = 2.0

ORACLES = {
    name: TypeAdapter(Annotated[int | None, Field(ge=lo, le=hi)]) for name, (lo, hi) in BOUNDS.items()
}


def load_app(name: str):
    module_name, _, attr = TARGETS[name].app.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def values(param: str) -> st.SearchStrategy[str]:
    lo, hi = BOUNDS[param]
    return st.one_of(
        st.integers(max_value=lo - 1).map(str),                    # below the range
        st.integers(min_value=hi + 1).map(str),                    # above it, up to huge
        st.integers(min_value=lo, max_value=CHEAP[param]).map(str),  # cheap and valid
        st.integers().map(str),                                    # anywhere
        st.from_regex(r"\A[ +-]?0*[0-9]{1,5}(\.0+|\.5|_0|e2)?[ ]?\Z"),  # numeric-looking text
        st.text(max_size=12),                                      # anything at all
        st.text(alphabet="0123456789", min_size=20, max_size=5000),  # absurdly long numbers
    )


def pairs() -> st.SearchStrategy[tuple[str, str]]:
    known = [st.tuples(st.just(p), values(p)) for p in BOUNDS]
    unknown = st.tuples(st.text(min_size=1, max_size=10).filter(lambda k: k not in BOUNDS),
                        st.text(max_size=10))
    return st.one_of(*known, unknown)


def expected(query: list[tuple[str, str]], defaults: dict[str, int]) -> dict[str, int] | None:
    """The values the target works with, or None if the request must be rejected with 422.

    A repeated parameter counts with its last value (Starlette's QueryParams.get)."""
    given_values = dict(q for q in query if q[0] in BOUNDS)  # last occurrence wins
    work = dict(defaults)
    for param, raw in given_values.items():
        try:
            work[param] = ORACLES[param].validate_python(raw)
        except ValidationError:
            return None
    return work


def work_bound_s(path: str, work: dict[str, int]) -> float:
    io_s = work["io_ms"] / 1000
    cpu_s = work["cpu_ms"] * CPU_FACTOR / 1000
    return {"/io": work["fanout"] * io_s, "/cpu": cpu_s, "/mixed": io_s + cpu_s}[path]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_queries(name, target_common):
    s = target_common.settings
    defaults = {"io_ms": s.io_ms, "fanout": s.fanout, "cpu_ms": s.cpu_ms}

    with TestClient(load_app(name), raise_server_exceptions=False) as client:

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(path=st.sampled_from(ENDPOINTS), query=st.lists(pairs(), max_size=6))
        def check(path, query):
            work = expected(query, defaults)
            if work is not None:
                explicit = {p: work[p] for p, _ in query if p in BOUNDS}
                assume(all(v <= CHEAP[p] for p, v in explicit.items()))
            t0 = time.perf_counter()
            response = client.get(path, params=query)
            elapsed = time.perf_counter() - t0
            event(f"{path} {response.status_code}")  # see --hypothesis-show-statistics
            assert response.status_code in (200, 422), (response.status_code, response.text)
            if work is None:
                assert response.status_code == 422, response.text
                assert elapsed < SLACK_S
            else:
                assert response.status_code == 200, response.text
                assert elapsed <= work_bound_s(path, work) + SLACK_S, (work, elapsed)
                body = response.json()
                if path == "/io":
                    assert body == {"results": [{"delay_ms": work["io_ms"]}] * work["fanout"]}
                else:
                    assert body["processed"] is True

        check()


def _bounds(schema: dict) -> tuple[int | None, int | None]:
    """(minimum, maximum) of a parameter schema, looking inside anyOf/allOf (Optional[int])."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    for sub in schema.get("anyOf", []) + schema.get("allOf", []):
        sub_lo, sub_hi = _bounds(sub)
        lo = sub_lo if lo is None else lo
        hi = sub_hi if hi is None else hi
    return lo, hi


@pytest.mark.parametrize("name", NAMES)
def test_openapi_declares_bounds(name, target_common):
    paths = load_app(name).openapi()["paths"]
    for path in ENDPOINTS:
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert set(BOUNDS) <= set(params), (path, sorted(params))
        for param, (lo, hi) in BOUNDS.items():
            assert params[param]["in"] == "query"
            assert not params[param].get("required", False), (path, param)
            assert _bounds(params[param]["schema"]) == (lo, hi), (path, param, params[param]["schema"])
