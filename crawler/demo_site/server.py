"""A small, fast HTTP/1.1 server for demo sites: asyncio + httptools, keep-alive, pipelining,
ranges, HEAD, streaming with back-pressure, and an optional per-connection rate limit.

One `DemoServer` listens on one socket per host. Decisions are made by `responses.plan` (no I/O);
this module only parses requests and moves bytes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import cast

import httptools

from crawler.demo_site.hosts import HostContent
from crawler.demo_site.resources import Body, Flaky, Resource
from crawler.demo_site.responses import Plan, head_bytes, plan

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
_OK_LINE = b"HTTP/1.1 200 OK\r\n"


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    host: int
    method: str
    path: str
    status: int
    range: str | None


@dataclass(slots=True)
class _Request:
    method: str
    target: bytes
    range: str | None
    if_range: str | None
    keep_alive: bool
    error: int = 0
    if_none_match: str | None = None


class DemoServer:
    """Serves one `HostContent` per listening socket.

    `rate` (bytes/s) slows every streamed body (generated and on-disk files) per connection, so a
    test can interrupt a large download half way. `latency` (seconds) holds every answer back that
    long, so a client's concurrent requests really overlap at the server. With `log_requests`,
    every answered request is appended to `log` (for tests that check what a crawler fetched, and
    how often).

    `active[i]` counts the requests host i has received and not finished answering, and
    `max_active[i]` the most there ever were at once: the server's own view of a client's
    per-host concurrency.
    """

    def __init__(
        self,
        hosts: Sequence[HostContent],
        *,
        rate: float | None = None,
        latency: float | None = None,
        log_requests: bool = False,
    ) -> None:
        self.hosts = list(hosts)
        self.rate = rate
        self.latency = latency or None
        self.active = [0] * len(self.hosts)
        self.max_active = [0] * len(self.hosts)
        self.log: list[LoggedRequest] | None = [] if log_requests else None
        self.requests = 0
        self.connections_opened = 0
        self.failures_served: dict[tuple[int, str], int] = {}
        self._servers: list[asyncio.Server] = []
        self._open: set[_Connection] = set()
        self._ok_heads: dict[tuple[Body, bool], bytes] = {}
        self._date_second = -1
        self._date_line = b""

    async def start(
        self, sockets: Sequence[socket.socket], *, ssl: ssl_module.SSLContext | None = None
    ) -> None:
        """Listen on `sockets` (bound, one per host, in host order); with `ssl`, over TLS."""
        if len(sockets) != len(self.hosts):
            raise ValueError(f"{len(self.hosts)} hosts need {len(self.hosts)} sockets")
        loop = asyncio.get_running_loop()
        for index, sock in enumerate(sockets):
            content = self.hosts[index]
            server = await loop.create_server(
                lambda index=index, content=content: _Connection(self, index, content),
                sock=sock,
                backlog=1024,
                ssl=ssl,
            )
            self._servers.append(server)

    async def close(self) -> None:
        """Stop listening and close every connection, streaming or idle."""
        for server in self._servers:
            server.close()
        for connection in list(self._open):
            connection.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def date_line(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._date_line

    def ok_head(self, body: Body, keep_alive: bool) -> bytes:
        """The cached header block (after the Date line) of a whole-body 200 for `body`."""
        key = (body, keep_alive)
        head = self._ok_heads.get(key)
        if head is None:
            response = plan(body, "GET")
            extra = () if keep_alive else (("Connection", "close"),)
            head = head_bytes(200, response.headers, *extra).split(b"\r\n", 1)[1]
            self._ok_heads[key] = head
        return head


class _Connection(asyncio.Protocol):
    def __init__(self, server: DemoServer, host: int, content: HostContent) -> None:
        self.server = server
        self.host = host
        self.content = content
        self.parser = httptools.HttpRequestParser(self)
        # Set by connection_made, which asyncio calls before any other callback.
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.pending: deque[_Request] = deque()
        self.streaming: asyncio.Task[None] | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.closing = False
        self.delaying: asyncio.TimerHandle | None = None
        self._answering = 0  # 1 while the request taken from `pending` is being answered
        self._url = bytearray()
        self._range: str | None = None
        self._if_range: str | None = None
        self._header_bytes = 0

    # --- transport events ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but offer the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections_opened += 1
        self.server._open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server._open.discard(self)
        self.can_write.set()
        if self.delaying is not None:
            self.delaying.cancel()
            self.delaying = None
        if self.streaming is not None:
            self.streaming.cancel()
        # Requests received but not answered are over for the client too.
        self._ended(len(self.pending) + self._answering)
        self.pending.clear()
        self._answering = 0

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400)
        except httptools.HttpParserError:
            self._reject(400)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self._url.clear()
        self._range = self._if_range = self._if_none_match = None
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        lowered = name.lower()
        if lowered == b"range":
            self._range = value.decode("latin-1")
        elif lowered == b"if-range":
            self._if_range = value.decode("latin-1")
        elif lowered == b"if-none-match":
            self._if_none_match = value.decode("latin-1")

    def on_message_complete(self) -> None:
        error = 0
        if len(self._url) > MAX_URL_BYTES:
            error = 414
        elif self._header_bytes > MAX_HEADER_BYTES:
            error = 431
        request = _Request(
            self.parser.get_method().decode("latin-1"),
            bytes(self._url),
            self._range,
            self._if_range,
            self.parser.should_keep_alive() and not error,
            error,
            self._if_none_match,
        )
        self.pending.append(request)
        server = self.server
        server.active[self.host] += 1
        if server.active[self.host] > server.max_active[self.host]:
            server.max_active[self.host] = server.active[self.host]
        self._process()

    # --- answering ---

    def _reject(self, status: int) -> None:
        if self.transport is not None and not self.closing:
            self.closing = True
            self.transport.write(
                head_bytes(status, (("Content-Length", "0"),), ("Connection", "close"))
            )
            self.transport.close()

    def _process(self) -> None:
        latency = self.server.latency
        while (
            self.pending and self.streaming is None and self.delaying is None and not self.closing
        ):
            request = self.pending.popleft()
            self._answering = 1
            if latency is None:
                self._respond(request)
                if self.streaming is None:
                    self._answered()
            else:
                loop = asyncio.get_running_loop()
                self.delaying = loop.call_later(latency, self._respond_late, request)

    def _respond_late(self, request: _Request) -> None:
        self.delaying = None
        if self.closing:
            return
        self._respond(request)
        if self.streaming is None:
            self._answered()
            self._process()

    def _answered(self) -> None:
        if self._answering:
            self._answering = 0
            self._ended(1)

    def _ended(self, count: int) -> None:
        self.server.active[self.host] -= count

    def _respond(self, request: _Request) -> None:
        server = self.server
        server.requests += 1
        if request.error:
            self._finish(request, head_bytes(request.error, (("Content-Length", "0"),)))
            return
        try:
            path = httptools.parse_url(request.target).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            self._reject(400)
            return
        resource = self.content.lookup(path)
        if (
            type(resource) is Body
            and request.range is None
            and request.if_none_match is None
            and request.method == "GET"
        ):
            # The common case (a whole page), from a cached header block.
            head = _OK_LINE + server.date_line() + server.ok_head(resource, request.keep_alive)
            # Logged before writing: a client that has its answer finds the request logged.
            self._log(request, path, 200)
            self.transport.writelines((head, resource.data))
            if not request.keep_alive:
                self._close()
            return
        self._send_plan(request, path, self._plan(request, path, resource))

    def _plan(self, request: _Request, path: str, resource: Resource | None) -> Plan:
        failures = 0
        if isinstance(resource, Flaky):
            key = (self.host, path)
            failures = self.server.failures_served.get(key, 0)
            if failures < resource.failures:
                self.server.failures_served[key] = failures + 1
        return plan(
            resource,
            request.method,
            request.range,
            request.if_range,
            failures,
            if_none_match=request.if_none_match,
        )

    def _send_plan(self, request: _Request, path: str, response: Plan) -> None:
        extra = [("Date", self.server.date_line()[6:-2].decode())]
        if not request.keep_alive:
            extra.append(("Connection", "close"))
        head = head_bytes(response.status, response.headers, *extra)
        self._log(request, path, response.status)
        body = response.body
        if request.method == "HEAD" or body is None or response.start == response.end:
            self._finish(request, head)
        elif isinstance(body, bytes):
            self._finish(request, head + body[response.start : response.end])
        elif isinstance(body, Body) and self.server.rate is None:
            data = body.data[response.start : response.end]
            self._finish(request, head + data)
        else:
            self.transport.pause_reading()
            self.streaming = asyncio.ensure_future(self._stream(request, head, response))

    def _finish(self, request: _Request, data: bytes) -> None:
        self.transport.write(data)
        if not request.keep_alive:
            self._close()

    def _log(self, request: _Request, path: str, status: int) -> None:
        if self.server.log is not None:
            self.server.log.append(
                LoggedRequest(self.host, request.method, path, status, request.range)
            )

    def _close(self) -> None:
        self.closing = True
        self.transport.close()

    async def _stream(self, request: _Request, head: bytes, response: Plan) -> None:
        transport = self.transport
        assert transport is not None and response.body is not None
        assert not isinstance(response.body, bytes)
        rate = self.server.rate
        piece_size = max(1024, int(rate / 20)) if rate else None
        try:
            transport.write(head)
            for chunk in response.body.chunks(response.start, response.end):
                pieces = [chunk] if piece_size is None else _split(chunk, piece_size)
                for piece in pieces:
                    await self.can_write.wait()
                    if self.closing:
                        return
                    transport.write(piece)
                    # Yield even when the client keeps up, so one download cannot starve the rest.
                    await asyncio.sleep(len(piece) / rate if rate else 0)
        except asyncio.CancelledError:
            return
        finally:
            self.streaming = None
            self._answered()
        if not request.keep_alive:
            self._close()
            return
        if not self.closing:
            transport.resume_reading()
            self._process()


def _split(chunk: bytes, size: int) -> list[bytes]:
    view = memoryview(chunk)
    return [bytes(view[offset : offset + size]) for offset in range(0, len(chunk), size)]


def bind_sockets(
    count: int, address: str = "127.0.0.1", ports: Sequence[int] = ()
) -> list[socket.socket]:
    """`count` listening TCP sockets on `address`: on `ports` when given, else on free ports."""
    if ports and len(ports) != count:
        raise ValueError(f"{count} sockets need {count} ports, got {len(ports)}")
    sockets = []
    try:
        for index in range(count):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, ports[index] if ports else 0))
            sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
