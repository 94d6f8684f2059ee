"""The run folder: results.csv (appended a row at a time), meta.json, raw/ per cell.

A row is written and flushed the moment its cell ends, so an interrupted sweep loses at most the
cell in flight; `--resume` reads the folder back to see what is missing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from harness import knobs
from harness.schema import COLUMNS, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent


class RunFolderError(ValueError):
    """The output folder cannot be used (one-line reason)."""


def new_run_id(preset: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{preset}"


def prepare_run_dir(path: Path, *, resume: bool) -> None:
    """Refuse folders we would clobber or cannot write, before anything starts."""
    if resume:
        if not (path / "meta.json").is_file():
            raise RunFolderError(f"{path} has no meta.json: not a run folder to resume")
        if not os.access(path, os.W_OK):
            raise RunFolderError(f"{path} is not writable")
        return
    if path.exists():
        if not path.is_dir():
            raise RunFolderError(f"{path} exists and is not a folder")
        if any(path.iterdir()):
            what = "a previous run (use --resume to complete it)" if (path / "meta.json").exists() \
                else "files that are not ours"
            raise RunFolderError(f"{path} is not empty: it holds {what}")
    try:  # os.access says yes to root everywhere (even /proc): really create the folder
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(f"cannot write to {path}: {exc.strerror or exc}") from None


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def append_row(path: Path, row: dict) -> None:
    """Append one row (header first if the file is new); flushed and fsynced before returning."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _clean(row.get(k, "")) for k in COLUMNS})
        fh.flush()
        os.fsync(fh.fileno())


def check_columns(path: Path) -> None:
    """Refuse to append to a results.csv whose header is not this harness's columns: the new rows
    would land under the wrong names."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, newline="") as fh:
        header = next(csv.reader(fh), [])
    if header != COLUMNS:
        raise RunFolderError(f"{path} was written by another version of the harness (its columns differ); "
                             "resume it with that version, or start a new run")


def drop_torn_row(path: Path) -> bool:
    """Cut a last line left half-written by a killed harness; True if one was cut."""
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)
    return True


def done_keys(path: Path) -> set[tuple]:
    """The identity (knobs.cell_key: every parameter column) of each complete row in results.csv."""
    if not path.exists():
        return set()
    keys = set()
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                keys.add(knobs.cell_key(r))
            except (TypeError, ValueError):
                continue  # a damaged row is not a finished cell: it will be measured again
    return keys


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "anyio", "locust",
                "pandas", "matplotlib", "psutil"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **meta}, indent=2, default=str))
    tmp.replace(path)


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path} cannot be read: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("knobs"), dict):
        raise RunFolderError(f"{path} is damaged: it has no knobs to resume with")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise RunFolderError(f"{path}: schema_version {meta.get('schema_version')!r} is not "
                             f"{SCHEMA_VERSION}; this version of the harness cannot read it")
    return meta
