"""Your app's own environment (`--python`, `--env-file`, `--cwd`), checked before anything is launched.

A real app lives in its own virtualenv with its own pins (an app on pydantic 1 cannot even be
imported next to the harness), reads its settings from a `.env` file and opens paths relative to
its folder. The harness runs the app's workers and reads its schema with that interpreter, those
variables and that working directory; only the stdlib-only in-worker pieces of targets/ go with it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

# What each server needs importable in --python (harness/data/servers.py builds its command line).
# uvicorn runs with --http httptools (harness/data/servers.py), as uvicorn[standard] installs it.
SERVER_MODULES: dict[str, tuple[str, ...]] = {
    "uvicorn": ("uvicorn", "httptools"), "gunicorn": ("gunicorn", "uvicorn_worker"),
    "gunicorn-asgi": ("gunicorn",),
    "granian": ("granian",), "hypercorn": ("hypercorn",),
}
LOOP_MODULES: dict[str, tuple[str, ...]] = {"uvloop": ("uvloop",), "asyncio": ()}
MIN_PYTHON = (3, 9)  # the oldest Python the in-worker modules (targets/foreign.py and its imports) run on


class AppEnvError(ValueError):
    """--python, --env-file or --cwd is unusable: one line."""


def check_python(path: str) -> str:
    """The interpreter's absolute path (a virtualenv folder names its bin/python)."""
    given = Path(path).expanduser()
    if given.is_dir():
        given = given / "bin" / "python"
    if not given.is_file():
        raise AppEnvError(f"--python {path!r}: no such interpreter (give the virtualenv's bin/python)")
    if not os.access(given, os.X_OK):
        raise AppEnvError(f"--python {path!r} is not executable")
    # not resolved: a virtualenv's python is a symlink to the base one, which would leave the venv
    return str(given.absolute())


def check_cwd(path: str) -> str:
    if not os.path.isdir(path):
        raise AppEnvError(f"--cwd {path!r} is not a directory")
    return os.path.abspath(path)


def check_env_file(path: str) -> str:
    """The file's absolute path once it parses (read_env_file says why it does not)."""
    read_env_file(path)
    return os.path.abspath(path)


def read_env_file(path: str) -> dict[str, str]:
    """The variables of a dotenv file, as uvicorn's --env-file (python-dotenv) reads them.

    python-dotenv only logs a line it cannot parse and goes on; here that line is an error, so a
    typo in a setting is not silently dropped."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AppEnvError(f"--env-file {path!r}: cannot be read ({exc.__class__.__name__})") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.strip().splitlines()[0] if binding.original.string.strip() else ""
            raise AppEnvError(f"--env-file {path!r}: line {binding.original.line} does not parse: {line!r} "
                              "(expected NAME=value)")
    values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    return {k: v for k, v in values.items() if v is not None}  # a bare NAME sets nothing, as in uvicorn
