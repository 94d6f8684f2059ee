"""Shared pieces of the Locust scenarios: the closed-loop work user, the /health probe user, and a
recorder of exact per-request times.

Locust's own percentiles are bucketed (10 ms steps above 100 ms, 100 ms above 1 s) and its stats
include warm-up. When BENCH_RECORD names a file, every request's start time, latency (ms, float)
and outcome are written there at exit, and the test's start time to BENCH_RECORD + ".start", so
the harness computes exact percentiles over its own measured window.

Files starting with "_" are skipped when Locust is pointed at this folder.
"""

from __future__ import annotations

import csv
import json
import os
import time

from gevent.event import Event
from locust import FastHttpUser, constant, constant_pacing, events, task

TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT", "10"))  # a request slower than this is a failure
HEALTH_NAME = "health"
DISCOVER_NAME = "health-discover"  # the probe's search for a worker of its own (never in the window)
PROBE_WORKERS = max(1, int(os.environ.get("BENCH_PROBE_WORKERS", "1")))
PROBE_PACING_S = 0.04  # 25 req/s per worker: a 5 s window holds the 100 samples a p99 needs
_records: list[tuple[float, float, str, int, int | None]] = []
_record_path = os.environ.get("BENCH_RECORD")
# Work users wait until every probe holds an open connection: on a blocked loop a *new* connection
# can wait seconds to be accepted, and the probe is meant to time requests, not the accept queue.
_probe_connected = Event()
_probes_ready: list[int] = []
_claimed_pids: set[int] = set()


class WorkUser(FastHttpUser):
    """Closed loop: each user sends its next request as soon as the previous one completes."""

    abstract = True
    wait_time = constant(0)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S
    path = "/"
    stats_name = "work"

    def on_start(self) -> None:
        _probe_connected.wait(timeout=5.0)

    @task
    def work(self) -> None:
        self.client.get(self.path, name=self.stats_name)


def worker_pid(response) -> int | None:
    """The worker that answered a /health request (every target's /health names its pid)."""
    try:
        pid = response.json().get("pid")
    except Exception:  # a failed or foreign response: unknown worker
        return None
    return pid if isinstance(pid, int) else None


class HealthProbe(FastHttpUser):
    """One user per worker (BENCH_PROBE_WORKERS), each ~25 req/s on the cheap /health over a
    connection held to a worker of its own: a probe on one worker cannot see another one stall."""

    fixed_count = PROBE_WORKERS
    wait_time = constant_pacing(PROBE_PACING_S)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S

    def on_start(self) -> None:
        try:
            self._claim_worker()
        finally:
            _probes_ready.append(1)
            if len(_probes_ready) >= PROBE_WORKERS:
                _probe_connected.set()

    def _claim_worker(self) -> None:
        """Reconnect until this connection reaches a worker no other probe holds (bounded tries;
        the harness checks afterwards which workers the probe really reached)."""
        for _ in range(8 * PROBE_WORKERS):
            with self.client.get("/health", name=DISCOVER_NAME, catch_response=True) as resp:
                pid = worker_pid(resp)
            if pid is not None and pid not in _claimed_pids:
                _claimed_pids.add(pid)
                return
            # Ask the server to close this connection: the next request opens a new one, which the
            # kernel (or the next idle worker) may hand to another worker.
            self.client.get("/health", name=DISCOVER_NAME, headers={"Connection": "close"})

    @task
    def health(self) -> None:
        self.client.get("/health", name=HEALTH_NAME)


if _record_path:
    @events.test_start.add_listener
    def _started(environment, **_kw) -> None:
        with open(_record_path + ".start", "w") as fh:
            json.dump({"t": time.time(), "pid": os.getpid()}, fh)

    @events.request.add_listener
    def _record(name, response_time, exception=None, start_time=None, response=None, **_kw) -> None:
        started = start_time if start_time is not None else time.time() - response_time / 1000
        pid = worker_pid(response) if name == HEALTH_NAME and exception is None else None
        _records.append((started, response_time, name, 0 if exception else 1, pid))

    @events.quitting.add_listener
    def _dump(environment, **_kw) -> None:
        with open(_record_path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["start", "ms", "name", "ok", "worker"])
            out.writerows((f"{s:.6f}", f"{ms:.3f}", n, ok, "" if pid is None else pid)
                          for s, ms, n, ok, pid in _records)
