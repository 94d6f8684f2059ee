"""The ASGI servers a target can run under (the `server` knob): one record each, and its command line.

Every server gets the same app (the target's import string, the probe inside it as ASGI middleware
and a lifespan), W worker processes, one loopback port, the cell's event loop and a 3 s graceful
shutdown. What differs is how a connection reaches a worker, and that is recorded here as a fact
(`accept`), because it decides whether the worker share is even:

- uvicorn --workers W: one listening socket shared by W processes (the kernel wakes any of them);
- gunicorn (uvicorn workers) and gunicorn-asgi (gunicorn's own ASGI worker): the arbiter binds, W
  forked workers accept on the inherited socket;
- granian: a Rust runtime in each of W worker processes (threads inside), the app on a Python loop;
- hypercorn: W spawned workers, each binds its own SO_REUSEPORT socket on the same port.

Kept free of heavy imports: the knob table reads `SERVERS` for its choices.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from harness import ROOT


@dataclass(frozen=True)
class ServerKind:
    name: str
    package: str          # the PyPI distribution (pinned in pyproject.toml)
    accept: str           # how connections reach the workers (see the module docstring)
    defaults: str         # options left at the server's own defaults (recorded, not tuned)


SERVERS: dict[str, ServerKind] = {
    "uvicorn": ServerKind("uvicorn", "uvicorn", "one shared socket (--launch reuseport: one per worker)",
                          "http httptools"),
    "gunicorn": ServerKind("gunicorn", "gunicorn + uvicorn-worker", "arbiter's socket, forked workers",
                           "UvicornWorker: loop auto (uvloop), http auto (httptools)"),
    # gunicorn 27.0.1 (pinned) ships gunicorn.workers.gasgi.ASGIWorker: `-k asgi`, its own parser.
    "gunicorn-asgi": ServerKind("gunicorn-asgi", "gunicorn", "arbiter's socket, forked workers",
                                "http parser auto, worker connections 1000"),
    "granian": ServerKind("granian", "granian", "Rust runtime per worker process",
                          "runtime threads 1, blocking threads default, http auto, backpressure default"),
    "hypercorn": ServerKind("hypercorn", "hypercorn", "SO_REUSEPORT socket per worker",
                            "h11/h2 (no httptools), keep-alive 5 s"),
}

GRACE_S = "3"  # seconds a server lets requests finish on stop (uvicorn 0.22+: --timeout-graceful-shutdown)


# A server's worker model that breaks a target's assumption, recognised in its log: the row says
# so in words instead of leaving only the traceback.
KNOWN_BREAKS = {
    "daemonic processes are not allowed to have children":
        "{server} runs its workers as daemonic multiprocessing processes, which may not start child "
        "processes: a target with a process pool cannot run under it",
}


def explain(server: str, log_text: str) -> str:
    """Why the server's worker model failed the target, when the log shows a known break; else ''."""
    return next((why.format(server=server) for sign, why in KNOWN_BREAKS.items() if sign in log_text), "")


def check_combination(server: str, launch: str) -> None:
    """`--launch reuseport` is a uvicorn launch; ValueError (one line) for any other server."""
    if launch != "uvicorn" and server != "uvicorn":
        raise ValueError(f"--launch {launch} is a uvicorn launch option; --server {server} has its own "
                         "accept model: use --launch uvicorn with it")


def command(server: str, import_string: str, *, workers: int, port: int, loop: str, host: str,
            launch: str = "uvicorn", python: str | None = None, root: str | None = None,
            cwd: str | None = None, graceful: bool = True) -> list[str]:
    """The command line that serves `import_string` under `server` on host:port with W workers.

    `python` is the app's own interpreter (--python; default the harness's), `root` where the
    targets package is imported from (a copy of its in-worker modules under --python), `cwd` the
    working directory gunicorn changes to (--chdir). `graceful` False leaves out uvicorn's
    --timeout-graceful-shutdown, which a uvicorn older than 0.22 refuses (an app's own pin)."""
    check_combination(server, launch)
    py = python or sys.executable
    where = str(cwd or root or ROOT)
    bind = f"{host}:{port}"
    if server == "uvicorn":
        return _uvicorn(import_string, workers=workers, port=port, loop=loop, host=host, launch=launch, py=py,
                        root=str(root or ROOT), graceful=graceful)
    if server == "gunicorn":
        # uvicorn_worker.UvicornWorker resolves loop "auto" (uvloop); the asyncio loop needs its
        # config changed, which is what targets.gunicorn_worker's one subclass does.
        worker = "uvicorn_worker.UvicornWorker" if loop == "uvloop" else \
            "targets.gunicorn_worker.AsyncioWorker"
        return [py, "-m", "gunicorn", import_string, "-k", worker, "-w", str(workers), "-b", bind,
                "--chdir", where, "--graceful-timeout", GRACE_S, "--log-level", "warning"]
    if server == "gunicorn-asgi":
        return [py, "-m", "gunicorn", import_string, "-k", "asgi", "--asgi-loop", loop, "--asgi-lifespan",
                "on", "-w", str(workers), "-b", bind, "--chdir", where, "--graceful-timeout", GRACE_S,
                "--log-level", "warning"]
    if server == "granian":
        return [py, "-m", "granian", "--interface", "asgi", "--workers", str(workers), "--host", host,
                "--port", str(port), "--loop", loop, "--log-level", "warning", "--no-ws",
                "--workers-kill-timeout", GRACE_S, import_string]
    if server == "hypercorn":
        return [py, "-m", "hypercorn", import_string, "--workers", str(workers), "--bind", bind,
                "--worker-class", loop, "--graceful-timeout", GRACE_S, "--log-level", "WARNING"]
    raise ValueError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")


def _uvicorn(import_string: str, *, workers: int, port: int, loop: str, host: str, launch: str, py: str,
             root: str, graceful: bool = True) -> list[str]:
    """`uvicorn --workers W` (one shared socket), or W single-worker uvicorns on SO_REUSEPORT."""
    common = [import_string, "--app-dir", root, "--loop", loop, "--http", "httptools",
              "--lifespan", "on", "--no-access-log", "--log-level", "warning"]
    if graceful:
        common += ["--timeout-graceful-shutdown", GRACE_S]
    if launch == "reuseport":
        return [sys.executable, "-m", "harness.system.reuseport", "--workers", str(workers), "--host", host,
                "--port", str(port), "--", *common]
    return [py, "-m", "uvicorn", *common, "--host", host, "--port", str(port),
            "--workers", str(workers)]
