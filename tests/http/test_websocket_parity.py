"""WebSocket client parity with aiohttp's `ClientWebSocketResponse`, against a real `websockets`
server: empty Sec-WebSocket-Extensions answers, `send_frame()`, the messages' `extra`, and
sending after the server's close with autoclose=False. Where both clients can do the same
thing, aiohttp's own client runs on the same server in the same test, and the two must agree.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from crawler.http import ClientSession
from crawler.http.errors import ClientConnectionResetError
from crawler.http.websocket import ClientWebSocketResponse
from crawler.http.ws_messages import WSMessage, WSMsgType
from tests.support.ws_server import client_sockets_to, no_resource_warnings

GUARD = 10.0  # seconds: a hang fails the test instead of blocking the run
# Either client's "cannot write any more": aiohttp has its own class of the same name.
RESET_ERRORS = (ClientConnectionResetError, aiohttp.ClientConnectionResetError)
EXTENSIONS = "Sec-WebSocket-Extensions"


Handler = Callable[[ServerConnection, list[Any]], Awaitable[None]]


@dataclass
class Peer:
    """A `websockets` server on a free port. `handler(ws, seen)` runs per connection; `rewrite`
    may change each 101 answer's headers before they are sent."""

    handler: Handler
    rewrite: Callable[[Response], None] | None = None
    port: int = 0
    # Per connection, what the handler recorded, then ("close", code, reason) from the client.
    seen: list[list[Any]] = field(default_factory=list)
    _ended: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def ended(self, count: int) -> list[list[Any]]:
        """`seen`, once `count` connections have ended on the server's side."""
        for _ in range(count):
            await asyncio.wait_for(self._ended.get(), GUARD)
        return self.seen

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        if self.rewrite is not None:
            self.rewrite(response)

    async def _handle(self, ws: ServerConnection) -> None:
        seen: list[Any] = []
        self.seen.append(seen)
        try:
            await self.handler(ws, seen)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            seen.append(("close", ws.close_code, ws.close_reason))
            self._ended.put_nowait(None)


@asynccontextmanager
async def running_peer(
    handler: Handler,
    *,
    compression: str | None = "deflate",
    rewrite: Callable[[Response], None] | None = None,
) -> AsyncIterator[Peer]:
    with no_resource_warnings():
        peer = Peer(handler, rewrite)
        server = await serve(
            peer._handle,
            "127.0.0.1",
            0,
            compression=compression,
            process_response=peer._process_response,
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


def add_header(name: str, value: str) -> Callable[[Response], None]:
    def rewrite(response: Response) -> None:
        response.headers[name] = value  # websockets' Headers add a line, even a repeated one

    return rewrite


async def echo(ws: ServerConnection, seen: list[Any]) -> None:
    async for message in ws:
        await ws.send(message)


async def close_then_collect(ws: ServerConnection, seen: list[Any]) -> None:
    """Close first (4001 "bye"), then record every message the client sent before its close."""
    await ws.close(4001, "bye")
    while True:
        try:
            # Frames that came in before the client's close frame stay buffered, in order.
            seen.append(await ws.recv())
        except ConnectionClosed:
            return


@asynccontextmanager
async def both_clients(
    url: str, **kwargs: Any
) -> AsyncIterator[tuple[ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]]:
    """Our client and aiohttp's, each connected to `url` with the same ws_connect arguments
    (compress=15 unless given: both default to 0)."""
    kwargs.setdefault("compress", 15)
    async with ClientSession() as ours_session, aiohttp.ClientSession() as theirs_session:
        ours = await asyncio.wait_for(ours_session.ws_connect(url, **kwargs), GUARD)
        theirs = await asyncio.wait_for(theirs_session.ws_connect(url, **kwargs), GUARD)
        try:
            yield ours, theirs
        finally:
            await ours.close()
            await theirs.close()


async def receive(ws: Any) -> Any:
    return await asyncio.wait_for(ws.receive(), GUARD)


def as_tuple(message: Any) -> tuple[int, Any, Any]:
    """A message of either client as plain values, to compare the two."""
    kind, data, extra = message
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    return int(kind), data, extra


# --- 1. an empty Sec-WebSocket-Extensions answer means "no extensions" -----------------------


@pytest.mark.parametrize("value", ["", "   ", ",", " , ,\t"])
async def test_empty_extensions_answer_is_no_extensions(value: str) -> None:
    """RFC 9110 5.6.1: empty list elements are ignored; aiohttp (client.py `if compress_hdrs:`
    and ws_ext_parse) takes such a header for no compression and connects."""
    rewrite = add_header(EXTENSIONS, value)
    async with (
        running_peer(echo, compression=None, rewrite=rewrite) as peer,
        both_clients(peer.url()) as (ours, theirs),
    ):
        assert (ours.compress, ours.extensions) == (0, ())
        assert theirs.compress == 0
        for ws in (ours, theirs):
            await ws.send_str("plain " * 100)
        assert as_tuple(await receive(ours)) == as_tuple(await receive(theirs))


def commas_after_terms(response: Response) -> None:
    terms = response.headers[EXTENSIONS]  # the server's own permessage-deflate answer
    del response.headers[EXTENSIONS]
    response.headers[EXTENSIONS] = terms + ", ,"


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(commas_after_terms, id="commas-after-permessage-deflate"),
        pytest.param(add_header(EXTENSIONS, ""), id="empty-second-header"),
    ],
)
async def test_empty_elements_beside_permessage_deflate_keep_compression(
    rewrite: Callable[[Response], None],
) -> None:
    """A real permessage-deflate answer with empty elements beside it (", ," after it, or a
    second, empty header line) still turns compression on, as in aiohttp."""
    async with (
        running_peer(echo, rewrite=rewrite) as peer,
        both_clients(peer.url()) as (ours, theirs),
    ):
        # websockets answers client_max_window_bits=12; both must have read it.
        assert ours.compress == theirs.compress == 12
        assert ours.extensions == ("permessage-deflate",)
        text = "compressible " * 500
        for ws in (ours, theirs):
            await ws.send_str(text)
        assert as_tuple(await receive(ours)) == as_tuple(await receive(theirs))


@asynccontextmanager
async def byte_by_byte_relay(port: int) -> AsyncIterator[str]:
    """A TCP relay to 127.0.0.1:`port` that hands the server's answer head to the client one
    byte per write (so it arrives in many reads), then relays everything else as it comes."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool) -> None:
        head = b""
        try:
            while data := await reader.read(65536):
                if slow and b"\r\n\r\n" not in head:
                    for index in range(len(data)):
                        writer.write(data[index : index + 1])
                        await writer.drain()
                        await asyncio.sleep(0.001)
                    head += data
                else:
                    writer.write(data)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writers.extend((writer, up_writer))
        for task in (
            asyncio.ensure_future(pump(reader, up_writer, slow=False)),
            asyncio.ensure_future(pump(up_reader, writer, slow=True)),
        ):
            tasks.add(task)

    relay = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{relay.sockets[0].getsockname()[1]}/"
    finally:
        relay.close()
        for writer in writers:
            writer.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await relay.wait_closed()


@pytest.mark.parametrize(
    ("compression", "rewrite", "bits"),
    [
        pytest.param(None, add_header(EXTENSIONS, " , "), 0, id="empty"),
        pytest.param("deflate", commas_after_terms, 12, id="commas-after-permessage-deflate"),
    ],
)
async def test_an_answer_head_in_many_reads_is_tidied_whole(
    compression: str | None, rewrite: Callable[[Response], None], bits: int
) -> None:
    """The 101 head is held back until its blank line, so the tidying sees every header
    however the bytes were split, and frames right behind the head are not lost."""

    async def greet(ws: ServerConnection, seen: list[Any]) -> None:
        await ws.send("hello")  # right behind the 101
        await echo(ws, seen)

    async with (
        running_peer(greet, compression=compression, rewrite=rewrite) as peer,
        byte_by_byte_relay(peer.port) as url,
        ClientSession() as session,
    ):
        ws = await asyncio.wait_for(session.ws_connect(url, compress=15), GUARD)
        async with ws:
            assert ws.compress == bits
            assert as_tuple(await receive(ws)) == (WSMsgType.TEXT, "hello", "")
            await ws.send_str("again " * 100)
            assert as_tuple(await receive(ws)) == (WSMsgType.TEXT, "again " * 100, "")


def test_tidying_touches_only_empty_extension_elements() -> None:
    from crawler.http.ws_handshake import tidy_extensions_header

    def head(*lines: bytes, eol: bytes = b"\r\n") -> bytes:
        return eol.join((b"HTTP/1.1 101 Switching Protocols", *lines)) + eol + eol

    untouched = [
        head(b"Upgrade: websocket", b"sec-websocket-extensions: permessage-deflate"),
        # A folded (obs-fold) value is wsproto's to judge, as it was.
        head(b"Sec-WebSocket-Extensions:", b"  permessage-deflate"),
        head(b"X-Note: Sec-WebSocket-Extensions:"),
    ]
    for answer in untouched:
        assert tidy_extensions_header(answer) == answer
    assert tidy_extensions_header(head(b"A: 1", b"SEC-WEBSOCKET-EXTENSIONS: \t", b"B: 2")) == head(
        b"A: 1", b"B: 2"
    )
    terms = b"permessage-deflate; client_max_window_bits=10"
    assert tidy_extensions_header(
        head(b"Sec-WebSocket-Extensions: ," + terms + b",,", eol=b"\n")
    ) == head(b"Sec-WebSocket-Extensions: " + terms, eol=b"\n")


# --- 2. send_frame ---------------------------------------------------------------------------


def test_send_frame_has_aiohttps_signature() -> None:
    ours = inspect.signature(ClientWebSocketResponse.send_frame)
    theirs = inspect.signature(aiohttp.ClientWebSocketResponse.send_frame)
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_send_frame_sends_data_and_control_frames_as_aiohttp(
    compression: str | None,
) -> None:
    async with (
        running_peer(echo, compression=compression) as peer,
        both_clients(peer.url(), autoping=False) as (ours, theirs),
    ):
        got: dict[str, list[tuple[int, Any, Any]]] = {}
        for name, ws in (("ours", ours), ("aiohttp", theirs)):
            await ws.send_frame("café ✓".encode(), WSMsgType.TEXT)
            await ws.send_frame(b"\x00\xff" * 300, WSMsgType.BINARY)
            # aiohttp compresses (RSV1) for compress=15 even on a connection that did not
            # negotiate it, which a server must fail: only asked for where negotiated.
            bits = 15 if compression else None
            await ws.send_frame(memoryview(b"\x01" * 300), WSMsgType.BINARY, compress=bits)
            messages = [await receive(ws) for _ in range(3)]
            # The server answers a ping at once, ahead of echoes still to come: one at a time.
            await ws.send_frame(b"are you there", WSMsgType.PING)
            messages.append(await receive(ws))
            await ws.send_frame(b"unsolicited", WSMsgType.PONG)  # answered by nothing
            await ws.send_frame(b"last", WSMsgType.TEXT)
            messages.append(await receive(ws))
            got[name] = [as_tuple(m) for m in messages]
        assert got["ours"] == got["aiohttp"]
        assert got["ours"] == [
            (WSMsgType.TEXT, "café ✓", ""),
            (WSMsgType.BINARY, b"\x00\xff" * 300, ""),
            (WSMsgType.BINARY, b"\x01" * 300, ""),
            (WSMsgType.PONG, b"are you there", ""),
            (WSMsgType.TEXT, "last", ""),
        ]


@pytest.mark.parametrize(
    ("payload", "server_saw"),
    [
        pytest.param(struct.pack("!H", 4000) + "done ✓".encode(), (4000, "done ✓"), id="code"),
        pytest.param(b"", (1005, ""), id="empty"),  # websockets reports "no status" as 1005
    ],
)
async def test_send_frame_close_is_our_close_frame(
    payload: bytes, server_saw: tuple[int, str]
) -> None:
    """A CLOSE frame's payload is the code and reason the server gets, as with aiohttp."""
    async with running_peer(echo) as peer:
        async with both_clients(peer.url()) as (ours, theirs):
            for ws in (ours, theirs):
                await ws.send_frame(payload, WSMsgType.CLOSE)
                message = await receive(ws)
                # (Its data for an empty close differs: 1005 here, 0 in aiohttp.)
                assert message.type == WSMsgType.CLOSE
        seen = await peer.ended(2)
        assert [conn[-1] for conn in seen] == [("close", *server_saw)] * 2


async def test_send_frame_close_ends_sending() -> None:
    """RFC 6455 5.5.1: no data after our close frame, however it was sent. (aiohttp's writer
    only stops after close(), so its send_frame(CLOSE) still lets a TEXT frame follow.)"""
    async with running_peer(echo) as peer, ClientSession() as session:
        ws = await asyncio.wait_for(session.ws_connect(peer.url()), GUARD)
        async with ws:
            await ws.send_frame(struct.pack("!H", 4000), WSMsgType.CLOSE)
            for opcode in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE):
                with pytest.raises(ClientConnectionResetError):
                    await ws.send_frame(b"", opcode)
            assert as_tuple(await receive(ws)) == (WSMsgType.CLOSE, 4000, "")
            assert await receive(ws) == WSMessage(WSMsgType.CLOSED, None, None)
        assert await peer.ended(1) == [[("close", 4000, "")]]


async def test_send_frame_refuses_frames_a_server_must_fail_on() -> None:
    """aiohttp writes these anyway (or dies in struct.pack for CLOSING/CLOSED/ERROR); here they
    are a ValueError before anything is sent, and the connection carries on."""
    async with running_peer(echo) as peer, ClientSession() as session:
        ws = await asyncio.wait_for(session.ws_connect(peer.url()), GUARD)
        async with ws:
            bad: list[tuple[bytes, int]] = [
                (b"x", WSMsgType.CONTINUATION),
                (b"x", WSMsgType.CLOSING),
                (b"x", WSMsgType.CLOSED),
                (b"x", WSMsgType.ERROR),
                (b"x", 0x3),  # reserved data opcode
                (b"\xc3\x28", WSMsgType.TEXT),  # not UTF-8
                (b"x" * 126, WSMsgType.PING),  # control payloads are at most 125 bytes
                (b"x" * 126, WSMsgType.PONG),
                (b"\x03", WSMsgType.CLOSE),  # half a close code
                (struct.pack("!H", 1005), WSMsgType.CLOSE),  # a code that is never sent
                (struct.pack("!H", 1000) + b"\xff", WSMsgType.CLOSE),  # reason not UTF-8
                (struct.pack("!H", 1000) + b"x" * 124, WSMsgType.CLOSE),  # 126 bytes
            ]
            for message, opcode in bad:
                with pytest.raises(ValueError):
                    ws.send_frame(message, opcode)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                ws.send_frame("text", WSMsgType.TEXT)  # type: ignore[arg-type]
            await ws.send_frame(b"still fine", WSMsgType.TEXT)
            assert as_tuple(await receive(ws)) == (WSMsgType.TEXT, "still fine", "")
        assert await peer.ended(1) == [[("close", 1000, "")]]


async def test_send_frame_after_close_raises_like_aiohttp() -> None:
    async with running_peer(echo) as peer, both_clients(peer.url()) as (ours, theirs):
        for ws in (ours, theirs):
            await ws.close()
            with pytest.raises(RESET_ERRORS):
                await ws.send_frame(b"late", WSMsgType.BINARY)
            with pytest.raises(RESET_ERRORS):
                await ws.send_frame(b"late", WSMsgType.PING)


# --- 3. the messages' extra ------------------------------------------------------------------


async def test_extra_is_empty_string_for_data_ping_and_pong_like_aiohttp() -> None:
    """aiohttp's reader (_websocket/reader_py.py) builds TEXT, BINARY, PING and PONG messages
    with extra "", CLOSE with the reason; its WS_CLOSED/CLOSING_MESSAGE and ERROR have None."""

    async def script(ws: ServerConnection, seen: list[Any]) -> None:
        await ws.send("text")
        await ws.send(b"binary")
        await ws.ping(b"server-ping")
        await ws.recv()  # the client's "go on" after its ping
        await ws.close(4001, "bye")

    async with (
        running_peer(script) as peer,
        both_clients(peer.url(), autoping=False, autoclose=False) as (ours, theirs),
    ):
        got: dict[str, list[tuple[int, Any, Any]]] = {}
        for name, ws in (("ours", ours), ("aiohttp", theirs)):
            messages = [await receive(ws) for _ in range(3)]
            await ws.ping(b"client-ping")
            messages.append(await receive(ws))
            await ws.send_str("go on")
            messages.append(await receive(ws))
            messages.append(await receive(ws))
            got[name] = [as_tuple(m) for m in messages]
        assert got["ours"] == got["aiohttp"]
        assert got["ours"] == [
            (WSMsgType.TEXT, "text", ""),
            (WSMsgType.BINARY, b"binary", ""),
            (WSMsgType.PING, b"server-ping", ""),
            (WSMsgType.PONG, b"client-ping", ""),
            (WSMsgType.CLOSE, 4001, "bye"),
            (WSMsgType.CLOSED, None, None),
        ]


async def test_extra_is_none_only_for_closing_closed_and_error_like_aiohttp() -> None:
    """In one stream: data messages carry "", the ERROR (and CLOSING, CLOSED) after them None."""

    async def then_bad_utf8(ws: ServerConnection, seen: list[Any]) -> None:
        await ws.send("fine")
        ws.transport.write(b"\x81\x02\xc3\x28")  # a TEXT frame whose payload is not UTF-8

    async def then_hold(ws: ServerConnection, seen: list[Any]) -> None:
        await ws.send(b"fine")

    async with (
        running_peer(then_bad_utf8, compression=None) as peer,
        both_clients(peer.url()) as (ours, theirs),
    ):
        for ws in (ours, theirs):
            assert as_tuple(await receive(ws)) == (WSMsgType.TEXT, "fine", "")
            message = await receive(ws)
            assert (message.type, message.extra) == (WSMsgType.ERROR, None)
            assert as_tuple(await receive(ws)) == (WSMsgType.CLOSED, None, None)
    async with (
        running_peer(then_hold) as peer,
        both_clients(peer.url()) as (ours, theirs),
    ):
        for ws in (ours, theirs):
            assert as_tuple(await receive(ws)) == (WSMsgType.BINARY, b"fine", "")
            pending = asyncio.create_task(ws.receive())
            for _ in range(5):
                await asyncio.sleep(0)  # let it block in receive()
            await asyncio.wait_for(ws.close(), GUARD)
            assert as_tuple(await asyncio.wait_for(pending, GUARD)) == (
                WSMsgType.CLOSING,
                None,
                None,
            )


def test_message_constants_match_aiohttp() -> None:
    from aiohttp._websocket.models import WS_CLOSED_MESSAGE, WS_CLOSING_MESSAGE

    from crawler.http.ws_messages import WS_CLOSED_MESSAGE as OURS_CLOSED
    from crawler.http.ws_messages import WS_CLOSING_MESSAGE as OURS_CLOSING

    assert as_tuple(OURS_CLOSED) == as_tuple(WS_CLOSED_MESSAGE)
    assert as_tuple(OURS_CLOSING) == as_tuple(WS_CLOSING_MESSAGE)
    assert get_type_hints(WSMessage)["extra"] == str | None


# --- 4. autoclose=False: sending between the server's close and ours -------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_without_autoclose_messages_go_out_until_our_close(compression: str | None) -> None:
    """aiohttp's writer refuses frames only after its own close (writer.py: `self._closing`
    is set in close()), so with autoclose=False the user may still send after the server's
    CLOSE; RFC 6455 5.5.1 forbids data only after *sending* a close frame."""
    async with running_peer(close_then_collect, compression=compression) as peer:
        async with both_clients(peer.url(), autoclose=False) as (ours, theirs):
            for ws in (ours, theirs):
                message = await receive(ws)
                assert (message.type, message.data, message.extra) == (
                    WSMsgType.CLOSE,
                    4001,
                    "bye",
                )
                assert not ws.closed
                await ws.send_str("late text " * 50)
                await ws.send_bytes(b"late bytes", compress=0)
                await ws.send_json({"late": True})
                await ws.send_frame(b"late frame", WSMsgType.BINARY)
                await ws.ping(b"late ping")
                assert await asyncio.wait_for(ws.close(), GUARD) is True
                assert ws.close_code == 4001
                with pytest.raises(RESET_ERRORS):
                    await ws.send_str("after our close")
        expected = [
            "late text " * 50,
            b"late bytes",
            '{"late": true}',
            b"late frame",
            ("close", 1000, ""),  # the close code each client answered with
        ]
        assert await peer.ended(2) == [expected, expected]


async def test_without_autoclose_the_heartbeat_stops_at_the_servers_close() -> None:
    """The user's pings still go after the server's CLOSE, but the heartbeat's stop, as in
    aiohttp's receive() (`_set_closing()` cancels the heartbeat): a server that no longer
    answers pings must not fail a close that is going fine."""
    async with running_peer(close_then_collect) as peer, ClientSession() as session:
        ws = await asyncio.wait_for(
            session.ws_connect(peer.url(), autoclose=False, heartbeat=0.05), GUARD
        )
        message = await receive(ws)
        assert message.type is WSMsgType.CLOSE
        transport = ws._protocol.transport
        assert transport is not None
        writes: list[bytes] = []
        real_write = transport.write

        def record(data: bytes | bytearray | memoryview) -> None:
            writes.append(bytes(data))
            real_write(data)

        transport.write = record  # type: ignore[method-assign]
        await asyncio.sleep(0.3)  # six heartbeat intervals
        await ws.ping(b"user")
        pings = [w for w in writes if w[:1] == b"\x89"]
        assert len(pings) == 1  # the user's, no heartbeat's
        mask, masked = pings[0][2:6], pings[0][6:]
        assert bytes(b ^ mask[i % 4] for i, b in enumerate(masked)) == b"user"
        assert await asyncio.wait_for(ws.close(), GUARD) is True
        assert (ws.close_code, ws.exception()) == (4001, None)



async def test_compression_is_offered_only_when_asked_as_aiohttp_does() -> None:
    async def greet(connection: ServerConnection, _seen: list[Any]) -> None:
        await connection.send(connection.request.headers.get("Sec-WebSocket-Extensions", ""))
        await connection.wait_closed()

    async with (
        running_peer(greet) as peer,
        ClientSession() as ours_session,
        aiohttp.ClientSession() as theirs_session,
    ):
        url = f"ws://127.0.0.1:{peer.port}/"
        for session in (ours_session, theirs_session):
            async with session.ws_connect(url) as ws:  # no compress=: the default
                assert ws.compress == 0
                assert await asyncio.wait_for(ws.receive_str(), GUARD) == ""
        async with ours_session.ws_connect(url, compress=15) as ws:
            assert 9 <= ws.compress <= 15  # the server picks its window
            assert "permessage-deflate" in await asyncio.wait_for(ws.receive_str(), GUARD)


async def test_send_json_bytes_sends_the_encoders_bytes_as_one_binary_message() -> None:
    async def echo_type(connection: ServerConnection, _seen: list[Any]) -> None:
        async for message in connection:
            await connection.send(f"{type(message).__name__}:{message!r}")

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    async with (
        running_peer(echo_type) as peer,
        ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{peer.port}/") as ws,
    ):
        await ws.send_json_bytes({"a": [1, 2]}, dumps=dumps)
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "bytes:b'{\"a\":[1,2]}'"
        with pytest.raises(TypeError):
            await ws.send_json_bytes({"a": 1}, dumps=json.dumps)  # str is not bytes
    theirs = inspect.signature(aiohttp.ClientWebSocketResponse.send_json_bytes).parameters
    ours = inspect.signature(ClientWebSocketResponse.send_json_bytes).parameters
    assert list(ours) == list(theirs)
