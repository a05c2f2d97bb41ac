"""The bytes of a CONNECT exchange with an HTTP proxy, without any I/O.

`connect_request` builds the request head; `parse_connect_response` reads the proxy's answer head
(everything up to the blank line). The dialer does the reading and writing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from crawler.http.auth import BasicAuth

__all__ = [
    "MAX_CONNECT_RESPONSE_HEAD",
    "ConnectResponse",
    "connect_authority",
    "connect_request",
    "parse_connect_response",
    "proxy_authorization",
]

# A proxy's answer to CONNECT is a status line and a few headers; anything bigger is broken.
MAX_CONNECT_RESPONSE_HEAD = 64 * 1024

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([0-9]{3})(?: (.*))?$")


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]


def connect_authority(host: str, port: int) -> str:
    """`host:port` as CONNECT wants it, with IPv6 addresses in brackets."""
    if _FORBIDDEN_IN_VALUE.search(host) or not host or " " in host:
        raise ValueError(f"invalid CONNECT target host: {host!r}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{int(port)}"


def proxy_authorization(proxy: URL, proxy_auth: BasicAuth | None) -> str | None:
    """The `Proxy-Authorization` value: explicit `proxy_auth` first, else the proxy URL's user."""
    if proxy_auth is None:
        proxy_auth = BasicAuth.from_url(proxy)
    return proxy_auth.encode() if proxy_auth is not None else None


def connect_request(
    host: str, port: int, headers: Mapping[str, str], *, authorization: str | None = None
) -> bytes:
    """The CONNECT request head; raises `ValueError` for CR, LF or NUL in any part of it.

    `authorization` is added as `Proxy-Authorization` unless `headers` already has one.
    """
    authority = connect_authority(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    names = set()
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise ValueError(f"invalid proxy header name: {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"CR, LF or NUL in proxy header {name!r}")
        if name.lower() == "host":
            continue  # the tunnel's Host is its target, nothing else
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if authorization is not None and "proxy-authorization" not in names:
        if _FORBIDDEN_IN_VALUE.search(authorization):
            raise ValueError("CR, LF or NUL in Proxy-Authorization")
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_connect_response(head: bytes) -> ConnectResponse:
    """Status, reason and headers of the proxy's answer; `ValueError` when it is not HTTP/1.x."""
    lines = head.rstrip(b"\r\n").split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    match = _STATUS_LINE.match(status_line)
    if match is None:
        raise ValueError(f"malformed status line from proxy: {status_line[:100]!r}")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"malformed header line from proxy: {line[:100]!r}")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    reason = (match.group(2) or b"").decode("latin-1").strip()
    return ConnectResponse(int(match.group(1)), reason, tuple(headers))
