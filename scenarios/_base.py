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
import random
import socket
import time
import uuid

from gevent import sleep, spawn
from gevent.event import Event
from gevent.pool import Pool
from locust import FastHttpUser, constant, constant_pacing, events, task
from locust.rpc import Message
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT", "10"))  # a request slower than this is a failure
HEALTH_NAME = "health"
# The cheap endpoint the probe times: /health on the built-in targets, another path on your own app.
HEALTH_PATH = os.environ.get("BENCH_HEALTH_PATH") or "/health"
DISCOVER_NAME = "health-discover"  # the probe's search for a worker of its own (never in the window)
PROBE_WORKERS = max(1, int(os.environ.get("BENCH_PROBE_WORKERS", "1")))
PROBE_PACING_S = 0.04  # 25 req/s per worker: a 5 s window holds the 100 samples a p99 needs
# Open loop (BENCH_RATE requests/s in all, shared by BENCH_SCHEDULERS scheduling users): sends at
# intended times, at most BENCH_MAX_IN_FLIGHT in flight; latency is counted from the intended time.
OPEN_RATE = float(os.environ.get("BENCH_RATE") or 0)
SCHEDULERS = max(1, int(os.environ.get("BENCH_SCHEDULERS") or 1))
IN_FLIGHT = max(1, int(os.environ.get("BENCH_MAX_IN_FLIGHT") or 1000) // SCHEDULERS)
POISSON = os.environ.get("BENCH_ARRIVALS") == "poisson"
DROPPED_NAME = "dropped"
UNIQUE = "{{unique}}"  # in a request body: a fresh value per request (a route that creates something unique)
_records: list[tuple] = []  # raw: (start, ms, name, exception, context, /health response or None)
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
    if OPEN_RATE:
        concurrency = IN_FLIGHT  # one connection per request in flight: no queue inside the client

    def on_start(self) -> None:
        if not _is_worker(self.environment):  # the probe runs in one load process only
            _probe_connected.wait(timeout=5.0)

    @task
    def work(self) -> None:
        if OPEN_RATE:
            self._open_loop(OPEN_RATE / SCHEDULERS)
        else:
            self._request()

    def _request(self, context: dict | None = None) -> None:
        """One work request (a subclass may send another method, a body, headers)."""
        if context is None:
            self.client.get(self.path, name=self.stats_name)
        else:
            self.client.get(self.path, name=self.stats_name, context=context)

    def _open_loop(self, rate: float) -> None:
        """Schedule sends at t0 + i/rate (or Poisson gaps) whatever the server does; never returns.

        A send due while IN_FLIGHT requests are outstanding cannot start: it is recorded as dropped
        at its intended time (k6's dropped_iterations). A scheduler running late sends at once, and
        the lateness counts in the latency, since latency is measured from the intended time.
        """
        pool = Pool(IN_FLIGHT)
        rng = random.Random()
        due = time.time()
        try:
            while True:
                due += rng.expovariate(rate) if POISSON else 1.0 / rate
                delay = due - time.time()
                if delay > 0:
                    sleep(delay)
                if pool.full():
                    _records.append((due, 0.0, DROPPED_NAME, "in-flight bound", {"intended": due}, None))
                else:
                    pool.spawn(self._send, due)
        finally:
            pool.kill(block=False)

    def _send(self, intended: float) -> None:
        self._request({"intended": intended})


def fresh_body(body: str | None) -> str | None:
    """A request's body: each {{unique}} in `body` a new uuid4 hex (the same one throughout)."""
    if body is None or UNIQUE not in body:
        return body
    return body.replace(UNIQUE, uuid.uuid4().hex)


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
            with self.client.get(HEALTH_PATH, name=DISCOVER_NAME, catch_response=True) as resp:
                pid = worker_pid(resp)
            if pid is not None and pid not in _claimed_pids:
                _claimed_pids.add(pid)
                return
            # Ask the server to close this connection: the next request opens a new one, which the
            # kernel (or the next idle worker) may hand to another worker.
            self.client.get(HEALTH_PATH, name=DISCOVER_NAME, headers={"Connection": "close"})

    @task
    def health(self) -> None:
        self.client.get(HEALTH_PATH, name=HEALTH_NAME)


def _is_worker(environment) -> bool:
    return isinstance(environment.runner, WorkerRunner)


# The recorder runs in every process that sends requests. A load worker (--load-processes N, or
# `bench.py load-worker` on another machine) ships its records to the master with each stats report
# (every 3 s, and a final one when told to quit); the master writes them all to BENCH_RECORD.
#
# Each worker also ships its own CPU time (sampled every CPU_SAMPLE_S), so the generator-CPU guard
# covers load processes on other machines, and the time it sent each report: a worker on another
# machine may run on another clock, and its records are moved onto the master's by the smallest
# (receive - send) difference seen (error: at most that report's one-way delay).
CPU_SAMPLE_S = 0.25
if _record_path or os.environ.get("BENCH_LOAD_WORKER"):
    _gathered: dict[str, dict] = {}  # master: worker id → what it reported (records, CPU, clock)
    _final: set[str] = set()  # master: workers whose last report (sent when stopped) arrived
    _from_workers: dict[str, list] = {}  # master: each worker's records, already plain
    _made = 0  # worker: records made so far
    _cpu: list[tuple[float, float]] = []  # worker: (wall time, own user + system CPU seconds)
    _remote = os.environ.get("BENCH_LOAD_WORKER") == "remote"  # started by `bench.py load-worker`

    @events.test_start.add_listener
    def _started(environment, **_kw) -> None:
        if _record_path and not _is_worker(environment):
            with open(_record_path + ".start", "w") as fh:
                json.dump({"t": time.time(), "pid": os.getpid()}, fh)

    def _record(request_type, name, response_time, response_length, exception, context, start_time=None,
                url=None, response=None, **_kw) -> None:
        # On every request, so as cheap as it can be: Locust's exact keywords bound by name (no
        # leftover dict to build), the raw objects kept, and every test deferred to _plain(). Only
        # /health responses are kept (they name the worker that answered).
        _records.append((start_time, response_time, name, exception, context,
                         response if name == HEALTH_NAME else None))

    if os.environ.get("BENCH_RECORDER", "1") != "0":  # 0: only to measure what the recorder costs
        events.request.add_listener(_record)

    def _plain(records: list[tuple]) -> list[tuple]:
        """(start, ms, name, ok, worker, intended) from raw records."""
        nan = float("nan")
        return [(nan if start is None else start, ms, name, 0 if exc else 1,
                 worker_pid(resp) if resp is not None and not exc else None,
                 ctx.get("intended") if ctx else None) for start, ms, name, exc, ctx, resp in records]

    def _sample_cpu() -> None:
        while True:
            t = os.times()
            _cpu.append((time.time(), t.user + t.system))
            sleep(CPU_SAMPLE_S)

    @events.report_to_master.add_listener
    def _ship(client_id, data, **_kw) -> None:
        global _records, _made, _cpu
        batch, _records = _plain(_records), []
        _made += len(batch)
        data["bench_records"] = batch
        data["bench_made"] = _made
        data["bench_stopped"] = _env is not None and _env.runner.state in (STATE_STOPPED, STATE_STOPPING)
        t = os.times()
        data["bench_cpu"], _cpu = [*_cpu, (time.time(), t.user + t.system)], []
        data["bench_who"] = {"remote": _remote, "host": socket.gethostname(), "pid": os.getpid()}
        data["bench_sent"] = time.time()

    @events.worker_report.add_listener
    def _gather(client_id, data, **_kw) -> None:
        if "bench_records" not in data:
            return
        offset = time.time() - data["bench_sent"]
        _from_workers.setdefault(client_id, []).extend(data["bench_records"])
        w = _gathered.setdefault(client_id, {**data["bench_who"], "records": 0, "made": 0, "cpu": [],
                                             "clock_offset_s": offset})
        w["records"] += len(data["bench_records"])
        w["made"] = data["bench_made"]
        w["cpu"].extend(data["bench_cpu"])
        w["clock_offset_s"] = min(w["clock_offset_s"], offset)
        if data["bench_stopped"]:
            _final.add(client_id)

    _env = None

    @events.init.add_listener
    def _keep_env(environment, **_kw) -> None:
        global _env
        _env = environment
        if _is_worker(environment):
            spawn(_sample_cpu)

    @events.quitting.add_listener
    def _dump(environment, **_kw) -> None:
        if _is_worker(environment) or not _record_path:
            return
        info: dict = {"load_workers": 0, "records_lost": 0}
        if isinstance(environment.runner, MasterRunner):
            _collect_from_workers(environment.runner)
            info = {"load_workers": len(_gathered),
                    "records_lost": sum(w["made"] - w["records"] for w in _gathered.values()),
                    "workers_without_final_report": len(set(_gathered) - _final),
                    "remote_load_workers": sum(1 for w in _gathered.values() if w["remote"]),
                    "workers": _gathered}
        with open(_record_path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["start", "ms", "name", "ok", "worker", "intended"])
            for shift, records in [(0.0, _plain(_records)), *(
                    (_gathered[w]["clock_offset_s"] if _gathered[w]["remote"] else 0.0, r)
                    for w, r in _from_workers.items())]:
                out.writerows((f"{s + shift:.6f}", f"{ms:.3f}", n, ok, "" if pid is None else pid,
                               "" if t is None else f"{t + shift:.6f}") for s, ms, n, ok, pid, t in records)
        with open(_record_path + ".info", "w") as fh:
            json.dump(info, fh)

    def _collect_from_workers(runner, timeout: float = 10.0) -> None:
        """Tell every worker to quit now (each stops its users and sends a last report) and wait
        for those reports. Locust would send the same quit after this event, but by then it no
        longer listens for reports, so the last seconds of every worker's records would be lost."""
        waiting = {c.id for c in runner.clients.all}
        for worker_id in waiting:
            runner.server.send_to_client(Message("quit", None, worker_id))
        deadline = time.time() + timeout
        while waiting - _final and time.time() < deadline:
            sleep(0.05)
