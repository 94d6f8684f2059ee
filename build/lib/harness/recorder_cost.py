"""`bench.py overhead --recorder`: what the exact per-request recorder costs Locust, on /health.

Cells alternate (recorder on, off, on, off, ...) against one fresh correct-async target per cell,
so slow drifts of a shared machine hit both alike. Throughput and Locust's CPU per request come from
Locust's own stats (locust.json) and psutil over the whole run, the same for both sides: with the
recorder off there are no exact records to read. On a small machine one Locust process saturates
its core on /health, so the throughput ratio is the recorder's cost as a user sees it.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from harness.data.matrix import ConfigError
from harness.judge import resources
from harness.run.drive import start_locust
from harness.run.launch import launch_target, start_upstream
from targets import import_string


def _one_run(raw_dir: Path, upstream_url: str, users: int, seconds: float, recorder: bool) -> dict:
    target = launch_target(import_string("correct-async"), workers=1, loop="uvloop",
                           env={"UPSTREAM_URL": upstream_url}, metrics_dir=raw_dir / "metrics",
                           log_path=raw_dir / "uvicorn.log")
    try:
        locust = start_locust("health", target.url, users, seconds, raw_dir,
                              env={} if recorder else {"BENCH_RECORDER": "0"})
        try:
            locust.wait_started()
            cpu0, t0 = resources.tree_cpu_seconds(locust.proc.pid), time.time()
            time.sleep(seconds)
            cpu1, t1 = resources.tree_cpu_seconds(locust.proc.pid), time.time()
            locust.end()
            locust.finish(timeout=30)
        finally:
            locust.stop()
    finally:
        target.stop()
    stats = json.loads((raw_dir / "locust.json").read_text())
    work = [s for s in stats if s["name"] == "work"][0]
    span = work["last_request_timestamp"] - work["start_time"]
    rps = work["num_requests"] / span
    cpu_pct = resources.cpu_pct(cpu0, cpu1, t1 - t0)
    return {"rps": rps, "cpu_pct": cpu_pct, "cpu_us_per_request": 10_000 * cpu_pct / rps}


def measure_recorder(out: Path | None = None, repeat: int = 3, users: int = 16,
                     seconds: float = 5.0) -> int:
    if not 1 <= repeat <= 20:
        raise ConfigError(f"--repeat {repeat} is out of range: must be between 1 and 20")
    work = out or Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    work.mkdir(parents=True, exist_ok=True)
    upstream = start_upstream(work / "upstream.log")
    results: dict[bool, list[dict]] = {True: [], False: []}
    try:
        for i in range(repeat):
            for recorder in (True, False):
                r = _one_run(work / f"{'on' if recorder else 'off'}_{i + 1}", upstream.url, users, seconds,
                             recorder)
                results[recorder].append(r)
                print(f"  recorder {'on ' if recorder else 'off'} #{i + 1}: {r['rps']:.0f} rps, Locust "
                      f"{r['cpu_pct']:.0f}% CPU, {r['cpu_us_per_request']:.0f} µs/request", flush=True)
    finally:
        upstream.stop()
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "cpu_pct", "cpu_us_per_request")}
           for k, v in results.items()}
    on, off = med[True], med[False]
    print(f"/health, {users} users, {repeat} × (on, off), medians → {work}")
    print(f"  recorder on : {on['rps']:.0f} rps, Locust {on['cpu_pct']:.0f}% CPU, "
          f"{on['cpu_us_per_request']:.1f} µs/request")
    print(f"  recorder off: {off['rps']:.0f} rps, Locust {off['cpu_pct']:.0f}% CPU, "
          f"{off['cpu_us_per_request']:.1f} µs/request")
    print(f"  rps ratio on/off: {on['rps'] / off['rps']:.3f}; recorder cost "
          f"{on['cpu_us_per_request'] - off['cpu_us_per_request']:+.1f} µs of Locust CPU per request")
    return 0
