"""A small virtualenv with an old FastAPI and pydantic 1, built once from the package registry (as CI
can) and cached under ~/.cache, keyed by the pins and the base interpreter: the app's own
environment that `--python` runs an app in, next to a harness on pydantic 2.

The base interpreter is the oldest the in-worker modules support (Python 3.9) when this machine has
one, else the one running the tests."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# uvicorn[standard]: httptools and uvloop, as the harness runs uvicorn
PINS = ("fastapi==0.95.2", "pydantic==1.10.*", "uvicorn[standard]==0.30.*")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastapi-concurrency-bench"


def base_python() -> str:
    for found in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))),
                  shutil.which("python3.9")]:
        if found and "shims" not in found:  # a pyenv shim answers only when that version is selected
            return found
    return sys.executable


def app_venv() -> Path:
    """The venv's bin/python, built on first use (a few tens of seconds), then reused."""
    base = base_python()
    key = hashlib.sha256(f"{base} {' '.join(PINS)}".encode()).hexdigest()[:12]
    folder = CACHE / f"venv-fastapi095-{key}"
    python = folder / "bin" / "python"
    if (folder / ".complete").is_file():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([base, "-m", "venv", str(folder)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True, timeout=600)
    (folder / ".complete").write_text(" ".join(PINS) + "\n")
    return python


if __name__ == "__main__":
    print(app_venv())
