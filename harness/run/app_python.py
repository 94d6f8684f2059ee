"""Your app's own interpreter (--python): is it usable, and what its workers import from us.

The workers import `targets.foreign:app` (the wrapper and the probe around your app). Under
--python they import it from a copy of the in-worker modules only (IN_WORKER), put on PYTHONPATH
alone: the harness's own package is not even importable there, so nothing of it (pandas, pydantic 2,
the knob table) can leak into an app that pins other versions. Those modules use the standard
library plus what every FastAPI app has (anyio, starlette), on Python >= 3.9.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import ROOT
from harness.data.app_env import LOOP_MODULES, MIN_PYTHON, SERVER_MODULES, AppEnvError, read_env_file
from harness.data.matrix import ConfigError
from harness.system import procs

# targets/foreign.py and what it imports, plus gunicorn's asyncio worker class (targets.gunicorn_worker).
IN_WORKER = ("__init__.py", "foreign.py", "instrument.py", "pool_events.py", "probe.py", "stall_sampler.py",
             "wait_sampler.py", "gunicorn_worker.py")
PROBE_TIMEOUT_S = 30.0

# Run by --python: its version, then the modules it lacks (one line each).
_PROBE = """
import sys, importlib.util
print("%d.%d" % sys.version_info[:2])
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
"""


# Run by --python: does its uvicorn take --timeout-graceful-shutdown (added in uvicorn 0.22)?
_GRACEFUL_PROBE = """
import inspect, uvicorn
print("timeout_graceful_shutdown" in inspect.signature(uvicorn.Config).parameters)
"""


@dataclass(frozen=True)
class AppEnv:
    """Where your --app runs: its interpreter (None: the harness's), the folder its workers import
    `targets` from, its .env variables and its working directory (None: the project's)."""
    python: str | None = None
    root: str = str(ROOT)
    variables: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


def for_cell(knobs: Mapping[str, Any], raw_dir: Path) -> AppEnv | None:
    """A cell's AppEnv from its --python / --env-file / --cwd (None when none is given); under
    --python the in-worker modules are copied into the cell's raw folder."""
    python, env_file, cwd = knobs.get("python"), knobs.get("env_file"), knobs.get("cwd")
    if not (python or env_file or cwd):
        return None
    root = str(stage_targets(raw_dir / "app_path")) if python else str(ROOT)
    return AppEnv(python, root, read_env_file(env_file) if env_file else {}, cwd)


def stage_targets(dest: Path) -> Path:
    """A folder holding `targets/` with the in-worker modules only: the PYTHONPATH of --python's workers."""
    package = dest / "targets"
    package.mkdir(parents=True, exist_ok=True)
    for name in IN_WORKER:
        shutil.copy2(ROOT / "targets" / name, package / name)
    return dest


def worker_env(python: str | None, root: str, base: Mapping[str, str]) -> dict[str, str]:
    """PYTHONPATH (the targets copy, or the project) and, under --python, its virtualenv's PATH."""
    env = {"PYTHONPATH": root}
    if python:
        bin_dir = os.path.dirname(python)
        env["PATH"] = bin_dir + os.pathsep + base.get("PATH", "")
        if (Path(bin_dir).parent / "pyvenv.cfg").is_file():
            env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
    return env


def check_config(cfg: Any) -> None:
    """A Config's --python runs, is new enough and has the servers and loops the run uses:
    ConfigError (one line) if not. Checked before anything is launched."""
    if cfg.python is None:
        return
    try:
        check_interpreter(cfg.python, cfg.server, cfg.loop)
    except AppEnvError as exc:
        raise ConfigError(str(exc)) from None


def check_interpreter(python: str, servers: Iterable[str] = ("uvicorn",), loops: Iterable[str] = ()) -> str:
    """The interpreter's version ('3.9') once it runs, is recent enough and has the modules of every
    server and event loop the run uses."""
    wanted = sorted({m for s in servers for m in SERVER_MODULES.get(s, (s,))}
                    | {m for loop in loops for m in LOOP_MODULES.get(loop, ())})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "probe.log"
        try:
            proc = procs.spawn([python, "-c", _PROBE, *wanted], env=env, log_path=log, cwd=ROOT,
                               stdout=subprocess.PIPE)
        except OSError as exc:
            raise AppEnvError(f"--python {python}: does not run ({exc.strerror or exc})") from None
        try:
            out, _ = proc.communicate(timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AppEnvError(f"--python {python}: did not answer in {PROBE_TIMEOUT_S:.0f} s") from None
        finally:
            procs.stop_tree(proc, grace=1.0)
        errors = log.read_text(errors="replace").strip().splitlines()
    lines = out.decode(errors="replace").splitlines()
    if proc.returncode != 0 or not lines:
        why = (errors or [f"exit {proc.returncode}"])[-1]
        raise AppEnvError(f"--python {python}: does not run as Python ({why})")
    version = lines[0].strip()
    major, _, minor = version.partition(".")
    if (int(major), int(minor)) < MIN_PYTHON:
        raise AppEnvError(f"--python {python} is Python {version}; the in-worker probe needs "
                          f"{'.'.join(map(str, MIN_PYTHON))} or newer")
    missing = lines[1].split() if len(lines) > 1 else []
    if missing:
        hint = " (or run with --loop asyncio)" if missing == ["uvloop"] else ""
        raise AppEnvError(f"--python {python} has no {', '.join(missing)}: install it in that environment "
                          f"({python} -m pip install {' '.join(missing).replace('_', '-')}){hint}")
    return version


@functools.cache
def uvicorn_graceful(python: str) -> bool:
    """Whether --python's own uvicorn has --timeout-graceful-shutdown: an app that pins an older one
    (0.18 is common) exits with "No such option" when given it. Asked once per interpreter; an
    interpreter that cannot answer is taken to have it, so the launch names the real error."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        done = subprocess.run([python, "-c", _GRACEFUL_PROBE], env=env, cwd=ROOT, capture_output=True,
                              timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return True
    return done.stdout.decode(errors="replace").strip() != "False"
