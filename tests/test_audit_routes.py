"""Route discovery from an OpenAPI schema (pure), and the audit's verdicts and advice from rows."""

import pytest

from harness.answer import audit
from harness.run import routes

SCHEMA = {"paths": {
    "/heroes/": {"get": {"operationId": "read_heroes", "parameters": [
        {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "default": 0}}]},
        "post": {"operationId": "create_hero"}},
    "/heroes/{hero_id}": {"get": {"parameters": [
        {"name": "hero_id", "in": "path", "required": True, "schema": {"type": "integer"}}]}},
    "/teams/{team}": {"get": {"parameters": [
        {"name": "team", "in": "path", "required": True,
         "schema": {"type": "string", "examples": ["red one"]}}]}},
    "/search": {"get": {"parameters": [
        {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "page", "in": "query", "required": True, "example": 2, "schema": {"type": "integer"}}]}},
    "/private": {"get": {"parameters": [
        {"name": "x-token", "in": "header", "required": True, "schema": {"type": "string"}}]}},
    "/upload": {"post": {}},
}}


def _by_template(found):
    return {r.template: r for r in found}


def test_routes_filled_from_the_schema_and_params_and_skipped_with_reasons():
    found, skipped = routes.discover(SCHEMA, {})
    # optional query left to the app; the POSTs without a body are measured too (default GET,POST)
    assert [r.key for r in found] == ["/heroes/", "POST /heroes/", "/teams/red%20one", "POST /upload"]
    reasons = {s.template: s.reason for s in skipped}
    assert set(reasons) == {"/heroes/{hero_id}", "/search", "/private"}
    assert "no value for path parameter 'hero_id'" in reasons["/heroes/{hero_id}"]
    assert "--param hero_id=VALUE" in reasons["/heroes/{hero_id}"]
    assert "'q'" in reasons["/search"]
    assert reasons["/private"] == "no value for header parameter 'x-token': give --header 'x-token: VALUE'"


def test_every_operation_is_measured_or_skipped_with_its_reason():
    schema = {"paths": {"/a": {"get": {}, "post": {}, "put": {}, "patch": {}, "delete": {}, "head": {}}}}
    found, skipped = routes.discover(schema, {}, methods=("GET", "DELETE"))
    assert [r.key for r in found] == ["/a", "DELETE /a"]
    assert {s.template: s.reason for s in skipped} == {
        **{f"{m} /a": "method not selected (--methods GET,DELETE)" for m in ("POST", "PUT", "PATCH")},
        "HEAD /a": "method not selected (the audit measures GET, POST, PUT, PATCH, DELETE)"}


def test_header_parameter_filled_by_header_flag_in_any_case():
    found, skipped = routes.discover(SCHEMA, {"hero_id": "1", "q": "x"}, headers=["X-Token"],
                                     methods=("GET",))
    assert "/private" in {r.template for r in found} and not [s for s in skipped if "header" in s.reason]


def test_security_scheme_marks_the_route_and_warns_without_credentials():
    from harness.audit_cmd import auth_warnings
    schema = {"security": [{"bearer": []}], "paths": {"/open": {"get": {"security": []}}, "/me": {"get": {}}}}
    found, _ = routes.discover(schema, {})
    assert {r.template: r.secured for r in found} == {"/open": False, "/me": True}
    warned = auth_warnings(found, {}, None)
    assert len(warned) == 1 and warned[0].startswith("warning: /me declares a security scheme")
    assert auth_warnings(found, {"Authorization": "Bearer x"}, None) == []
    assert auth_warnings(found, {}, "/setup.py") == []


def test_params_fill_path_and_required_query_and_name_optional_ones():
    found, skipped = routes.discover(SCHEMA, {"hero_id": "7", "q": "a b", "offset": "5"}, methods=("GET",))
    urls = _by_template(found)
    assert urls["/heroes/{hero_id}"].url == "/heroes/7"
    assert urls["/search"].url == "/search?q=a+b&page=2"  # page from the parameter's own example
    assert urls["/heroes/"].url == "/heroes/?offset=5"
    assert [s.template for s in skipped] == ["POST /heroes/", "/private", "POST /upload"]


def test_include_and_exclude_globs_match_the_schema_path():
    found, skipped = routes.discover(SCHEMA, {"hero_id": "1"}, include=["/heroes/*"], exclude=["/heroes/"])
    assert [r.template for r in found] == ["/heroes/{hero_id}"]
    assert [(s.template, s.reason) for s in skipped] == [("/heroes/", "matched --exclude"),
                                                         ("POST /heroes/", "matched --exclude")]


@pytest.mark.parametrize("bad", ["hero_id", "=1", "1x=2", "a b=1"])
def test_malformed_param_is_refused(bad):
    with pytest.raises(routes.RouteError, match="expected name=value"):
        routes.parse_params([bad])


def test_param_given_twice_is_refused():
    with pytest.raises(routes.RouteError, match="twice"):
        routes.parse_params(["a=1", "a=2"])


HEALTHY = {"status": "ok", "requests": 4800, "failures": 0, "fail_ratio": 0.0, "loop_blocked_pct_max": 3.0,
           "worker_cpu_max_pct": 40.0, "users": 32, "bound_by": "users"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "fine at this load"),
    ({"fail_ratio": 1.0, "fail_top": "404 Not Found 100%"}, "failing: 404 Not Found 100%"),
    ({"fail_ratio": 0.6}, "failing: 60% of requests failed"),
    ({"fail_ratio": 0.05, "fail_top": "500 Internal Server Error 5%"},
     "failing: 500 Internal Server Error 5%"),
    ({"fail_ratio": 0.005}, "fine at this load"),  # a few failures are data, as in validity
    ({"requests": 10}, "unexplained (only 10 requests completed in the window, too few to show it fine: "
                       "lengthen --duration)"),  # no queue among 10 requests proves little
    ({"requests": 20}, "fine at this load"),
    ({"status": "failed", "error": "LaunchError: boom"}, "failing: the cell did not run (LaunchError: boom)"),
    ({"loop_blocked_pct_max": 95.0}, "blocks the event loop"),
    ({"thread_tokens_busy_max": 40, "thread_tokens_total": 40, "thread_tokens_full_pct": 97.0},
     "limited by the thread pool (40 of 40 tokens busy, all of them 97% of the window)"),
    ({"thread_tokens_busy_max": 80, "thread_tokens_total": 80, "thread_tokens_full_pct": 50.0},
     "limited by the thread pool (80 of 80 tokens busy, all of them 50% of the window)"),
    # every token taken now and then is not the limit (bottleneck's "thread pool" rule says the same)
    ({"thread_tokens_busy_max": 40, "thread_tokens_total": 40, "thread_tokens_full_pct": 3.0},
     "fine at this load"),
    ({"thread_tokens_busy_max": 39, "thread_tokens_total": 40, "thread_tokens_full_pct": 0.0},
     "fine at this load"),
    ({"worker_cpu_max_pct": 99.0}, "limited by workers' CPU"),
    # failures come first: a loop blocked while every request fails is still a failing route
    ({"fail_ratio": 1.0, "fail_top": "timeout 100%", "loop_blocked_pct_max": 99.0}, "failing: timeout 100%"),
    ({"fail_ratio": 0.24, "fail_top": "timeout 24%"}, "failing: timeout 24%"),
    # a route that never answers: no request counted in the window, whatever else was quiet
    ({"requests": 0, "failures": 0, "fail_ratio": float("nan"), "users": 8},
     "failing: no response within the window (8 in flight)"),
    # "fine" needs the bound to be the users (or the load): otherwise the bound, or unexplained
    ({"bound_by": "unexplained", "bound_detail": "no ceiling; no rule matched; closest: worker CPU at 44% "
      "of its threshold: busiest worker at 40% of one core"}, "unexplained (closest: worker CPU)"),
    ({"bound_by": ""}, "unexplained (no limit measured)"),
    ({"bound_by": "load generator"}, "fine at this load"),
    ({"bound_by": "accept imbalance"}, "limited by accept imbalance"),
    # the users named, yet every token taken a fifth of the window: a queue, so not fine
    ({"thread_tokens_busy_max": 40, "thread_tokens_total": 40, "thread_tokens_full_pct": 20.0},
     "unexplained (queued: all 40 thread tokens taken 20% of the window (at most 40 busy))"),
])
def test_verdict(changes, expected):
    assert audit.verdict({**HEALTHY, **changes}) == expected


def test_advice_names_the_call_site():
    row = {**HEALTHY, "loop_blocked_pct_max": 95.0, "stall_site": "items.py:31 in blocking → time.sleep"}
    assert audit.advice(row, audit.verdict(row)) == (
        "move `time.sleep` at items.py:31 out of `async def`: make the route `def`, or await an async client")
    cpu = {**row, "stall_site": "views.py:88 in report → json.dumps (CPU)"}
    assert "process pool" in audit.advice(cpu, audit.verdict(cpu))
    assert "json.dumps" in audit.advice(cpu, audit.verdict(cpu))
    own = {**row, "stall_site": "cpu_work.py:18 in _python_units (CPU)"}  # computing in the app's own code
    assert audit.advice(own, audit.verdict(own)) == (
        "move the CPU work in _python_units at cpu_work.py:18 off the loop: a process pool "
        "(run_in_executor), or a def route")
    assert "no call site recorded" in audit.advice(HEALTHY | {"loop_blocked_pct_max": 95.0},
                                                   "blocks the event loop")
    pool = {**HEALTHY, "thread_tokens_busy_max": 40, "thread_tokens_total": 40,
            "thread_tokens_full_pct": 97.0}
    assert audit.advice(pool, audit.verdict(pool)) == (
        "`def` routes waited for one of 40 threads: raise anyio.to_thread.current_default_thread_limiter()"
        ".total_tokens at start-up (measure sizes with --thread-tokens 40,80,160), or make the route async "
        "with an async client")
    bigger = {**pool, "thread_tokens_total": 80}
    assert "--thread-tokens 80,160,320" in audit.advice(bigger, audit.verdict(bigger))
    site = {**HEALTHY, "loop_blocked_pct_max": 95.0,
            "stall_site": "fake_async.py:36 in io → httpx.Client.get"}
    assert audit.advice(site, audit.verdict(site)) == (
        "move `httpx.Client.get` at fake_async.py:36 out of `async def`: make the route `def`, or await an "
        "async client")
    missing = {**HEALTHY, "fail_ratio": 1.0, "fail_top": "404 Not Found 100%"}
    assert "--setup" in audit.advice(missing, audit.verdict(missing))
    silent = {**HEALTHY, "requests": 0}
    assert "no timeout" in audit.advice(silent, audit.verdict(silent))
    assert audit.advice(HEALTHY, audit.verdict(HEALTHY)) == "nothing to change at 32 users"
    odd = {**HEALTHY, "bound_by": "unexplained"}
    assert "--users" in audit.advice(odd, audit.verdict(odd))


def test_the_table_tells_thread_token_sizes_apart_only_when_swept():
    row = {c: "" for c in audit.COLUMNS} | {"route": "/slow-def", "workers": "1", "rps": "160.0",
                                             "verdict": "fine at this load", "advice": "x", "valid": "True"}
    plain = audit.format_table([row])
    assert "tokens" not in plain.splitlines()[0]
    swept = audit.format_table([row | {"thread_tokens": "40"}, row | {"thread_tokens": "80", "rps": "240.0"}])
    head, first, _, _, second = swept.splitlines()[:5]
    assert "tokens" in head and " 40 " in first and " 80 " in second and "240.0" in second


def test_body_and_header_flags_parse(tmp_path):
    from harness.run import audit_flags
    (tmp_path / "login.json").write_text('{"username": "alice"}')
    got = audit_flags.parse_bodies(["post /login=@login.json", 'PUT /a/{id}={"x": 1}'], base=tmp_path)
    assert got == {"POST /login": '{"username": "alice"}', "PUT /a/{id}": '{"x": 1}'}
    assert audit_flags.parse_headers(["Authorization: Bearer a:b", "X-Key:1"]) == {
        "Authorization": "Bearer a:b", "X-Key": "1"}  # split at the first colon only
    assert audit_flags.parse_methods("get, Post,GET") == ("GET", "POST")
