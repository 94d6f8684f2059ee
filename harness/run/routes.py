"""The operations of your own app, from its OpenAPI schema: what `bench.py audit` measures.

The schema is read in a child process (your app's import runs its module code; a crash or a hang
there must not take the harness with it). Each GET route becomes a concrete URL when every
required parameter has a value: from `--param name=value`, else the parameter's example(s) or
default in the schema. Optional query parameters are left to the app's defaults unless
`--param` names them. A required header parameter takes its value from `--header`. A body comes
from `--body`, else from the schema (bodies.py). Only the `--methods` selected are measured; every
other operation, and one that cannot be filled, is skipped with the reason: none is left out unsaid.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from harness.run import bodies
from harness.system import procs

SCHEMA_TIMEOUT_S = 60.0

# Run in the child, under the app's own interpreter (Python >= 3.9, the standard library only): import
# the app as targets/foreign.py does (app_dir first on sys.path) and write its schema to a file (the
# app's import may print to stdout). A failure prints one line, BENCH-ERROR: the exception's own line
# and the innermost frame of the app's code, never a traceback.
_DUMP = """
import importlib, json, os, sys, traceback
spec, app_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, app_dir)
def where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename).startswith(os.path.abspath(app_dir) + os.sep)
              and "site-packages" not in f.filename]
    return " at %s:%d" % (os.path.relpath(frames[-1].filename, app_dir), frames[-1].lineno) if frames else ""
try:
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(getattr(obj, "openapi", None)):
        print("BENCH-ERROR: %s has no OpenAPI schema (not a FastAPI app): give its paths to %s run "
              "--path" % (spec, os.environ.get("BENCH_PROG") or "bench.py"), file=sys.stderr)
        sys.exit(3)
    schema = obj.openapi()
except Exception as exc:
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else kind.__module__ + "." + kind.__qualname__
    lines = [l.strip() for l in str(exc).splitlines()
             if l.strip() and not l.strip().startswith("For further information visit")]
    text = "; ".join(lines)
    text = text if len(text) <= 300 else text[:297] + "..."
    print("BENCH-ERROR: %s%s%s" % (name, ": " + text if text else "", where(exc)), file=sys.stderr)
    sys.exit(3)
with open(out, "w") as fh:
    json.dump(schema, fh)
"""


class RouteError(ValueError):
    """The schema could not be read, or a --param / glob is malformed: one line for the user."""


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
OTHER_METHODS = ("HEAD", "OPTIONS", "TRACE")  # in a schema, listed as skipped: never measured


@dataclass(frozen=True)
class Route:
    template: str   # as in the schema: /heroes/{hero_id}
    url: str        # what the users request: /heroes/1
    name: str       # the operation's function name, when the schema gives it
    method: str = "GET"
    body: bodies.Body | None = None
    secured: bool = False  # the schema declares a security scheme for it

    @property
    def key(self) -> str:
        """The cell's scenario name: the URL of a GET, 'POST /login' otherwise."""
        return self.url if self.method == "GET" else f"{self.method} {self.url}"

    @property
    def label(self) -> str:
        return op_key(self.method, self.template)


def op_key(method: str, template: str) -> str:
    """How an operation is named in rows, skips and --body: '/items' for a GET, 'POST /items' otherwise."""
    return template if method.upper() == "GET" else f"{method.upper()} {template}"


@dataclass(frozen=True)
class Skipped:
    template: str
    reason: str


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """`--param name=value`, repeated; RouteError on anything else."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise RouteError(f"--param {item!r}: expected name=value (e.g. --param hero_id=1)")
        if name in out:
            raise RouteError(f"--param {name} given twice")
        out[name] = value
    return out


def read_schema(app: str, app_dir: str, python: str | None = None, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> dict:
    """`app.openapi()` of 'pkg.module:app' imported from app_dir, read in a child process: under the
    app's own interpreter (`python`), with its .env variables (`env`) and working directory."""
    with tempfile.TemporaryDirectory() as tmp:
        log, out = Path(tmp) / "schema.log", Path(tmp) / "schema.json"
        drop = ("PYTHONPATH", "PYTHONHOME") if python else ()  # the harness's own paths are not the app's
        child_env = {k: v for k, v in os.environ.items() if k not in drop}
        child_env.update(env or {})
        proc = procs.spawn([python or sys.executable, "-c", _DUMP, app, app_dir, str(out)], log_path=log,
                           env=child_env, cwd=Path(cwd) if cwd else None)
        try:
            proc.wait(timeout=SCHEMA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RouteError(f"{app}: reading its OpenAPI schema took over {SCHEMA_TIMEOUT_S:.0f} s") \
                from None
        finally:
            procs.stop_tree(proc, grace=1.0)
        lines = log.read_text(errors="replace").strip().splitlines()
        text = out.read_text() if proc.returncode == 0 and out.is_file() else ""
    if proc.returncode != 0:
        why = _why(lines, proc.returncode)
        raise RouteError(f"{app}: importing it or reading its OpenAPI schema failed: {why}")
    try:
        schema = json.loads(text)
    except ValueError:
        raise RouteError(f"{app}: its OpenAPI schema is not JSON") from None
    if not isinstance(schema, dict):
        raise RouteError(f"{app}: its OpenAPI schema is not an object")
    return schema


def _why(lines: list[str], code: int) -> str:
    """The dump's own one-line error, else the last exception-looking line, else the exit code."""
    for line in reversed(lines):
        if line.startswith("BENCH-ERROR: "):
            return line.removeprefix("BENCH-ERROR: ")
    errors = [t.strip() for t in lines if re.match(r"^[\w.]+(Error|Exception)\b", t.strip())]
    return errors[-1] if errors else (lines[-1].strip() if lines else f"exit {code}")


def schema_value(param: Mapping) -> tuple[bool, object]:
    """(found, value) from a parameter's example(s) or default, the parameter's own before its schema's."""
    schema = param.get("schema") or {}
    if "example" in param:
        return True, param["example"]
    examples = param.get("examples")
    if isinstance(examples, dict) and examples:  # OpenAPI 3: {name: {"value": ...}}
        first = next(iter(examples.values()))
        if isinstance(first, dict) and "value" in first:
            return True, first["value"]
    return bodies.schema_example(schema)


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def fill(template: str, operation: Mapping, given: Mapping[str, str], method: str = "GET",
         headers: Sequence[str] = (), body: bodies.Body | None = None) -> Route | Skipped:
    """The concrete request of one operation, or why it cannot be requested. `headers`: the header
    names --header gives (any case); `body`: the body to send, when the operation takes one."""
    path, query, label = template, {}, op_key(method, template)
    sent = {h.lower() for h in headers}
    for param in operation.get("parameters") or []:
        name, where, required = param.get("name", ""), param.get("in"), bool(param.get("required"))
        if name in given:
            value: object = given[name]
        else:
            found, value = schema_value(param)
            if where == "query" and not required:
                continue  # the app's own default applies
            if not found:
                if not required:
                    continue
                if where == "header":
                    if required and name.lower() not in sent:
                        return Skipped(label, f"no value for header parameter {name!r}: give --header "
                                              f"'{name}: VALUE'")
                    continue
                return Skipped(label, f"no value for {where} parameter {name!r} (no example or "
                                      f"default): give --param {name}=VALUE")
        if where == "path":
            path = path.replace("{" + name + "}", quote(_text(value), safe=""))
        elif where == "query":
            query[name] = _text(value)
        elif required and not (where == "header" and name.lower() in sent):
            return Skipped(label, f"no value for {where} parameter {name!r}: the audit sends none")
    url = path + ("?" + urlencode(query) if query else "")
    return Route(template, url, str(operation.get("operationId") or ""), method.upper(), body)


def operations(schema: Mapping) -> list[tuple[str, str, dict]]:
    """(METHOD, template, operation with the path's shared parameters) of every operation."""
    out = []
    for template, item in (schema.get("paths") or {}).items():
        shared = [p for p in (item or {}).get("parameters") or [] if isinstance(p, dict)]
        for method in (*METHODS, *OTHER_METHODS):
            operation = (item or {}).get(method.lower())
            if isinstance(operation, dict):
                out.append((method, template,
                            {**operation, "parameters": shared + list(operation.get("parameters") or [])}))
    return out


def _body(schema: Mapping, operation: Mapping, method: str, template: str, override: str | None,
          loaded: Any) -> bodies.Body | None:
    if override is not None:
        found = bodies.content_of(operation)
        return bodies.from_override(override, found[0] if found else bodies.JSON)
    return bodies.build(operation, loaded, template, method)


def discover(schema: Mapping, given: Mapping[str, str], include: Sequence[str] = (),
             exclude: Sequence[str] = (), methods: Sequence[str] = ("GET", "POST"),
             headers: Sequence[str] = (), overrides: Mapping[str, str] | None = None,
             ) -> tuple[list[Route], list[Skipped]]:
    """Every operation of the schema: the ones to measure and the ones skipped (with reasons).
    --include / --exclude globs match the schema's path (/heroes/{hero_id}); `overrides`: --body
    texts by op_key. RouteError when an override names no operation of the schema."""
    overrides = dict(overrides or {})
    ops = operations(schema)
    unknown = sorted(set(overrides) - {op_key(m, t) for m, t, _ in ops})
    if unknown:
        raise RouteError(f"--body {unknown[0]!r}: no such operation in the schema (its operations: "
                         f"{', '.join(op_key(m, t) for m, t, _ in ops)[:300]})")
    loaded = _Loaded(schema)
    routes: list[Route] = []
    skipped: list[Skipped] = []
    default_secured = bool(schema.get("security"))
    for method, template, operation in ops:
        label = op_key(method, template)
        if include and not any(fnmatch.fnmatchcase(template, g) for g in include):
            continue
        if any(fnmatch.fnmatchcase(template, g) for g in exclude):
            skipped.append(Skipped(label, "matched --exclude"))
            continue
        if method in OTHER_METHODS:
            skipped.append(Skipped(label, f"method not selected (the audit measures {', '.join(METHODS)})"))
            continue
        if method not in methods:
            skipped.append(Skipped(label, f"method not selected (--methods {','.join(methods)})"))
            continue
        try:
            body = _body(schema, operation, method, template, overrides.get(label), loaded)
        except bodies.BodyError as exc:
            skipped.append(Skipped(label, str(exc)))
            continue
        found = fill(template, operation, given, method, headers, body)
        if isinstance(found, Route):
            secured = bool(operation["security"]) if "security" in operation else default_secured
            routes.append(Route(**{**found.__dict__, "secured": secured}))
        else:
            skipped.append(found)
    return routes, skipped


class _Loaded:
    """bodies.load(schema) on first use: an audit of GET routes alone never loads schemathesis."""

    def __init__(self, schema: Mapping) -> None:
        self.schema, self.loaded = schema, None  # type: Mapping, Any

    def __getitem__(self, template: str) -> Any:
        if self.loaded is None:
            self.loaded = bodies.load(self.schema)
        return self.loaded[template]
