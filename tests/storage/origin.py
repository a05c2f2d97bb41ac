"""A small asyncio HTTP/1.1 origin for storage tests: big generated bodies, Range, validators,
and the faults a download must survive (a dropped connection, a changed ETag, 416, a server that
ignores Range, error statuses, redirects).

Bodies are generated, never held whole: byte i of a body with seed s is `pattern(s)[i % P]` for
a prime period P, so any range is a few slices of one ~64 KiB block.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate

_PERIOD = 65521  # prime: chunk boundaries never line up with the pattern
_WRITE_SIZE = 256 << 10


def _pattern(seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < _PERIOD:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    block = bytes(out[:_PERIOD])
    return block * (_WRITE_SIZE // _PERIOD + 2)  # long enough to slice any write from


@dataclass
class Body:
    """A generated body of `size` bytes; same seed, same bytes."""

    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        self._pattern = _pattern(self.seed)

    def slice(self, start: int, length: int) -> bytes:
        phase = start % _PERIOD
        return self._pattern[phase : phase + length]

    def pieces(self, start: int, end: int):  # type: ignore[no-untyped-def]
        position = start
        while position < end:
            length = min(_WRITE_SIZE, end - position)
            yield self.slice(position, length)
            position += length

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.pieces(0, self.size):
            digest.update(piece)
        return digest.hexdigest()

    def bytes(self) -> bytes:
        return b"".join(self.pieces(0, self.size))


@dataclass
class Resource:
    """One URL path. Knobs are read per request, so a test may change them between fetches."""

    body: Body
    etag: str | None = '"v1"'
    last_modified: str | None = formatdate(1_700_000_000, usegmt=True)
    honour_range: bool = True
    # Close the connection after sending this many body bytes of the next response(s).
    drop_after: list[int] = field(default_factory=list)
    status: int = 200
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    gzip_body: bool = False
    chunked: bool = False
    send_length: bool = True
    # Ignore If-Range (answer 206 even when the validator changed), like a broken server.
    ignore_if_range: bool = False
    # Seconds between the head and the body, as over a slow link: the client has decided
    # what to do with the answer before any of its body arrives.
    pause_before_body: float = 0.0
    # Send this many body bytes, then nothing more, never closing (a server that hung).
    stall_after: int | None = None


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class Origin:
    """Serve `resources` (path → Resource) and `redirects` (path → location) on 127.0.0.1."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.redirects: dict[str, str] = {}
        self.fallback: Resource | None = None  # served for any path not in `resources`
        self.requests: list[SeenRequest] = []
        self.on_request: Callable[[SeenRequest], None] | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.connections_accepted = 0
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        self.connections_accepted += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = self._parse(head)
                if request is None:
                    return
                self.requests.append(request)
                if self.on_request is not None:
                    self.on_request(request)
                keep_open = await self._respond(request, writer)
                if not keep_open:
                    return
        except ConnectionError:
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    @staticmethod
    def _parse(head: bytes) -> SeenRequest | None:
        lines = head.split(b"\r\n")
        match = _REQUEST_LINE.match(lines[0])
        if not match:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if b":" in line:
                name, _, value = line.partition(b":")
                headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        return SeenRequest(match.group(1).decode(), match.group(2).decode(), headers)

    async def _respond(self, request: SeenRequest, writer: asyncio.StreamWriter) -> bool:
        if request.path in self.redirects:
            await self._send(writer, 302, [("Location", self.redirects[request.path])], b"")
            return True
        resource = self.resources.get(request.path, self.fallback)
        if resource is None:
            await self._send(writer, 404, [("Content-Type", "text/plain")], b"not found\n")
            return True
        if resource.status != 200:
            body = f"status {resource.status}\n".encode()
            await self._send(writer, resource.status, list(resource.extra_headers), body)
            return True
        return await self._send_resource(request, resource, writer)

    async def _send_resource(
        self, request: SeenRequest, res: Resource, writer: asyncio.StreamWriter
    ) -> bool:
        validators = [("Accept-Ranges", "bytes")]
        if res.etag:
            validators.append(("ETag", res.etag))
        if res.last_modified:
            validators.append(("Last-Modified", res.last_modified))
        validators += res.extra_headers
        if _not_modified(request, res):
            await self._send(writer, 304, validators, b"", length=False)
            return True
        if res.gzip_body:
            data = gzip.compress(res.body.bytes())
            headers = [*validators, ("Content-Encoding", "gzip")]
            await self._send(writer, 200, headers, data)
            return True
        size = res.body.size
        start, end, status = 0, size, 200
        wanted = _RANGE.match(request.headers.get("range", ""))
        if wanted and res.honour_range and _if_range_holds(request, res):
            first = int(wanted.group(1))
            last = int(wanted.group(2)) if wanted.group(2) else size - 1
            if first >= size:
                headers = [*validators, ("Content-Range", f"bytes */{size}")]
                await self._send(writer, 416, headers, b"")
                return True
            start, end, status = first, min(last + 1, size), 206
            validators.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        drop = res.drop_after.pop(0) if res.drop_after else None
        headers = [*validators, ("Content-Type", "application/octet-stream")]
        if res.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif res.send_length:
            headers.append(("Content-Length", str(end - start)))
        writer.write(_head(status, headers))
        if res.pause_before_body:
            await writer.drain()
            await asyncio.sleep(res.pause_before_body)
        sent = 0
        for piece in res.body.pieces(start, end):
            if res.stall_after is not None and sent + len(piece) >= res.stall_after:
                writer.write(_frame(piece[: res.stall_after - sent], res.chunked))
                await writer.drain()
                await asyncio.sleep(3600)  # until the client gives up (or the server closes)
            if drop is not None and sent + len(piece) >= drop:
                piece = piece[: drop - sent]
                writer.write(_frame(piece, res.chunked))
                await writer.drain()
                return False  # close mid-body: the client sees a short body
            writer.write(_frame(piece, res.chunked))
            sent += len(piece)
            await writer.drain()
        if res.chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return res.send_length or res.chunked

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        length: bool = True,
    ) -> None:
        if length:
            headers = [*headers, ("Content-Length", str(len(body)))]
        writer.write(_head(status, headers) + body)
        await writer.drain()


def _not_modified(request: SeenRequest, res: Resource) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return res.etag is not None and inm == res.etag
    ims = request.headers.get("if-modified-since")
    return ims is not None and res.last_modified is not None and ims == res.last_modified


def _if_range_holds(request: SeenRequest, res: Resource) -> bool:
    if_range = request.headers.get("if-range")
    if if_range is None or res.ignore_if_range:
        return True
    return if_range in (res.etag, res.last_modified)


_REASONS = {200: "OK", 206: "Partial Content", 302: "Found", 304: "Not Modified",
            404: "Not Found", 416: "Range Not Satisfiable", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _frame(piece: bytes, chunked: bool) -> bytes:
    if not chunked:
        return piece
    return f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
