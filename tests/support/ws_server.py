"""A real `websockets` server on a free loopback port, with one handler per path.

Runs in the test's own event loop. Paths:
  /echo            echoes every message (text as text, binary as binary)
  /ping            pings the client with b"server-ping", sends "pong received" once the pong came,
                   then echoes
  /close           closes at once with code 4001, reason "server says bye"
  /silent          sends "going silent", then stops reading: no pong, no close reply ever
  /hold            accepts and sends nothing (the client decides when to close)
  /reject          answers the upgrade with 403 Forbidden
  /subprotocol     sends back the subprotocol it chose ("superchat" before "chat"), "" for none
  /extensions      sends back the Sec-WebSocket-Extensions header it answered with, "" for none
  /headers         sends back the upgrade request's headers as a JSON object of lists
  /big?size=N      sends one binary message of N bytes
  /flood?count=N&size=S  sends N binary messages of S bytes, then waits for the client to close
  /fragments?size=N&parts=K  sends one text message of N "x" characters as K fragments
  /violation       writes a frame with a reserved opcode (a protocol violation)
  /bad-utf8        writes a text frame that is not UTF-8
  /drop            drops the TCP connection without a close frame
  /guide           plays the client guide's example: sends "hello", records the answer in
                   `answers`, then sends "close cmd"
  /set-cookie      like /echo, but its 101 answer sets the cookie ws_session=abc123

Every connection's end is reported on `closes` as (path, code the client sent, reason), so
tests can check what the client told the server. `running_ws_server()` also fails a test that
ends cleanly but left a ResourceWarning behind (an unclosed socket, transport or session).
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.tls_certs import TestPKI

SERVER_SUBPROTOCOLS = ("superchat", "chat")
# Large enough for the big-message tests; the server must not be the one refusing.
_SERVER_MAX_SIZE = 64 * 1024 * 1024


class WebSocketTestServer:
    """The server and what it saw. Use `running_ws_server()` to get a started one."""

    def __init__(self, *, pki: TestPKI | None = None, compression: str | None = "deflate") -> None:
        self.pki = pki
        self.compression = compression
        self.port = 0
        self.closes: asyncio.Queue[tuple[str, int | None, str | None]] = asyncio.Queue()
        self.requests: list[Headers] = []
        self.answers: list[str] = []
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()

    @property
    def scheme(self) -> str:
        return "wss" if self.pki is not None else "ws"

    def url(self, path: str = "/echo") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str = "/echo") -> str:
        scheme = "https" if self.pki is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def client_ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        return self.pki.client_context()

    async def next_close(self, timeout: float = 10.0) -> tuple[str, int | None, str | None]:
        """The next (path, close code from the client, reason) of a finished connection."""
        return await asyncio.wait_for(self.closes.get(), timeout)

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self.pki.server_context() if self.pki is not None else None,
            compression=self.compression,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=_select_subprotocol,
            max_size=_SERVER_MAX_SIZE,
            ping_interval=None,  # the client's heartbeat is under test, not the server's
            close_timeout=2,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def close(self) -> None:
        for connection in list(self._connections):
            connection.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request.headers)
        if urlsplit(request.path).path == "/reject":
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        if urlsplit(request.path).path == "/set-cookie" and response.status_code == 101:
            response.headers["Set-Cookie"] = "ws_session=abc123; Path=/"

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        split = urlsplit(ws.request.path)
        query = {name: values[0] for name, values in parse_qs(split.query).items()}
        handler = _HANDLERS.get(split.path, _not_found)
        self._connections.add(ws)
        try:
            if split.path == "/guide":
                await self._guide(ws)
            else:
                await handler(ws, query)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(ws)
            self.closes.put_nowait((split.path, ws.close_code, ws.close_reason))


    async def _guide(self, ws: ServerConnection) -> None:
        await ws.send("hello")
        answer = await ws.recv()
        self.answers.append(str(answer))
        await ws.send("close cmd")


def _select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    for protocol in SERVER_SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    return None


async def _echo(ws: ServerConnection, query: dict[str, str]) -> None:
    async for message in ws:
        await ws.send(message)


async def _ping(ws: ServerConnection, query: dict[str, str]) -> None:
    pong_waiter = await ws.ping(b"server-ping")
    await pong_waiter
    await ws.send("pong received")
    await _echo(ws, query)


async def _close(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.close(4001, "server says bye")


async def _silent(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.send("going silent")
    ws.transport.pause_reading()
    await ws.wait_closed()  # only when the server shuts down: nothing is read any more


async def _hold(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.wait_closed()


async def _subprotocol(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.send(ws.subprotocol or "")
    await _echo(ws, query)


async def _extensions(ws: ServerConnection, query: dict[str, str]) -> None:
    assert ws.response is not None
    await ws.send(ws.response.headers.get("Sec-WebSocket-Extensions", ""))
    await _echo(ws, query)


async def _headers(ws: ServerConnection, query: dict[str, str]) -> None:
    assert ws.request is not None
    seen: dict[str, list[str]] = {}
    for name, value in ws.request.headers.raw_items():
        seen.setdefault(name.lower(), []).append(value)
    await ws.send(json.dumps(seen))
    await _echo(ws, query)


async def _big(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.send(b"\xab" * int(query["size"]))


async def _flood(ws: ServerConnection, query: dict[str, str]) -> None:
    for _ in range(int(query["count"])):
        await ws.send(b"\xcd" * int(query["size"]))
    await ws.wait_closed()  # answers the client's close frame whenever it comes


async def _fragments(ws: ServerConnection, query: dict[str, str]) -> None:
    size, parts = int(query["size"]), int(query["parts"])
    step = -(-size // parts)
    await ws.send(["x" * min(step, size - start) for start in range(0, size, step)])
    await _echo(ws, query)


async def _violation(ws: ServerConnection, query: dict[str, str]) -> None:
    ws.transport.write(b"\x83\x00")  # FIN + opcode 0x3, which RFC 6455 reserves


async def _bad_utf8(ws: ServerConnection, query: dict[str, str]) -> None:
    ws.transport.write(b"\x81\x02\xc3\x28")  # a TEXT frame whose payload is invalid UTF-8


async def _drop(ws: ServerConnection, query: dict[str, str]) -> None:
    ws.transport.abort()


async def _not_found(ws: ServerConnection, query: dict[str, str]) -> None:
    await ws.close(1008, "no such path")


_HANDLERS = {
    "/echo": _echo,
    "/ping": _ping,
    "/close": _close,
    "/silent": _silent,
    "/hold": _hold,
    "/subprotocol": _subprotocol,
    "/extensions": _extensions,
    "/headers": _headers,
    "/big": _big,
    "/flood": _flood,
    "/fragments": _fragments,
    "/violation": _violation,
    "/bad-utf8": _bad_utf8,
    "/drop": _drop,
    "/set-cookie": _echo,
}


def client_sockets_to(port: int) -> list[Any]:
    """This process's TCP sockets connected to `port` on the client side (open file descriptors
    only: a closed socket is gone from the list even while the kernel keeps its TIME_WAIT)."""
    return [
        conn
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port
    ]


async def open_transport(
    server: WebSocketTestServer, *, ssl_context: ssl.SSLContext | None = None
) -> asyncio.Transport:
    """A fresh TCP (or TLS, for a TLS server) connection to the server, nothing sent yet."""
    loop = asyncio.get_running_loop()
    if server.pki is not None and ssl_context is None:
        ssl_context = server.client_ssl_context()
    transport, _ = await loop.create_connection(
        asyncio.Protocol,
        "127.0.0.1",
        server.port,
        ssl=ssl_context,
        server_hostname="localhost" if ssl_context is not None else None,
    )
    return transport


@contextmanager
def no_resource_warnings() -> Iterator[None]:
    """Fail if the block (or a garbage collection at its end) emits a ResourceWarning.

    Other warnings are passed on unchanged after the block.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    for other in caught:
        if other not in leaks:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    assert not leaks, "ResourceWarning: " + "; ".join(str(w.message) for w in leaks)


@asynccontextmanager
async def running_ws_server(
    *, pki: TestPKI | None = None, compression: str | None = "deflate"
) -> AsyncIterator[WebSocketTestServer]:
    """A started server, shut down (every connection dropped) on exit; a ResourceWarning left
    by a test that passed fails it."""
    with no_resource_warnings():
        server = WebSocketTestServer(pki=pki, compression=compression)
        await server.start()
        try:
            yield server
        finally:
            await server.close()


__all__ = [
    "SERVER_SUBPROTOCOLS",
    "WebSocketTestServer",
    "client_sockets_to",
    "no_resource_warnings",
    "open_transport",
    "running_ws_server",
]
