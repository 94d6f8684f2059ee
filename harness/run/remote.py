"""Load processes on other machines: the run's meeting point (`--remote-load-workers K --master-bind
HOST:PORT`) that `bench.py load-worker --master HOST:PORT` polls.

Every cell starts a fresh Locust master on a free port of HOST. The hub, a small read-only HTTP
endpoint on HOST:PORT that lives for the whole run, tells the load workers which cell is open, on
which port its master listens, and the cell's settings (the BENCH_* variables the scenario files
read at import). Files are never sent: code from the network is never run. A load worker uses its
own copy of the harness's scenario files (and of your --locustfile), and the hub gives their
SHA-256 so a worker whose copy differs refuses the cell with a clear error instead of measuring
something else.

A new port per cell, not one fixed port: a Locust master asks an unknown worker to reconnect, so a
late worker of the previous cell could otherwise join the next one with the previous settings.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from harness import ROOT

PROTOCOL = 1  # bumped when the hub's answers change shape; a worker refuses another protocol
SCENARIOS = ROOT / "scenarios"
BASE_FILE = SCENARIOS / "_base.py"  # every scenario file imports it: it must match too
# Settings a master may hand a worker: the scenario files' own, never the recorder's output file nor
# anything that changes what Python runs (PYTHONPATH, LD_PRELOAD...).
SENT_PREFIX = "BENCH_"
NOT_SENT = ("BENCH_RECORD", "BENCH_LOAD_WORKER", "BENCH_FIRST_ERROR")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_entries(files: list[Path]) -> list[dict]:
    """How a worker finds each Locust file: a built-in scenario by name, your own file by its name
    and digest (the worker is given its copy with `load-worker --locustfile`)."""
    out = []
    for f in files:
        builtin = f.resolve().parent == SCENARIOS.resolve()
        out.append({"name": f.name, "builtin": builtin, "sha256": sha256(f)})
    return out


def sent_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(SENT_PREFIX) and k not in NOT_SENT}


@dataclass
class _Cell:
    seq: int
    cell_id: str
    locust_port: int
    env: dict[str, str]
    files: list[dict]
    joined: set[str] = field(default_factory=set)


class Hub:
    """The run's meeting point for `--remote-load-workers` (see the module's doc)."""

    def __init__(self, host: str, port: int, expected: int, wait_s: float) -> None:
        self.host, self.port, self.expected, self.wait_s = host, port, expected, wait_s
        self._lock = threading.Lock()
        self._cell: _Cell | None = None
        self._seq = 0
        self._run = uuid.uuid4().hex[:12]  # a worker outliving one run never mistakes the next one's cells
        self._over = False
        self._told_over: set[str] = set()
        self._seen: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Listen on HOST:PORT (OSError if it cannot, e.g. the port is taken)."""
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                if url.path != "/cell":
                    self.send_error(404)
                    return
                worker = (parse_qs(url.query).get("worker") or ["?"])[0][:200]
                body = json.dumps(hub.answer(worker)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # one poll every 0.2 s per worker: not to the console
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="load-worker-hub",
                                        daemon=True)
        self._thread.start()

    def answer(self, worker: str) -> dict:
        """What a polling worker is told: a cell to join, to wait, or that the run is over. A cell is
        handed to the first `expected` workers that ask; any other one waits for the next cell."""
        with self._lock:
            self._seen.add(worker)
            if self._over:
                self._told_over.add(worker)
                return {"protocol": PROTOCOL, "state": "over"}
            cell = self._cell
            if cell is None or (worker not in cell.joined and len(cell.joined) >= self.expected):
                return {"protocol": PROTOCOL, "state": "wait"}
            cell.joined.add(worker)
            return {"protocol": PROTOCOL, "state": "cell", "run": self._run, "seq": cell.seq,
                    "cell": cell.cell_id, "locust_port": cell.locust_port, "env": cell.env,
                    "files": cell.files, "base_sha256": sha256(BASE_FILE)}

    def open_cell(self, cell_id: str, locust_port: int, env: dict[str, str], files: list[Path]) -> None:
        with self._lock:
            self._seq += 1
            self._cell = _Cell(self._seq, cell_id, locust_port, sent_env(env), file_entries(files))

    def close_cell(self) -> None:
        with self._lock:
            self._cell = None

    def joined(self) -> int:
        """Workers that took the open cell (they then start a Locust worker for it)."""
        with self._lock:
            return len(self._cell.joined) if self._cell else 0

    def stop(self, linger_s: float = 2.0) -> None:
        """Tell polling workers the run is over (waiting up to `linger_s` for each one seen to
        hear it, so they exit at once), then stop listening."""
        with self._lock:
            self._over, self._cell = True, None
        deadline = time.monotonic() + linger_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._seen <= self._told_over:
                    break
            time.sleep(0.05)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
