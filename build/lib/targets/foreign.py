"""Your own app under the harness: `bench.py run --app pkg.module:app [--app-dir DIR]`.

uvicorn imports `targets.foreign:app`; this module imports the app named by BENCH_APP (from
BENCH_APP_DIR, put first on sys.path) and wraps it with the harness's probe (targets/instrument.py).
The app itself is not edited: every worker gets loop lag, request counts and a ready record.
"""

from __future__ import annotations

import importlib
import os
import sys

from targets.instrument import instrument


def load_app(spec: str, app_dir: str | None = None):
    """The object named by 'pkg.module:attr' (attr may be dotted), importing from `app_dir` first."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"BENCH_APP={spec!r}: expected 'pkg.module:app'")
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


app = instrument(load_app(os.environ.get("BENCH_APP", ""), os.environ.get("BENCH_APP_DIR") or None))
