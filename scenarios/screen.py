"""The audit's screen: every route of the app in one window. BENCH_SCREEN is a JSON list of
requests ({"name", "method", "url", "body", "content_type"}); each closed-loop user sends them in
turn, from a random first one, so every route gets the same share of the requests (the same
weight) whatever its latency. Each request is recorded under its route's name, so the harness
reads every route's own figures from the one window (harness/judge/route_window.py). BENCH_HEADERS
(a JSON object) goes with every request, and each {{unique}} in a body is a fresh value per
request, as in scenarios/path.py; plus the /health probe, as for any scenario.

Run alone: BENCH_SCREEN='[{"name": "/a", "method": "GET", "url": "/a"}]' locust -f scenarios/screen.py
"""

import json
import os
import random

from _base import HealthProbe, WorkUser, fresh_body

__all__ = ["ScreenUser", "HealthProbe"]

HEADERS = json.loads(os.environ.get("BENCH_HEADERS") or "{}")


def _routes() -> list[tuple[str, str, str, str | None, dict | None]]:
    """(name, method, url, body, headers) of every route to request."""
    out = []
    for r in json.loads(os.environ.get("BENCH_SCREEN") or "[]"):
        body = r.get("body")
        kind = {"Content-Type": r.get("content_type") or "application/json"} if body else {}
        headers = {**HEADERS, **kind}
        out.append((r["name"], (r.get("method") or "GET").upper(), r["url"], body, headers or None))
    if not out:
        raise SystemExit("BENCH_SCREEN names no route")
    return out


ROUTES = _routes()


class ScreenUser(WorkUser):
    def on_start(self) -> None:
        super().on_start()
        self._next = random.randrange(len(ROUTES))

    def _request(self, context: dict | None = None) -> None:
        name, method, url, body, headers = ROUTES[self._next]
        self._next = (self._next + 1) % len(ROUTES)
        kwargs = {"context": context} if context else {}
        self.client.request(method, url, name=name, data=fresh_body(body), headers=headers, **kwargs)
