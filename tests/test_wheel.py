"""The installed command, the way a user gets it: the wheel is built from this clone, installed into
a fresh virtualenv outside it, and `fastapi-bench` runs from an empty folder with the clone off
sys.path: `list`, a one-cell `run` and an `audit` of a copy of tests/fixture_app, results in ./results.

The fresh venv gets only the wheel; its dependencies come from this interpreter's site-packages through
a .pth line (a full dependency install from PIP_FIND_LINKS takes minutes, and is not what is tested
here). A .pth line adds a folder to sys.path without running that folder's own .pth files, so the
clone's editable install there does not leak the clone back in.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from harness.data import store

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["--workers", "1", "--users", "4", "--duration", "2", "--warmup", "0.5"]


# Built from a copy: setuptools writes build/ and *.egg-info/ into the source folder, and a stale
# build/lib left in the clone would be packed into the next wheel.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "results", "__pycache__",
                                     ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(ROOT, tmp_path_factory.mktemp("source") / "src", ignore=NOT_SOURCES)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    done = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("fastapi_concurrency_bench-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; returns its bin/ folder."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print("
                                "sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_bench_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv / "bin"


def command(bin_dir: Path, cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bin_dir / "fastapi-bench"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_holds_what_a_run_needs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("harness/cli.py", "harness/__main__.py", "scenarios/_base.py", "scenarios/io.py",
                   "scenarios/probe.py", "targets/foreign.py", "targets/probe.py", "upstream/server.py"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "docs/", "results/")) for n in names)
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "fastapi-bench = harness.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_command_imports_nothing_from_the_clone(installed, tmp_path):
    where = ("import harness, scenarios, targets, upstream; "
             "print(harness.__file__, *scenarios.__path__, targets.__file__, upstream.__file__)")
    done = subprocess.run([str(installed / "python"), "-c", where], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    paths = done.stdout.split()
    assert len(paths) == 4 and not any(p.startswith(str(ROOT)) for p in paths), paths
    assert all(p.startswith(str(installed.parent)) for p in paths), paths
    version = command(installed, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("fastapi-bench 0.1.0 "), version
    as_module = subprocess.run([str(installed / "python"), "-m", "harness", "--version"], cwd=tmp_path,
                               capture_output=True, text=True)
    assert as_module.stdout == version.stdout, as_module  # the same program, the same answer
    listed = command(installed, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "fake-async" in listed.stdout and "health" in listed.stdout
    bad = command(installed, tmp_path, "run", "--workers", "0")  # messages name the installed command
    assert bad.returncode == 2 and bad.stderr.startswith("fastapi-bench: error:"), bad.stderr
    assert "bench.py" not in command(installed, tmp_path, "run", "--help").stdout


def test_installed_run_and_audit_write_to_the_current_folder(installed, tmp_path):
    here = tmp_path / "empty"
    here.mkdir()
    one_cell = ["--preset", "smoke", "--targets", "fake-async", "--scenarios", "health", "--workers", "1",
                "--users", "2", "--duration", "1", "--warmup", "0.5", "--no-plot"]
    ran = command(installed, here, "run", *one_cell)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    (run_dir,) = (here / "results").glob("*-smoke")
    with open(run_dir / "results.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "ok" and float(row["rps"]) > 0, row
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["sessions"][0]["versions"]["harness"] == "0.1.0"
    # installed from a wheel file (not a git URL) and outside any repository: no commit to claim
    assert meta["sessions"][0]["git_commit"] == "unknown"

    app = shutil.copytree(ROOT / "tests" / "fixture_app", tmp_path / "app",
                          ignore=shutil.ignore_patterns("__pycache__"))
    audited = command(installed, here, "audit", "items:app", "--app-dir", str(app), *SHORT)
    assert audited.returncode == 0, audited.stdout[-2000:] + audited.stderr[-2000:]
    (audit_dir,) = (here / "results").glob("*-audit")
    with open(audit_dir / "audit.csv", newline="") as fh:
        verdicts = {r["route"]: r["verdict"] for r in csv.DictReader(fh)}
    # the same verdicts tests/test_audit_run.py expects of bench.py audit in the clone
    assert verdicts == {"/items/sync": "fine at this load", "/items/blocking": "blocks the event loop",
                        "/items/awaiting": "fine at this load"}, verdicts
    assert "blocks the event loop" in (audit_dir / "report.html").read_text()
    assert not (ROOT / "results" / audit_dir.name).exists()  # not the clone's results/


def test_run_folders_default_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.results_dir() == tmp_path / "results"


def test_a_copy_inside_another_repository_does_not_record_its_commit(tmp_path, monkeypatch):
    """A CI job's .venv inside the app's own repository: `git rev-parse` there names the app's
    commit, not the harness's."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the app"], check=True)
    site = tmp_path / ".venv" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(store, "ROOT", site)
    monkeypatch.setattr(store, "_installed_commit", lambda: None)
    assert store.git_commit() == "unknown"
    monkeypatch.setattr(store, "_installed_commit", lambda: "c0ffee")  # pip's record of a git URL install
    assert store.git_commit() == "c0ffee"
    monkeypatch.setattr(store, "ROOT", tmp_path)  # the clone itself: its own commit
    assert len(store.git_commit()) == 40
