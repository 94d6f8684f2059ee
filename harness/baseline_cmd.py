"""`bench.py audit APP --baseline DIR [--max-regression PCT]`: the flags that compare an audit with an
earlier audit folder, checked before anything is launched, and the lines printed once audit.csv
exists. Kept apart from audit_cmd and gate_cmd so each set of flags grows on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.answer import baseline
from harness.data.matrix import ConfigError


def add_flags(au: Any) -> None:
    au.add_argument("--baseline", type=Path, metavar="DIR",
                    help="an earlier audit folder: each route's throughput and p99 against it (exact "
                         "permutation test, as `compare`; give both audits --repeat 5); under --check a "
                         "significant regression larger than --max-regression exits 1")
    # argparse %-formats help texts: a literal percent sign is written %%
    au.add_argument("--max-regression", dest="max_regression", metavar="PCT",
                    help=f"the regression --baseline allows, in percent (default: "
                         f"{baseline.DEFAULT_MAX_REGRESSION * 100:.0f}%%)")


def max_regression(args: Any) -> float:
    """--max-regression as a share (10 or 10% → 0.10); ConfigError (one line) when it is no percent."""
    text = getattr(args, "max_regression", None)
    if text is None:
        return baseline.DEFAULT_MAX_REGRESSION
    if getattr(args, "baseline", None) is None:
        raise ConfigError("--max-regression needs --baseline DIR")
    try:
        value = float(str(text).strip().removesuffix("%"))
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise ConfigError(f"--max-regression {text!r}: expected a percent from 0 to 100, e.g. 10")
    return value / 100


def check(args: Any, scenarios: list[str]) -> None:
    """Bad input (exit 2) before the app starts: the folder is no audit, or shares no route."""
    max_regression(args)
    if getattr(args, "baseline", None) is None:
        return
    try:
        baseline.check_routes(args.baseline, scenarios)
    except baseline.BaselineError as exc:
        raise ConfigError(str(exc)) from None


def finish(args: Any, run_dir: Path) -> int:
    """Print each route against the baseline and write baseline.csv; 1 when a route regressed (the
    caller lets that fail the run only under --check), else 0."""
    if getattr(args, "baseline", None) is None:
        return 0
    share = max_regression(args)
    try:
        changes = baseline.route_changes(args.baseline, run_dir, share)
    except baseline.BaselineError as exc:
        raise ConfigError(str(exc)) from None
    for line in baseline.knob_warnings(args.baseline, run_dir):
        print(line)
    for line in baseline.lines(changes, share, args.baseline):
        print(line)
    print(f"baseline: {baseline.write_csv(changes, run_dir)}", flush=True)
    return 1 if any(rc.regressions for rc in changes) else 0
