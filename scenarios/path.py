"""Any endpoint (`bench.py run --app ... --path /x` or `--url ... --path /x`, and `bench.py audit`):
closed-loop users on BENCH_METHOD (default GET) BENCH_PATH, with BENCH_BODY sent as
BENCH_CONTENT_TYPE and BENCH_HEADERS (a JSON object) on every request; plus the /health probe
(on BENCH_HEALTH_PATH).

Every `{{unique}}` in the body is replaced, per request, by a fresh 32-digit hex string (uuid4), so
a route that creates something unique (a user, a slug) can be measured: `--body 'POST /api/users=
{"user": {"username": "u{{unique}}", "email": "{{unique}}@example.com", "password": "pw"}}'`.

The first 4xx answer's body is written to BENCH_FIRST_ERROR (once per load process): the audit
names the validation error's field, or the app's own reason for a 400 ("incorrect email or
password"), from it, which Locust's failure file does not keep.

Run alone: BENCH_PATH=/items locust -f scenarios/path.py -H http://127.0.0.1:8000
"""

import json
import os

from _base import HealthProbe, WorkUser, fresh_body
from locust import events

__all__ = ["PathUser", "HealthProbe"]

METHOD = (os.environ.get("BENCH_METHOD") or "GET").upper()
BODY = os.environ.get("BENCH_BODY")
HEADERS = {**json.loads(os.environ.get("BENCH_HEADERS") or "{}"),
           **({"Content-Type": os.environ.get("BENCH_CONTENT_TYPE") or "application/json"} if BODY else {})}
FIRST_ERROR = os.environ.get("BENCH_FIRST_ERROR")
KEPT_STATUSES = range(400, 500)  # the client errors: the app says in the body what it refused
_kept: list[int] = []


class PathUser(WorkUser):
    path = os.environ.get("BENCH_PATH") or "/"

    def _request(self, context: dict | None = None) -> None:
        kwargs = {"context": context} if context else {}
        self.client.request(METHOD, self.path, name=self.stats_name, data=body(), headers=HEADERS or None,
                            **kwargs)


def body() -> str | None:
    """This request's body: BODY with each {{unique}} a new uuid4 hex (the same one throughout)."""
    return fresh_body(BODY)


if FIRST_ERROR:
    @events.request.add_listener
    def _keep_first_error(name, response=None, exception=None, **_kw) -> None:
        if _kept or exception is None or response is None or name != PathUser.stats_name:
            return
        if getattr(response, "status_code", 0) in KEPT_STATUSES:
            _kept.append(1)
            with open(f"{FIRST_ERROR}.{os.getpid()}", "w") as fh:
                json.dump({"status": response.status_code, "body": (response.text or "")[:4000]}, fh)
