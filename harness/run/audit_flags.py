"""The audit's request flags, checked before anything is launched: `--methods`, `--header` and
`--body`; each bad value is a RouteError of one line."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from harness.run.routes import METHODS, RouteError, op_key

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)


def parse_methods(text: str) -> tuple[str, ...]:
    """'GET,POST' → ('GET', 'POST')."""
    out = tuple(dict.fromkeys(m.strip().upper() for m in text.split(",") if m.strip()))
    bad = [m for m in out if m not in METHODS]
    if not out or bad:
        raise RouteError(f"--methods {text!r}: expected a comma list of {', '.join(METHODS)}")
    return out


def parse_headers(items: Sequence[str]) -> dict[str, str]:
    """`--header 'Name: value'`, repeated."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN.match(name) or not value or "\n" in value or "\r" in value:
            raise RouteError(f"--header {item!r}: expected 'Name: value' "
                             "(e.g. --header 'Authorization: Bearer TOKEN')")
        if name.lower() in {k.lower() for k in out}:
            raise RouteError(f"--header {name} given twice")
        out[name] = value
    return out


def parse_bodies(items: Sequence[str], base: Path | None = None) -> dict[str, str]:
    """`--body 'POST /login=@login.json'` or `--body 'POST /items={"name": "x"}'`: JSON text by operation."""
    out: dict[str, str] = {}
    for item in items:
        op, sep, value = item.partition("=")
        method, _, path = op.strip().partition(" ")
        if not sep or method.upper() not in METHODS or not path.strip().startswith("/"):
            raise RouteError(f"--body {item[:60]!r}: expected 'METHOD /path=JSON' or 'METHOD /path=@FILE'")
        key = op_key(method, path.strip())
        if value.startswith("@"):
            file = (base or Path.cwd()) / value[1:]
            if not file.is_file():
                raise RouteError(f"--body {key}: {value[1:]!r} is not a file")
            value = file.read_text()
        try:
            json.loads(value)
        except json.JSONDecodeError as exc:
            raise RouteError(f"--body {key}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") \
                from None
        if key in out:
            raise RouteError(f"--body {key} given twice")
        out[key] = value
    return out
