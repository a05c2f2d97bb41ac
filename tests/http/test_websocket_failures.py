"""How a WebSocket ends when the server misbehaves: each case ends in a clear message or
exception with the right close code, never a hang, and leaves no socket open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crawler.http.errors import ServerTimeoutError
from crawler.http.websocket import ClientWebSocketResponse, websocket_handshake
from crawler.http.ws_messages import WebSocketError, WSCloseCode, WSMessage, WSMsgType
from tests.support.ws_server import (
    WebSocketTestServer,
    client_sockets_to,
    open_transport,
    running_ws_server,
)

CLOSED = WSMessage(WSMsgType.CLOSED, None, None)


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server
        assert client_sockets_to(server.port) == []


async def connect(
    server: WebSocketTestServer, path: str = "/echo", **kwargs: object
) -> ClientWebSocketResponse:
    transport = await open_transport(server)
    kwargs.setdefault("handshake_timeout", 10)
    return await websocket_handshake(transport, url=server.url(path), **kwargs)  # type: ignore[arg-type]


async def test_heartbeat_closes_with_1006_when_no_pong_comes(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/silent", heartbeat=0.2)
    assert await ws.receive_str() == "going silent"
    message = await ws.receive()
    assert message.type is WSMsgType.ERROR
    assert isinstance(message.data, ServerTimeoutError)
    assert "PONG" in str(message.data)
    assert ws.closed
    assert ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    assert ws.exception() is message.data
    assert await ws.receive() == CLOSED
    assert await ws.close() is False


async def test_heartbeat_keeps_a_quiet_but_healthy_connection_open(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, "/hold", heartbeat=0.3) as ws:
        # Several heartbeat periods pass with no message; the server's pongs keep us alive.
        with pytest.raises(ServerTimeoutError, match="No WebSocket message"):
            await ws.receive(timeout=1.5)
        assert not ws.closed
        assert ws.close_code is None
    assert ws.close_code == WSCloseCode.OK


async def test_message_over_max_msg_size_closes_with_1009(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/big?size=5000", max_msg_size=1000)
    message = await ws.receive()
    assert message.type is WSMsgType.ERROR
    assert isinstance(message.data, WebSocketError)
    assert message.data.code == WSCloseCode.MESSAGE_TOO_BIG
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    assert await ws.receive() == CLOSED
    await ws.close()
    path, code, _ = await ws_server.next_close()
    assert (path, code) == ("/big", WSCloseCode.MESSAGE_TOO_BIG)  # the server was told why


async def test_default_limit_is_4_mib_and_zero_lifts_it(ws_server: WebSocketTestServer) -> None:
    size = 4 * 1024 * 1024 + 1
    ws = await connect(ws_server, f"/big?size={size}")
    assert (await ws.receive()).type is WSMsgType.ERROR
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    await ws.close()

    async with await connect(ws_server, f"/big?size={size}", max_msg_size=0) as ws:
        assert len(await ws.receive_bytes()) == size


async def test_compressed_bomb_is_stopped_by_the_limit(ws_server: WebSocketTestServer) -> None:
    # 48 MiB of one byte deflates to a few KiB on the wire; the limit must still hold.
    ws = await connect(ws_server, f"/big?size={48 * 1024 * 1024}", max_msg_size=1024 * 1024)
    assert ws.compress
    message = await ws.receive()
    assert message.type is WSMsgType.ERROR
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    await ws.close()


async def test_protocol_violation_closes_with_1002_and_an_error_message(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/violation")
    message = await ws.receive()
    assert message.type is WSMsgType.ERROR
    assert isinstance(message.data, WebSocketError)
    assert message.data.code == WSCloseCode.PROTOCOL_ERROR
    assert ws.close_code == WSCloseCode.PROTOCOL_ERROR
    assert await ws.receive() == CLOSED
    await ws.close()
    path, code, _ = await ws_server.next_close()
    assert (path, code) == ("/violation", WSCloseCode.PROTOCOL_ERROR)


async def test_invalid_utf8_text_closes_with_1007(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server, "/bad-utf8", compress=0)
    message = await ws.receive()
    assert message.type is WSMsgType.ERROR
    assert ws.close_code == WSCloseCode.INVALID_TEXT
    await ws.close()


async def test_dropped_connection_reads_as_closed_with_1006(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/drop")
    assert await ws.receive() == CLOSED
    assert ws.closed
    assert ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    assert await ws.close() is False


async def test_async_for_stops_on_error_then_closed(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server, "/violation")
    seen = [message.type async for message in ws]
    assert seen == [WSMsgType.ERROR]
    await ws.close()


async def test_close_gives_up_when_the_server_never_answers(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/silent", timeout=0.2)
    assert await ws.receive_str() == "going silent"
    assert await ws.close() is True
    assert ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    assert isinstance(ws.exception(), ServerTimeoutError)


async def test_close_with_much_unread_still_gets_the_servers_close_frame(
    ws_server: WebSocketTestServer,
) -> None:
    """640 KiB the client never reads pause the socket (flow control); closing must read on
    past them to the server's close frame (RFC 6455 7.1.2), not time out with 1006."""
    ws = await connect(ws_server, "/flood?count=20&size=32768", timeout=5)
    first = await ws.receive_bytes()
    assert len(first) == 32768
    for _ in range(100):  # until flow control has paused reading
        if ws._protocol._reading_paused:
            break
        await asyncio.sleep(0.02)
    assert ws._protocol._reading_paused
    assert await ws.close() is True
    assert (ws.close_code, ws.exception()) == (WSCloseCode.OK, None)
    assert await ws_server.next_close() == ("/flood", 1000, "")
