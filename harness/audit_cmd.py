"""`bench.py audit APP`: every GET route of your own FastAPI app, found in its OpenAPI schema, run
as a `--path` scenario (per-worker probe, the workers list, the normal validity rules, short
windows); then a verdict and one line of advice per route in audit.csv, report.html and the terminal.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from harness.data import store
from harness.data.matrix import ConfigError, make_config, plan_cells
from harness.run import routes

AUDIT_WARMUP_S = 1.0     # short windows: the audit is a first look, `run` measures for longer
AUDIT_DURATION_S = 5.0  # the probe sends 25 req/s per worker: 125 in a window, enough for a /health p99
AUDIT_WORKERS = [1, 2]


def plan_audit(args: Any, overrides: dict[str, Any]) -> tuple[Any, list[routes.Route], list[routes.Skipped]]:
    """The run's Config and what the schema gave; ConfigError (one line) before anything is launched."""
    try:
        given = routes.parse_params(args.param or [])
        include, exclude = args.include or [], args.exclude or []
        for glob in [*include, *exclude]:
            if not glob.startswith("/") and not glob.startswith("*"):
                raise routes.RouteError(f"glob {glob!r} must match a path: start it with '/' or '*'")
    except routes.RouteError as exc:
        raise ConfigError(str(exc)) from None
    knobs = {k: v for k, v in overrides.items() if v is not None}
    knobs.setdefault("duration", AUDIT_DURATION_S)
    knobs.setdefault("warmup", AUDIT_WARMUP_S)
    knobs.setdefault("workers", AUDIT_WORKERS)
    # checked (app importable, --app-dir, --setup) before the app's code runs to read its schema
    cfg = make_config("default", **{**knobs, "app": args.app, "app_dir": args.app_dir, "paths": ["/"]})
    try:
        schema = routes.read_schema(args.app, cfg.app_dir)
        found, skipped = routes.discover(schema, given, include, exclude)
    except routes.RouteError as exc:
        raise ConfigError(str(exc)) from None
    if not found:
        why = "; ".join(f"{s.template}: {s.reason}" for s in skipped) or "the schema has no GET route"
        raise ConfigError(f"nothing to audit in {args.app} ({why})")
    cfg = make_config("default", **{**knobs, "app": args.app, "app_dir": cfg.app_dir,
                                  "paths": [r.url for r in found]})
    return cfg, found, skipped


def run_audit(args: Any, overrides: dict[str, Any]) -> int:
    from harness import gate_cmd
    from harness.answer import audit
    from harness.present import report
    from harness.run.sweep import estimate_s, fmt_s, run_sweep

    gate_cmd.fail_on(args)  # bad input refused before the app's code runs
    gate_cmd.check_paths(args)
    cfg, found, skipped = plan_audit(args, overrides)
    # absolute: the cells' children run in other folders, and a relative --out must name the same place
    run_dir = (args.out or store.ROOT / "results" / store.new_run_id("audit")).resolve()
    store.prepare_run_dir(run_dir, resume=False)
    audit.write_found(run_dir, [{"template": r.template, "url": r.url} for r in found],
                      [{"template": s.template, "reason": s.reason} for s in skipped], cfg.setup)
    print(f"audit of {args.app}: {len(found)} route(s) to measure, {len(skipped)} skipped; about "
          f"{fmt_s(estimate_s(plan_cells([cfg])))} in all", flush=True)
    for s in skipped:
        print(f"  skipped {s.template}: {s.reason}", flush=True)
    started = time.monotonic()
    code = run_sweep(cfg, run_dir, preset="audit", measure_upstream=False)  # no route calls it
    rows = audit.write_csv(run_dir)
    report.finish(run_dir, plot_charts=False, patterns=False)  # an audit compares no patterns
    print(audit.format_table(rows))
    print(f"audit: {run_dir / audit.AUDIT_CSV} and {run_dir / 'report.html'}; wall time "
          f"{fmt_s(time.monotonic() - started)}", flush=True)
    return gate_cmd.finish(args, rows, code, cfg.app_dir)


def add_parser(sub: Any, add_knob: Any) -> None:
    """The `audit` subcommand's flags (the knobs it shares with `run` come from the knob table)."""
    au = sub.add_parser("audit", help="every GET route of your FastAPI app (from its OpenAPI schema): "
                        "a verdict and one line of advice each")
    au.add_argument("app", help="your app, 'pkg.module:app'")
    au.add_argument("--app-dir", dest="app_dir", help="where APP's module is imported from (default: .)")
    for name in ("workers", "users", "duration", "warmup", "setup", "thread_tokens"):
        add_knob(au, name)
    au.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="a value for a path or query parameter (repeatable), e.g. --param hero_id=1")
    au.add_argument("--include", action="append", metavar="GLOB",
                    help="audit only routes whose schema path matches (repeatable), e.g. '/heroes/*'")
    au.add_argument("--exclude", action="append", metavar="GLOB",
                    help="skip routes whose schema path matches (repeatable)")
    shown = {"workers": "1,2", "duration": f"{AUDIT_DURATION_S:g}", "warmup": f"{AUDIT_WARMUP_S:g}"}
    for action in au._actions:  # the audit's own short defaults, not run's
        if action.dest in shown and action.help:
            action.help = re.sub(r"\(default: [^)]*\)", f"(default: {shown[action.dest]})", action.help)
    au.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    from harness import gate_cmd

    gate_cmd.add_flags(au)


def audit_overrides(args: Any) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in ("workers", "users", "duration", "warmup", "setup",
                                                          "thread_tokens")}
