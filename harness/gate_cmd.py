"""`bench.py audit APP --check`: the flags that turn an audit into a CI gate (`--check`, `--fail-on`,
`--junit`, `--annotations`, `--summary`) and what they write once audit.csv exists. Kept apart from
audit_cmd so the audit's own flags and the gate's grow separately.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from harness.answer import gate, verdict_kinds
from harness.data.matrix import ConfigError

EPILOG = ("exit codes: 0 measured (under --check: no route's verdict kind is in --fail-on); 1 some cell "
          "failed (under --check: some route's verdict kind is in --fail-on); 2 bad input, nothing "
          "launched; 74 the run folder could not be written; 129/130/143 hang-up, Ctrl-C, SIGTERM. "
          f"Verdict kinds: {', '.join(verdict_kinds.BY_NAME)}.")


def add_flags(au: Any) -> None:
    au.epilog = EPILOG
    au.formatter_class = argparse.RawDescriptionHelpFormatter
    au.add_argument("--check", action="store_true",
                    help="a CI gate: exit 1 when a measured route's verdict kind is in --fail-on, else 0")
    au.add_argument("--fail-on", dest="fail_on", metavar="LIST",
                    help="verdict kinds that fail --check, comma-separated, from "
                         f"{', '.join(verdict_kinds.BY_NAME)} "
                         f"(default: {','.join(verdict_kinds.DEFAULT_FAIL_ON)})")
    au.add_argument("--junit", type=Path, metavar="FILE",
                    help="write a JUnit XML report: one test case per route and workers value")
    au.add_argument("--annotations", choices=["github", "none"],
                    help="print GitHub Actions ::error lines at the stall site (default: github when "
                         "GITHUB_ACTIONS=true)")
    au.add_argument("--summary", type=Path, metavar="FILE",
                    help="append the audit table in Markdown to FILE (and to $GITHUB_STEP_SUMMARY when set)")


def fail_on(args: Any) -> tuple[str, ...]:
    """The --fail-on kinds; ConfigError (exit 2, one line with the list) for an unknown one. Checked
    before anything is launched."""
    if getattr(args, "fail_on", None) is None:
        return verdict_kinds.DEFAULT_FAIL_ON
    try:
        return verdict_kinds.parse_names(args.fail_on)
    except verdict_kinds.UnknownKind as exc:
        raise ConfigError(str(exc)) from None


def check_paths(args: Any) -> None:
    for flag in ("junit", "summary"):
        path = getattr(args, flag, None)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"--{flag} {path}: its folder does not exist")


def _annotations_on(args: Any) -> bool:
    chosen = getattr(args, "annotations", None)
    return chosen == "github" or (chosen is None and os.environ.get("GITHUB_ACTIONS") == "true")


def finish(args: Any, rows: list[dict], sweep_code: int, app_dir: str | Path) -> int:
    """Write what the flags ask for, print the gate's last lines; the exit code (--check: the gate's)."""
    from harness.present import ci_output, junit

    kinds = fail_on(args)
    rows = gate.per_cell(rows, kinds)  # --repeat N: one case per cell, not per repeat
    if args.junit:
        print(f"junit: {junit.write(args.junit, rows, kinds, suite=args.app)}")
    for path in ci_output.write_summary(rows, kinds, args.app, args.summary):
        print(f"summary: {path}")
    if _annotations_on(args):
        for line in ci_output.github_annotations(rows, kinds, Path(app_dir)):
            print(line)
    if not args.check:
        return sweep_code
    for line in gate.lines(rows, kinds):
        print(line)
    return gate.exit_code(rows, kinds)
