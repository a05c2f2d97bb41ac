"""The WebSocket opening handshake as data: the upgrade request we send, what the server agreed to.

No I/O here. wsproto writes the request bytes and checks the answer (101, Upgrade, Connection,
Sec-WebSocket-Accept, a subprotocol we offered, extensions we offered); this module validates what a
user passes before anything goes on the wire and reads the agreed terms out of wsproto's events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate
from yarl import URL

__all__ = [
    "WS_SCHEMES",
    "HandshakeFailure",
    "Negotiated",
    "build_upgrade_request",
    "negotiated_terms",
    "normalize_ws_url",
    "tidy_extensions_header",
]

WS_SCHEMES = {"ws": "http", "wss": "https"}
_HTTP_SCHEMES = {"http", "https"}

# Headers that the handshake itself writes; letting a caller set them too would send them twice
# or break the challenge, so they are refused with a pointer to the right argument.
_OWNED_HEADERS = {
    "upgrade": "it is always 'websocket'",
    "connection": "it is always 'Upgrade'",
    "sec-websocket-key": "it is generated per handshake",
    "sec-websocket-version": "it is always 13",
    "sec-websocket-protocol": "use protocols=",
    "sec-websocket-extensions": "use compress=",
}
# h11 (wsproto's HTTP parser) ends a head at LF (CR)? LF and splits lines at LF: so does
# tidy_extensions_header, so that it sees the same header lines as wsproto will.
_HEAD_END = re.compile(rb"\n\r?\n")
_EXTENSIONS_HEADER = re.compile(rb"sec-websocket-extensions:", re.IGNORECASE)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """The server did not upgrade: `status` is None when it closed before answering."""

    status: int | None
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the server agreed to in its 101 answer."""

    protocol: str | None
    compress: int  # window bits we compress with, 0 when permessage-deflate is off
    client_notakeover: bool
    extensions: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = ()  # the answer's other headers (e.g. Set-Cookie)


def normalize_ws_url(url: str | URL) -> URL:
    """Accept ws(s):// and http(s):// URLs; return the URL with a ws(s) scheme, without fragment."""
    url = URL(url)
    scheme = url.scheme.lower()
    if scheme in _HTTP_SCHEMES:
        url = url.with_scheme("wss" if scheme == "https" else "ws")
    elif scheme not in WS_SCHEMES:
        raise ValueError(f"WebSocket URL must be ws://, wss://, http:// or https://, got {url}")
    if not url.host:
        raise ValueError(f"WebSocket URL has no host: {url}")
    return url.with_fragment(None)


def build_upgrade_request(
    url: URL,
    *,
    protocols: Iterable[str] = (),
    headers: HeadersLike | None = None,
    origin: str | None = None,
    compress: int = 15,
) -> Request:
    """The wsproto upgrade request for `url`; ValueError for anything unsafe or unsendable."""
    host = url.host_port_subcomponent
    if host is None:
        raise ValueError(f"WebSocket URL has no host: {url}")
    target = url.raw_path_qs or "/"
    _check_value("request target", target)

    subprotocols = list(protocols)
    for protocol in subprotocols:
        if not isinstance(protocol, str) or not _TOKEN.match(protocol):
            raise ValueError(f"WebSocket subprotocol must be an HTTP token, got {protocol!r}")

    pairs = _header_pairs(headers)
    if origin is not None:
        pairs += _header_pairs([("Origin", origin)])
    extra: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
        lowered = name.lower()
        if lowered in _OWNED_HEADERS:
            raise ValueError(
                f"header {name!r} cannot be set for a WebSocket: {_OWNED_HEADERS[lowered]}"
            )
        if lowered == "host":
            host = value
            continue
        extra.append((name.encode("ascii"), value.encode("latin-1")))

    extensions = []
    if compress:
        if not 9 <= compress <= 15:
            raise ValueError(f"compress must be 0 (off) or window bits 9..15, got {compress}")
        extensions.append(
            PerMessageDeflate(client_max_window_bits=compress, server_max_window_bits=compress)
        )
    return Request(
        host=host,
        target=target,
        subprotocols=subprotocols,
        extensions=extensions,
        extra_headers=extra,
    )


def negotiated_terms(event: AcceptConnection) -> Negotiated:
    """Read the subprotocol and compression settings out of the server's acceptance."""
    compress = 0
    notakeover = False
    names = []
    for extension in event.extensions:
        names.append(extension.name)
        if isinstance(extension, PerMessageDeflate):
            compress = extension.client_max_window_bits
            notakeover = extension.client_no_context_takeover
    return Negotiated(
        protocol=event.subprotocol,
        compress=compress,
        client_notakeover=notakeover,
        extensions=tuple(names),
        headers=tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in event.extra_headers
        ),
    )


def _header_pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for name, value in items:
        name = str(name)
        value = str(value)
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        _check_value(f"header {name!r}", value)
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} must be latin-1 text, got {value!r}") from None
        pairs.append((name, value))
    return pairs


def _check_value(what: str, value: str) -> None:
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"{what} must not contain CR, LF or NUL: {value!r}")


def head_end(data: bytes | bytearray) -> int:
    """Where the HTTP head in `data` ends (just past its blank line), -1 while incomplete."""
    match = _HEAD_END.search(data)
    return -1 if match is None else match.end()


def head_fields(head: bytes) -> list[tuple[str, str]]:
    """The header fields of an HTTP head (its first line skipped), in order, as text."""
    fields = []
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.rstrip(b"\r").partition(b":")
        if colon:
            fields.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return fields


def tidy_extensions_header(head: bytes) -> bytes:
    """The upgrade answer's head (through its blank line) without empty extension list elements.

    An empty `Sec-WebSocket-Extensions:` (or one of only commas and spaces) means "no
    extensions": RFC 9110 5.6.1 has recipients ignore empty list elements, and aiohttp takes an
    empty header, or one naming no permessage-deflate, for no compression. wsproto instead
    looks up an extension named "" and fails the handshake. So each such header line loses
    its empty elements, and a line with none left is dropped. Anything else, folded (obs-fold)
    lines included, is left byte for byte for wsproto to judge.
    """
    pieces = head.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    changed = False
    tidied: list[bytes] = []
    for index, line in enumerate(lines):
        folded = index + 1 < len(lines) and lines[index + 1][:1] in (b" ", b"\t")
        if index == 0 or folded or not _EXTENSIONS_HEADER.match(line):
            tidied.append(line)
            continue
        ending = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""
        name, _, value = line[: len(line) - len(ending)].partition(b":")
        elements = [element.strip(b" \t") for element in value.split(b",")]
        kept = [element for element in elements if element]
        if len(kept) == len(elements):
            tidied.append(line)
            continue
        changed = True
        if kept:
            tidied.append(name + b": " + b", ".join(kept) + ending)
    return b"".join(tidied) if changed else head
