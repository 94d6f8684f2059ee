"""Auth and request plumbing of the audit, without a server: what --setup returns and is given, the
environment a cell's Locust users read, and the row text of a 401 and of a 422."""

from __future__ import annotations

import json

import pytest

from harness.answer import audit
from harness.run import seed
from harness.run.request_env import request_env


def test_setup_gets_the_headers_and_its_returned_headers_come_back(tmp_path):
    file = tmp_path / "login_setup.py"
    file.write_text("def setup(base_url, headers):\n"
                    "    return {'Authorization': 'Bearer ' + base_url + headers['X-Key']}\n")
    got = seed.run(str(file), "http://h", tmp_path / "setup.log", {"X-Key": "k1"})
    assert got == {"Authorization": "Bearer http://hk1"}


def test_setup_returning_nothing_gives_no_headers_and_a_non_dict_fails_in_one_line(tmp_path):
    file = tmp_path / "seed.py"
    file.write_text("def setup(base_url):\n    pass\n")
    assert seed.run(str(file), "http://h", tmp_path / "setup.log") == {}
    file.write_text("def setup(base_url):\n    return ['token']\n")
    with pytest.raises(seed.SetupError, match="returned list: expected None or a dict of header names"):
        seed.run(str(file), "http://h", tmp_path / "setup.log")


def test_request_env_carries_method_body_and_headers():
    spec = {"method": "POST", "url": "/login", "body": '{"a": 1}', "content_type": "application/json"}
    env = request_env("POST /login", spec, {"Authorization": "Bearer t"})
    assert env == {"BENCH_METHOD": "POST", "BENCH_PATH": "/login", "BENCH_BODY": '{"a": 1}',
                   "BENCH_CONTENT_TYPE": "application/json",
                   "BENCH_HEADERS": json.dumps({"Authorization": "Bearer t"})}
    assert request_env("/items?q=1", {}, {}) == {"BENCH_METHOD": "GET", "BENCH_PATH": "/items?q=1"}
    assert request_env("DELETE /items/1", {}, {}) == {"BENCH_METHOD": "DELETE", "BENCH_PATH": "/items/1"}


def _kept(tmp_path, status: int, body: dict) -> dict:
    raw = tmp_path / "raw" / "cell"
    raw.mkdir(parents=True)
    (raw / "first_error.json.123").write_text(json.dumps({"status": status, "body": json.dumps(body)}))
    return {"raw_dir": "raw/cell", "scenario": "POST /items"}


def test_first_validation_error_names_the_field(tmp_path):
    row = _kept(tmp_path, 422, {"detail": [{"loc": ["body", "price"], "msg": "Field required"},
                                           {"loc": ["body", "name"], "msg": "later"}]})
    assert audit.first_error(tmp_path, row) == "body.price: Field required"
    advice = audit.advice({**row}, "failing: 422 Unprocessable Entity 100%", "POST /items")
    assert "--body 'POST /items=@body.json'" in advice
    assert "--body" not in audit.advice(row, "failing: 422 Unprocessable Entity 100%", "/items")  # a GET


def test_a_401_names_its_detail_and_the_advice_names_header_and_setup(tmp_path):
    row = _kept(tmp_path, 401, {"detail": "Not authenticated"})
    assert audit.first_error(tmp_path, row) == "Not authenticated"
    advice = audit.advice(row, "failing: 401 Unauthorized 100%")
    assert "--header 'Authorization: Bearer TOKEN'" in advice and "setup" in advice
    assert "--param" not in advice
    assert audit.first_error(tmp_path, {"raw_dir": "raw/none"}) == ""  # nothing kept: nothing said


def test_a_400_from_an_apps_own_error_handler_names_its_reason_and_the_body_to_give(tmp_path):
    row = _kept(tmp_path, 400, {"errors": ["incorrect email or password"]})  # the RealWorld apps' shape
    assert audit.first_error(tmp_path, row) == "incorrect email or password"
    advice = audit.advice(row, "failing: 400 Bad Request 100%", "POST /api/users/login")
    assert "--body 'POST /api/users/login=@body.json'" in advice and "locust_failures" not in advice
    assert "--body" not in audit.advice(row, "failing: 400 Bad Request 100%", "/api/articles")  # a GET


@pytest.mark.parametrize(("body", "reason"), [
    ({"errors": [{"loc": ["body", "user"], "msg": "field required"}]}, "body.user: field required"),
    ({"errors": {"body": ["can't be empty"]}}, "body: can't be empty"),
    ({"message": "slug taken"}, "slug taken"),
    ({"unrelated": 1}, ""),
])
def test_error_bodies_of_other_shapes(tmp_path, body, reason):
    assert audit.first_error(tmp_path, _kept(tmp_path, 409, body)) == reason


def test_a_refused_post_without_a_body_is_not_told_to_give_one(tmp_path):
    row = _kept(tmp_path, 400, {"errors": ["you follow this user already"]})
    advice = audit.advice(row, "failing: 400 Bad Request 100%", "POST /api/profiles/{username}/follow",
                          has_body=False)
    assert "--body" not in advice and "--exclude" in advice and "refused when repeated" in advice
    with_body = audit.advice(row, "failing: 400 Bad Request 100%", "POST /api/users", has_body=True)
    assert "--body 'POST /api/users=@body.json'" in with_body
