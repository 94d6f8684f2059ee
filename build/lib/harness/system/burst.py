"""A fast closed-loop HTTP/1.1 load client, used to measure the upstream simulator's capacity.

Each connection is one raw :class:`asyncio.Protocol` on uvloop: it sends ``GET /delay?ms=M``, waits
for the complete response (head + Content-Length body), records the latency and sends the next request
on the same keep-alive connection. There is no think time, so with C connections and a delay of M ms the
ideal throughput is ``C * 1000 / M`` responses per second.

:func:`measure_capacity` runs the client in one subprocess (``python -m harness.system.burst``), started and
stopped through :mod:`harness.system.procs` like every other child, so the load generator has its own
core and an interrupted run leaves nothing behind.

Measured quantities:

* ``rps``: 200 responses completed inside the measurement window (``warmup`` seconds after the start,
  ``seconds`` long), divided by ``seconds``.
* ``p50_ms`` / ``p99_ms``: latency of those responses, nearest-rank (NaN when there are none).
* ``errors``: over the whole run (warmup included): non-200 responses, failed connects, connections
  lost or closed with a request outstanding, unparseable responses.

CLI: ``python -m harness.system.burst URL --connections N --delay-ms M --seconds S --warmup W`` prints one
JSON line with the fields returned by :func:`measure_capacity`.

Why one module over 300 lines: it runs as its own subprocess (`python -m`), so the client, its
parser of responses and its command line travel together with no harness import.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import functools
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from harness import ROOT as PROJECT_ROOT
from harness.system import procs
from upstream.loopback import event_loop_runner, is_loopback

MAX_RESPONSE_HEAD = 64 * 1024
START_S = 1.5  # time given to the subprocess to start (interpreter, imports) before its run
OVERRUN_S = 10.0  # the subprocess is killed this long after its run should have ended
_CONNECT_CONCURRENCY = 256
_RETRY_S = 0.05


def parse_loopback_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path_prefix)`` of an ``http://`` loopback URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    if not is_loopback(parts.hostname):
        raise ValueError(f"refusing to load a non-loopback host: {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:  # port out of range / not a number
        raise ValueError(f"bad port in {url!r}") from exc
    host = "127.0.0.1" if str(parts.hostname).lower() == "localhost" else str(parts.hostname)
    return host, port, parts.path.rstrip("/")


def _percentile(sorted_values, p: float) -> float:
    n = len(sorted_values)
    if not n:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100.0 * n) - 1)]


class _Run:
    """State shared by all connections of one client process."""

    def __init__(self, request: bytes, win_start: float, win_end: float) -> None:
        self.request = request
        self.win_start = win_start  # perf_counter() values
        self.win_end = win_end
        self.running = True
        self.completed = 0  # 200 responses inside the window
        self.errors = 0
        self.latencies = array.array("d")  # seconds, window only
        self.protocols: set[_Conn] = set()


class _Conn(asyncio.Protocol):
    """One keep-alive connection doing request → full response → next request."""

    __slots__ = ("run", "transport", "buf", "total", "status", "close_after", "sent", "closed")

    def __init__(self, run: _Run, closed: asyncio.Future) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.total = -1  # full response length once the head is parsed
        self.status = 0
        self.close_after = False
        self.sent = 0.0
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.protocols.add(self)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None, "only a connected connection sends"
        self.sent = time.perf_counter()
        self.transport.write(self.run.request)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        run.protocols.discard(self)
        if run.running and self.sent:  # lost with a request outstanding
            run.errors += 1
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self) -> None:
        self.run.errors += 1
        self.sent = 0.0
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.total < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_RESPONSE_HEAD:
                    return self._fail()
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1."):
                return self._fail()
            try:
                self.status = int(buf[9:12])
            except ValueError:
                return self._fail()
            i = buf.find(b"\r\nContent-Length:", 0, end)
            if i < 0:
                head = buf[:end].lower()
                i = head.find(b"\r\ncontent-length:")
                if i < 0:
                    return self._fail()  # we only speak Content-Length framing
            j = buf.find(b"\r\n", i + 17, end + 2)
            try:
                length = int(buf[i + 17 : j])
            except ValueError:
                return self._fail()
            self.close_after = buf.find(b"\r\nConnection: close", 0, end) >= 0
            self.total = end + 4 + length
        if len(buf) < self.total:
            self.buf = buf
            return
        if len(buf) > self.total:  # we never pipeline, so nothing may follow the response
            return self._fail()
        now = time.perf_counter()
        run = self.run
        if self.status == 200:
            if run.win_start <= now < run.win_end:
                run.completed += 1
                run.latencies.append(now - self.sent)
        else:
            run.errors += 1
        self.buf = b""
        self.total = -1
        self.sent = 0.0
        if self.close_after:
            if self.transport is not None:
                self.transport.close()
        elif run.running:
            self._send()


async def _keep_connected(run: _Run, host: str, port: int, sem: asyncio.Semaphore) -> None:
    """Hold one connection slot open until the run ends, reconnecting after failures."""
    loop = asyncio.get_running_loop()
    while run.running:
        closed = loop.create_future()
        try:
            async with sem:
                await loop.create_connection(functools.partial(_Conn, run, closed), host, port)
        except OSError:
            run.errors += 1
            await asyncio.sleep(_RETRY_S)
            continue
        await closed
        if run.running:
            await asyncio.sleep(_RETRY_S)


async def _run_client(
    host: str,
    port: int,
    request: bytes,
    connections: int,
    warmup: float,
    seconds: float,
) -> _Run:
    start = time.perf_counter()
    run = _Run(request, start + warmup, start + warmup + seconds)
    sem = asyncio.Semaphore(_CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(_keep_connected(run, host, port, sem)) for _ in range(connections)]
    try:
        await asyncio.sleep(max(0.0, run.win_end - time.perf_counter()))
    finally:
        run.running = False
        for proto in list(run.protocols):
            if proto.transport is not None:
                proto.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return run


def _result(rps: float, connections: int, delay_ms: int, seconds: float, errors: int, lat) -> dict:
    lat = sorted(lat)
    return {
        "rps": round(rps, 1),
        "connections": connections,
        "delay_ms": delay_ms,
        "seconds": seconds,
        "errors": errors,
        "p50_ms": round(_percentile(lat, 50) * 1000.0, 3),
        "p99_ms": round(_percentile(lat, 99) * 1000.0, 3),
        "ideal_rps": connections * 1000.0 / delay_ms if delay_ms else math.inf,
    }


def run_in_process(url: str, connections: int, delay_ms: int, seconds: float, warmup: float) -> dict:
    """Run the closed loop in this process (one core): the subprocess's side of measure_capacity."""
    host, port, prefix = parse_loopback_url(url)
    request = b"GET %s/delay?ms=%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
        prefix.encode(),
        delay_ms,
        host.encode(),
        port,
    )
    run = event_loop_runner()(_run_client(host, port, request, connections, warmup, seconds))
    return _result(run.completed / seconds, connections, delay_ms, seconds, run.errors, run.latencies)


def _validate(connections: int, delay_ms: int, seconds: float, warmup: float) -> None:
    if connections < 1:
        raise ValueError("connections must be >= 1")
    if not 0 <= delay_ms <= 60_000:
        raise ValueError("delay_ms must be in 0..60000")
    if not seconds > 0:
        raise ValueError("seconds must be > 0")
    if not warmup >= 0:
        raise ValueError("warmup must be >= 0")


def measure_capacity(url: str, connections: int = 1000, delay_ms: int = 50, seconds: float = 3.0,
                     warmup: float = 1.0) -> dict:
    """Closed-loop capacity of the upstream at ``url`` (loopback only), from one client subprocess.

    Returns ``{"rps", "connections", "delay_ms", "seconds", "errors", "p50_ms", "p99_ms", "ideal_rps"}``.
    Raises ValueError for a non-loopback URL or bad arguments, RuntimeError if the client fails or overruns.
    """
    parse_loopback_url(url)
    _validate(connections, delay_ms, seconds, warmup)
    cmd = [sys.executable, "-m", "harness.system.burst", url, "--connections", str(connections),
           "--delay-ms", str(delay_ms), "--seconds", repr(float(seconds)), "--warmup", repr(float(warmup))]
    budget = START_S + warmup + seconds + OVERRUN_S
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        out_path, err_path = Path(tmp) / "out.json", Path(tmp) / "err.txt"
        with open(out_path, "wb") as out:
            # a load generator, like Locust: --pin places it on the load generator's cores
            proc = procs.spawn(cmd, log_path=err_path, cwd=PROJECT_ROOT, stdout=out, role="locust")
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"burst client overran its {budget:.1f}s budget; killed") from None
        finally:
            procs.stop_tree(proc)
        if code != 0:
            tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"burst client exited with {code}: {' | '.join(tail)}")
        return json.loads(out_path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.system.burst",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="base URL of the upstream, loopback only (e.g. http://127.0.0.1:8001)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        parse_loopback_url(args.url)
        _validate(args.connections, args.delay_ms, args.seconds, args.warmup)
    except ValueError as exc:
        parser.error(str(exc))
    result = run_in_process(args.url, args.connections, args.delay_ms, args.seconds, args.warmup)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
