"""The request a `--path` cell sends, as the environment scenarios/path.py reads: its method, URL,
body and content type (from the audit's requests file, or 'POST /x' in the path itself) and the
headers of every work request (--header, and what --setup returned); and for the audit's screen,
every route's request in one list (scenarios/screen.py)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.matrix import Cell


def requests_of(cell: Cell) -> dict:
    """The audit's requests file ({"headers": ..., "routes": {name: request}}), {} without one."""
    path = cell.knobs.get("requests")
    return json.loads(Path(path).read_text()) if path else {}


def request_env(path: str, spec: dict, headers: dict[str, str]) -> dict[str, str]:
    """What scenarios/path.py reads: the method, URL, body and headers of one --path."""
    method, _, rest = path.partition(" ")
    method, url = (method, rest) if rest.startswith("/") else ("GET", path)
    env = {"BENCH_METHOD": spec.get("method") or method, "BENCH_PATH": spec.get("url") or url}
    if spec.get("body") is not None:
        env.update(BENCH_BODY=spec["body"], BENCH_CONTENT_TYPE=spec.get("content_type") or "application/json")
    if headers:
        env["BENCH_HEADERS"] = json.dumps(headers)
    return env


def screen_env(paths: list[str], requests: dict, headers: dict[str, str]) -> dict[str, str]:
    """What scenarios/screen.py reads: every route's request (name, method, URL, body, content type)
    as one JSON list, and the headers of every request."""
    specs = requests.get("routes") or {}
    routes = []
    for path in paths:
        one = request_env(path, specs.get(path) or {}, {})
        routes.append({"name": path, "method": one["BENCH_METHOD"], "url": one["BENCH_PATH"],
                       "body": one.get("BENCH_BODY"), "content_type": one.get("BENCH_CONTENT_TYPE")})
    env = {"BENCH_SCREEN": json.dumps(routes)}
    if headers:
        env["BENCH_HEADERS"] = json.dumps(headers)
    return env
