"""`--setup FILE`: seed your app's data before a cell's load starts (so /heroes/1 exists).

FILE is a plain Python file defining `setup(base_url: str)`. It may return a dict of headers (log
in once, return {"Authorization": "Bearer ..."}): the cell's load sends them with every request.
If it takes a `headers` parameter it is given the --header values. It runs once per cell, after the
target answers and before the load generator starts, in a child process of its own (a hang or a
crash in it must not take the harness down; a timeout bounds it). It talks to the app over HTTP
(e.g. `httpx.post(base_url + "/heroes/", json=...)`), so it seeds the same store the workers read,
whatever that store is. Each cell starts a fresh target, but a store on disk (SQLite) keeps what
earlier cells seeded: write the function so that running it again is harmless.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.data.setup_file import SetupError
from harness.system import procs

SETUP_TIMEOUT_S = 60.0
__all__ = ["SetupError", "run"]

_RUN = """
import inspect, json, runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="bench_setup")
setup, headers = namespace["setup"], json.loads(sys.argv[4])
takes = "headers" in inspect.signature(setup).parameters
got = setup(sys.argv[2], headers=headers) if takes else setup(sys.argv[2])
if got is not None:
    plain = isinstance(got, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())
    if not plain:
        sys.exit(f"setup() returned {type(got).__name__}: expected None or a dict of header names to strings")
    with open(sys.argv[3], "w") as fh:
        json.dump(got, fh)
"""


def run(path: str, base_url: str, log_path: Path, headers: dict[str, str] | None = None) -> dict[str, str]:
    """setup(base_url) in a child process, its output in log_path: the headers it returned ({} for
    none); SetupError if it fails or hangs."""
    returned = log_path.with_name(log_path.stem + "_headers.json")
    returned.unlink(missing_ok=True)
    proc = procs.spawn([sys.executable, "-c", _RUN, path, base_url, str(returned), json.dumps(headers or {})],
                       log_path=log_path, cwd=Path(path).parent)
    try:
        code = proc.wait(timeout=SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SetupError(f"setup({base_url!r}) from {path} took over {SETUP_TIMEOUT_S:.0f} s") from None
    finally:
        procs.stop_tree(proc, grace=1.0)
    if code != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines() if log_path.is_file() else []
        raise SetupError(f"setup({base_url!r}) from {Path(path).name} failed: "
                         f"{lines[-1] if lines else f'exit {code}'} (see {log_path.name})")
    return json.loads(returned.read_text()) if returned.is_file() else {}
