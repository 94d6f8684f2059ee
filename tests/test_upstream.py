"""Tests for the upstream simulator (upstream/server.py) and the capacity client (harness/system/burst.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from harness.system.burst import measure_capacity

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 15.0


def _start_upstream(*extra: str, stderr=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "upstream.server", "--port", "0", *extra],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    line = box[0].strip() if box else ""
    if not line.startswith("UPSTREAM READY http://"):
        _stop(proc)
        pytest.fail(f"upstream did not report ready within {READY_TIMEOUT_S}s (got {line!r})")
    return proc, line.split()[-1]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """SIGTERM (or sig) the process group, wait, then SIGKILL; always reaps. Returns the exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def _assert_gone(pid: int) -> None:
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return
    pytest.fail(f"process {pid} still exists (status {status})")


@pytest.fixture(scope="module")
def upstream():
    proc, url = _start_upstream()
    try:
        yield url
    finally:
        code = _stop(proc)
        _assert_gone(proc.pid)
        assert code == 0, f"upstream exited with {code} on SIGTERM"


def _addr(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict, bytes, bytes]:
    """Read one Content-Length framed response: (status, headers, body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def _raw(url: str) -> socket.socket:
    sock = socket.create_connection(_addr(url), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _assert_closed_by_server(sock: socket.socket) -> None:
    try:
        assert sock.recv(65536) == b""
    except ConnectionResetError:
        pass


# -- HTTP behaviour -------------------------------------------------------------------------------


def test_delay_waits_and_returns_json(upstream):
    with httpx.Client(base_url=upstream, timeout=5) as client:
        client.get("/health")  # connect first so the timing covers only the request
        t0 = time.perf_counter()
        resp = client.get("/delay", params={"ms": 100})
        elapsed = time.perf_counter() - t0
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"delay_ms": 100}
    assert 0.100 <= elapsed < 0.400, elapsed


def test_delay_zero_and_health(upstream):
    with httpx.Client(base_url=upstream, timeout=5) as client:
        assert client.get("/delay?ms=0").json() == {"delay_ms": 0}
        resp = client.get("/health")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize("query", ["?ms=-1", "?ms=60001", "?ms=abc", "", "?ms=", "?ms=1.5", "?other=5"])
def test_bad_delay_is_400(upstream, query):
    resp = httpx.get(f"{upstream}/delay{query}", timeout=5)
    assert resp.status_code == 400
    assert "error" in resp.json()


def test_unknown_path_is_404(upstream):
    resp = httpx.get(f"{upstream}/nope", timeout=5)
    assert resp.status_code == 404


def test_non_get_is_405(upstream):
    resp = httpx.post(f"{upstream}/delay?ms=1", content=b"x" * 100, timeout=5)
    assert resp.status_code == 405


def test_pipelined_responses_come_back_in_order(upstream):
    with _raw(upstream) as sock:
        # The slow request goes first: its response must still be written first.
        sock.sendall(
            b"GET /delay?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /delay?ms=10 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status1, _, body1, rest = _read_response(sock)
        status2, _, body2, rest = _read_response(sock, rest)
        status3, _, body3, rest = _read_response(sock, rest)
    assert (status1, status2, status3) == (200, 200, 200)
    assert json.loads(body1) == {"delay_ms": 200}
    assert json.loads(body2) == {"delay_ms": 10}
    assert json.loads(body3) == {"status": "ok"}
    assert rest == b""


def test_request_split_across_chunks(upstream):
    with _raw(upstream) as sock:
        for part in (b"GET /delay?m", b"s=5 HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(0.02)
        status, _, body, _ = _read_response(sock)
    assert status == 200
    assert json.loads(body) == {"delay_ms": 5}


def test_keep_alive_and_connection_close(upstream):
    with _raw(upstream) as sock:
        sock.sendall(b"GET /delay?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _, rest = _read_response(sock)
        assert status == 200 and "connection" not in headers  # kept alive
        sock.sendall(b"GET /delay?ms=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _, rest = _read_response(sock, rest)
        assert status == 200 and headers["connection"] == "close"
        assert rest == b""
        _assert_closed_by_server(sock)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET /health HTTP/1.1 extra\r\n\r\n",
        b"\x00\xff\xfe junk\r\n\r\n",
    ],
)
def test_malformed_request_line_is_400_and_closes(upstream, request_bytes):
    with _raw(upstream) as sock:
        sock.sendall(request_bytes)
        status, headers, _, _ = _read_response(sock)
        assert status == 400
        assert headers["connection"] == "close"
        _assert_closed_by_server(sock)
    # The server is still healthy afterwards.
    assert httpx.get(f"{upstream}/health", timeout=5).status_code == 200


def test_responses_before_a_malformed_request_are_still_sent(upstream):
    with _raw(upstream) as sock:
        sock.sendall(b"GET /delay?ms=50 HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n")
        status1, _, body1, rest = _read_response(sock)
        status2, _, _, _ = _read_response(sock, rest)
    assert (status1, json.loads(body1), status2) == (200, {"delay_ms": 50}, 400)


# -- process behaviour ----------------------------------------------------------------------------


def test_non_loopback_host_refused_without_flag():
    proc = subprocess.run(
        [sys.executable, "-m", "upstream.server", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode != 0
    assert "READY" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "non-loopback" in lines[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_on_signal(tmp_path, sig):
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc, url = _start_upstream(stderr=err)
    try:
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        # A request in flight while the signal arrives must not produce a traceback either.
        with _raw(url) as sock:
            sock.sendall(b"GET /delay?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)
            code = _stop(proc, sig)
    finally:
        _stop(proc, signal.SIGKILL)
    _assert_gone(proc.pid)
    assert code == 0
    assert "Traceback" not in err_path.read_text()


# -- capacity client ------------------------------------------------------------------------------


def test_measure_capacity_shape(upstream):
    result = measure_capacity(upstream, connections=50, delay_ms=20, seconds=1, warmup=0.5)
    assert set(result) == {
        "rps",
        "connections",
        "delay_ms",
        "seconds",
        "errors",
        "p50_ms",
        "p99_ms",
        "ideal_rps",
    }
    assert result["ideal_rps"] == pytest.approx(50 * 1000 / 20)
    assert 0 < result["rps"] <= result["ideal_rps"] * 1.05
    assert result["connections"] == 50 and result["delay_ms"] == 20
    assert result["errors"] == 0
    assert 20 <= result["p50_ms"] <= result["p99_ms"]
    leftover = [
        p for p in psutil.Process().children(recursive=True)
        if "harness.system.burst" in " ".join(p.cmdline())
    ]
    assert leftover == []


@pytest.mark.parametrize("url", ["http://10.0.0.1:80", "http://example.com", "https://127.0.0.1:1"])
def test_measure_capacity_refuses_non_loopback(url):
    with pytest.raises(ValueError):
        measure_capacity(url, connections=1, seconds=0.1, warmup=0)
