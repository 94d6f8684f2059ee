"""A fast closed-loop HTTP/1.1 load client, used to measure the upstream simulator's capacity.

Each connection is one raw :class:`asyncio.Protocol` on uvloop: it sends ``GET /delay?ms=M``, waits
for the complete response (head + Content-Length body), records the latency and sends the next request
on the same keep-alive connection. There is no think time, so with C connections and a delay of M ms the
ideal throughput is ``C * 1000 / M`` responses per second.

:func:`measure_capacity` runs the client in one or more subprocesses (``python -m harness.burst``) so
the load generator can use more than one core, splits the connections among them, aligns their
measurement windows on a shared wall-clock start, and merges the results.

Measured quantities:

* ``rps``: 200 responses completed inside the measurement window (``warmup`` seconds after the start,
  ``seconds`` long), divided by ``seconds``.
* ``p50_ms`` / ``p99_ms``: latency of those responses, nearest-rank (NaN when there are none).
* ``errors``: over the whole run (warmup included): non-200 responses, failed connects, connections
  lost or closed with a request outstanding, unparseable responses.

CLI: ``python -m harness.burst URL --connections N --delay-ms M --seconds S --warmup W`` prints one
JSON line with the fields returned by :func:`measure_capacity`.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import ipaddress
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_RESPONSE_HEAD = 64 * 1024
START_MARGIN_S = 1.5  # time given to subprocesses to start and connect before the shared start
OVERRUN_S = 10.0  # a subprocess is killed this long after its run should have ended
_CONNECT_CONCURRENCY = 256
_RETRY_S = 0.05


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_loopback_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path_prefix)`` of an ``http://`` loopback URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    if not _is_loopback_host(parts.hostname):
        raise ValueError(f"refusing to load a non-loopback host: {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:  # port out of range / not a number
        raise ValueError(f"bad port in {url!r}") from exc
    host = "127.0.0.1" if parts.hostname.lower() == "localhost" else parts.hostname
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
                await loop.create_connection(lambda closed=closed: _Conn(run, closed), host, port)
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
    start_at: float | None,
) -> _Run:
    if start_at is None:
        start = time.perf_counter()
    else:  # shared wall-clock start, mapped onto this process's monotonic clock
        start = time.perf_counter() + (start_at - time.time())
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


def _event_loop_runner():
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


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


def run_in_process(
    url: str,
    connections: int,
    delay_ms: int,
    seconds: float,
    warmup: float,
    start_at: float | None = None,
    samples_out: str | None = None,
) -> dict:
    """Run the closed loop in this process (one core). Used by the CLI and by each subprocess."""
    host, port, prefix = parse_loopback_url(url)
    request = b"GET %s/delay?ms=%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
        prefix.encode(),
        delay_ms,
        host.encode(),
        port,
    )
    run = _event_loop_runner()(_run_client(host, port, request, connections, warmup, seconds, start_at))
    if samples_out:
        with open(samples_out, "wb") as fh:
            run.latencies.tofile(fh)
    return _result(run.completed / seconds, connections, delay_ms, seconds, run.errors, run.latencies)


def _validate(connections: int, delay_ms: int, seconds: float, warmup: float, processes: int) -> None:
    if connections < 1:
        raise ValueError("connections must be >= 1")
    if not 0 <= delay_ms <= 60_000:
        raise ValueError("delay_ms must be in 0..60000")
    if not seconds > 0:
        raise ValueError("seconds must be > 0")
    if not warmup >= 0:
        raise ValueError("warmup must be >= 0")
    if processes < 1:
        raise ValueError("processes must be >= 1")


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:  # not yet reaped, so the pid (and its group) is still ours
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def measure_capacity(
    url: str,
    connections: int = 1000,
    delay_ms: int = 50,
    seconds: float = 3.0,
    warmup: float = 1.0,
    processes: int = 1,
) -> dict:
    """Closed-loop capacity of the upstream at ``url`` (loopback only), from ``processes`` client processes.

    Returns ``{"rps", "connections", "delay_ms", "seconds", "errors", "p50_ms", "p99_ms", "ideal_rps"}``.
    Raises ValueError for a non-loopback URL or bad arguments, RuntimeError if a client fails or overruns.
    """
    parse_loopback_url(url)
    _validate(connections, delay_ms, seconds, warmup, processes)
    processes = min(processes, connections)
    base, extra = divmod(connections, processes)
    shares = [base + (1 if i < extra else 0) for i in range(processes)]

    start_at = time.time() + START_MARGIN_S
    deadline = time.monotonic() + START_MARGIN_S + warmup + seconds + OVERRUN_S
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        outs, errs, samples = [], [], []
        try:
            for i, share in enumerate(shares):
                outs.append(os.path.join(tmp, f"out{i}.json"))
                errs.append(os.path.join(tmp, f"err{i}.txt"))
                samples.append(os.path.join(tmp, f"lat{i}.bin"))
                with open(outs[i], "wb") as out, open(errs[i], "wb") as err:
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "harness.burst",
                                url,
                                "--connections",
                                str(share),
                                "--delay-ms",
                                str(delay_ms),
                                "--seconds",
                                repr(float(seconds)),
                                "--warmup",
                                repr(float(warmup)),
                                "--start-at",
                                repr(start_at),
                                "--samples-out",
                                samples[i],
                            ],
                            cwd=PROJECT_ROOT,
                            stdin=subprocess.DEVNULL,
                            stdout=out,
                            stderr=err,
                            start_new_session=True,
                        )
                    )
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise RuntimeError(
                        f"burst client overran its {seconds + warmup + OVERRUN_S:.1f}s budget; killed"
                    ) from None
        finally:
            for proc in procs:
                _kill_group(proc)
            for proc in procs:
                proc.wait()

        rps = 0.0
        errors = 0
        latencies = array.array("d")
        for proc, out, err, sample in zip(procs, outs, errs, samples, strict=True):
            if proc.returncode != 0:
                tail = Path(err).read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"burst client exited with {proc.returncode}: {' | '.join(tail)}")
            part = json.loads(Path(out).read_text())
            rps += part["rps"]
            errors += part["errors"]
            with open(sample, "rb") as fh:
                latencies.frombytes(fh.read())
    return _result(rps, connections, delay_ms, float(seconds), errors, latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.burst", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the upstream, loopback only (e.g. http://127.0.0.1:8001)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=1, help="> 1: spread over client subprocesses")
    parser.add_argument("--start-at", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--samples-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        parse_loopback_url(args.url)
        _validate(args.connections, args.delay_ms, args.seconds, args.warmup, args.processes)
    except ValueError as exc:
        parser.error(str(exc))
    if args.processes > 1:
        result = measure_capacity(
            args.url, args.connections, args.delay_ms, args.seconds, args.warmup, args.processes
        )
    else:
        result = run_in_process(
            args.url,
            args.connections,
            args.delay_ms,
            args.seconds,
            args.warmup,
            start_at=args.start_at,
            samples_out=args.samples_out,
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
