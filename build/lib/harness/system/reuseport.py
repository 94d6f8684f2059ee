"""`python -m harness.system.reuseport --workers W --host H --port P -- <uvicorn args>`

W single-worker uvicorns, each on its own SO_REUSEPORT socket bound to the same port: the kernel
spreads new connections across them by a hash of the connection, where `uvicorn --workers W`
shares one socket and lets whichever worker wakes first accept (uneven: one worker has been seen
to take 99 of 100 keep-alive connections). This process forwards SIGTERM/SIGINT to the uvicorns
and exits when they have all exited; the harness treats it like a uvicorn supervisor.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.system.reuseport")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("uvicorn_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = [a for a in args.uvicorn_args if a != "--"]
    sockets = [listening_socket(args.host, args.port) for _ in range(args.workers)]
    children = [subprocess.Popen([sys.executable, "-m", "uvicorn", *rest, "--fd", str(s.fileno())],
                                 pass_fds=(s.fileno(),)) for s in sockets]
    for s in sockets:
        s.close()  # each child holds its own

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)


if __name__ == "__main__":
    sys.exit(main())
