"""Run Locust headless as a subprocess for one cell (importing Locust would gevent-patch us).

Raw outputs kept per cell: locust_stats.csv & co (Locust's own, bucketed, includes warm-up),
locust.json (complete, unlike the possibly stale final CSV), requests.csv (exact per-request
times, written by scenarios/_base.py) and locust.log.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import prog
from harness.run.launch import LOOPBACK, ROOT, free_port, log_tail
from harness.run.remote import Hub
from harness.system import procs

TAIL_S = 1.0  # run a little past the window so the window's last requests complete inside the run


class DriveError(RuntimeError):
    """Locust could not run the cell; the message says why."""


@dataclass
class LocustRun:
    proc: subprocess.Popen
    raw_dir: Path
    run_time_s: int
    # With remote load workers: this machine's own load workers (a process beside the master) and
    # the hub that announced the cell to the others.
    helpers: list[subprocess.Popen] = field(default_factory=list)
    hub: Hub | None = None
    hub_port: int = 0  # the port this cell's master listens on, announced by the hub

    @property
    def pids(self) -> list[int]:
        """The roots of this machine's load processes (the master's tree, and its workers')."""
        return [self.proc.pid, *(h.pid for h in self.helpers)]

    @property
    def record_path(self) -> Path:
        return self.raw_dir / "requests.csv"

    @property
    def log_path(self) -> Path:
        return self.raw_dir / "locust.log"

    def wait_started(self, timeout: float = 30.0) -> float:
        """Wall-clock time at which Locust started the test (its users begin spawning)."""
        marker = Path(str(self.record_path) + ".start")
        if self.hub is not None:  # the master first waits (bounded) for the remote load workers
            timeout += self.hub.wait_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.exists() and marker.stat().st_size:
                return json.loads(marker.read_text())["t"]
            if self.proc.poll() is not None:
                if self.hub is not None and "Gave up waiting for workers" in _text(self.log_path):
                    raise DriveError(self._missing_workers())
                raise DriveError(f"locust exited with code {self.proc.returncode} before starting: "
                                 f"{log_tail(self.log_path)}")
            time.sleep(0.02)
        raise DriveError(f"locust did not start within {timeout:.0f}s: {log_tail(self.log_path)}")

    def _missing_workers(self) -> str:
        assert self.hub is not None
        joined = self.hub.joined()
        if joined < self.hub.expected:
            return (f"only {joined} of {self.hub.expected} remote load worker(s) came to {self.hub.address} "
                    f"within {self.hub.wait_s:g} s (start `{prog.name()} load-worker --master "
                    f"{self.hub.address}` on each load machine, or raise --remote-wait)")
        return (f"the {joined} remote load worker(s) took the cell at {self.hub.address} but not all load "
                f"workers reached the Locust master on port {self.hub_port} within {self.hub.wait_s:g} s "
                "(a firewall, or a worker whose harness files differ? see locust.log and the load "
                "workers' output)")

    def end(self) -> None:
        """End the test now that the window is over: on SIGTERM Locust stops its users, fires its
        quitting event (our recorder writes requests.csv) and writes its own outputs. Its -t run
        time stays as the bound if this is never called."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def finish(self, timeout: float) -> int:
        """Wait for Locust to end on its own; past `timeout` it is killed and that is an error."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.stop_tree(self.proc)
            raise DriveError(f"locust overran its deadline by {timeout:.0f}s and was stopped") from None
        procs.stop_tree(self.proc)  # reaps; nothing should be left, but make sure
        self._stop_helpers()
        # 0 = all fine, 1 = some requests failed (data, not a crash); anything else is a crash.
        if code not in (0, 1):
            raise DriveError(f"locust crashed with exit code {code}: {log_tail(self.log_path)}")
        if not self.record_path.exists():
            raise DriveError(f"locust wrote no request record: {log_tail(self.log_path)}")
        return code

    def stop(self) -> None:
        procs.stop_tree(self.proc)
        self._stop_helpers()

    def _stop_helpers(self) -> None:
        """Local workers quit with their master; the remote ones are told the cell is closed."""
        for helper in self.helpers:
            procs.stop_tree(helper)
        if self.hub is not None:
            self.hub.close_cell()


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def scenario_file(scenario: str) -> Path:
    return ROOT / "scenarios" / f"{scenario}.py"


def start_locust(scenario: str | list[Path], url: str, users: int, seconds: float, raw_dir: Path,
                 timeout_s: float = 10.0, probe_workers: int = 1, env: dict[str, str] | None = None,
                 processes: int = 1, hub: Hub | None = None, cell_id: str = "") -> LocustRun:
    """Start `users` closed-loop work users plus one /health probe user per worker, for `seconds`
    (+ tail).

    `scenario` is a built-in scenario's name or the Locust files to load together; `env` adds
    settings the scenario files read (BENCH_PATH, BENCH_HEALTH_PATH, BENCH_RATE...). `processes` > 1
    runs Locust as a master and that many forked workers. With a `hub` (--remote-load-workers),
    the master also waits for that many workers from other machines, to which the hub announces
    the cell `cell_id`.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    files = [scenario_file(scenario)] if isinstance(scenario, str) else scenario
    run_time = math.ceil(seconds + TAIL_S)
    total = users + probe_workers  # the probe users are fixed_count users, spawned first
    cmd = [
        sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in files),
        "--headless", "-H", url, "-u", str(total), "-r", str(max(total, 50)), "-t", f"{run_time}s",
        "--stop-timeout", "0", "--only-summary", "--loglevel", "WARNING",
        "--csv", str(raw_dir / "locust"), "--logfile", str(raw_dir / "locust.log"),
    ]
    full_env = {**clean_env(), **(env or {}), "BENCH_RECORD": str(raw_dir / "requests.csv"),
                "BENCH_FIRST_ERROR": str(raw_dir / "first_error.json"),
                "BENCH_TIMEOUT": str(timeout_s), "BENCH_PROBE_WORKERS": str(probe_workers)}
    if hub is not None:
        return _start_with_remote(cmd, files, full_env, raw_dir, run_time, processes, hub, cell_id)
    if processes > 1:
        # Locust forks N workers under a master. Never --csv-full-history (it crashes --processes
        # workers); no --json-file either, since forked workers keep that option and each would
        # overwrite the master's file with its own partial stats. The exact records are ours anyway.
        # The master listens on loopback only, on a free port (Locust's default binds every
        # interface on 5557, which a second harness on this machine would also want).
        port = str(free_port())
        cmd += ["--processes", str(processes), "--master-bind-host", LOOPBACK, "--master-bind-port", port,
                "--master-host", LOOPBACK, "--master-port", port]
    else:
        cmd += ["--json-file", str(raw_dir / "locust")]
    proc = procs.spawn(cmd, env=full_env, log_path=raw_dir / "locust.out", cwd=ROOT, role="locust")
    return LocustRun(proc, raw_dir, run_time)


def _start_with_remote(cmd: list[str], files: list[Path], env: dict[str, str], raw_dir: Path, run_time: int,
                       processes: int, hub: Hub, cell_id: str) -> LocustRun:
    """A master that waits (bounded) for `processes` local workers plus the hub's remote ones.

    Not `--processes`: it fixes the number of workers the master waits for to the local ones, and
    a worker joining after the start gets no users. So the master runs alone (`--master
    --expect-workers`) and this machine's workers are one more process (`--worker [--processes N]`).
    No --json-file, as with --processes: the exact records are ours anyway.
    """
    port = free_port(hub.host)
    cmd = [*cmd, "--master", "--master-bind-host", hub.host, "--master-bind-port", str(port),
           "--expect-workers", str(processes + hub.expected),
           "--expect-workers-max-wait", str(math.ceil(hub.wait_s))]
    proc = procs.spawn(cmd, env=env, log_path=raw_dir / "locust.out", cwd=ROOT, role="locust")
    run = LocustRun(proc, raw_dir, run_time, hub=hub, hub_port=port)
    try:
        connect = LOOPBACK if hub.host == "0.0.0.0" else hub.host
        worker = [sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in files), "--worker",
                  "--master-host", connect, "--master-port", str(port), "--loglevel", "WARNING",
                  "--logfile", str(raw_dir / "locust-workers.log")]
        if processes > 1:
            worker += ["--processes", str(processes)]
        run.helpers.append(procs.spawn(worker, env=env, log_path=raw_dir / "locust-workers.out", cwd=ROOT,
                                       role="locust"))
        hub.open_cell(cell_id, port, env, files)
    except BaseException:
        run.stop()
        raise
    return run


def clean_env() -> dict[str, str]:
    import os

    # Locust must not pick up a user's locust.conf/LOCUST_* settings (nor a stray BENCH_* setting of
    # the scenario files) and change the experiment.
    return {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "BENCH_"))}
