"""`bench.py load-worker --master HOST:PORT`: a load process on another machine that joins every
cell of a run started with `--remote-load-workers K --master-bind HOST:PORT`.

It polls the run's hub (harness/run/remote.py). For each cell it starts one `locust --worker` with
the cell's settings, pointed at that cell's Locust master; the worker ships its exact records and
its own CPU time to the master, and quits with it. It exits 0 when the run says it is over, 1 when
no run has answered for --wait seconds, 2 when its copy of the Locust files differs from the
master's. Ctrl-C / SIGTERM stop its Locust worker first (harness/system/procs.py, like every child).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from harness.data import prog
from harness.data.address import parse_address
from harness.run.drive import clean_env
from harness.run.launch import ROOT, log_tail
from harness.run.remote import BASE_FILE, PROTOCOL, SCENARIOS, sent_env, sha256
from harness.system import procs

POLL_S = 0.2
# A cell was closed while our Locust worker still runs: it normally quits with its master at once;
# past this grace it is stopped, so it can never join another cell.
CLOSE_GRACE_S = 10.0


class WorkerError(RuntimeError):
    """This worker cannot take part in the run (one-line reason); retrying would not help."""


def say(msg: str) -> None:
    print(f"load-worker: {msg}", flush=True)


def poll(base: str, me: str) -> dict | None:
    """The hub's answer; None while nothing answers there. Something else answering is an error."""
    try:
        resp = httpx.get(f"{base}/cell", params={"worker": me}, timeout=2.0)
    except httpx.HTTPError:
        return None
    try:
        answer = resp.json() if resp.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "state" not in answer:
        raise WorkerError(f"{base} answers, but not as a {prog.name()} run with --remote-load-workers "
                          f"(HTTP {resp.status_code})")
    if answer.get("protocol") != PROTOCOL:
        raise WorkerError(f"{base} speaks hub protocol {answer.get('protocol')}, this worker {PROTOCOL}: "
                          "run the same version of the harness on every machine")
    if answer["state"] == "cell" and not _well_formed(answer):
        raise WorkerError(f"{base} announced a malformed cell")
    return answer


def _well_formed(cell: dict) -> bool:
    try:
        return (isinstance(cell["run"], str) and isinstance(cell["seq"], int)
                and isinstance(cell["cell"], str)
                and 0 < int(cell["locust_port"]) < 65536 and isinstance(cell["env"], dict)
                and isinstance(cell["base_sha256"], str)
                and all(isinstance(f["name"], str) and "/" not in f["name"] and isinstance(f["sha256"], str)
                        for f in cell["files"]))
    except (KeyError, TypeError, ValueError):
        return False


def resolve_files(answer: dict, locustfile: Path | None) -> list[Path]:
    """This machine's copies of the cell's Locust files, each checked against the master's digest."""
    if sha256(BASE_FILE) != answer["base_sha256"]:
        raise WorkerError("scenarios/_base.py differs from the master's: run the same version of the harness "
                          "on every machine")
    out = []
    for entry in answer["files"]:
        name = entry["name"]
        if entry["builtin"]:
            path = SCENARIOS / name
            if not path.is_file() or sha256(path) != entry["sha256"]:
                raise WorkerError(f"scenarios/{name} differs from the master's (or is missing): run the same "
                                  "version of the harness on every machine")
        elif locustfile is None:
            raise WorkerError(f"the run uses your Locust file {name}: give this worker its copy with "
                              "--locustfile FILE")
        elif sha256(locustfile) != entry["sha256"]:
            raise WorkerError(f"--locustfile {locustfile} differs from the master's {name}")
        else:
            path = locustfile
        out.append(path)
    return out


def start_worker(answer: dict, files: list[Path], host: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in files), "--worker",
           "--master-host", host, "--master-port", str(int(answer["locust_port"])),
           "--loglevel", "WARNING", "--logfile", str(log)]
    # Only the scenario files' own settings are taken from the network (see remote.sent_env).
    env = {**clean_env(), **sent_env({str(k): str(v) for k, v in answer["env"].items()}),
           "BENCH_LOAD_WORKER": "remote"}
    return procs.spawn(cmd, env=env, log_path=log.with_suffix(".out"), cwd=ROOT, role="locust")


def run(master: str, wait_s: float, locustfile: Path | None = None, log_dir: Path | None = None) -> int:
    """Join every cell of the run at `master` until it is over (see the module's doc)."""
    host, port = parse_address(master, "--master")
    base = f"http://{host}:{port}"
    me = f"{socket.gethostname()}-{os.getpid()}"
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bench-load-worker-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"{me} polling {base} (Locust logs in {log_dir})")
    child: subprocess.Popen | None = None
    child_log = log_dir / "none.log"
    child_cell: tuple | None = None
    last_cell: tuple | None = None
    gone_since: float | None = time.monotonic()  # counts until the run first answers
    closed_since: float | None = None
    try:
        while True:
            answer = poll(base, me)
            now = time.monotonic()
            if answer is None:
                gone_since = gone_since or now
                if now - gone_since > wait_s:
                    say(f"no run answered at {base} for {wait_s:g} s: stopping")
                    return 1
            else:
                gone_since = None
                if answer["state"] == "over":
                    say("the run is over")
                    return 0
            here = (answer["run"], answer["seq"]) if answer and answer["state"] == "cell" else None
            if child is not None and child.poll() is not None:
                note = "" if child.returncode in (0, 1) else f": {log_tail(child_log)}"
                name = child_cell[2] if child_cell else "?"
                say(f"cell {name} done (locust exit {child.returncode}){note}")
                procs.stop_tree(child)
                child = None
            if child is not None and answer is not None and here != (child_cell or ())[:2]:
                closed_since = closed_since or now  # closed by the run: our worker quits with its master
                if now - closed_since > CLOSE_GRACE_S:
                    say("the cell closed but its Locust worker did not quit: stopped")
                    procs.stop_tree(child)
                    child = None
            else:
                closed_since = None
            if child is None and answer is not None and here is not None and here != last_cell:
                last_cell = here
                files = resolve_files(answer, locustfile)
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in answer["cell"])[:120]
                child_log = log_dir / f"{answer['seq']:04d}-{safe}.log"
                child = start_worker(answer, files, host, child_log)
                child_cell = (*here, answer["cell"])
                say(f"joined cell {answer['cell']} (Locust master port {answer['locust_port']})")
            time.sleep(POLL_S)
    finally:
        if child is not None:
            procs.stop_tree(child)
