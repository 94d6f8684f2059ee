"""Bad input costs nothing: every flag of bench.py is checked before anything starts.

Each bad command must exit 2 with exactly one line on stderr, launch no child process and write
nothing (the --out folder is not created, an existing folder is left as it was). The issue's list
runs as real subprocesses (`python bench.py ...`, children watched with psutil); further cases call
harness.cli.main() in-process with subprocess.Popen replaced by a tripwire, so any launch fails the
test outright. Also here: --resume against a run folder (knob mismatch, damaged meta.json, torn row).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.data import store
from harness.data.matrix import ConfigError, build_cells, make_config
from harness.run.cell import base_row, failed_row

ROOT = Path(__file__).resolve().parent.parent
FAST_S = 15.0  # generous: a bad command should take well under a second, but the box is shared

# Flags that are valid: each case below breaks exactly one thing.
OK_RUN = ["--targets", "fake-async", "--scenarios", "io", "--workers", "1", "--users", "4",
          "--duration", "2", "--warmup", "0.5", "--fixed-window", "--no-plot"]


def _with(flag: str, value: str) -> list[str]:
    """OK_RUN with one flag's value replaced."""
    args = list(OK_RUN)
    args[args.index(flag) + 1] = value
    return args


def run_bench(*args: str, timeout: float = 60.0) -> tuple[int, str, str, list[str], float]:
    """Run bench.py; returns (exit code, stdout, stderr, command lines of every child seen, seconds).

    Children are looked for every 20 ms while bench.py runs: a launch (upstream, uvicorn, Locust,
    git...) takes far longer than that to come and go.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "bench.py", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: dict[int, str] = {}
    try:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"bench.py {' '.join(args)} still running after {timeout:.0f}s")
            try:
                for child in parent.children(recursive=True):
                    try:
                        seen.setdefault(child.pid, " ".join(child.cmdline()) or child.name())
                    except psutil.Error:
                        seen.setdefault(child.pid, "?")
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.02)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return proc.returncode, out, err, list(seen.values()), time.monotonic() - t0


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → content hash of every file under folder (directories as 'dir')."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_refused(result, expect: str | None = None) -> None:
    code, out, err, children, seconds = result
    lines = err.splitlines()
    assert code == 2, f"exit {code}, want 2; stderr: {err!r}"
    assert len(lines) == 1, f"want exactly one line on stderr, got {len(lines)}: {err!r}"
    assert "error" in lines[0], lines[0]
    assert out == "", f"nothing on stdout for refused input, got {out!r}"
    assert not children, f"bad input launched child processes: {children}"
    assert seconds < FAST_S, f"refusing bad input took {seconds:.1f}s"
    if expect is not None:
        assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"


# --------------------------------------------------------------------------- in-process variant

class LaunchAttempted(AssertionError):
    pass


@pytest.fixture
def run_main(monkeypatch, capsys):
    """harness.cli.main(argv) in this process with every subprocess.Popen turned into a failure, so
    "nothing launched" is certain; same result tuple as run_bench. Cheap: no interpreter start-up."""
    from harness import cli
    from harness.system import procs

    def no_popen(*args, **kwargs):
        raise LaunchAttempted(f"bad input launched a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    monkeypatch.setattr(procs, "_live", set())
    monkeypatch.setattr(sys, "argv", ["bench.py"])

    def call(*args: str):
        sys.argv[1:] = list(args)  # cmd_run looks at sys.argv for an explicit --preset
        old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        t0 = time.monotonic()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
        finally:
            for sig, handler in old.items():  # main() installs its own handlers
                signal.signal(sig, handler)
        out, err = capsys.readouterr()
        return code, out, err, [], time.monotonic() - t0

    return call


# --------------------------------------------------------------------------- run: flag values

# The list, each as a real `python bench.py ...` subprocess.
RUN_CASES = {
    "unknown-target": (_with("--targets", "fake-asyn"), "did you mean 'fake-async'"),
    "unknown-scenario": (_with("--scenarios", "iox"), "unknown scenario 'iox'"),
    "unknown-preset": (["--preset", "smok", *OK_RUN], "did you mean 'smoke'"),
    "workers-0": (_with("--workers", "0"), "--workers 0"),
    "workers-negative": (_with("--workers", "-1"), "--workers -1"),
    "workers-absurd": (_with("--workers", "1000"), "--workers 1000"),
    "workers-malformed": (_with("--workers", "1,x"), "--workers"),
    "users-0": (_with("--users", "0"), "--users 0"),
    "duration-0": (_with("--duration", "0"), "--duration"),
    "loop-foo": (["--loop", "foo", *OK_RUN], "loop 'foo'"),
}

# More of the same, in-process (no interpreter start-up each).
MORE_RUN_CASES = {
    "unknown-target-in-list": (_with("--targets", "fake-async,thread-poll"), "did you mean 'thread-pool'"),
    "workers-float": (_with("--workers", "1.5"), "--workers"),
    "workers-empty": (_with("--workers", ","), "--workers"),
    "users-second-value-bad": (_with("--users", "4,0"), "--users 0"),
    "users-absurd": (_with("--users", "100000"), "--users"),
    "duration-nan": (_with("--duration", "nan"), "--duration"),
    "duration-inf": (_with("--duration", "inf"), "--duration"),
    "duration-text": (_with("--duration", "abc"), "--duration"),
    "warmup-negative": (_with("--warmup", "-1"), "--warmup"),
    "cpu-kind": (["--cpu-kind", "gpu", *OK_RUN], "gpu"),
    "repeat-0": (["--repeat", "0", *OK_RUN], "--repeat"),
    "io-ms-negative": (["--io-ms", "-1", *OK_RUN], "--io-ms"),
    "cpu-ms-absurd": (["--cpu-ms", "100000", *OK_RUN], "--cpu-ms"),
    "fanout-absurd": (["--fanout", "1000", *OK_RUN], "--fanout"),
    "pool-size-0": (["--pool-size", "0", *OK_RUN], "--pool-size"),
    "http-connections-0": (["--http-connections", "0", *OK_RUN], "--http-connections"),
    "no-targets": (_with("--targets", ","), "no targets"),
    "no-scenarios": (_with("--scenarios", ","), "no scenarios"),
    "unknown-flag": (["--wokers", "2", *OK_RUN], "--wokers"),
    "missing-value": ([*OK_RUN, "--users"], "--users"),
}


@pytest.mark.parametrize("args,expect", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_run_rejects_bad_flag(tmp_path, args, expect):
    out = tmp_path / "out"
    assert_refused(run_bench("run", *args, "--out", str(out)), expect)
    assert not out.exists(), "a refused run must not create its folder"


@pytest.mark.parametrize("args,expect", MORE_RUN_CASES.values(), ids=MORE_RUN_CASES.keys())
def test_run_rejects_bad_flag_in_process(tmp_path, run_main, args, expect):
    out = tmp_path / "out"
    assert_refused(run_main("run", *args, "--out", str(out)), expect)
    assert not out.exists(), "a refused run must not create its folder"


# --------------------------------------------------------------------------- run: --out folder

def test_out_nonempty_folder_without_meta(tmp_path):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's file\n")
    before = snapshot(out)
    assert_refused(run_bench("run", *OK_RUN, "--out", str(out)), "not empty")
    assert snapshot(out) == before


def test_out_previous_run_points_to_resume(tmp_path, run_main):
    out = tmp_path / "run"
    out.mkdir()
    (out / "meta.json").write_text("{}")
    before = snapshot(out)
    assert_refused(run_main("run", *OK_RUN, "--out", str(out)), "--resume")
    assert snapshot(out) == before


def test_out_is_a_file(tmp_path, run_main):
    out = tmp_path / "a-file"
    out.write_text("x")
    assert_refused(run_main("run", *OK_RUN, "--out", str(out)), "not a folder")
    assert out.read_text() == "x"


def test_out_unwritable_place():
    out = "/proc/xyz/run"
    assert_refused(run_bench("run", *OK_RUN, "--out", out), "write")
    assert not Path(out).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions")
def test_out_read_only_folder(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert_refused(run_bench("run", *OK_RUN, "--out", str(parent / "run")), "write")
        assert not (parent / "run").exists()
    finally:
        parent.chmod(0o700)


# --------------------------------------------------------------------------- other subcommands

def test_no_subcommand(run_main):
    assert_refused(run_main())


def test_unknown_subcommand(run_main):
    assert_refused(run_main("frobnicate"))


def test_plot_folder_without_results(tmp_path):
    (tmp_path / "meta.json").write_text("{}")
    before = snapshot(tmp_path)
    assert_refused(run_bench("plot", str(tmp_path)), "results.csv")
    assert snapshot(tmp_path) == before


def test_plot_missing_folder(tmp_path, run_main):
    assert_refused(run_main("plot", str(tmp_path / "nope")), "results.csv")
    assert not (tmp_path / "nope").exists()


SERVE_CASES = {
    "unknown-target": (["fake-asyn"], "did you mean 'fake-async'"),
    "non-loopback-host": (["fake-async", "--host", "0.0.0.0"], "--allow-non-loopback"),
}

MORE_SERVE_CASES = {
    "lan-host": (["fake-async", "--host", "192.168.0.1"], "--allow-non-loopback"),
    "workers-0": (["fake-async", "--workers", "0"], "--workers"),
    "workers-absurd": (["fake-async", "--workers", "1000"], "--workers"),
    "port-out-of-range": (["fake-async", "--port", "70000"], "--port"),
    "workers-text": (["fake-async", "--workers", "two"], "--workers"),
}


@pytest.mark.parametrize("args,expect", SERVE_CASES.values(), ids=SERVE_CASES.keys())
def test_serve_rejects_bad_flag(args, expect):
    assert_refused(run_bench("serve", *args), expect)


@pytest.mark.parametrize("args,expect", MORE_SERVE_CASES.values(), ids=MORE_SERVE_CASES.keys())
def test_serve_rejects_bad_flag_in_process(run_main, args, expect):
    assert_refused(run_main("serve", *args), expect)


def test_serve_rejects_unknown_loop(run_main):
    assert_refused(run_main("serve", "fake-async", "--loop", "foo"), "loop")


# --------------------------------------------------------------------------- run --resume

def _finished_run(folder: Path, **knobs) -> Path:
    """A run folder whose every cell already has a row (so an accepted --resume launches nothing)."""
    cfg = make_config("default", **knobs)
    folder.mkdir()
    store.write_meta(folder / "meta.json", {
        "run_id": folder.name, "preset": "default", "knobs": cfg.knobs(), "cpu_units_per_ms": 1000.0,
        "started_at": "2024-01-01T00:00:00"})
    for cell in build_cells(cfg):
        raw = folder / "raw" / cell.cell_id
        raw.mkdir(parents=True)
        store.append_row(folder / "results.csv", failed_row(base_row(cell, raw, folder), "crafted"))
    return folder


RUN_KNOBS = dict(targets=["fake-async"], scenarios=["io"], workers=[1], users=[4], duration=2.0,
                 warmup=0.5)  # probe and adapt_window stay at their defaults (True)


@pytest.fixture
def finished_run(tmp_path):
    return _finished_run(tmp_path / "run", **RUN_KNOBS)


def test_resume_without_meta_is_refused(tmp_path, run_main):
    (tmp_path / "results.csv").write_text("target\n")
    before = snapshot(tmp_path)
    assert_refused(run_main("run", "--resume", str(tmp_path)), "meta.json")
    assert snapshot(tmp_path) == before


def test_resume_missing_folder_is_refused(tmp_path, run_main):
    assert_refused(run_main("run", "--resume", str(tmp_path / "nope")), "meta.json")
    assert not (tmp_path / "nope").exists()


def test_resume_refuses_different_users(finished_run):
    before = snapshot(finished_run)
    assert_refused(run_bench("run", "--resume", str(finished_run), "--users", "8"), "users")
    assert snapshot(finished_run) == before, "a refused --resume must not touch the run folder"


MISMATCH = {
    "workers": (["--workers", "1,2"], "workers"),
    "targets": (["--targets", "correct-async"], "targets"),
    "scenarios": (["--scenarios", "io,cpu"], "scenarios"),
    "duration": (["--duration", "3"], "duration"),
    "io-ms": (["--io-ms", "10"], "io_ms"),
    "loop": (["--loop", "asyncio"], "loop"),
    "repeat": (["--repeat", "2"], "repeat"),
    "invalid-value": (["--workers", "0"], "--workers"),
}


@pytest.mark.parametrize("args,expect", MISMATCH.values(), ids=MISMATCH.keys())
def test_resume_refuses_different_knobs(finished_run, run_main, args, expect):
    before = snapshot(finished_run)
    assert_refused(run_main("run", "--resume", str(finished_run), *args, "--no-plot"), expect)
    assert snapshot(finished_run) == before, "a refused --resume must not touch the run folder"


@pytest.mark.parametrize("flag", ["--no-probe", "--fixed-window"])
def test_resume_refuses_different_switches(finished_run, run_main, flag):
    before = snapshot(finished_run)
    assert_refused(run_main("run", "--resume", str(finished_run), flag, "--no-plot"))
    assert snapshot(finished_run) == before


def test_resume_refuses_different_preset(finished_run, run_main):
    before = snapshot(finished_run)
    assert_refused(run_main("run", "--resume", str(finished_run), "--preset", "smoke", "--no-plot"),
                   "preset")
    assert snapshot(finished_run) == before


def test_resume_accepts_same_knobs_spelled_differently(finished_run, run_main):
    """Same values as the run (2 vs 2.0...) are not a difference; nothing is missing, so nothing runs
    (run_main fails on any process launch)."""
    rows_before = (finished_run / "results.csv").read_text()
    code, out, err, _, _ = run_main(
        "run", "--resume", str(finished_run), "--targets", "fake-async", "--workers", "1",
        "--users", "4", "--duration", "2", "--warmup", ".5", "--no-plot")
    assert code == 0, err
    assert "0 cells to run" in out
    assert (finished_run / "results.csv").read_text() == rows_before


@pytest.mark.parametrize("text", ['{"schema_version": 1, "preset": "def', '{"schema_version": 1}'],
                         ids=["truncated-json", "no-knobs"])
def test_resume_damaged_meta_is_refused(finished_run, run_main, text):
    (finished_run / "meta.json").write_text(text)
    before = snapshot(finished_run)
    try:
        result = run_main("run", "--resume", str(finished_run), "--no-plot")
    except (ValueError, KeyError) as exc:  # escaped main(): a traceback for the user
        pytest.fail(f"traceback instead of a one-line refusal: {type(exc).__name__}: {exc}")
    assert_refused(result, "meta.json")
    assert snapshot(finished_run) == before


def test_resume_on_another_machine_is_refused(finished_run, run_main):
    meta = json.loads((finished_run / "meta.json").read_text())
    meta["sessions"] = [{"session": 1, "cores_available": 64, "cpu_model": "Imaginary CPU 9000"}]
    store.write_meta(finished_run / "meta.json", meta)
    before = snapshot(finished_run)
    assert_refused(run_main("run", "--resume", str(finished_run), "--no-plot"), "cores 64")
    assert snapshot(finished_run) == before


def test_resume_with_a_torn_last_row(tmp_path, run_main):
    run = _finished_run(tmp_path / "run", **{**RUN_KNOBS, "targets": ["fake-async", "correct-async"]})
    text = (run / "results.csv").read_text()
    last_line = text.rstrip("\n").rindex("\n") + 1
    (run / "results.csv").write_text(text[:last_line] + "correct-async,io,")  # half a row, no newline
    try:
        result = run_main("run", "--resume", str(run), "--no-plot")
    except LaunchAttempted:
        # Fine: the torn cell counts as missing and is being re-run (here stopped at its launch);
        # the half row must be gone so the new row does not get glued onto it.
        repaired = (run / "results.csv").read_text()
        assert repaired.endswith("\n") and not repaired.endswith("correct-async,io,")
        [fake] = [c for c in build_cells(make_config("default", **RUN_KNOBS))]
        assert store.done_keys(run / "results.csv") == {fake.key}
        return
    except (ValueError, TypeError) as exc:
        pytest.fail(f"traceback instead of a re-run or a one-line refusal: {type(exc).__name__}: {exc}")
    assert_refused(result, "results.csv")


# --------------------------------------------------------------------------- validation in-process

def test_duplicate_values_do_not_make_duplicate_cells():
    """--workers 1,1 must be refused or collapsed: duplicate cell keys break --resume's bookkeeping
    (results.csv would hold two rows with one key, and a resume counts both as done after one)."""
    try:
        cfg = make_config("default", targets=["fake-async", "fake-async"], scenarios=["io"],
                          workers=[1, 1], users=[4])
    except ConfigError:
        return
    keys = [c.key for c in build_cells(cfg)]
    assert len(keys) == len(set(keys)), f"duplicate cells: {len(keys)} cells, {len(set(keys))} distinct"
