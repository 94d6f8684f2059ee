"""`{{unique}}` in a --body: each request of the load gets a fresh value, so a route that creates
something unique (a RealWorld user: username and email must be new) is measured instead of failing
400 "already exists" from its second request on. Run in a child: importing Locust patches the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import ROOT

_PRINT_BODIES = """
import json, sys
sys.path.insert(0, sys.argv[1])
import path
print(json.dumps([path.body(), path.body()]))
"""


def _bodies(body: str) -> list[str]:
    env = {**os.environ, "BENCH_BODY": body, "BENCH_PATH": "/api/users", "BENCH_METHOD": "POST"}
    done = subprocess.run([sys.executable, "-c", _PRINT_BODIES, str(ROOT / "scenarios")], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_request_gets_its_own_unique_value_used_throughout_its_body() -> None:
    template = '{"user": {"username": "u{{unique}}", "email": "{{unique}}@example.com", "password": "pw"}}'
    first, second = (json.loads(b)["user"] for b in _bodies(template))
    assert first != second
    for user in (first, second):
        hex_part = user["username"].removeprefix("u")
        assert len(hex_part) == 32 and int(hex_part, 16) >= 0
        assert user["email"] == f"{hex_part}@example.com" and user["password"] == "pw"


def test_a_body_without_the_token_is_sent_as_given() -> None:
    assert _bodies('{"name": "{unique}"}') == ['{"name": "{unique}"}'] * 2


_SCREEN_BODIES = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
import screen
sent = []
user = types.SimpleNamespace(_next=0, client=types.SimpleNamespace(
    request=lambda method, url, name, data, headers: sent.append(data)))
screen.ScreenUser._request(user)
screen.ScreenUser._request(user)
print(json.dumps(sent))
"""


def test_the_screen_sends_a_fresh_unique_value_too() -> None:
    routes = [{"name": "POST /api/users", "method": "POST", "url": "/api/users",
               "body": '{"username": "u{{unique}}"}', "content_type": "application/json"}]
    env = {**os.environ, "BENCH_SCREEN": json.dumps(routes)}
    done = subprocess.run([sys.executable, "-c", _SCREEN_BODIES, str(ROOT / "scenarios")], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    first, second = (json.loads(b)["username"] for b in json.loads(done.stdout.strip().splitlines()[-1]))
    assert first != second and len(first) == len(second) == 33 and first.startswith("u")
