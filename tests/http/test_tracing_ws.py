"""Tracing of `ws_connect` and of `compress=` request bodies, ours against aiohttp's.

aiohttp's ws_connect is a session GET, so its traced handshake fires what any request does;
ours speaks the handshake through wsproto and fires the same signals at the same points. With
`compress=`, aiohttp's `request_chunk_sent` reports the body as given, before compression.
Each scenario runs with both clients against the same real server (a `websockets` server, or a
raw HTTP one), and the recordings must agree: signal names in order and the key params
(method, url, status, chunk bytes, exception class).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from types import ModuleType
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request as WSRequest
from websockets.http11 import Response as WSResponse
from yarl import URL

import crawler.http as http
from crawler.http import tracing
from tests.http.raw_server import Request, raw_server, response, serve_forever
from tests.http.test_tracing import Recorder, assert_same, both
from tests.support.ports import free_port
from tests.support.ws_server import (
    WebSocketTestServer,
    client_sockets_to,
    no_resource_warnings,
    running_ws_server,
)

GUARD = 10.0  # seconds: a hang fails the test instead of blocking the run
HANDSHAKE = [
    "request_start",
    "connection_create_start",
    "connection_create_end",
    "request_headers_sent",
    "request_end",
]


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server
        assert client_sockets_to(server.port) == []


async def echo_once(lib: ModuleType, rec: Recorder, url: str, **kwargs: Any) -> None:
    """A traced ws_connect to `url` that proves the WebSocket works, then closes it."""
    async with lib.ClientSession(trace_configs=[rec.config]) as session, session.ws_connect(
        url, **kwargs
    ) as ws:
        await ws.send_str("ping")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "ping"


# --- ws_connect ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_plain_ws_connect_fires_what_aiohttp_fires(
    ws_server: WebSocketTestServer, host: str
) -> None:
    url = f"ws://{host}:{ws_server.port}/echo?room=1"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        await echo_once(lib, rec, url, headers={"X-Trace": "yes"}, protocols=("chat",))

    ours, theirs = await both(scenario)
    expected = list(HANDSHAKE)
    if host == "localhost":
        # A name (an IP is no lookup) is resolved inside the connection's creation.
        expected[2:2] = ["dns_cache_miss", "dns_resolvehost_start", "dns_resolvehost_end"]
    assert ours.names() == expected
    assert_same(ours, theirs)
    start = ours.first("request_start").params
    assert (start.method, start.url) == ("GET", URL(url))  # the ws:// URL, as aiohttp has it
    assert start.headers["X-Trace"] == "yes" and start.headers["Upgrade"] == "websocket"
    assert start.headers["Sec-WebSocket-Protocol"] == "chat"
    for rec in (ours, theirs):
        sent = rec.first("request_headers_sent").params.headers
        # What went on the wire, the key wsproto made included.
        assert sent["Host"] == f"{host}:{ws_server.port}" and sent["X-Trace"] == "yes"
        assert len(sent["Sec-WebSocket-Key"]) == 24 and sent["Sec-WebSocket-Version"] == "13"
        end = rec.first("request_end").params
        assert end.response.status == 101 and end.response.url == URL(url)
        assert end.response.headers["Upgrade"].lower() == "websocket"
        assert end.response.headers["Sec-WebSocket-Protocol"] == "chat"
        assert end.headers is rec.first("request_start").params.headers


class RedirectingPeer:
    """A `websockets` server that answers /hop with a redirect to `location` (relative, or an
    http:// URL of its own /echo), then upgrades /echo and echoes."""

    def __init__(self, location: str, status: int = 302) -> None:
        self.location = location
        self.status = status
        self.port = 0
        self.paths: list[str] = []

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _process_request(
        self, connection: ServerConnection, request: WSRequest
    ) -> WSResponse | None:
        self.paths.append(request.path)
        if request.path.startswith("/hop"):
            answer = connection.respond(HTTPStatus(self.status), "moved\n")
            answer.headers["Location"] = self.location.format(port=self.port)
            answer.headers["Set-Cookie"] = "hop=1; Path=/"
            return answer
        return None

    @staticmethod
    async def _echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)


@asynccontextmanager
async def redirecting_peer(location: str, status: int = 302) -> AsyncIterator[RedirectingPeer]:
    with no_resource_warnings():
        peer = RedirectingPeer(location, status)
        server = await serve(
            peer._echo,
            "127.0.0.1",
            0,
            process_request=peer._process_request,
            ping_interval=None,
            close_timeout=2,
        )
        peer.port = next(iter(server.sockets)).getsockname()[1]
        try:
            yield peer
        finally:
            server.close()
            await server.wait_closed()
        assert client_sockets_to(peer.port) == []


@pytest.mark.parametrize(
    ("location", "final", "path"),
    [
        # aiohttp joins a relative Location to the ws:// URL: the scheme stays ws.
        ("/echo?n=2", "ws://127.0.0.1:{port}/echo?n=2", "/echo?n=2"),
        # An absolute Location is an http:// URL, and is reported as one.
        ("http://127.0.0.1:{port}/echo", "http://127.0.0.1:{port}/echo", "/echo"),
    ],
)
async def test_ws_connect_through_a_redirect(location: str, final: str, path: str) -> None:
    async with redirecting_peer(location) as peer:

        async def scenario(lib: ModuleType, rec: Recorder) -> None:
            await echo_once(lib, rec, peer.url("/hop"))

        ours, theirs = await both(scenario)
        assert peer.paths == ["/hop", path] * 2  # both clients followed it
    hop = HANDSHAKE[:4]
    assert ours.names() == [*hop, "request_redirect", *hop[1:], "request_end"]
    assert_same(ours, theirs)
    redirect = ours.first("request_redirect").params
    assert (redirect.response.status, str(redirect.url)) == (302, peer.url("/hop"))
    assert redirect.response.headers["Location"] == location.format(port=peer.port)
    end = ours.first("request_end").params
    assert (end.response.status, str(end.url)) == (101, final.format(port=peer.port))
    assert [r.status for r in end.response.history] == [302]
    sent = [e.params for e in ours.events if e.name == "request_headers_sent"]
    assert [str(p.url) for p in sent] == [peer.url("/hop"), final.format(port=peer.port)]


async def test_refused_handshake_ends_the_request_then_raises(
    ws_server: WebSocketTestServer,
) -> None:
    """aiohttp checks the upgrade after its `_request` returned: a 403 is a request_end with
    the 403, not a request_exception, and then ws_connect raises."""
    url = ws_server.url("/reject")

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            with pytest.raises(lib.WSServerHandshakeError) as caught:
                await asyncio.wait_for(session.ws_connect(url), GUARD)
        assert caught.value.status == 403

    ours, theirs = await both(scenario)
    assert ours.names() == HANDSHAKE
    assert_same(ours, theirs)
    end = ours.first("request_end").params
    assert (end.response.status, end.response.url, end.method) == (403, URL(url), "GET")
    assert end.response.reason == "Forbidden"


async def test_101_with_a_wrong_accept_ends_the_request_then_raises() -> None:
    """A 101 that fails the upgrade checks is still the request's answer: request_end with
    the 101 (its headers too), then the handshake error."""

    def spoil(connection: ServerConnection, request: WSRequest, answer: WSResponse) -> None:
        del answer.headers["Sec-WebSocket-Accept"]
        answer.headers["Sec-WebSocket-Accept"] = "bm90IHRoZSByaWdodCBrZXk="

    async def hold(ws: ServerConnection) -> None:
        await ws.wait_closed()

    with no_resource_warnings():
        server = await serve(hold, "127.0.0.1", 0, process_response=spoil, ping_interval=None)
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}/spoilt"

        async def scenario(lib: ModuleType, rec: Recorder) -> None:
            async with lib.ClientSession(trace_configs=[rec.config]) as session:
                with pytest.raises(lib.WSServerHandshakeError) as caught:
                    await asyncio.wait_for(session.ws_connect(url), GUARD)
            assert caught.value.status == 101
            assert caught.value.headers["Sec-WebSocket-Accept"] == "bm90IHRoZSByaWdodCBrZXk="

        try:
            ours, theirs = await both(scenario)
        finally:
            server.close()
            await server.wait_closed()
        assert client_sockets_to(port) == []
    assert ours.names() == HANDSHAKE
    assert_same(ours, theirs)
    response = ours.first("request_end").params.response
    assert response.headers["Upgrade"].lower() == "websocket"


async def test_refused_connection_is_a_request_exception() -> None:
    url = f"ws://127.0.0.1:{free_port()}/echo"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            with pytest.raises(lib.ClientConnectorError):
                await asyncio.wait_for(session.ws_connect(url), GUARD)

    ours, theirs = await both(scenario)
    assert ours.names() == ["request_start", "connection_create_start", "request_exception"]
    assert_same(ours, theirs)


async def test_failing_request_end_callback_fails_the_connect(
    ws_server: WebSocketTestServer,
) -> None:
    """As in aiohttp's `_request`: the callback's error is the request's (request_exception),
    and the socket is dropped, not left open."""

    class Refused(Exception):
        pass

    async def refuse(*_: object) -> None:
        raise Refused

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        rec.config.on_request_end.append(refuse)
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            with pytest.raises(Refused):
                await asyncio.wait_for(session.ws_connect(ws_server.url("/hold")), GUARD)

    ours, theirs = await both(scenario)
    assert ours.names() == [*HANDSHAKE, "request_exception"]
    assert_same(ours, theirs)
    assert (await ws_server.next_close())[0] == "/hold"
    assert (await ws_server.next_close())[0] == "/hold"  # aiohttp's, closed as well


# --- compress= -------------------------------------------------------------------------------


@pytest.fixture
def received() -> Iterator[list[Request]]:
    yield []


def sink(received: list[Request]) -> Any:
    def answer(request: Request) -> bytes:
        received.append(request)
        return response(200, b"ok")

    return serve_forever(answer)


@pytest.mark.parametrize("encoding", [True, "gzip"])
async def test_compressed_post_reports_the_body_before_compression(
    received: list[Request], encoding: bool | str
) -> None:
    body = b"hello compressible body " * 200

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.post(
            base + "/up", data=body, compress=encoding
        ) as resp:
            assert await resp.read() == b"ok"

    async with raw_server(sink(received)) as base:
        ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    chunks = [e.params.chunk for e in ours.events if e.name == "request_chunk_sent"]
    assert chunks == [body]  # one piece, as given: not the compressed bytes
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    # Both did send it compressed.
    assert [zlib.decompress(r.body, wbits) for r in received] == [body, body]
    assert all(len(r.body) < len(body) for r in received)


async def test_compressed_streamed_post_reports_each_piece_as_given(
    received: list[Request],
) -> None:
    # No empty piece: ours never reports one (with or without compress=, the async iterable
    # payload skips it), aiohttp does; that is the payload's difference, not compression's.
    pieces = [b"first " * 50, b"second " * 50, b"third"]

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async def stream() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.post(
            base + "/up", data=stream(), compress="deflate"
        ) as resp:
            assert await resp.read() == b"ok"

    async with raw_server(sink(received)) as base:
        ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    chunks = [e.params.chunk for e in ours.events if e.name == "request_chunk_sent"]
    assert chunks == pieces  # as given, not compressed (nor the compressor's final flush)
    assert [zlib.decompress(r.body) for r in received] == [b"".join(pieces)] * 2


# --- untraced: nothing of tracing runs ---------------------------------------------------------


async def test_untraced_ws_connect_and_compressed_post_make_no_traces(
    ws_server: WebSocketTestServer, received: list[Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("tracing ran for a session without trace_configs")

    monkeypatch.setattr(tracing.Trace, "__init__", forbidden)
    monkeypatch.setattr(tracing.Signal, "send", forbidden)
    monkeypatch.setattr(tracing, "begin_request", forbidden)
    monkeypatch.setattr(tracing.HandshakeTrace, "begin", forbidden)
    async with http.ClientSession() as session:
        async with session.ws_connect(ws_server.url("/echo")) as ws:
            await ws.send_str("x")
            assert await asyncio.wait_for(ws.receive_str(), GUARD) == "x"
        with pytest.raises(http.WSServerHandshakeError):
            await session.ws_connect(ws_server.url("/reject"))
        async with raw_server(sink(received)) as base, session.post(
            base + "/up", data=b"abc" * 100, compress=True
        ) as resp:
            assert await resp.read() == b"ok"
    assert zlib.decompress(received[0].body) == b"abc" * 100
