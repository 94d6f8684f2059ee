"""Local "remote API" simulator: a small, fast HTTP/1.1 server with an artificial delay.

Run it as ``python -m upstream.server --host 127.0.0.1 --port 0``. Once the socket is bound it prints
exactly one line, ``UPSTREAM READY http://<host>:<port>``, to stdout so a parent process can read the
port it got. SIGTERM and SIGINT stop it cleanly (exit code 0).

Endpoints (GET only):

* ``/delay?ms=N`` -> 200 ``{"delay_ms":N}`` after N milliseconds, N an integer 0..60000 (else 400).
  The wait is a timer on the event loop, never a blocking sleep.
* ``/health`` -> 200 ``{"status":"ok"}`` at once.
* anything else -> 404; other methods -> 405; a malformed request -> 400 and the connection is closed.

It is a raw :class:`asyncio.Protocol` on uvloop (stdlib loop if uvloop is missing), not a web framework,
so that one process can keep ten thousands of requests per second in flight on one core. Connections are
HTTP/1.1 keep-alive; requests may be pipelined: responses are queued per connection and written strictly
in request order, whatever their delays.

Why one module over 300 lines: a stand-alone server (`python -m upstream.server`) with no harness
import; its HTTP parsing, pipelining and timers are one protocol class and its tests read it so.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys

from upstream.loopback import event_loop_runner, is_loopback

MAX_DELAY_MS = 60_000
MAX_HEAD_BYTES = 16 * 1024  # request line + headers
MAX_BODY_BYTES = 1024 * 1024  # bodies are read and thrown away; larger ones are refused
MAX_PENDING = 512  # queued responses per connection before we stop reading from it
_CACHE_LIMIT = 4096

# Requests answered since start (responses written). Not exposed over HTTP; printed on shutdown.
requests_served = 0

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
}

# Connection modes of a response.
_KEEP = 0  # HTTP/1.1 default: keep-alive, no Connection header
_KEEP10 = 1  # HTTP/1.0 client that asked for keep-alive: echo it
_CLOSE = 2  # close after this response

_CONN_HEADER = {_KEEP: b"", _KEEP10: b"Connection: keep-alive\r\n", _CLOSE: b"Connection: close\r\n"}

_response_cache: dict[tuple[int, bytes, int], bytes] = {}
_route_cache: dict[bytes, tuple[float | None, int, bytes]] = {}


def build_response(status: int, body: bytes, mode: int = _KEEP) -> bytes:
    """The complete HTTP/1.1 response bytes (cached: bodies are few and small)."""
    key = (status, body, mode)
    resp = _response_cache.get(key)
    if resp is None:
        extra = _CONN_HEADER[mode]
        if status == 405:
            extra += b"Allow: GET\r\n"
        resp = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
            status,
            _REASONS[status],
            len(body),
            extra,
            body,
        )
        if len(_response_cache) >= _CACHE_LIMIT:
            _response_cache.clear()
        _response_cache[key] = resp
    return resp


def _error_body(message: str) -> bytes:
    return b'{"error":"%s"}' % message.encode()


_BAD_MS = _error_body(f"ms must be an integer 0..{MAX_DELAY_MS}")
_NOT_FOUND = _error_body("not found")


def route(target: bytes) -> tuple[float | None, int, bytes]:
    """Map a request target to ``(delay_seconds or None, status, body)``."""
    hit = _route_cache.get(target)
    if hit is not None:
        return hit
    path, _, query = target.partition(b"?")
    if path == b"/delay":
        raw = None
        for pair in query.split(b"&"):
            key, _, value = pair.partition(b"=")
            if key == b"ms":
                raw = value
                break
        # bytes.isdigit() is ASCII-only: rejects "-1", "+1", " 1", "1.5", "abc" and "".
        if raw is None or not raw.isdigit() or len(raw) > 5 or int(raw) > MAX_DELAY_MS:
            result: tuple[float | None, int, bytes] = (None, 400, _BAD_MS)
        else:
            ms = int(raw)
            result = (ms / 1000.0 if ms else None, 200, b'{"delay_ms":%d}' % ms)
    elif path == b"/health":
        result = (None, 200, b'{"status":"ok"}')
    else:
        result = (None, 404, _NOT_FOUND)
    if len(_route_cache) >= _CACHE_LIMIT:
        _route_cache.clear()
    _route_cache[target] = result
    return result


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse pipelined requests, answer them in order."""

    __slots__ = (
        "_loop",
        "_live",
        "_transport",
        "_buf",
        "_queue",
        "_stop_reading",
        "_discard",
        "_reading_paused",
        "_write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, live: set[UpstreamProtocol]) -> None:
        self._loop = loop
        self._live = live
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        # Each slot is [response bytes or None, timer handle or None, close after writing].
        self._queue: collections.deque[list] = collections.deque()
        self._stop_reading = False  # no more requests are parsed (close pending or error)
        self._discard = 0  # request-body bytes still to skip
        self._reading_paused = False
        self._write_paused = False

    # -- connection lifecycle ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._stop_reading = True
        for slot in self._queue:
            if slot[1] is not None:
                slot[1].cancel()
        self._queue.clear()
        self._buf = b""
        self._live.discard(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def eof_received(self) -> bool:
        # The client is gone (or half-closed, which HTTP clients do not do): drop its pending delays
        # at once instead of holding the socket and timers for up to 60 s. False -> transport closes.
        self._stop_reading = True
        return False

    # -- input --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._stop_reading:
            return
        self._buf = self._buf + data if self._buf else data
        self._process()

    def _process(self) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n and not self._stop_reading and not self._reading_paused:
            if self._discard:
                take = min(self._discard, n - pos)
                self._discard -= take
                pos += take
                continue
            while buf.startswith(b"\r\n", pos):  # tolerate stray CRLFs between requests (RFC 9112 2.2)
                pos += 2
            if pos >= n:
                break
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0 or end - pos > MAX_HEAD_BYTES:
                if n - pos > MAX_HEAD_BYTES:
                    self._reject(431, "request head too large")
                break
            self._request(buf, pos, end)
            pos = end + 4
        if self._stop_reading:
            self._buf = b""
        else:
            self._buf = buf[pos:] if pos < n else b""

    def _request(self, buf: bytes, start: int, end: int) -> None:
        line_end = buf.find(b"\r\n", start, end)
        if line_end < 0:
            line_end = end
        parts = buf[start:line_end].split(b" ")
        if len(parts) != 3:
            return self._reject(400, "malformed request line")
        method, target, version = parts
        if version == b"HTTP/1.1":
            mode = _KEEP
        elif version == b"HTTP/1.0":
            mode = _CLOSE
        else:
            return self._reject(400, "unsupported HTTP version")
        if not method.isalpha() or not target.startswith(b"/"):
            return self._reject(400, "malformed request line")

        body_len = 0
        if line_end < end:
            for line in buf[line_end + 2 : end].split(b"\r\n"):
                name, sep, value = line.partition(b":")
                if not sep or not name or name[-1:] in b" \t" or name[:1] in b" \t":
                    return self._reject(400, "malformed header")
                name = name.lower()
                if name == b"connection":
                    for token in value.split(b","):
                        token = token.strip().lower()
                        if token == b"close":
                            mode = _CLOSE
                            break
                        if token == b"keep-alive" and mode == _CLOSE and version == b"HTTP/1.0":
                            mode = _KEEP10
                elif name == b"content-length":
                    value = value.strip()
                    if not value.isdigit() or len(value) > 9:
                        return self._reject(400, "bad content-length")
                    body_len = int(value)
                    if body_len > MAX_BODY_BYTES:
                        return self._reject(413, "body too large")
                elif name == b"transfer-encoding":
                    return self._reject(501, "transfer-encoding not supported")
        self._discard = body_len

        if method != b"GET":
            delay, status, body = None, 405, _error_body("only GET is supported")
        else:
            delay, status, body = route(target)
        close = mode == _CLOSE
        if close:
            self._stop_reading = True
        self._enqueue(delay, build_response(status, body, mode), close)

    def _reject(self, status: int, message: str) -> None:
        """Answer a request we cannot parse, after everything already queued, then close."""
        self._stop_reading = True
        self._enqueue(None, build_response(status, _error_body(message), _CLOSE), True)

    # -- output -------------------------------------------------------------------------------
    def _enqueue(self, delay: float | None, resp: bytes, close: bool) -> None:
        queue = self._queue
        if delay is None:
            if not queue:
                self._write(resp, close)
                return
            queue.append([resp, None, close])
            return
        slot = [None, None, close]
        slot[1] = self._loop.call_later(delay, self._ready, slot, resp)
        queue.append(slot)
        if len(queue) >= MAX_PENDING:
            self._update_reading()

    def _ready(self, slot: list, resp: bytes) -> None:
        slot[0] = resp
        slot[1] = None
        queue = self._queue
        if queue and queue[0] is slot:
            self._flush()

    def _flush(self) -> None:
        queue = self._queue
        while queue and queue[0][0] is not None:
            resp, _, close = queue.popleft()
            if not self._write(resp, close):
                return
        if self._reading_paused:
            self._update_reading()

    def _write(self, resp: bytes, close: bool) -> bool:
        global requests_served
        transport = self._transport
        if transport is None:
            return False
        transport.write(resp)
        requests_served += 1
        if close:
            self._stop_reading = True
            transport.close()
            return False
        return True

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        want_pause = self._write_paused or len(self._queue) >= MAX_PENDING
        if want_pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not want_pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
            if self._buf:
                self._process()


async def serve(host: str, port: int, backlog: int = 4096) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    live: set[UpstreamProtocol] = set()
    try:
        server = await loop.create_server(
            lambda: UpstreamProtocol(loop, live), host, port, backlog=backlog, reuse_address=True
        )
    except OSError as exc:
        print(f"upstream: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    addr = server.sockets[0].getsockname()
    shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    print(f"UPSTREAM READY http://{shown}:{addr[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        for proto in list(live):
            proto.abort()
        try:
            await asyncio.wait_for(server.wait_closed(), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            pass
        print(f"upstream: stopped after {requests_served} requests", file=sys.stderr, flush=True)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m upstream.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument(
        "--allow-non-loopback", action="store_true", help="allow binding a non-loopback address"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # Until the loop installs its own handlers, make SIGTERM a clean exit rather than a kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    args = _parse_args(argv)
    host = "127.0.0.1" if args.host.lower() == "localhost" else args.host  # one address, one port
    if not is_loopback(host):
        if not args.allow_non_loopback:
            print(
                f"upstream: refusing to bind non-loopback host {args.host!r} (pass --allow-non-loopback)",
                file=sys.stderr,
                flush=True,
            )
            return 2
        print(
            f"WARNING: upstream: binding NON-LOOPBACK address {args.host!r}: "
            "anyone who can reach it can use this server",
            file=sys.stderr,
            flush=True,
        )
    try:
        return event_loop_runner()(serve(host, args.port, args.backlog))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
