"""HOST:PORT addresses given on the command line (--master, --master-bind), and which hosts are
loopback: checked before anything is launched, so a bad address costs nothing."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from upstream.loopback import is_loopback

__all__ = ["AddressError", "is_loopback", "parse_address"]


class AddressError(ValueError):
    """A HOST:PORT that cannot be used (one-line reason)."""


def parse_address(text: str, what: str, *, bind: bool = False) -> tuple[str, int]:
    """(host, port) from 'HOST:PORT'. To bind (`bind`), HOST must be an IPv4 address of this
    machine or 0.0.0.0 (Locust's master binds through ZeroMQ, which takes no host names)."""
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise AddressError(f"{what} {text!r}: bad port (expected HOST:PORT, port 1-65535)") from None
    host = parts.hostname
    if not host or port is None or not 0 < port < 65536 or parts.path or parts.query or "@" in text:
        raise AddressError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5600")
    if bind:
        host = "127.0.0.1" if host == "localhost" else host
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise AddressError(f"{what} {text!r}: HOST must be an IPv4 address of this machine "
                               "(or 0.0.0.0 for every interface)") from None
    return host, port
