"""A tiny HTTP/1.1 origin for transport tests: over TCP, TLS or a Unix socket.

It answers every request with `200` and a JSON body describing what it received (method, target,
headers), except `/redirect?to=<url>` which answers `302` to that URL. It keeps connections
alive unless asked not to, and records each request head in `requests`, so a test can check
what reached the origin (and what did not, such as proxy credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl

from yarl import URL

from tests.support.recording_proxy import RecordedRequest


def _answer(request: RecordedRequest, closing: bool) -> bytes:
    target = URL(request.target)  # origin-form, or absolute-form from a proxy
    connection = b"Connection: close\r\n" if closing else b""
    if target.path == "/redirect" and "to" in target.query:
        location = target.query["to"].encode("latin-1")
        return (
            b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\n"
            b"Content-Length: 0\r\n" + connection + b"\r\n"
        )
    body = json.dumps(
        {"method": request.method, "target": request.target, "headers": request.headers}
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + connection
        + b"\r\n"
        + body
    )


class OriginServer:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.requests: list[RecordedRequest] = []
        self.unix_path: str | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        if self._server is None or self.unix_path is not None:
            raise RuntimeError("origin is not listening on TCP")
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._serve, host, 0, ssl=self.ssl_context)

    async def start_unix(self, path: str) -> None:
        self.unix_path = path
        self._server = await asyncio.start_unix_server(self._serve, path)

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

    async def __aenter__(self) -> OriginServer:
        if self.unix_path is None and self._server is None:
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
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = [
                    (name.strip(), value.strip())
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                ]
                request = RecordedRequest(method, target, headers)
                self.requests.append(request)
                length = int(request.header("Content-Length") or 0)
                if length:
                    await reader.readexactly(length)
                closing = (request.header("Connection") or "").lower() == "close"
                writer.write(_answer(request, closing))
                await writer.drain()
                if closing:
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
