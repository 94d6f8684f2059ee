"""`bench.py serve TARGET`: upstream + one target, for poking with curl, wrk or Locust's web UI."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness.data.knobs import KNOBS
from harness.data.matrix import LOOPS, ConfigError, _closest
from harness.run.launch import LOOPBACK, launch_target, start_upstream
from targets import TARGETS, import_string


def serve(args) -> int:
    if args.target not in TARGETS:
        raise ConfigError(f"unknown target {args.target!r}{_closest(args.target, TARGETS)}")
    if args.loop not in LOOPS:
        raise ConfigError(f"unknown loop {args.loop!r}{_closest(args.loop, LOOPS)}; choose uvloop or asyncio")
    try:
        KNOBS["workers"].check(args.workers)  # the knob table's bounds, as for `run`
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is out of range")
    if args.host != LOOPBACK and not args.allow_non_loopback:
        raise ConfigError(f"--host {args.host} is not loopback; add --allow-non-loopback to expose it")
    if args.host != LOOPBACK:
        print(f"!!! WARNING: serving on {args.host}: reachable from the network, not just this machine !!!")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    upstream = start_upstream(work / "upstream.log")
    try:
        target = launch_target(import_string(args.target), workers=args.workers, loop=args.loop,
                               env={"UPSTREAM_URL": upstream.url}, metrics_dir=work / "metrics",
                               log_path=work / "uvicorn.log", host=args.host, port=args.port)
        try:
            print(f"{args.target} with {args.workers} worker(s): {target.url}  (upstream {upstream.url})")
            print(f"  try: curl {target.url}/io   or   locust -f scenarios/io.py -H {target.url}")
            print(f"  logs and probe files: {work}   — Ctrl-C stops both")
            while target.alive() and upstream.alive():
                time.sleep(0.5)
            print("a server exited; stopping")
            return 1
        finally:
            target.stop()
    finally:
        upstream.stop()
