"""The ways a run ends that Ctrl-C handling does not cover: the terminal hangs up (SIGHUP), the
harness itself is killed (SIGKILL, the OOM killer), the disk fills up, the sweep is too big, and an
earlier run left processes behind.

The bench.py tests count processes as tests/test_reliability.py does (every descendant ever seen,
by pid and create time), plus every process carrying the run's marker, which also finds a child
started after the harness died.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.data import store
from harness.data.matrix import build_cells
from harness.run import cell as cell_mod
from harness.run import sweep
from harness.run.cell import Upstream, run_cell
from harness.system import preflight, procs
from harness.system.reaper import MARKER_VAR, make_marker, marked_processes, parse_marker
from tests.test_reliability import (
    CLI_KNOBS,
    Bench,
    read_rows,
    row_key,
    tiny,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent


def run_processes(bench: Bench) -> list[str]:
    """Processes of this bench.py run still running: seen as its descendants, or carrying its marker."""
    bench.family.poll()
    out = set(bench.family.running())
    for pid, value in marked_processes().items():
        parsed = parse_marker(value)
        if parsed and parsed[0] == bench.proc.pid:
            try:
                out.add(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:160]}")
            except psutil.NoSuchProcess:
                pass
    return sorted(out)


# ------------------------------------------------------------------------------------ SIGHUP

def test_sighup_mid_cell_then_leftovers_stopped_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    bench = Bench(tmp_path, "run", "--targets", "fake-async,correct-async", *CLI_KNOBS, "--out", str(run_dir))
    try:
        wait_for(lambda: len(read_rows(run_dir)) >= 1, 120, "the first row", bench.proc)
        wait_for(lambda: bench.family.running("correct_async") and bench.family.running("locust"), 60,
                 "the second cell under load", bench.proc)
        bench.signal(signal.SIGHUP)
    finally:
        code = bench.wait()
    assert code == 129, bench.output()
    assert bench.leftover == [], f"orphans after SIGHUP\n{bench.output()}"
    assert "hung up" in bench.err_path.read_text()
    assert [r["target"] for r in read_rows(run_dir)] == ["fake-async"], "the finished row is kept"

    # An earlier run killed beyond the reaper's reach (its harness is gone): a process that still
    # carries that run's marker. The resumed run must stop it before measuring.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             env={**os.environ, MARKER_VAR: f"{dead.pid}:1.00:{ROOT}"},
                             start_new_session=True)
    try:
        resume = Bench(tmp_path, "run", "--resume", str(run_dir), "--no-plot", tag="resume")
        assert resume.wait() == 0, resume.output()
        assert stray.wait(timeout=5) is not None, "the leftover was not stopped"
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
    out = resume.out_path.read_text()
    notes = [line for line in out.splitlines() if "left running by an earlier run" in line]
    assert len(notes) == 1 and "stopped 1 process" in notes[0] and str(dead.pid) in notes[0], out
    assert resume.leftover == []
    keys = sorted(row_key(r) for r in read_rows(run_dir))  # target, scenario, workers, users ... repeat
    assert [k[:4] + k[-1:] for k in keys] == [("correct-async", "io", 1, 4, 1), ("fake-async", "io", 1, 4, 1)]


# ------------------------------------------------------------------------- SIGKILL of the harness

def kill_mid_cell(bench: Bench, ready, what: str, sig: int = signal.SIGKILL) -> tuple[list[str], list[str]]:
    """Send `sig` to the harness once `ready()`; the run's processes just before, and those still
    running 5 s after it exited (the reaper's grace after a SIGKILL)."""
    try:
        wait_for(ready, 120, what, bench.proc)
        before = run_processes(bench)
        bench.proc.send_signal(sig)
        bench.proc.wait(timeout=60)
        killed_at = time.monotonic()
        left = run_processes(bench)
        while left and time.monotonic() - killed_at < 5.0:
            time.sleep(0.1)
            left = run_processes(bench)
    finally:
        bench.wait()
    assert bench.leftover == []
    return before, left


def test_sigkill_of_the_harness_mid_process_pool_cell_leaves_nothing(tmp_path):
    """uvicorn, 2 workers, their pools and resource tracker, Locust and the upstream: the reaper
    stops them all once the harness is gone, and then exits itself."""
    bench = Bench(tmp_path, "run", "--targets", "process-pool", "--scenarios", "cpu", "--workers", "2",
                  "--users", "4", "--duration", "2", "--warmup", "0.5", "--fixed-window", "--no-plot",
                  "--out", str(tmp_path / "run"))
    before, left = kill_mid_cell(
        bench, lambda: len(bench.family.running("spawn_main")) >= 4 and bench.family.running("locust"),
        "the cell under load")
    assert len(before) >= 9, before  # upstream, uvicorn, 2 workers, ≥ 4 pool children, Locust, reaper
    assert left == [], f"still running 5 s after the harness was killed: {left}"
    assert "reaper" in " ".join(bench.family.cmd.values()), "the reaper was not started"


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_other_servers_cell_leaves_nothing(tmp_path, sig, server):
    """Another ASGI server's process tree (gunicorn's arbiter and forked workers, granian's master
    and spawned workers) under load: killing the harness, or Ctrl-C, leaves none of it."""
    bench = Bench(tmp_path, "run", "--targets", "correct-async", "--scenarios", "io", "--workers", "2",
                  "--server", server, "--users", "4", "--duration", "3", "--warmup", "0.5", "--fixed-window",
                  "--no-plot", "--out", str(tmp_path / "run"))
    before, left = kill_mid_cell(
        bench, lambda: len(bench.family.running(f"-m {server}")) >= 1 and bench.family.running("locust")
        and len(list((tmp_path / "run").glob("raw/*/metrics/worker-*.jsonl"))) >= 2,
        f"the {server} cell under load", sig)
    if sig == signal.SIGINT:
        assert bench.proc.returncode == 130, bench.output()
    assert len(before) >= 6, before  # upstream, the server + 2 workers, Locust, reaper
    assert left == [], f"still running 5 s after the harness was killed: {left}"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_foreign_app_cell_with_two_load_processes_leaves_nothing(tmp_path, sig):
    """The new modes' processes: your own app under uvicorn (2 workers), a Locust master and its 2
    forked load workers in open loop. Killing the harness, or Ctrl-C, leaves none of them."""
    fixture = ROOT / "tests" / "fixture_app"
    bench = Bench(tmp_path, "run", "--app", "items:app", "--app-dir", str(fixture),
                  "--path", "/items/awaiting", "--workers", "2", "--rate", "100", "--load-processes", "2",
                  "--duration", "3", "--warmup", "0.5", "--fixed-window", "--no-plot",
                  "--out", str(tmp_path / "run"))
    before, left = kill_mid_cell(  # Locust's master + 2 workers and uvicorn are all up
        bench, lambda: len(bench.family.running("locust")) >= 3 and bench.family.running("uvicorn"),
        "the foreign cell under load", sig)
    if sig == signal.SIGINT:
        assert bench.proc.returncode == 130, bench.output()
    assert len(before) >= 7, before  # upstream, uvicorn + 2 workers, Locust master + 2 workers, reaper
    assert left == [], f"still running 5 s after the harness was killed: {left}"


# ------------------------------------------------------------------------------------ full disk

class FakeKeeper:
    """The sweep's upstream keeper without an upstream (these tests start no process)."""

    def __init__(self, *args, **kwargs) -> None:
        self.capacity, self.restarts = None, 0

    def ensure(self) -> Upstream:
        return Upstream("http://127.0.0.1:9", 0, None)

    def stop(self) -> None:
        pass


def fake_cell(cell, run_dir, upstream, **kwargs) -> dict:
    raw = run_dir / "raw" / cell.cell_id
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "requests.csv").write_text("start,latency\n")
    return {**cell.params(), "status": "ok", "error": "", "rps": 10.0, "p50_ms": 1.0,
            "health_p99_ms": 1.0, "loop_lag_p99_ms": 1.0, "ceiling_rps": 20.0, "efficiency": 0.5,
            "valid": True, "invalid_reason": "", "raw_dir": str(raw.relative_to(run_dir))}


@pytest.fixture
def no_processes(monkeypatch):
    monkeypatch.setattr(sweep, "UpstreamKeeper", FakeKeeper)
    monkeypatch.setattr(sweep, "run_cell", fake_cell)
    monkeypatch.setattr(sweep, "calibrate_cpu", lambda meta, kind: meta.update(cpu_units_per_ms=1.0))


def enospc(path="") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


THREE = tiny(["fake-async", "correct-async", "thread-pool"])


def _sweep_stops_with_disk_error(run_dir: Path, what: str) -> store.DiskError:
    with pytest.raises(store.DiskError) as info:
        sweep.run_sweep(THREE, run_dir, preset="smoke", measure_upstream=False)
    err = info.value
    assert what in str(err) and "No space left on device" in str(err), str(err)
    assert err.cells_total == 3 and err.cells_safe == len(read_rows(run_dir))
    line = err.line(run_dir)
    assert "\n" not in line and f"--resume {run_dir}" in line and "Free space" in line, line
    return err


def _resume_completes(run_dir: Path, monkeypatch) -> None:
    monkeypatch.undo()  # space is back: no more injected errors (the fixture's fakes go too)
    monkeypatch.setattr(sweep, "UpstreamKeeper", FakeKeeper)
    monkeypatch.setattr(sweep, "run_cell", fake_cell)
    assert sweep.run_sweep(THREE, run_dir, preset="smoke", resume=True, measure_upstream=False) == 0
    rows = read_rows(run_dir)
    assert sorted(r["target"] for r in rows) == ["correct-async", "fake-async", "thread-pool"]
    assert all(r["status"] == "ok" for r in rows), "no cell recorded as failed because of the disk"


def test_full_disk_while_writing_a_row_cuts_it_back(tmp_path, monkeypatch, no_processes):
    """fsync refuses the second row after its bytes went in (delayed allocation): no torn row."""
    run_dir = tmp_path / "run"
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise enospc()
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", lambda fd: fsync(fd) if _is_results(fd) else real_fsync(fd))
    err = _sweep_stops_with_disk_error(run_dir, "writing a row of results.csv")
    assert err.cells_safe == 1
    data = (run_dir / "results.csv").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 2, "header and one whole row, nothing torn"
    second = run_dir / "raw" / build_cells(THREE)[1].cell_id
    assert not second.exists(), "the unrecorded cell's raw files go"
    _resume_completes(run_dir, monkeypatch)


def _is_results(fd: int) -> bool:
    return os.readlink(f"/proc/self/fd/{fd}").endswith("results.csv")


@pytest.mark.parametrize("failing_write", [1, 2], ids=["first-meta", "meta-after-a-row"])
def test_full_disk_while_writing_meta_keeps_the_old_one(tmp_path, monkeypatch, no_processes, failing_write):
    run_dir = tmp_path / "run"
    real_write_text = Path.write_text
    writes = []

    def write_text(self, *args, **kwargs):
        if self.name == "meta.tmp":
            writes.append(self)
            if len(writes) == failing_write:
                real_write_text(self, "{\"torn")
                raise enospc(self)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(sweep, "run_cell", lambda *a, **k: _meta_again(run_dir, fake_cell(*a, **k)))
    if failing_write == 1:
        with pytest.raises(store.DiskError, match="writing meta.json"):
            sweep.run_sweep(THREE, run_dir, preset="smoke", measure_upstream=False)
        assert not (run_dir / "meta.json").exists() and not (run_dir / "meta.tmp").exists()
        assert "run the same command again" in store.DiskError("x", run_dir, "y").line(run_dir)
        return
    err = _sweep_stops_with_disk_error(run_dir, "writing meta.json")
    assert err.cells_safe == 1
    assert store.read_meta(run_dir / "meta.json")["knobs"], "the previous meta.json is whole"
    assert not (run_dir / "meta.tmp").exists()
    _resume_completes(run_dir, monkeypatch)


def _meta_again(run_dir: Path, row: dict) -> dict:
    """After the first row, the sweep writes meta.json again (as it does for upstream_capacity)."""
    if read_rows(run_dir):
        meta = store.read_meta(run_dir / "meta.json")
        store.write_meta(run_dir / "meta.json", meta)
    return row


def test_full_disk_in_a_cells_raw_files_is_not_a_failed_row(tmp_path, monkeypatch, no_processes):
    """A child (Locust, a worker) could not write: the disk refuses the probe after the cell."""
    run_dir = tmp_path / "run"
    real_check = store.check_room
    probes = []

    def check_room(folder, what):
        probes.append(folder)
        if len(probes) == 4:  # before cell 1, after it, before cell 2, after it
            raise store.DiskError(what, folder, "No space left on device")
        real_check(folder, what)

    monkeypatch.setattr(store, "check_room", check_room)
    err = _sweep_stops_with_disk_error(run_dir, "writing the raw files of cell correct-async")
    assert err.cells_safe == 1 and [r["target"] for r in read_rows(run_dir)] == ["fake-async"]
    _resume_completes(run_dir, monkeypatch)


def test_a_cell_failing_on_a_full_disk_is_not_recorded(tmp_path, monkeypatch, no_processes):
    """The failure text names the disk (a worker's log said so): no failed row, the sweep stops."""
    run_dir = tmp_path / "run"

    def failing_second(cell, run_dir_, upstream, **kwargs):
        row = fake_cell(cell, run_dir_, upstream, **kwargs)
        if cell.target == "correct-async":
            row.update(status="failed", error="LaunchError: OSError: [Errno 28] No space left on device")
        return row

    monkeypatch.setattr(sweep, "run_cell", failing_second)
    err = _sweep_stops_with_disk_error(run_dir, "writing the raw files of cell correct-async")
    assert err.cells_safe == 1 and all(r["status"] == "ok" for r in read_rows(run_dir))
    _resume_completes(run_dir, monkeypatch)


def test_run_cell_turns_a_disk_error_into_disk_error_not_a_failed_row(tmp_path, monkeypatch):
    [cell] = build_cells(tiny(["correct-async"]))

    def launch_target(*args, **kwargs):
        raise enospc(tmp_path / "raw" / "uvicorn.log")

    monkeypatch.setattr(cell_mod, "launch_target", launch_target)
    with pytest.raises(store.DiskError, match="raw files of cell correct-async"):
        run_cell(cell, tmp_path, Upstream("http://127.0.0.1:9", 0, None))
    denied = PermissionError(errno.EACCES, "Permission denied", "/etc/elsewhere")
    assert not store.is_disk_error(denied, under=tmp_path), "EACCES outside the run folder is not the disk"
    assert store.is_disk_error(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x")),
                               under=tmp_path)


def test_full_disk_on_a_real_tmpfs_then_resume(tmp_path):
    """bench.py with --out on a tmpfs that fills up during the sweep: exit 74, one line on stderr,
    the rows on disk whole and all ok; after the tmpfs grows, --resume completes the run."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    # Room for meta.json, the upstream log and about two cells' raw files (≈ 45 KB each) and rows.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(mnt)], check=True)
    try:
        run_dir = mnt / "run"
        names = ["fake-async", "correct-async", "thread-pool", "mixed"]
        # a 2 s window: the tmpfs above is sized to the raw files of that window
        knobs = list(CLI_KNOBS)
        knobs[knobs.index("--duration") + 1] = "2"
        bench = Bench(tmp_path, "run", "--targets", ",".join(names), *knobs, "--out", str(run_dir))
        code = bench.wait()
        assert code == 74, bench.output()
        assert bench.leftover == [], bench.output()
        err = bench.err_path.read_text().strip().splitlines()
        assert len(err) == 1 and "No space left on device" in err[0], bench.output()
        assert f"Free space, then bench.py run --resume {run_dir}" in err[0]
        assert "Traceback" not in bench.output()
        rows = read_rows(run_dir)
        assert 1 <= len(rows) < len(names), "the tmpfs was meant to fill up after a cell or two"
        assert f"{len(rows)} of {len(names)} cells are safely on disk" in err[0]
        assert all(r["status"] == "ok" for r in rows), "no cell recorded as failed because of the disk"
        assert (run_dir / "results.csv").read_bytes().endswith(b"\n")

        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)
        resume = Bench(tmp_path, "run", "--resume", str(run_dir), "--no-plot", tag="resume")
        assert resume.wait() == 0, resume.output()
        assert resume.leftover == []
        rows = read_rows(run_dir)
        assert [r["target"] for r in rows] == names and all(r["status"] == "ok" for r in rows)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --------------------------------------------------------------------------- oversized sweeps

def test_oversized_sweep_is_refused_before_anything_starts(tmp_path):
    run_dir = tmp_path / "run"
    bench = Bench(tmp_path, "run", "--targets", "process-pool", "--scenarios", "cpu", "--workers", "64",
                  "--pool-size", "1024", "--out", str(run_dir), tag="oversized")
    assert bench.wait(60) == 2, bench.output()
    [line] = bench.err_path.read_text().splitlines()
    assert "too big for this machine" in line and "65,669 processes" in line and "× over" in line, line
    assert bench.family.seen == {}, "nothing may be launched (not even the reaper)"
    assert not run_dir.exists(), "nothing may be written"


MACHINE = preflight.Machine(cores=2, memory_total_mb=8192, memory_available_mb=6000, task_limit=30000,
                            task_limit_name="the kernel's pid_max", open_files_limit=1024)


def test_preflight_counts_the_largest_cell():
    need = preflight.cell_need("process-pool", workers=2, users=32, pool=2, http_connections=100)
    # harness, reaper, upstream, Locust + uvicorn + 2 workers + 2 × (2 pool children + tracker)
    assert need.processes == 4 + 1 + 2 + 2 * 3 and need.threads == 0
    threads = preflight.cell_need("thread-pool", workers=4, users=32, pool=40, http_connections=100)
    assert threads.processes == 4 + 1 + 4 and threads.threads == 160
    assert preflight.check([need, threads], MACHINE) is None, "the default sweep fits a small machine"


@pytest.mark.parametrize("need,limit", [
    (dict(target="process-pool", workers=64, users=32, pool=1024), "processes"),
    (dict(target="thread-pool", workers=64, users=32, pool=1024), "threads"),
    (dict(target="process-pool", workers=16, users=32, pool=64), "memory"),
    (dict(target="correct-async", workers=1, users=2000, pool=None), "open files"),
])
def test_preflight_refuses_what_cannot_fit(need, limit):
    with pytest.raises(preflight.ConfigError) as info:
        preflight.check([preflight.cell_need(**need, http_connections=100)], MACHINE)
    assert limit in str(info.value) and "× over" in str(info.value) and "\n" not in str(info.value)


def test_preflight_warns_about_a_crowded_but_possible_sweep():
    need = preflight.cell_need("process-pool", workers=8, users=32, pool=16, http_connections=100)
    warning = preflight.check([need], MACHINE)
    assert warning and "processes on 2 cores" in warning and "\n" not in warning


def test_marker_names_this_harness_and_checkout():
    pid, created, root = parse_marker(make_marker())
    assert pid == os.getpid() and root == str(ROOT)
    assert abs(created - psutil.Process().create_time()) < 0.05
    assert procs.marked_env({})[MARKER_VAR] == make_marker()


def test_a_normal_goodbye_spares_what_the_caller_still_owns(tmp_path, monkeypatch):
    """In-process use (as tests call cli.main): leaving the guard must not reap the caller's own
    marked children, only groups still registered; and the reaper exits."""
    monkeypatch.setattr(procs, "_live", set())
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    mine = procs.spawn(sleep)  # outside the guard: carries the marker, never registered
    try:
        with procs.reaper_guard():
            stopped = procs.spawn(sleep)
            leaked = procs.spawn(sleep)  # registered and never stopped: the reaper's business
            reaper = procs._reaper
            assert reaper is not None and reaper.poll() is None
            procs.stop_tree(stopped)
        assert reaper.poll() is not None, "the reaper must exit when the guard ends"
        assert leaked.wait(timeout=5) is not None, "a registered group left running is stopped"
        assert mine.poll() is None, "the caller's own child must survive a normal goodbye"
    finally:
        for proc in (mine, leaked):
            procs.stop_tree(proc)
