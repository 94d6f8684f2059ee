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
_records: list[tuple[float, float, str, int]] = []
_record_path = os.environ.get("BENCH_RECORD")
# Work users wait until the probe holds an open connection: on a blocked loop a *new* connection
# can wait seconds to be accepted, and the probe is meant to time requests, not the accept queue.
_probe_connected = Event()


class WorkUser(FastHttpUser):
    """Closed loop: each user sends its next request as soon as the previous one completes."""

    abstract = True
    wait_time = constant(0)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S
    path = "/"
    stats_name = "work"

    def on_start(self) -> None:
        _probe_connected.wait(timeout=2.0)

    @task
    def work(self) -> None:
        self.client.get(self.path, name=self.stats_name)


class HealthProbe(FastHttpUser):
    """One user, ~10 req/s, on the cheap /health: shows what a busy worker does to a neighbour."""

    fixed_count = 1
    wait_time = constant_pacing(0.1)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S

    def on_start(self) -> None:
        try:
            self.client.get("/health", name=HEALTH_NAME)
        finally:
            _probe_connected.set()

    @task
    def health(self) -> None:
        self.client.get("/health", name=HEALTH_NAME)


if _record_path:
    @events.test_start.add_listener
    def _started(environment, **_kw) -> None:
        with open(_record_path + ".start", "w") as fh:
            json.dump({"t": time.time(), "pid": os.getpid()}, fh)

    @events.request.add_listener
    def _record(name, response_time, exception=None, start_time=None, **_kw) -> None:
        started = start_time if start_time is not None else time.time() - response_time / 1000
        _records.append((started, response_time, name, 0 if exception else 1))

    @events.quitting.add_listener
    def _dump(environment, **_kw) -> None:
        with open(_record_path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["start", "ms", "name", "ok"])
            out.writerows((f"{s:.6f}", f"{ms:.3f}", n, ok) for s, ms, n, ok in _records)
