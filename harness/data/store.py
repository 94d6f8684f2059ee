"""The run folder: results.csv (appended a row at a time), meta.json, raw/ per cell.

A row is written and flushed the moment its cell ends, so an interrupted sweep loses at most the
cell in flight; `--resume` reads the folder back to see what is missing.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from harness import ROOT
from harness.data import knobs, prog
from harness.data.schema import COLUMNS, SCHEMA_VERSION


class RunFolderError(ValueError):
    """The output folder cannot be used (one-line reason)."""


class DiskError(RuntimeError):
    """Writing the run folder failed (full, over quota, read-only, not permitted): the sweep stops.

    Not an OSError, so no cell turns it into a failed row on the way up.
    """

    def __init__(self, what: str, where: Path, reason: str) -> None:
        super().__init__(f"{what} in {where} failed: {reason}")
        self.what, self.where, self.reason = what, where, reason
        self.cells_safe: int | None = None  # filled in by the sweep
        self.cells_total: int | None = None

    def line(self, run_dir: Path) -> str:
        """The one line a user reads: what failed, where, what is safe, what to do."""
        safe = "" if self.cells_safe is None else \
            f"; {self.cells_safe} of {self.cells_total} cells are safely on disk"
        then = f"{prog.name()} run --resume {run_dir}" if (run_dir / "meta.json").is_file() \
            else "run the same command again"
        fix = "Make it writable" if self.reason in ("Permission denied", "Operation not permitted") \
            else "Free space"
        return f"{prog.name()}: disk error: {self}{safe}. {fix}, then {then}"


# Errors that say "this folder cannot take our data", as opposed to a bug or a missing file.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM}
DISK_MESSAGES = ("No space left on device", "Disk quota exceeded", "Read-only file system")
# A child's buffered write is 8 KB (io.DEFAULT_BUFFER_SIZE); a write refused for lack of space
# leaves less than that free, so a probe of this size fails whenever a child's write did.
PROBE_BYTES = 8 * 1024


def is_disk_error(exc: BaseException, under: Path | None = None) -> bool:
    """A full/read-only disk, or permission refused on a file inside `under` (when given)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in DISK_ERRNOS:
        return True
    if exc.errno in PERMISSION_ERRNOS:
        return under is None or str(exc.filename or "").startswith(str(under))
    return False


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_room(folder: Path, what: str) -> None:
    """Write and delete PROBE_BYTES in `folder`; DiskError if the disk refuses them.

    Children (Locust, uvicorn workers) write the raw files themselves and report a full disk
    only as some other failure, so the sweep asks the disk directly, before and after each cell.
    """
    probe = folder / ".room-probe"
    try:
        with open(probe, "wb") as fh:
            fh.write(bytes(PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if is_disk_error(exc):
            raise DiskError(what, folder, _reason(exc)) from None
        raise
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


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
    """Append one row (header first if the file is new); fsynced before returning.

    All or nothing: if the disk refuses part of it, the file is cut back to its previous length,
    so the last row on disk is never torn, and DiskError is raised.
    """
    new = not path.exists() or path.stat().st_size == 0
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
    if new:
        writer.writeheader()
    writer.writerow({k: _clean(row.get(k, "")) for k in COLUMNS})
    data = memoryview(text.getvalue().encode())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        if is_disk_error(exc):
            raise DiskError("opening results.csv", path.parent, _reason(exc)) from None
        raise
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)  # shrinking never needs space
            if is_disk_error(exc):
                raise DiskError("writing a row of results.csv", path.parent, _reason(exc)) from None
            raise
    finally:
        os.close(fd)


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


def csv_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts; [] when there is no such file (a cell or run that wrote none)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


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


DIST = "fastapi-concurrency-bench"  # the distribution's name in pyproject.toml


def results_dir() -> Path:
    """Where a run folder goes by default: ./results of the current folder (in the clone, the clone's)."""
    return Path.cwd() / "results"


def harness_version() -> str:
    """The installed distribution's version; a clone run without `pip install` reads pyproject.toml."""
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        import tomllib

        try:
            return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _installed_commit() -> str | None:
    """The commit pip recorded for an install from a git URL (PEP 610 direct_url.json), if any."""
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
        return json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        return None


def git_commit() -> str:
    # Only the clone's own .git: an installed copy inside someone else's repository (a CI job's
    # .venv) must not record that repository's commit as ours.
    if not (ROOT / ".git").exists():
        return _installed_commit() or "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "harness": harness_version()}
    for pkg in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "anyio", "locust",
                "pandas", "matplotlib", "psutil"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def write_meta(path: Path, meta: dict) -> None:
    """Write to a temporary file, then rename: a full disk leaves the previous meta.json whole."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **meta}, indent=2, default=str))
        tmp.replace(path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if is_disk_error(exc):
            raise DiskError("writing meta.json", path.parent, _reason(exc)) from None
        raise


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
