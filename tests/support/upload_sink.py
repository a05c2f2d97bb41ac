"""Small asyncio HTTP/1.1 servers for upload tests: a sink that hashes what it receives, and a
source of deterministic bytes.

httpbin buffers whole bodies and refuses chunked uploads (501), so streaming tests need these.
`HashingSink` parses requests with httptools (chunked included), hashes each body as it arrives
and answers JSON `{"size", "sha256"}`; `PatternSource` answers any GET with `size` bytes from
`pattern_blocks`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

__all__ = [
    "KEEP_BODIES_UP_TO",
    "HashingSink",
    "PatternSource",
    "Received",
    "SinkState",
    "pattern_blocks",
    "start_server",
]

MIB = 1024 * 1024

@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    size: int
    sha256: str
    body: bytes | None  # kept when small enough to inspect


@dataclass
class SinkState:
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    # Set to a byte count to drop the connection after that much of a body (a failing server).
    reset_after: int | None = None
    body_bytes: int = 0  # every body byte seen, finished requests or not


KEEP_BODIES_UP_TO = 16 * MIB


class HashingSink(asyncio.Protocol):
    """Hashes each request body as it arrives and answers JSON {"size", "sha256"}.

    `/redirect/<status>` answers that status with `Location: /final` once the body is read;
    `/reject` answers 401 (and closes) as soon as the head arrives, without reading a body.
    """

    def __init__(self, state: SinkState) -> None:
        self._state = state
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0
        self._body: bytearray | None = bytearray()
        self._url = b""
        self._headers: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._state.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._transport is not None
        if self._url.startswith(b"/reject"):
            self._transport.write(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self._transport.close()
        elif self._headers.get("expect", "").lower() == "100-continue":
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._hash.update(body)
        self._size += len(body)
        self._state.body_bytes += len(body)
        if self._body is not None:
            self._body += body
            if len(self._body) > KEEP_BODIES_UP_TO:
                self._body = None
        limit = self._state.reset_after
        if limit is not None and self._size >= limit and self._transport is not None:
            self._transport.abort()

    def on_message_complete(self) -> None:
        received = Received(
            method=self._parser.get_method().decode(),
            path=self._url.decode(),
            headers=self._headers,
            size=self._size,
            sha256=self._hash.hexdigest(),
            body=bytes(self._body) if self._body is not None else None,
        )
        self._state.requests.append(received)
        answer = json.dumps({"size": received.size, "sha256": received.sha256}).encode()
        assert self._transport is not None
        status = b"200 OK"
        extra = b""
        if received.path.startswith("/redirect/"):
            status = received.path.rsplit("/", 1)[1].encode() + b" Redirect"
            extra = b"Location: /final\r\n"
        self._transport.write(
            b"HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, extra, len(answer), answer)
        )


class PatternSource(asyncio.Protocol):
    """Answers any GET with `size` deterministic bytes (Content-Length), keep-alive."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self._size)
        for block in pattern_blocks(self._size):
            self._transport.write(block)


def pattern_blocks(size: int, seed: int = 7) -> list[bytes]:
    generator = random.Random(seed)
    blocks, left = [], size
    while left:
        block = generator.randbytes(min(MIB, left))
        blocks.append(block)
        left -= len(block)
    return blocks


async def start_server(factory: Callable[[], asyncio.Protocol]) -> tuple[asyncio.Server, str]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"
