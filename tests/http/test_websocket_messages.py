"""Sending, receiving and closing on an open WebSocket, against a real `websockets` server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from crawler.http import WSMessageTypeError
from crawler.http.errors import ClientConnectionResetError, ServerTimeoutError
from crawler.http.websocket import ClientWebSocketResponse, websocket_handshake
from crawler.http.ws_messages import WSCloseCode, WSMessage, WSMsgType
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


async def connect(
    server: WebSocketTestServer, path: str = "/echo", **kwargs: object
) -> ClientWebSocketResponse:
    transport = await open_transport(server)
    kwargs.setdefault("handshake_timeout", 10)
    return await websocket_handshake(transport, url=server.url(path), **kwargs)  # type: ignore[arg-type]


# --- echo ------------------------------------------------------------------------------------


async def test_text_is_echoed_as_text(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        await ws.send_str("héllo wörld ✓")
        message = await ws.receive()
    assert message == WSMessage(WSMsgType.TEXT, "héllo wörld ✓", "")


async def test_binary_is_echoed_as_binary(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        await ws.send_bytes(bytearray(b"\x00\x01\xfe\xff"))
        message = await ws.receive()
    assert message.type is WSMsgType.BINARY
    assert message.data == b"\x00\x01\xfe\xff"


async def test_json_round_trip(ws_server: WebSocketTestServer) -> None:
    payload = {"url": "http://a.test/", "depth": 2, "tags": ["x", None, 1.5]}
    async with await connect(ws_server) as ws:
        await ws.send_json(payload)
        assert await ws.receive_json() == payload
        await ws.send_json(payload, dumps=lambda obj: json.dumps(obj, sort_keys=True))
        message = await ws.receive()
        assert message.json() == payload
        assert message.data == json.dumps(payload, sort_keys=True)


async def test_receive_str_refuses_binary_and_receive_bytes_refuses_text(
    ws_server: WebSocketTestServer,
) -> None:
    # WSMessageTypeError, as aiohttp (3.12+) names it, and still a TypeError for older code.
    assert issubclass(WSMessageTypeError, TypeError)
    async with await connect(ws_server) as ws:
        await ws.send_bytes(b"raw")
        with pytest.raises(WSMessageTypeError, match="not str"):
            await ws.receive_str()
        await ws.send_str("text")
        with pytest.raises(WSMessageTypeError, match="not bytes"):
            await ws.receive_bytes()


async def test_send_methods_check_their_argument_types(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        with pytest.raises(TypeError):
            await ws.send_str(b"bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await ws.send_bytes("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="125"):
            await ws.ping(b"x" * 126)


class _RecordingTransport:
    """The connection's transport, with every write kept: the frames as they went out."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def _recording(ws: ClientWebSocketResponse) -> _RecordingTransport:
    recorder = _RecordingTransport(ws._protocol.transport)  # type: ignore[arg-type]
    ws._protocol.transport = recorder  # type: ignore[assignment]
    return recorder


RSV1 = 0x40  # the frame header bit permessage-deflate sets on a compressed message


async def test_compress_zero_sends_one_message_uncompressed(ws_server: WebSocketTestServer) -> None:
    text = "compressible " * 2000
    async with await connect(ws_server) as ws:
        assert ws.compress  # permessage-deflate was negotiated
        frames = _recording(ws)
        await ws.send_str(text)
        await ws.send_str(text, compress=0)
        await ws.send_bytes(text.encode(), compress=0)
        await ws.send_json({"t": text}, compress=15)
        await ws.send_str(text)  # the compressor's context survived the plain messages
        first_bytes = [write[0] for write in frames.writes]
        assert [bool(b & RSV1) for b in first_bytes] == [True, False, False, True, True]
        assert len(frames.writes[1]) > len(text) > len(frames.writes[0])
        assert await ws.receive_str() == text
        assert await ws.receive_str() == text
        assert await ws.receive_bytes() == text.encode()
        assert await ws.receive_json() == {"t": text}
        assert await ws.receive_str() == text


async def test_compress_on_a_connection_without_compression_sends_plain_frames(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, compress=0) as ws:
        frames = _recording(ws)
        await ws.send_str("abc", compress=15)
        assert not frames.writes[0][0] & RSV1
        assert await ws.receive_str() == "abc"


async def test_a_bad_per_message_compress_is_refused(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        with pytest.raises(ValueError, match=r"9\.\.15"):
            ws.send_str("x", compress=7)
        with pytest.raises(TypeError):
            ws.send_bytes(b"x", compress="fast")  # type: ignore[arg-type]
        await ws.send_str("still open")
        assert await ws.receive_str() == "still open"


@pytest.mark.parametrize("compress", [15, 0])
async def test_large_messages_both_ways(ws_server: WebSocketTestServer, compress: int) -> None:
    blob = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB, under the 4 MiB default limit
    text = "0123456789abcdef" * (1024 * 128)  # 2 MiB
    async with await connect(ws_server, compress=compress) as ws:
        await ws.send_bytes(blob)
        await ws.send_str(text)
        assert await ws.receive_bytes() == blob
        assert await ws.receive_str() == text


@pytest.mark.parametrize("compress", [15, 0])
async def test_fragmented_message_is_reassembled(
    ws_server: WebSocketTestServer, compress: int
) -> None:
    path = "/fragments?size=1000003&parts=61"
    async with await connect(ws_server, path, compress=compress) as ws:
        message = await ws.receive()
        assert message.type is WSMsgType.TEXT
        assert message.data == "x" * 1000003
        await ws.send_str("still in step")
        assert await ws.receive_str() == "still in step"


# --- ping / pong -----------------------------------------------------------------------------


async def test_server_ping_is_answered_automatically(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/ping") as ws:
        assert await ws.receive_str() == "pong received"


async def test_without_autoping_pings_reach_the_user_who_answers(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, "/ping", autoping=False) as ws:
        ping = await ws.receive()
        assert ping == WSMessage(WSMsgType.PING, b"server-ping", "")
        await ws.pong(ping.data)
        assert await ws.receive_str() == "pong received"


async def test_without_autoping_our_ping_comes_back_as_pong(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, autoping=False) as ws:
        await ws.ping("are you there")
        assert await ws.receive() == WSMessage(WSMsgType.PONG, b"are you there", "")


# --- closing ---------------------------------------------------------------------------------


async def test_server_close_ends_iteration_with_its_code(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server, "/close")
    seen = [message async for message in ws]
    assert seen == []
    assert ws.closed
    assert ws.close_code == 4001
    assert await ws.receive() == WSMessage(WSMsgType.CLOSED, None, None)
    assert await ws.close() is False
    path, code, _ = await ws_server.next_close()
    assert (path, code) == ("/close", 4001)  # autoclose echoed the server's code


async def test_server_close_message_carries_code_and_reason(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, "/close") as ws:
        message = await ws.receive()
    assert message == WSMessage(WSMsgType.CLOSE, 4001, "server says bye")


async def test_without_autoclose_the_user_answers_the_close(
    ws_server: WebSocketTestServer,
) -> None:
    ws = await connect(ws_server, "/close", autoclose=False)
    message = await ws.receive()
    assert message.type is WSMsgType.CLOSE
    assert not ws.closed  # our close frame is still owed
    assert ws.close_code == 4001
    assert await ws.close() is True
    assert ws.close_code == 4001
    path, code, _ = await ws_server.next_close()
    assert (path, code) == ("/close", WSCloseCode.OK)


async def test_client_close_sends_code_and_message(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server)
    assert await ws.close(code=4002, message=b"crawl finished") is True
    assert ws.closed
    assert ws.close_code == 4002  # the server echoed ours
    assert await ws.close() is False
    assert await ws_server.next_close() == ("/echo", 4002, "crawl finished")


async def test_sending_after_close_raises(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server)
    await ws.close()
    with pytest.raises(ClientConnectionResetError):
        await ws.send_str("too late")


async def test_close_from_another_task_wakes_the_reader(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server, "/hold")
    reader = asyncio.create_task(ws.receive())
    await asyncio.sleep(0)  # let the reader block
    assert await ws.close() is True
    assert (await reader).type is WSMsgType.CLOSING
    assert await ws.receive() == WSMessage(WSMsgType.CLOSED, None, None)


async def test_async_for_as_in_the_guide(ws_server: WebSocketTestServer) -> None:
    answers: list[str] = []
    async with await connect(ws_server) as ws:
        await ws.send_str("first")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                answers.append(msg.data)
                if msg.data == "close cmd":
                    await ws.close()
                    break
                if msg.data.endswith("/answer"):
                    await ws.send_str("close cmd")
                else:
                    await ws.send_str(msg.data + "/answer")
            elif msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    assert answers == ["first", "first/answer", "close cmd"]
    assert ws.closed


# --- reading and writing rules ---------------------------------------------------------------


async def test_receive_timeout_raises_and_the_socket_stays_usable(
    ws_server: WebSocketTestServer,
) -> None:
    async with await connect(ws_server, receive_timeout=0.05) as ws:
        with pytest.raises(ServerTimeoutError):
            await ws.receive()
        with pytest.raises(asyncio.TimeoutError):  # the standard exception catches it too
            await ws.receive()
        await ws.send_str("still open")
        assert await ws.receive_str(timeout=10) == "still open"


async def test_concurrent_receive_is_refused(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server, "/hold") as ws:
        first = asyncio.create_task(ws.receive())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="Concurrent"):
            await ws.receive()
        await ws.close()
        assert (await first).type is WSMsgType.CLOSING


async def test_many_writers_and_one_reader(ws_server: WebSocketTestServer) -> None:
    writers, per_writer = 20, 50
    async with await connect(ws_server) as ws:

        async def write(n: int) -> None:
            for i in range(per_writer):
                await ws.send_json({"writer": n, "seq": i, "pad": "p" * (n * 997)})

        tasks = [asyncio.create_task(write(n)) for n in range(writers)]
        received = [await ws.receive_json() for _ in range(writers * per_writer)]
        await asyncio.gather(*tasks)

    for n in range(writers):
        sequence = [m["seq"] for m in received if m["writer"] == n]
        assert sequence == list(range(per_writer))  # every message, whole, in its writer's order
    assert all(m["pad"] == "p" * (m["writer"] * 997) for m in received)


async def test_unawaited_sends_of_the_guide_still_go_out_in_order(
    ws_server: WebSocketTestServer,
) -> None:
    # The seed guide writes `ws.send_str(...)` without await (aiohttp 1.x); it must still send.
    async with await connect(ws_server) as ws:
        ws.send_str("one")
        ws.send_bytes(b"two")
        ws.send_json({"n": 3})
        assert await ws.receive_str() == "one"
        assert await ws.receive_bytes() == b"two"
        assert await ws.receive_json() == {"n": 3}


async def test_a_send_can_be_run_as_a_task_or_gathered(ws_server: WebSocketTestServer) -> None:
    async with await connect(ws_server) as ws:
        await asyncio.create_task(ws.send_str("task"))
        await asyncio.gather(ws.send_str("g1"), ws.send_str("g2"))
        assert [await ws.receive_str() for _ in range(3)] == ["task", "g1", "g2"]


async def test_writers_wait_when_the_server_stops_reading(
    ws_server: WebSocketTestServer,
) -> None:
    chunk = b"\x00" * (1024 * 1024)
    ws = await connect(ws_server, "/silent", compress=0, timeout=0.5)
    assert await ws.receive_str() == "going silent"
    sent = 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            while sent < 1024:  # 1 GiB if nothing ever pushed back
                await ws.send_bytes(chunk)
                sent += 1
    assert sent < 1024
    transport = ws._protocol.transport
    assert transport is not None
    assert transport.get_write_buffer_size() <= 2 * len(chunk) + 2**16
    # The server will never answer our close frame either: close gives up after `timeout`.
    assert await ws.close() is True
    assert ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    assert isinstance(ws.exception(), ServerTimeoutError)


async def test_extra_info_while_open_and_default_after(ws_server: WebSocketTestServer) -> None:
    ws = await connect(ws_server)
    assert ws.get_extra_info("peername")[1] == ws_server.port
    await ws.close()
    assert ws.get_extra_info("peername", "closed") == "closed"
