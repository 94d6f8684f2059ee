"""A request body for one operation of an OpenAPI schema: what `bench.py audit` sends to a POST.

In this order: the request body's own `example` / `examples`, else a value built from the body's
JSON Schema in which every field with an example or a default takes it and every other required
field takes the smallest valid value of its type and format (email, date-time, uuid, enums, `$ref`s,
`anyOf` with null). Optional fields without an example are left out: the app's defaults apply.

The values come from schemathesis (a maintained OpenAPI → request generator, on hypothesis); this module
only rewrites the schema so that examples and defaults win, and takes the first draw of a fixed seed
(hypothesis starts from the simplest value: the same body on every run). JSON bodies and form bodies
(application/x-www-form-urlencoded, OAuth2's password form) are built the same way; multipart
(file uploads) is not: BodyError names why.

Why schemathesis and not hypothesis-jsonschema: hypothesis-jsonschema 0.23.1 (its last release, 2024)
fails on the hypothesis this project installs (6.170: "'many' object has no attribute 'more'" on
any object schema); schemathesis keeps its own generator up to date with hypothesis, and reads the
OpenAPI document itself ($refs across components, form media types). Loading it and drawing the
bodies of tests/login_app took 1.6 s here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class BodyError(ValueError):
    """No body could be built for the operation: one line saying why."""


@dataclass(frozen=True)
class Body:
    content_type: str
    text: str        # as sent: JSON text, or the urlencoded form


def content_of(operation: Mapping) -> tuple[str, Mapping] | None:
    """(media type, media object) of the operation's body, JSON first; None when it takes none."""
    content = ((operation.get("requestBody") or {}).get("content")) or {}
    for media in (JSON, FORM):
        if media in content:
            return media, content[media] or {}
    for media, obj in content.items():
        if media.endswith("+json"):
            return JSON, obj or {}
    if content:
        raise BodyError(f"could not build a body: {', '.join(content)} is not JSON or a form")
    return None


def _media_example(media: Mapping) -> tuple[bool, Any]:
    if "example" in media:
        return True, media["example"]
    examples = media.get("examples")
    if isinstance(examples, Mapping):
        for ex in examples.values():
            if isinstance(ex, Mapping) and "value" in ex:
                return True, ex["value"]
    return False, None


def schema_example(node: Mapping) -> tuple[bool, object]:
    """(found, value) from a JSON Schema node's example, first of its examples, or default, in that order."""
    for key in ("example", "examples", "default"):
        if key in node:
            value = node[key]
            if key == "examples":
                if not isinstance(value, list) or not value:
                    continue
                value = value[0]
            return True, value
    return False, None


def _prefer_examples(node: Any) -> Any:
    """The schema with examples and defaults as constants, and optional fields without one dropped."""
    if isinstance(node, list):
        return [_prefer_examples(n) for n in node]
    if not isinstance(node, dict):
        return node
    found, value = schema_example(node)
    if found:
        return {"const": value}
    node = _minimal_strings(node)
    out = {k: _prefer_examples(v) for k, v in node.items() if k not in ("properties", "required")}
    props = node.get("properties")
    if isinstance(props, dict):
        required = [r for r in node.get("required") or [] if r in props]
        keep = {k: v for k, v in props.items() if k in required or _has_value(v)}
        out["properties"] = {k: _prefer_examples(v) for k, v in keep.items()}
        if required:
            out["required"] = required
        out["additionalProperties"] = False  # the smallest object: no invented keys
    return out


def _has_value(node: Any) -> bool:
    return isinstance(node, dict) and any(k in node for k in ("example", "examples", "default"))


def _minimal_strings(node: dict) -> dict:
    """A string field gets at least one character: FastAPI reads an empty form field as missing,
    and an empty name is the value an app's own checks refuse first."""
    free = node.get("format") in (None, "password")  # a format (email, uuid) has its own smallest value
    if node.get("type") == "string" and free and not any(k in node for k in ("minLength", "pattern", "enum")):
        return {**node, "minLength": 1}
    return node


def rewritten(schema: Mapping) -> dict:
    """The OpenAPI document with every request body schema and component rewritten by _prefer_examples."""
    doc = json.loads(json.dumps(schema))  # a deep copy of plain JSON
    comps = (doc.get("components") or {}).get("schemas") or {}
    for name, comp in comps.items():
        comps[name] = _prefer_examples(comp)
    for item in (doc.get("paths") or {}).values():
        for op in (item or {}).values():
            content = ((op.get("requestBody") or {}).get("content") or {}) if isinstance(op, dict) else {}
            for media in content.values():
                if isinstance(media, dict) and "schema" in media:
                    media["schema"] = _prefer_examples(media["schema"])
    return doc


def load(schema: Mapping) -> Any:
    """The schema as schemathesis reads it (once per audit)."""
    import schemathesis

    return schemathesis.openapi.from_dict(rewritten(schema))


def draw_body(loaded: Any, template: str, method: str) -> Any:
    """One operation's body drawn by schemathesis from load()'s schema with a fixed seed: its first
    draw (hypothesis starts from the simplest value), without shrinking, which takes seconds."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    got: list[Any] = []
    try:
        strategy = loaded[template][method.upper()].as_strategy()

        @seed(0)
        @settings(database=None, max_examples=1, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def draw(case: Any) -> None:
            got.append(case.body)

        draw()
    except Exception as exc:  # schemathesis's or hypothesis's own refusal (unsupported schema, no value)
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise BodyError(f"could not build a body: {first[:120]}") from None
    if not got:
        raise BodyError("could not build a body: no value satisfies its schema")
    return got[0]


def _encode(media: str, value: Any) -> Body:
    if media == FORM:
        if not isinstance(value, Mapping):
            raise BodyError("could not build a body: a form body must be an object")
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return Body(FORM, urlencode(fields))
    return Body(JSON, json.dumps(value))


def build(operation: Mapping, loaded: Any, template: str, method: str) -> Body | None:
    """The operation's body (None when it takes none); BodyError when none can be built.
    `loaded` is load(schema)."""
    found = content_of(operation)
    if found is None:
        return None
    media, obj = found
    has, value = _media_example(obj)
    if not has:
        value = draw_body(loaded, template, method)
    return _encode(media, value)


def from_override(text: str, content_type: str = JSON) -> Body:
    """A --body value (inline JSON): BodyError when it does not parse."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return _encode(content_type, value)
