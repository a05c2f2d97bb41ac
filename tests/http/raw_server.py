"""Small asyncio servers on loopback for client tests: scripted answers and misbehaviour.

`raw_server(handler)` runs `handler(reader, writer)` for each connection and yields the base URL.
`read_request(reader)` reads one request head (and a Content-Length or chunked body) so a
handler can answer keep-alive requests in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    raw_head: bytes
    body: bytes = b""


@dataclass
class ServerState:
    """What a test server saw: connections accepted and requests read."""

    connections: int = 0
    requests: list[Request] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request (None when the client closed before sending one)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", ""):
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        body = b"".join(parts)
    return Request(method, target, headers, head, body)


def response(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    reason: str = "OK",
    keep_alive: bool = True,
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    all_headers = {"Content-Length": str(len(body))}
    if not keep_alive:
        all_headers["Connection"] = "close"
    all_headers.update(headers or {})
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@contextlib.asynccontextmanager
async def raw_server(
    handler: Handler, state: ServerState | None = None
) -> AsyncIterator[str]:
    """Serve `handler` on a free loopback port; yields "http://127.0.0.1:PORT"."""
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state is not None:
            state.connections += 1
        writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def serve_forever(answer: Callable[[Request], bytes], state: ServerState | None = None) -> Handler:
    """A keep-alive handler answering each request with `answer(request)`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if request is None:
                return
            if state is not None:
                state.requests.append(request)
            writer.write(answer(request))
            await writer.drain()
            if request.headers.get("connection", "").lower() == "close":
                return

    return handler
