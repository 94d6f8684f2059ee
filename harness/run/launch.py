"""Start the upstream and one target (under its ASGI server) on loopback; wait until *every* worker
serves; stop.

Readiness: each worker appends a `ready` record to METRICS_DIR at the end of its lifespan start-up
(after its clients and pools exist); the target is ready when W distinct live worker processes
of this server have done so *and* /health answers. uvicorn's own "started" line only covers the
first worker.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from harness import ROOT
from harness.data import knobs, servers
from harness.run import app_python
from harness.run.app_python import AppEnv
from harness.system import procs

LOOPBACK = "127.0.0.1"


class LaunchError(RuntimeError):
    """A target or the upstream did not come up; the message says why (with the log's tail)."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 4) -> str:
    """The last lines of a log, on one line, with the last exception line always included."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    text = [t.strip() for t in text if t.strip() and not set(t.strip()) <= set("^~ ")]
    tail = text[-lines:]
    errors = [t for t in text if re.match(r"^[\w.]+(Error|Exception)\b", t)]
    if errors and errors[-1] not in tail:
        tail = [errors[-1], *tail[1:]]
    return " | ".join(tail)


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path
    worker_pids: list[int] = field(default_factory=list)

    def alive(self) -> bool:
        # poll() answers None while another thread holds the Popen's waitpid lock, even for a
        # child that has died: ask the kernel too (a dead, unreaped child is a zombie).
        if self.proc.poll() is not None:
            return False
        try:
            return psutil.Process(self.proc.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def stop(self) -> None:
        procs.stop_tree(self.proc)


def start_upstream(log_path: Path, host: str = LOOPBACK, port: int = 0, timeout: float = 15.0) -> Server:
    """The local 'remote API'; reads its READY line to learn the port it bound."""
    cmd = [sys.executable, "-m", "upstream.server", "--host", host, "--port", str(port)]
    if host != LOOPBACK:
        cmd.append("--allow-non-loopback")
    proc = procs.spawn(cmd, log_path=log_path, cwd=ROOT, stdout=subprocess.PIPE, role="upstream")
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None  # spawned with stdout=PIPE
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read() or b""
        buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            if line.startswith("UPSTREAM READY "):
                return Server(proc, line.split()[-1], log_path, [proc.pid])
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    procs.stop_tree(proc)
    raise LaunchError(f"upstream did not start: {log_tail(log_path) or 'no output'}")


def target_command(import_string: str, workers: int, port: int, loop: str, host: str = LOOPBACK,
                   launch: str = "uvicorn", server: str = "uvicorn", python: str | None = None,
                   root: str | None = None, cwd: str | None = None) -> list[str]:
    """The server's command line (harness/data/servers.py); uvicorn's is today's launch. Under
    --python, uvicorn's graceful-shutdown flag only when that interpreter's uvicorn has it."""
    graceful = not (python and server == "uvicorn") or app_python.uvicorn_graceful(python)
    return servers.command(server, import_string, workers=workers, port=port, loop=loop, host=host,
                           launch=launch, python=python, root=root, cwd=cwd, graceful=graceful)


# Knobs the targets read (the knob table's env vars): only the cell may set them, never the user's
# shell by accident.
TARGET_KNOBS = (*knobs.TARGET_ENV_VARS, "BENCH_APP", "BENCH_APP_DIR", "BENCH_HEALTH_PATH")


def target_base_env() -> dict[str, str]:
    """The harness's environment minus target knobs and UVICORN_* settings (which uvicorn reads)."""
    return {k: v for k, v in os.environ.items() if k not in TARGET_KNOBS and not k.startswith("UVICORN_")}


def ready_pids(metrics_dir: Path) -> set[int]:
    pids = set()
    for path in metrics_dir.glob("worker-*.jsonl"):
        with open(path) as fh:
            for line in fh:
                if '"ready"' in line:
                    pids.add(json.loads(line)["pid"])
                    break
    return pids


def launch_target(
    import_string: str, *, workers: int, loop: str, env: dict[str, str], metrics_dir: Path,
    log_path: Path, host: str = LOOPBACK, port: int | None = None, timeout: float = 60.0,
    launch: str = "uvicorn", health_path: str = "/health", server: str = "uvicorn",
    app_env: AppEnv | None = None,
) -> Server:
    """Start the target under `server` and return once every worker is serving; `app_env` is your
    app's own interpreter, variables and working directory (--python, --env-file, --cwd)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    own = app_env or AppEnv()
    base = target_base_env()
    if own.python or own.cwd:  # the targets package is no longer on the server's own path
        base = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        base.update(app_python.worker_env(own.python, own.root, base))
    # the app's .env first: the harness's knobs and METRICS_DIR win over a file's copy of them
    full_env = {**base, **own.variables, **env, "METRICS_DIR": str(metrics_dir)}
    cmd = target_command(import_string, workers, port, loop, host, launch, server, python=own.python,
                         root=own.root if own.python else None, cwd=own.cwd)
    proc = procs.spawn(cmd, env=full_env, log_path=log_path, cwd=Path(own.cwd) if own.cwd else ROOT,
                       role="target")
    url = f"http://{host}:{port}"
    started = Server(proc, url, log_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise LaunchError(f"{server} exited with code {proc.returncode}: "
                                  f"{_why(server, log_path)}{log_tail(log_path)}")
            family = {proc.pid} | {p.pid for p in procs.descendants(proc.pid)}
            ready = ready_pids(metrics_dir) & family
            if len(ready) >= workers and _health_ok(url, health_path):
                started.worker_pids = sorted(ready)
                return started
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"only {len(ready)}/{workers} workers ready after {timeout:.0f}s: "
                    f"{_why(server, log_path)}{log_tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        started.stop()
        raise


def _why(server: str, log_path: Path) -> str:
    try:
        why = servers.explain(server, log_path.read_text(errors="replace"))
    except OSError:
        return ""
    return f"{why}. " if why else ""


def _health_ok(url: str, path: str = "/health") -> bool:
    try:
        return httpx.get(f"{url}{path}", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
