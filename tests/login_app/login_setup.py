"""setup(base_url) for tests/login_app: log in once through the app's own login route and return the
bearer token as headers, so the audit measures GET /me as the logged-in user."""

import httpx


def setup(base_url: str) -> dict[str, str]:
    answer = httpx.post(base_url + "/login", json={"username": "alice", "password": "wonderland"}, timeout=10)
    answer.raise_for_status()
    return {"Authorization": "Bearer " + answer.json()["access_token"]}
