"""What the app said when it refused a request (a 4xx's own reason, read from the first such answer
the load kept) and the advice for it, plus what it raised when some requests answered 5xx behind
another failure. Read from the run folder only (harness/answer/audit.py uses these)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.schema import row_text


def refused_advice(code: str, route: str, has_body: bool | None = None) -> str:
    """A 400, 409 or other 4xx: the app refused the request itself, for the reason the verdict names."""
    if has_body is False and not route.startswith("/"):  # a POST without a body: a toggle, a follow
        return (f"the app refused the request ({code}, for the reason in the verdict): a request without "
                "a body that succeeds once (a follow, a like) is refused when repeated: give other values "
                "with --param name=value, seed what it needs with --setup FILE, or --exclude the route")
    if route.startswith("/"):  # a GET: no body to give
        return (f"the app refused the request ({code}, for the reason in the verdict): give values it "
                "accepts with --param name=value, or seed the data it needs with --setup FILE")
    return (f"the app refused the request ({code}, for the reason in the verdict): give a body it accepts "
            f"with --body '{route or 'METHOD /path'}=@body.json' (a login needs a user that --setup created;"
            " a body that creates something unique is refused once it exists), or --exclude the route")


def first_error(run_dir: Path, row: dict) -> str:
    """'body.password: Field required' (a 422's first validation error) or a 4xx's own reason ('Not
    authenticated', 'incorrect email or password'), from the first such answer the load kept
    (scenarios/path.py); '' when none was kept. The reason is read from FastAPI's `detail` or from
    the `errors` / `message` an app's own error handler writes instead (the RealWorld apps'
    `{"errors": [...]}`)."""
    raw = str(row.get("raw_dir") or "")
    kept = sorted((run_dir / raw).glob("first_error.json.*")) if raw else []
    for path in kept:
        try:
            body = json.loads(json.loads(path.read_text())["body"])
        except (ValueError, KeyError, TypeError, OSError):
            continue
        if reason := _reason(body):
            return reason
    return ""


def _reason(body: object) -> str:
    """The first reason in an error body: a validation error's 'loc: msg', or a message string."""
    if not isinstance(body, dict):
        return body[:120] if isinstance(body, str) else ""
    said = next((body[k] for k in ("detail", "errors", "message", "error") if body.get(k)), None)
    first = said[0] if isinstance(said, list) and said else said
    if isinstance(first, dict) and "msg" in first:
        loc = ".".join(str(p) for p in first.get("loc") or [])
        return f"{loc}: {first['msg']}".strip(": ")
    if isinstance(first, dict) and first:  # {"body": ["can't be empty"]}: the field and its first reason
        field, why = next(iter(first.items()))
        why = why[0] if isinstance(why, list) and why else why
        return f"{field}: {why}"[:120]
    return first[:120] if isinstance(first, str) else ""


def with_app_error(text: str, row: dict) -> str:
    """The advice, plus what the app raised when some requests failed 5xx behind another failure
    (a check-then-insert race: 400 "already exists" for most, 500 UniqueViolationError for a few)."""
    raised = row_text(row, "app_error")
    return f"{text}; some requests answered 5xx: the app raised {raised}" if raised and raised not in text \
        else text
