"""The WebSocket opening handshake over a transport we open ourselves, against a real server.

Every test ends with no client socket left open (checked by the `ws_server` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from crawler.http.errors import (
    ServerDisconnectedError,
    ServerTimeoutError,
    WSServerHandshakeError,
)
from crawler.http.websocket import ClientWebSocketResponse, websocket_handshake
from crawler.http.ws_messages import WSMsgType
from tests.support.tls_certs import make_pki
from tests.support.ws_server import (
    WebSocketTestServer,
    client_sockets_to,
    open_transport,
    running_ws_server,
)


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server
        assert client_sockets_to(server.port) == []


@pytest.fixture
async def wss_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server(pki=make_pki()) as server:
        yield server
        assert client_sockets_to(server.port) == []


async def connect(
    server: WebSocketTestServer, path: str = "/echo", **kwargs: object
) -> ClientWebSocketResponse:
    transport = await open_transport(server)
    kwargs.setdefault("handshake_timeout", 10)
    return await websocket_handshake(transport, url=server.url(path), **kwargs)  # type: ignore[arg-type]


async def test_handshake_opens_a_websocket_that_echoes(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        assert not ws.closed
        assert ws.close_code is None
        await ws.send_str("hello")
        assert await ws.receive_str() == "hello"
    assert ws.closed
    assert ws.close_code == 1000


async def test_http_scheme_url_is_upgraded_like_ws(ws_server: WebSocketTestServer) -> None:
    transport = await open_transport(ws_server)
    ws = await websocket_handshake(transport, url=ws_server.http_url("/echo"))
    assert ws.url.scheme == "ws"
    await ws.send_str("via http://")
    assert await ws.receive_str() == "via http://"
    await ws.close()


async def test_rejected_upgrade_raises_handshake_error_with_status(
    ws_server: WebSocketTestServer,
) -> None:
    with pytest.raises(WSServerHandshakeError) as caught:
        await connect(ws_server, "/reject")
    assert caught.value.status == 403
    assert "403" in caught.value.message
    assert caught.value.request_info is not None
    assert caught.value.request_info.url.path == "/reject"


async def test_server_picks_a_subprotocol_we_offered(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/subprotocol", protocols=("chat", "superchat")) as ws:
        assert ws.protocol == "superchat"
        assert await ws.receive_str() == "superchat"


async def test_no_subprotocol_when_none_is_offered(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/subprotocol") as ws:
        assert ws.protocol is None
        assert await ws.receive_str() == ""


async def test_compression_is_negotiated_by_default(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/extensions") as ws:
        assert ws.extensions == ("permessage-deflate",)
        assert 9 <= ws.compress <= 15
        assert (await ws.receive_str()).startswith("permessage-deflate")
        text = "compressible " * 50_000
        await ws.send_str(text)
        assert await ws.receive_str() == text


async def test_compress_zero_offers_no_extension(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/headers", compress=0) as ws:
        assert ws.extensions == ()
        assert ws.compress == 0
        headers = await ws.receive_json()
        assert "sec-websocket-extensions" not in headers
        await ws.send_bytes(b"plain" * 1000)
        assert await ws.receive_bytes() == b"plain" * 1000


async def test_server_declining_compression_leaves_it_off() -> None:
    async with running_ws_server(compression=None) as server:
        ws = await connect(server, "/extensions")
        assert ws.compress == 0
        assert await ws.receive_str() == ""
        await ws.close()
        assert client_sockets_to(server.port) == []


async def test_compression_window_bits_are_offered(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/headers", compress=10) as ws:
        offered = (await ws.receive_json())["sec-websocket-extensions"][0]
        assert "permessage-deflate" in offered
        assert "client_max_window_bits=10" in offered
        assert ws.compress <= 10


async def test_wss_with_a_trustme_certificate(wss_server: WebSocketTestServer) -> None:
    transport = await open_transport(wss_server)
    ws = await websocket_handshake(transport, url=wss_server.url("/echo"))
    assert ws.get_extra_info("ssl_object") is not None
    assert ws.get_extra_info("peercert") is not None
    await ws.send_bytes(b"\x00secret\xff")
    assert await ws.receive_bytes() == b"\x00secret\xff"
    assert await ws.close()
    assert ws.get_extra_info("ssl_object", "gone") == "gone"


async def test_origin_and_extra_headers_reach_the_server(ws_server: WebSocketTestServer) -> None:
    headers = {"X-Crawler": "yes", "Authorization": "Bearer t0ken"}
    async with await connect(ws_server, "/headers", headers=headers, origin="http://a.test") as ws:
        seen = await ws.receive_json()
    assert seen["origin"] == ["http://a.test"]
    assert seen["x-crawler"] == ["yes"]
    assert seen["authorization"] == ["Bearer t0ken"]
    assert seen["host"] == [f"127.0.0.1:{ws_server.port}"]
    assert seen["upgrade"] == ["websocket"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: yes"},
        {"X-Evil": "nul\x00"},
        {"Bad Name": "x"},
        {"Sec-WebSocket-Protocol": "chat"},
        {"Upgrade": "h2c"},
    ],
)
async def test_unsafe_or_owned_headers_are_refused_before_sending(
    ws_server: WebSocketTestServer, headers: dict[str, str]
) -> None:
    transport = await open_transport(ws_server)
    with pytest.raises(ValueError):
        await websocket_handshake(transport, url=ws_server.url("/echo"), headers=headers)
    assert transport.is_closing()
    assert ws_server.requests == []


async def test_non_websocket_url_is_refused(ws_server: WebSocketTestServer) -> None:
    transport = await open_transport(ws_server)
    with pytest.raises(ValueError, match="ws://"):
        await websocket_handshake(transport, url=f"ftp://127.0.0.1:{ws_server.port}/")
    assert transport.is_closing()


# --- servers that misbehave during the handshake (scripted raw TCP peers) --------------------

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[int]]]:
    """Start a TCP server running a given script per connection; returns its port."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(script: RawHandler) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await script(reader, writer)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ln)}


def _accept_token(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


async def _raw_connect(port: int, **kwargs: object) -> ClientWebSocketResponse:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    return await websocket_handshake(
        transport,
        url=f"ws://127.0.0.1:{port}/",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_handshake_times_out_when_the_server_never_answers(
    raw_server: Callable[[RawHandler], Awaitable[int]],
) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)

    port = await raw_server(mute)
    with pytest.raises(ServerTimeoutError, match="handshake"):
        await _raw_connect(port, handshake_timeout=0.2)
    assert client_sockets_to(port) == []


async def test_server_closing_before_answering_raises_disconnected(
    raw_server: Callable[[RawHandler], Awaitable[int]],
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.close()

    port = await raw_server(hang_up)
    with pytest.raises(ServerDisconnectedError):
        await _raw_connect(port, handshake_timeout=10)
    assert client_sockets_to(port) == []


async def test_wrong_accept_token_fails_the_handshake(
    raw_server: Callable[[RawHandler], Awaitable[int]],
) -> None:
    async def forge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
        )

    port = await raw_server(forge)
    with pytest.raises(WSServerHandshakeError) as caught:
        await _raw_connect(port, handshake_timeout=10)
    assert caught.value.status == 101
    assert "accept" in caught.value.message.lower()
    assert client_sockets_to(port) == []


async def test_subprotocol_we_did_not_offer_fails_the_handshake(
    raw_server: Callable[[RawHandler], Awaitable[int]],
) -> None:
    async def impose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = (await _read_head(reader))["sec-websocket-key"]
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {_accept_token(key)}\r\n".encode()
            + b"Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        )

    port = await raw_server(impose)
    with pytest.raises(WSServerHandshakeError, match="subprotocol"):
        await _raw_connect(port, protocols=("chat",), handshake_timeout=10)
    assert client_sockets_to(port) == []


async def test_frames_sent_right_behind_the_101_are_not_lost(
    raw_server: Callable[[RawHandler], Awaitable[int]],
) -> None:
    async def eager(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = (await _read_head(reader))["sec-websocket-key"]
        payload = json.dumps({"early": True}).encode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {_accept_token(key)}\r\n\r\n".encode()
            + bytes([0x81, len(payload)])
            + payload
            + b"\x88\x02\x03\xe8"  # close 1000
        )
        await reader.read()  # until the client is done

    port = await raw_server(eager)
    ws = await _raw_connect(port, compress=0, handshake_timeout=10)
    message = await ws.receive()
    assert message.type is WSMsgType.TEXT
    assert message.json() == {"early": True}
    closing = await ws.receive()
    assert closing.type is WSMsgType.CLOSE
    assert closing.data == 1000
    assert ws.closed
    assert client_sockets_to(port) == []
