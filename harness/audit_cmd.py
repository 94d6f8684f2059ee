"""`bench.py audit APP`: every operation of your own FastAPI app (of the --methods selected), found
in its OpenAPI schema with its body, run as a `--path` scenario (per-worker probe, the workers list,
the normal validity rules, short windows); then a verdict and one line of advice per route in
audit.csv, report.html and the terminal. Each request's method, body and headers go to the cells in
the run folder's requests.json.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from harness.data import store
from harness.data.app_env import read_env_file
from harness.data.matrix import SCREEN, ConfigError, make_config, plan_cells
from harness.run import app_python, audit_flags, routes, saturation

AUDIT_WARMUP_S = 1.0     # short windows: the audit is a first look, `run` measures for longer
AUDIT_DURATION_S = 5.0  # the probe sends 25 req/s per worker: 125 in a window, enough for a /health p99
AUDIT_WORKERS = [1, 2]
REQUESTS_JSON = "requests.json"
METHODS_HELP = ("the HTTP methods to measure, comma list (default: GET,POST). PUT, PATCH and DELETE are "
                "off by default: a load test that updates or deletes changes the data the next request "
                "needs (the second DELETE of an id is a 404)")


def plan_audit(args: Any, overrides: dict[str, Any]) -> tuple[Any, list[routes.Route], list[routes.Skipped]]:
    """The run's Config and what the schema gave; ConfigError (one line) before anything is launched."""
    try:
        given = routes.parse_params(args.param or [])
        methods = audit_flags.parse_methods(args.methods or "GET,POST")
        headers = audit_flags.parse_headers(args.header or [])
        overrides_body = audit_flags.parse_bodies(args.body or [])
        include, exclude = args.include or [], args.exclude or []
        for glob in [*include, *exclude]:
            if not glob.startswith("/") and not glob.startswith("*"):
                raise routes.RouteError(f"glob {glob!r} must match a path: start it with '/' or '*'")
    except routes.RouteError as exc:
        raise ConfigError(str(exc)) from None
    # checked (app importable, --app-dir, --setup) before the app's code runs to read its schema
    cfg = audit_config(args, overrides, args.app_dir, ["/"])
    app_python.check_config(cfg)
    try:
        schema = routes.read_schema(args.app, cfg.app_dir, python=cfg.python, cwd=cfg.cwd,
                                    env=read_env_file(cfg.env_file) if cfg.env_file else None)
        found, skipped = routes.discover(schema, given, include, exclude, methods, list(headers),
                                         overrides_body)
    except routes.RouteError as exc:
        raise ConfigError(str(exc)) from None
    if not found:
        why = "; ".join(f"{s.template}: {s.reason}" for s in skipped) or "the schema has no operation"
        raise ConfigError(f"nothing to audit in {args.app} ({why})")
    return audit_config(args, overrides, cfg.app_dir, [r.key for r in found]), found, skipped


def audit_config(args: Any, overrides: dict[str, Any], app_dir: str | None, paths: list[str],
                 **more: Any) -> Any:
    """The audit's Config: the knobs given (with the audit's short defaults), the app's own
    interpreter, variables file and working directory, and its routes."""
    own = {k: getattr(args, k, None) for k in ("python", "env_file", "cwd")}
    return make_config("default", **{**audit_knobs(overrides), **own, "app": args.app, "app_dir": app_dir,
                                     "paths": paths, **more})


def audit_knobs(overrides: dict[str, Any]) -> dict[str, Any]:
    """The knobs given, with the audit's own short defaults."""
    knobs = {k: v for k, v in overrides.items() if v is not None}
    knobs.setdefault("duration", AUDIT_DURATION_S)
    knobs.setdefault("warmup", AUDIT_WARMUP_S)
    knobs.setdefault("workers", AUDIT_WORKERS)
    return knobs


def requests_json(found: list[routes.Route], headers: dict[str, str]) -> dict:
    """What the cells read (harness/run/request_env.py): each route's request, and the headers."""
    return {"headers": headers, "routes": {r.key: {
        "method": r.method, "url": r.url, "body": r.body.text if r.body else None,
        "content_type": r.body.content_type if r.body else None} for r in found}}


def auth_warnings(found: list[routes.Route], headers: dict[str, str], setup: str | None) -> list[str]:
    """A route whose schema declares a security scheme, when no credentials are given at all."""
    if headers or setup:
        return []
    return [f"warning: {r.label} declares a security scheme and no credentials are given: expect 401; "
            "give --header 'Authorization: Bearer TOKEN', or return headers from --setup" for r in found
            if r.secured]


def run_audit(args: Any, overrides: dict[str, Any]) -> int:
    from harness import baseline_cmd, gate_cmd
    from harness.answer import audit
    from harness.present import report
    from harness.run.sweep import estimate_s, fmt_s, run_sweep

    gate_cmd.fail_on(args)  # bad input refused before the app's code runs
    gate_cmd.check_paths(args)
    screened = screen_on(args)
    cfg, found, skipped = plan_audit(args, overrides)
    baseline_cmd.check(args, [r.key for r in found])
    headers = audit_flags.parse_headers(args.header or [])
    # absolute: the cells' children run in other folders, and a relative --out must name the same place
    run_dir = (args.out or store.results_dir() / store.new_run_id("audit")).resolve()
    store.prepare_run_dir(run_dir, resume=False)
    requests_file = Path(run_dir).resolve() / REQUESTS_JSON  # the cells read each route's request here
    requests_file.write_text(json.dumps(requests_json(found, headers), indent=1))
    cfg = audit_config(args, overrides, cfg.app_dir, cfg.paths, requests=str(requests_file))
    audit.write_found(run_dir, [{"template": r.label, "url": r.url, "scenario": r.key,
                                 "body": r.body is not None} for r in found],
                      [{"template": s.template, "reason": s.reason} for s in skipped], cfg.setup)
    if screened:
        screen_cfg = audit_config(args, overrides, cfg.app_dir, cfg.paths, requests=str(requests_file),
                                  screen=True)
        print(f"audit of {args.app}: {len(found)} route(s) to measure, all at once in one screen window, "
              f"then alone each one it flags; {len(skipped)} skipped; about "
              f"{fmt_s(estimate_s(plan_cells([screen_cfg])))}, plus about "
              f"{fmt_s(estimate_s(plan_cells([cfg])) / len(found))} per flagged route", flush=True)
    else:
        print(f"audit of {args.app}: {len(found)} route(s) to measure, {len(skipped)} skipped; about "
              f"{fmt_s(estimate_s(plan_cells([cfg])))} in all", flush=True)
    for s in skipped:
        print(f"  skipped {s.template}: {s.reason}", flush=True)
    for line in auth_warnings(found, headers, cfg.setup):
        print("  " + line, flush=True)
    started = time.monotonic()
    if screened:
        code = screen_then_alone(args, overrides, screen_cfg, run_dir, found)
    else:
        code = run_sweep(cfg, run_dir, preset="audit", measure_upstream=False)  # no route calls it
        code = max(code, saturation.rerun_saturated([cfg], run_dir))
    rows = audit.write_csv(run_dir)
    report.finish(run_dir, plot_charts=False)  # an audit folder: no pattern answer (its meta says audit)
    print(audit.format_table(rows))
    print(f"audit: {run_dir / audit.AUDIT_CSV} and {run_dir / 'report.html'}; wall time "
          f"{fmt_s(time.monotonic() - started)}", flush=True)
    code = gate_cmd.finish(args, rows, code, cfg.app_dir)
    regressed = baseline_cmd.finish(args, run_dir)
    return max(code, regressed) if args.check else code


def screen_on(args: Any) -> bool:
    """--screen / --no-screen; unset: on under --check, off otherwise and with --baseline (it compares
    each route's own cells). --screen with --baseline is bad input."""
    chosen = getattr(args, "screen", None)
    baseline = getattr(args, "baseline", None) is not None
    if chosen and baseline:
        raise ConfigError("--screen with --baseline: the baseline compares each route's own cells; "
                          "leave --screen out (or give --no-screen)")
    if chosen is None:
        return bool(getattr(args, "check", False)) and not baseline
    return bool(chosen)


def screen_then_alone(args: Any, overrides: dict[str, Any], screen_cfg: Any, run_dir: Path,
                      found: list[routes.Route]) -> int:
    """The screen cell(s), judged route by route (harness/judge/screen.py, into screen.csv), then the
    flagged routes alone, each in its own cells; the exit code as run_sweep's."""
    from harness.answer.reruns import drop_superseded
    from harness.data.schema import read_results
    from harness.judge import screen
    from harness.run.sweep import run_more, run_sweep, say

    code = run_sweep(screen_cfg, run_dir, preset="audit", measure_upstream=False)
    code = max(code, saturation.rerun_saturated([screen_cfg], run_dir))
    results = run_dir / "results.csv"
    rows = drop_superseded(read_results(results).to_dict("records")) if results.is_file() else []
    windows = [w for w in rows if w.get("scenario") == SCREEN]
    pairs = [(r.key, r.url) for r in found]
    judged = [(str(w["raw_dir"]), screen.judge_cell(run_dir, w, pairs)) for w in windows]
    if not judged:  # no screen row at all: nothing clears a route
        judged = [("", [screen.Screened(k, u, reasons=["the screen cell left no row"]) for k, u in pairs])]
    screen.write(run_dir, judged)
    flagged = screen.flagged_routes(judged)
    labels = {r.key: r.label for r in found}
    say(f"screen: {len(found) - len(flagged)} of {len(found)} route(s) cleared in the shared window; "
        f"{len(flagged)} flagged, to be measured alone" + (":" if flagged else ""))
    for raw, screened in judged:
        where = f" in {Path(raw).name}" if len(judged) > 1 else ""  # one window per workers value, repeat
        for s in screened:
            if s.flagged:
                say(f"  flagged {labels.get(s.route, s.route)}{where}: {'; '.join(s.reasons)}")
    if not flagged:
        return code
    alone = audit_config(args, overrides, screen_cfg.app_dir, flagged, requests=screen_cfg.requests)
    code = max(code, run_more([alone], run_dir, plan_cells([alone])))
    return max(code, saturation.rerun_saturated([alone], run_dir))


def add_parser(sub: Any, add_knob: Any) -> None:
    """The `audit` subcommand's flags (the knobs it shares with `run` come from the knob table)."""
    au = sub.add_parser("audit", help="every route of your FastAPI app (from its OpenAPI schema, with "
                        "bodies built from it): a verdict and one line of advice each")
    au.add_argument("app", help="your app, 'pkg.module:app'")
    au.add_argument("--app-dir", dest="app_dir", help="where APP's module is imported from (default: .)")
    for name in ("python", "env_file", "cwd", "workers", "users", "duration", "warmup", "setup",
                 "thread_tokens", "repeat"):
        add_knob(au, name)
    au.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="a value for a path or query parameter (repeatable), e.g. --param hero_id=1")
    au.add_argument("--methods", metavar="LIST", help=METHODS_HELP)
    au.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                    help="a header sent with every request of the load and given to --setup (repeatable), "
                    "e.g. --header 'Authorization: Bearer TOKEN'; it also fills the schema's header "
                    "parameters")
    au.add_argument("--body", action="append", metavar="'METHOD /path=JSON'",
                    help="the body of one operation, inline JSON or @FILE (repeatable), e.g. "
                    "--body 'POST /login=@login.json' (default: built from the schema's examples and types); "
                    "each {{unique}} in it is a fresh value per request, for a route that creates "
                    "something unique")
    au.add_argument("--include", action="append", metavar="GLOB",
                    help="audit only routes whose schema path matches (repeatable), e.g. '/heroes/*'")
    au.add_argument("--exclude", action="append", metavar="GLOB",
                    help="skip routes whose schema path matches (repeatable)")
    shown = {"workers": "1,2", "duration": f"{AUDIT_DURATION_S:g}", "warmup": f"{AUDIT_WARMUP_S:g}"}
    for action in au._actions:  # the audit's own short defaults, not run's
        if action.dest in shown and action.help:
            action.help = re.sub(r"\(default: [^)]*\)", f"(default: {shown[action.dest]})", action.help)
    au.add_argument("--screen", action=argparse.BooleanOptionalAction, default=None,
                    help="first one app start and one window in which every route is requested at once; "
                    "routes with no request completed, a failure, a stall sample of their own or a queue "
                    "are then measured alone, the others read 'fine at this load' from the shared window "
                    "(audit.csv's source: screen or alone). Default: on under --check, off otherwise "
                    "and with --baseline (docs/audit.md)")
    au.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    from harness import baseline_cmd, gate_cmd

    gate_cmd.add_flags(au)
    baseline_cmd.add_flags(au)


def audit_overrides(args: Any) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in ("workers", "users", "duration", "warmup", "setup",
                                                          "thread_tokens", "repeat")}
