"""A small asyncio HTTP proxy that records the request heads it receives.

Tests use it to see what a client sends to a proxy (`Proxy-Authorization`, the CONNECT target,
absolute-form request lines) and, together with `tests.support.origin_server`, that the origin
never sees the proxy's credentials. It serves:

* absolute-form requests (`GET http://host:port/path HTTP/1.1`): forwarded to the origin in
  origin-form without the `Proxy-*` headers, one request per client connection (the answer is
  sent with `Connection: close`);
* `CONNECT host:port`: answered `200` and piped both ways.

Fault switches: `require_auth` (answer 407 unless `Proxy-Authorization` equals it),
`connect_status` (answer CONNECT with that status instead of tunnelling), `hang_up_on_connect`
(close without answering CONNECT), `stall_on_connect` (never answer CONNECT). With
`ssl_context` it listens over TLS (an `https://` proxy, named `localhost` in `url`);
`bytes_after_connect` are sent right behind the CONNECT answer, as if the tunnel spoke first;
`connect_answer` replaces the answer head a tunnel opens with (to answer with bare LFs, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from yarl import URL

_MAX_HEAD = 64 * 1024


@dataclass(slots=True)
class RecordedRequest:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _parse_head(head: bytes) -> RecordedRequest:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return RecordedRequest(method, target, headers)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


class RecordingProxy:
    def __init__(
        self,
        *,
        require_auth: str | None = None,
        connect_status: int | None = None,
        hang_up_on_connect: bool = False,
        stall_on_connect: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        bytes_after_connect: bytes = b"",
        connect_answer: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
    ) -> None:
        self.connect_answer = connect_answer
        self.ssl_context = ssl_context
        self.bytes_after_connect = bytes_after_connect
        self.require_auth = require_auth
        self.connect_status = connect_status
        self.hang_up_on_connect = hang_up_on_connect
        self.stall_on_connect = stall_on_connect
        self.requests: list[RecordedRequest] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        if self.ssl_context is not None:
            return f"https://localhost:{self.port}"  # the name test certificates carry
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            request = _parse_head(head[:_MAX_HEAD])
            self.requests.append(request)
            wanted = self.require_auth
            if wanted is not None and request.header("Proxy-Authorization") != wanted:
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
            if request.method == "CONNECT":
                await self._tunnel(request, reader, writer)
            else:
                await self._forward(request, reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _tunnel(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.hang_up_on_connect:
            return
        if self.stall_on_connect:
            await asyncio.Event().wait()  # until the client gives up (or close() cancels us)
        if self.connect_status is not None:
            writer.write(
                f"HTTP/1.1 {self.connect_status} Refused by test\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            return
        host, _, port = request.target.rpartition(":")
        origin_reader, origin_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        self._writers.add(origin_writer)
        try:
            # Extra bytes in the same write land in the client's buffer with the answer head.
            writer.write(self.connect_answer + self.bytes_after_connect)
            await writer.drain()
            await asyncio.gather(_pipe(reader, origin_writer), _pipe(origin_reader, writer))
        finally:
            self._writers.discard(origin_writer)
            origin_writer.close()

    async def _forward(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url = URL(request.target)
        length = int(request.header("Content-Length") or 0)
        body = await reader.readexactly(length) if length else b""
        kept = [
            (name, value)
            for name, value in request.headers
            if not name.lower().startswith("proxy-") and name.lower() != "connection"
        ]
        origin_head = [f"{request.method} {url.raw_path_qs} HTTP/1.1"]
        origin_head += [f"{name}: {value}" for name, value in kept]
        origin_head.append("Connection: close")
        origin_reader, origin_writer = await asyncio.open_connection(url.host, url.port)
        self._writers.add(origin_writer)
        try:
            origin_writer.write(("\r\n".join(origin_head) + "\r\n\r\n").encode("latin-1") + body)
            await origin_writer.drain()
            response_head = await origin_reader.readuntil(b"\r\n\r\n")
            lines = response_head.decode("latin-1").split("\r\n")
            lines = [line for line in lines if not line.lower().startswith("connection:") and line]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            # The origin closes after its answer (we asked it to), which ends the body.
            while data := await origin_reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(origin_writer)
            origin_writer.close()
