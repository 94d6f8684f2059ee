"""Reliability: no orphans ever, nothing finished lost, a failed cell is a row, the upstream watchdog,
loopback by default.

Every test that starts processes records every descendant it ever sees (pid + create time, so a
reused pid cannot fool it) and asserts that none is still running afterwards: a child re-parented
to init (a pool process whose uvicorn worker died) still counts.

Sweeps are tiny (1 worker, 4 users, 1-2 s windows). Broken targets live in tests/broken_targets.py
and are registered in targets.TARGETS only for in-process run_sweep/run_cell calls; the bench.py
subprocess tests use real targets.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

import targets
from harness.data import knobs
from harness.data.matrix import build_cells, make_config
from harness.run import drive, launch, sweep
from harness.run.cell import Upstream, run_cell
from harness.run.launch import LOOPBACK, launch_target, start_upstream
from harness.run.sweep import run_sweep
from harness.system import procs
from tests import broken_targets

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS_DIR = ROOT / "scenarios"
# Command-line mark of a multiprocessing "spawn" child: a pool process, or (with --workers > 1)
# a uvicorn worker, which uvicorn also starts with the spawn method.
SPAWNED = "spawn_main"


# --------------------------------------------------------------------------------------- helpers

class Family:
    """Polls the descendants of `root` (default: this process) in a thread; remembers every one seen.

    For this process, children that already existed when the watch started are ignored (a session
    fixture's server, say).
    """

    def __init__(self, root: int | None = None, interval: float = 0.05) -> None:
        self.root_pid = root or os.getpid()
        self.root = psutil.Process(self.root_pid)
        self.ignore = {p.pid for p in self.root.children(recursive=True)} if root is None else set()
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.cmd: dict[tuple[int, float], str] = {}
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Family:
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            kids = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for p in kids:
            if p.pid in self.ignore:
                continue
            try:
                key = (p.pid, p.create_time())
                # Read the command line on every poll: a process caught between fork and exec
                # still shows its parent's (a spawned pool child first looks like uvicorn).
                cmd = " ".join(p.cmdline()) or p.name()
            except psutil.Error:
                continue
            with self._lock:
                self.seen[key] = p
                # Keep every command line seen: the one before exec (the parent's) and after it;
                # a zombie's empty one must not erase them.
                known = self.cmd.get(key, "")
                if cmd not in known:
                    self.cmd[key] = f"{known} | {cmd}" if known else cmd

    def _items(self):
        with self._lock:
            return list(self.seen.items())

    def running(self, needle: str = "") -> list[str]:
        """Command lines of processes seen that are running now (zombies are not running)."""
        out = []
        for key, p in self._items():
            if needle in self.cmd[key] and _running(p):
                out.append(f"{p.pid}: {self.cmd[key][:160]}")
        return out

    def count(self, needle: str) -> int:
        return sum(needle in self.cmd[key] for key, _ in self._items())

    def survivors(self) -> list[str]:
        """Processes seen that still run, or that are our own children and were never reaped.

        Whatever is listed is then SIGKILLed (and our zombies reaped), so a failing test leaves
        nothing behind either.
        """
        self.poll()
        out = self.running()
        for key, p in self._items():
            try:
                if _running(p):
                    p.kill()
                elif p.status() == psutil.STATUS_ZOMBIE and p.ppid() == os.getpid():
                    out.append(f"{p.pid} (unreaped zombie): {self.cmd[key][:160]}")
                    os.waitpid(p.pid, 0)
            except (psutil.Error, ChildProcessError):
                pass
        return out


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
             interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"bench.py exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def row_key(row: dict) -> tuple:
    """A row's identity, as --resume sees it (every parameter column)."""
    return knobs.cell_key(row)


def tiny(targets_: list[str], *, scenario: str = "io", workers: int = 1, duration: float = 1.0):
    return make_config("smoke", targets=targets_, scenarios=[scenario], workers=[workers], users=[4],
                       duration=duration, warmup=0.5, adapt_window=False)


def register(monkeypatch, name: str, attr: str) -> str:
    monkeypatch.setitem(targets.TARGETS, name, targets.Target(f"tests.broken_targets:{attr}",
                                                              f"test-only: {attr}", concurrency=None))
    return name


@pytest.fixture(autouse=True)
def own_process_registry(monkeypatch):
    """run_sweep ends with procs.stop_all(), which stops *every* process spawned through procs in
    this interpreter; give each test its own registry so a session fixture's server is not one."""
    monkeypatch.setattr(procs, "_live", set())


@pytest.fixture
def family():
    with Family() as fam:
        yield fam
    assert fam.survivors() == [], "processes outlived the test"  # (and are now killed)


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


# --------------------------------------------------------------------------- a failed cell is a row

def test_failed_cells_are_rows_and_the_sweep_goes_on(tmp_path, monkeypatch, family):
    broken = [
        register(monkeypatch, "broken-missing", "missing_app"),
        register(monkeypatch, "broken-import", "import_crash_app"),
        register(monkeypatch, "broken-lifespan", "lifespan_crash_app"),
        register(monkeypatch, "broken-worker-exit", "worker_exit_app"),
    ]
    run_dir = tmp_path / "run"
    code = run_sweep(tiny([*broken, "correct-async"], duration=2.0), run_dir, preset="smoke",
                     measure_upstream=False)

    assert code == 1, "a failed cell must make the exit code 1"
    rows = {r["target"]: r for r in read_rows(run_dir)}
    assert list(rows) == [*broken, "correct-async"], "one row per cell, in order, the sweep went on"
    for name in broken:
        r = rows[name]
        assert r["status"] == "failed", (name, r["error"])
        assert r["error"].strip(), f"{name}: a failed row must say why"
        assert r["valid"] == "False"
        assert (r["scenario"], r["workers"], r["users"]) == ("io", "1", "4"), "parameters kept"
    assert "missing_app" in rows["broken-missing"]["error"]
    assert broken_targets.IMPORT_MESSAGE in rows["broken-import"]["error"]
    assert broken_targets.LIFESPAN_MESSAGE in rows["broken-lifespan"]["error"]
    assert f"code {broken_targets.EXIT_CODE}" in rows["broken-worker-exit"]["error"]
    assert rows["correct-async"]["status"] == "ok", rows["correct-async"]["error"]
    assert float(rows["correct-async"]["rps"]) > 0
    assert family.count("uvicorn") >= 5 and family.count("locust") >= 2


def test_worker_dying_mid_cell_with_process_pools(tmp_path, monkeypatch, family):
    """2 uvicorn workers, each owning a process pool; one worker os._exit()s mid-cell, uvicorn's
    supervisor replaces it. The cell fails, and neither the dead worker's pool children (re-parented
    away from us) nor the replacement's survive."""
    name = register(monkeypatch, "broken-pool-exit", "pool_exit_app")
    run_dir = tmp_path / "run"
    code = run_sweep(tiny([name], scenario="cpu", workers=2, duration=2.0), run_dir, preset="smoke",
                     measure_upstream=False)
    assert code == 1
    [row] = read_rows(run_dir)
    assert row["status"] == "failed"
    assert "died" in row["error"] or "exited" in row["error"], row["error"]
    assert family.count(SPAWNED) >= 2 + 2 * 2, "2 workers, each with a pool of 2, expected"


def test_normal_end_stops_pool_children(tmp_path, family):
    run_dir = tmp_path / "run"
    code = run_sweep(tiny(["process-pool"], scenario="cpu", workers=2), run_dir, preset="smoke",
                     measure_upstream=False)
    [row] = read_rows(run_dir)
    assert code == 0, row["error"]
    pool = targets.default_pool_size("process-pool")
    assert family.count(SPAWNED) >= 2 + 2 * pool, "2 workers, each with a pool of POOL_SIZE, expected"
    assert family.count("upstream.server") == 1


def test_port_conflict_is_a_failed_row(tmp_path, monkeypatch, family):
    """Another program takes the port between free_port() and uvicorn's bind."""
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(launch, "free_port", lambda host=LOOPBACK: taken)
        cfg = tiny(["correct-async"])
        run_dir = tmp_path / "run"
        code = run_sweep(cfg, run_dir, preset="smoke", measure_upstream=False)
    assert code == 1
    [row] = read_rows(run_dir)
    assert row["status"] == "failed"
    assert "in use" in row["error"].lower(), row["error"]


CRASHING_SCENARIO = f'''
import os, sys
sys.path.insert(0, {str(SCENARIOS_DIR)!r})
import gevent
from locust import events
from _base import HealthProbe, WorkUser

class IoUser(WorkUser):
    path = "/io"

@events.test_start.add_listener
def _crash_soon(environment, **_kw):
    gevent.spawn_later(0.8, os._exit, 7)
'''


def test_locust_crash_is_a_failed_row(tmp_path, monkeypatch, family):
    fake_root = tmp_path / "fake_root"
    (fake_root / "scenarios").mkdir(parents=True)
    (fake_root / "scenarios" / "io.py").write_text(CRASHING_SCENARIO)
    monkeypatch.setattr(drive, "ROOT", fake_root)
    run_dir = tmp_path / "run"
    code = run_sweep(tiny(["correct-async"]), run_dir, preset="smoke", measure_upstream=False)
    assert code == 1
    [row] = read_rows(run_dir)
    assert row["status"] == "failed"
    assert "locust" in row["error"].lower() and "code 7" in row["error"], row["error"]
    assert family.count("locust") == 1


def test_term_ignored_escalates_to_kill(tmp_path, monkeypatch, family):
    """A worker and pool children that ignore SIGTERM: stop_tree must wait, then SIGKILL them all."""
    name = register(monkeypatch, "stubborn", "stubborn_app")
    real_stop_tree = procs.stop_tree
    ended: dict[str, int] = {}

    def recording_stop_tree(proc, grace: float = 5.0):
        real_stop_tree(proc, grace)
        ended[" ".join(map(str, proc.args))] = proc.returncode

    monkeypatch.setattr(procs, "stop_tree", recording_stop_tree)
    run_dir = tmp_path / "run"
    code = run_sweep(tiny([name]), run_dir, preset="smoke", measure_upstream=False)
    [row] = read_rows(run_dir)
    assert code == 0, row["error"]
    assert family.count(SPAWNED) >= 2, "the stubborn pool's children"
    [uvicorn_code] = [rc for cmd, rc in ended.items() if "uvicorn" in cmd]
    assert uvicorn_code == -signal.SIGKILL, f"uvicorn ended with {uvicorn_code}: SIGTERM was not ignored?"


def test_orphaned_pool_children_ignoring_term_are_killed(tmp_path, monkeypatch):
    name = register(monkeypatch, "broken-stubborn-pool-exit", "stubborn_pool_exit_app")
    with Family() as fam:
        try:
            code = run_sweep(tiny([name], scenario="cpu", duration=2.0), tmp_path / "run",
                             preset="smoke", measure_upstream=False)
        finally:
            survivors = fam.survivors()  # (and killed: nothing is left behind whatever happens)
    [row] = read_rows(tmp_path / "run")
    assert code == 1 and row["status"] == "failed", row["error"]
    assert fam.count(SPAWNED) >= 2
    assert survivors == [], "pool children outlived their dead worker"


# --------------------------------------------------------------------------- nothing finished is lost

def test_rows_appended_as_cells_end_and_upstream_watchdog(tmp_path, monkeypatch, family):
    """Each row is on disk before the next cell starts; the upstream killed between cells is
    restarted and the restart recorded in meta.json."""
    run_dir = tmp_path / "run"
    real_run_cell = sweep.run_cell
    upstream_pids: list[tuple[int, float]] = []  # (pid, start time): pids are reused on a busy box
    rows_at_start: list[int] = []

    def run_cell_then_kill_upstream(cell, run_dir_, upstream: Upstream, **kwargs):
        rows_at_start.append(len(read_rows(run_dir_)))
        upstream_pids.append((upstream.pid, psutil.Process(upstream.pid).create_time()))
        row = real_run_cell(cell, run_dir_, upstream, **kwargs)
        if len(upstream_pids) == 1:
            os.kill(upstream.pid, signal.SIGKILL)
            wait_for(lambda: psutil.Process(upstream.pid).status() == psutil.STATUS_ZOMBIE, 10,
                     "the killed upstream to die")
        return row

    monkeypatch.setattr(sweep, "run_cell", run_cell_then_kill_upstream)
    code = run_sweep(tiny(["correct-async", "fake-async"]), run_dir, preset="smoke",
                     measure_upstream=False)
    rows = read_rows(run_dir)
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    assert code == 0
    assert rows_at_start == [0, 1], "the first row must be in results.csv before the second cell"
    assert len(set(upstream_pids)) == 2, "the second cell must get a new upstream"
    meta = meta_of(run_dir)
    assert meta["upstream_restarts"] == 1
    assert meta["host"] == LOOPBACK
    assert family.count("upstream.server") == 2


# --------------------------------------------------------------------------- loopback by default

def _listening_hosts(pid: int) -> set[str]:
    hosts = set()
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                hosts.add(conn.laddr.ip)
    return hosts


def test_upstream_and_target_bind_loopback(tmp_path, family):
    upstream = start_upstream(tmp_path / "upstream.log")
    try:
        assert urlsplit(upstream.url).hostname == "127.0.0.1"
        assert _listening_hosts(upstream.proc.pid) == {"127.0.0.1"}
        target = launch_target(
            targets.import_string("correct-async"), workers=1, loop="uvloop",
            env={"UPSTREAM_URL": upstream.url}, metrics_dir=tmp_path / "metrics",
            log_path=tmp_path / "uvicorn.log")
        try:
            assert urlsplit(target.url).hostname == "127.0.0.1"
            assert _listening_hosts(target.proc.pid) == {"127.0.0.1"}
        finally:
            target.stop()
    finally:
        upstream.stop()


def test_run_cell_directly_never_raises_for_a_broken_target(tmp_path, monkeypatch, family):
    """run_cell's contract on its own (no sweep around it): a failed row, children stopped."""
    name = register(monkeypatch, "broken-lifespan", "lifespan_crash_app")
    [cell] = build_cells(tiny([name]))
    upstream = start_upstream(tmp_path / "upstream.log")
    try:
        row = run_cell(cell, tmp_path, Upstream(upstream.url, upstream.proc.pid, None))
    finally:
        upstream.stop()
    assert row["status"] == "failed" and broken_targets.LIFESPAN_MESSAGE in row["error"]
    assert row["valid"] is False


# --------------------------------------------------------------------------- bench.py: Ctrl-C, SIGTERM

# A 1 s window: these tests signal a cell once it is under load (≥ 1.5 s with the warmup, polled
# every 30 ms) and check rows and processes, not throughput; a longer window only costs suite time.
CLI_DURATION = "1"
CLI_KNOBS = ["--scenarios", "io", "--workers", "1", "--users", "4", "--duration", CLI_DURATION,
             "--warmup", "0.5", "--fixed-window", "--no-plot"]


class Bench:
    """`python bench.py ...` in its own session (as a terminal's Ctrl-C reaches only the harness's
    foreground group, never the children it starts in their own sessions), with its family watched."""

    def __init__(self, tmp_path: Path, *args: str, tag: str = "bench",
                 python_args: list[str] | None = None) -> None:
        self.out_path = tmp_path / f"{tag}.out"
        self.err_path = tmp_path / f"{tag}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, *(python_args or ["bench.py"]), *args], cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)
        self.family = Family(self.proc.pid, interval=0.03).__enter__()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)  # this process only, not its group

    def wait(self, timeout: float = 180.0) -> int:
        """Exit code; `self.leftover` then lists (and the test has killed) whatever outlived it."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.family.__exit__()
            if self.proc.poll() is None:  # never leave it behind, even when the test fails
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.leftover = self.family.survivors()
        return code

    def output(self) -> str:
        return f"--- stdout\n{self.out_path.read_text()}\n--- stderr\n{self.err_path.read_text()}"


# bench.py's own code path with a broken target registered first (a registration made in the
# pytest process cannot reach a subprocess).
WITH_BROKEN_TARGET = (
    "import sys, targets; "
    "targets.TARGETS['broken-lifespan'] = targets.Target('tests.broken_targets:lifespan_crash_app', "
    "'test-only', concurrency=None); "
    "from harness.cli import main; sys.exit(main())"
)


def test_cli_failed_cell_is_a_row_and_exit_code_1(tmp_path):
    run_dir = tmp_path / "run"
    bench = Bench(tmp_path, "run", "--targets", "broken-lifespan,correct-async", *CLI_KNOBS,
                  "--out", str(run_dir), python_args=["-c", WITH_BROKEN_TARGET])
    code = bench.wait()
    assert code == 1, bench.output()
    assert bench.leftover == [], f"orphans after a run with a failed cell\n{bench.output()}"
    rows = read_rows(run_dir)
    assert [(r["target"], r["status"]) for r in rows] == [("broken-lifespan", "failed"),
                                                          ("correct-async", "ok")], bench.output()
    assert broken_targets.LIFESPAN_MESSAGE in rows[0]["error"]
    out = bench.out_path.read_text()
    assert "FAILED" in out and "1 failed" in out, out


def _pool_child_running(bench: Bench) -> bool:
    bench.family.poll()
    return bool(bench.family.running("spawn_main"))


def test_ctrl_c_mid_run_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    names = ["correct-async", "process-pool", "fake-async"]
    bench = Bench(tmp_path, "run", "--targets", ",".join(names), *CLI_KNOBS, "--out", str(run_dir))
    try:
        wait_for(lambda: len(read_rows(run_dir)) >= 1, 120, "the first row", bench.proc)
        # The process-pool cell is in flight: interrupt while its pool children run.
        wait_for(lambda: _pool_child_running(bench), 60, "process-pool's pool children", bench.proc)
        bench.signal(signal.SIGINT)
    finally:
        code = bench.wait()
    assert code == 130, bench.output()
    assert bench.leftover == [], f"orphans after Ctrl-C\n{bench.output()}"
    assert bench.family.count("spawn_main") >= 1 and bench.family.count("uvicorn") >= 2
    assert "interrupted" in bench.err_path.read_text()
    rows = read_rows(run_dir)
    assert [r["target"] for r in rows] == ["correct-async"], "the finished cell is kept, the cut one not"
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert "finished_at" in meta_of(run_dir)

    resume = Bench(tmp_path, "run", "--resume", str(run_dir), "--no-plot", tag="resume")
    code = resume.wait()
    assert code == 0, resume.output()
    assert "2 cells to run (1 already done)" in resume.out_path.read_text()
    assert resume.leftover == [], f"orphans after a normal end\n{resume.output()}"
    rows = read_rows(run_dir)
    assert len(rows) == 3 and len({row_key(r) for r in rows}) == 3, [row_key(r) for r in rows]
    assert [r["target"] for r in rows] == names
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert all(r["workers"] == "1" and r["users"] == "4" and r["duration_s"] == f"{CLI_DURATION}.0"
               for r in rows)


def test_sigterm_mid_run_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    bench = Bench(tmp_path, "run", "--targets", "fake-async,correct-async", *CLI_KNOBS, "--out", str(run_dir))
    try:
        wait_for(lambda: len(read_rows(run_dir)) >= 1, 120, "the first row", bench.proc)
        wait_for(lambda: bench.family.running("correct_async"), 60, "the second cell's uvicorn",
                 bench.proc)
        bench.signal(signal.SIGTERM)
    finally:
        code = bench.wait()
    assert code == 143, bench.output()
    assert bench.leftover == [], f"orphans after SIGTERM\n{bench.output()}"
    rows = read_rows(run_dir)
    assert [r["target"] for r in rows] == ["fake-async"]

    refused = Bench(tmp_path, "run", "--resume", str(run_dir), "--users", "8", tag="refused")
    assert refused.wait(60) == 2, refused.output()
    assert len(refused.err_path.read_text().splitlines()) == 1
    assert refused.family.seen == {}
    assert len(read_rows(run_dir)) == 1

    resume = Bench(tmp_path, "run", "--resume", str(run_dir), "--users", "4", "--workers", "1",
                   "--no-plot", tag="resume")
    assert resume.wait() == 0, resume.output()
    assert resume.leftover == []
    rows = read_rows(run_dir)
    meta = meta_of(run_dir)
    planned = build_cells(make_config(meta["preset"], **meta["knobs"]))
    assert sorted(row_key(r) for r in rows) == sorted(c.key for c in planned)
    assert sorted((r["target"], r["scenario"], r["workers"], r["users"]) for r in rows) == [
        ("correct-async", "io", "1", "4"), ("fake-async", "io", "1", "4")]


@pytest.mark.parametrize("sig,expect_code,phase,needle", [
    (signal.SIGINT, 130, "upstream capacity burst", "harness.system.burst"),
    (signal.SIGTERM, 143, "first target launch", "uvicorn"),
], ids=["sigint-during-burst", "sigterm-during-launch"])
def test_signal_before_any_row(tmp_path, sig, expect_code, phase, needle):
    run_dir = tmp_path / "run"
    bench = Bench(tmp_path, "run", "--targets", "process-pool", *CLI_KNOBS, "--out", str(run_dir))
    try:
        wait_for(lambda: bench.family.running(needle), 60, phase, bench.proc, interval=0.02)
        bench.signal(sig)
    finally:
        code = bench.wait()
    assert code == expect_code, bench.output()
    assert bench.leftover == [], f"orphans after a signal during the {phase}\n{bench.output()}"
    assert read_rows(run_dir) == []
    assert (run_dir / "meta.json").is_file(), "the folder stays resumable"


def _process_pool_run_under_load(tmp_path) -> Bench:
    """A CLI run of the process-pool target, returned once its cell is under load."""
    bench = Bench(tmp_path, "run", "--targets", "process-pool", *CLI_KNOBS, "--out", str(tmp_path / "run"))
    try:
        wait_for(lambda: _pool_child_running(bench) and bench.family.running("locust"), 120,
                 "the cell under load", bench.proc)
    except BaseException:
        bench.wait()
        raise
    return bench


def test_ctrl_c_twice(tmp_path):
    """An impatient user presses Ctrl-C again while the harness is stopping its children."""
    bench = _process_pool_run_under_load(tmp_path)
    try:
        bench.signal(signal.SIGINT)
        time.sleep(0.1)
        bench.signal(signal.SIGINT)
    finally:
        code = bench.wait()
    assert bench.leftover == [], f"orphans after a double Ctrl-C\n{bench.output()}"
    assert code == 130, bench.output()


def test_ctrl_c_held_down(tmp_path):
    """Ctrl-C pressed again and again (every 50 ms) until the harness exits."""
    bench = _process_pool_run_under_load(tmp_path)
    try:
        deadline = time.monotonic() + 20
        while bench.proc.poll() is None and time.monotonic() < deadline:
            bench.signal(signal.SIGINT)
            time.sleep(0.05)
    finally:
        code = bench.wait()
    survivors = bench.leftover
    assert code == 130, bench.output()[-1500:]
    assert survivors == [], f"orphans after Ctrl-C held down\n{bench.output()[-1500:]}"
