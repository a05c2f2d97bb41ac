"""WebSocket conformance against RFC 6455 / 7692 and aiohttp's `ClientWebSocketResponse`.

Malformed input comes from a raw asyncio server that writes exact bytes after a correct 101
(`frame_server`), so each case is one precise violation; negotiation cases use a real
`websockets` server. Every test ends with no client socket left open.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from crawler.http import ClientSession, CookieJar, WSMessageTypeError
from crawler.http.errors import (
    ClientConnectionResetError,
    TooManyRedirects,
    WSServerHandshakeError,
)
from crawler.http.websocket import ClientWebSocketResponse, websocket_handshake
from crawler.http.ws_messages import WebSocketError, WSCloseCode, WSMessage, WSMsgType
from tests.support.ws_server import (
    WebSocketTestServer,
    client_sockets_to,
    no_resource_warnings,
    running_ws_server,
)

CLOSED = WSMessage(WSMsgType.CLOSED, None, None)
GUARD = 10.0  # seconds: a hang fails the test instead of blocking the run

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """One frame as a server writes it (unmasked unless `mask` is given)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class ClientFrame:
    opcode: int
    payload: bytes
    fin: bool
    masked: bool

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


async def read_client_frame(reader: asyncio.StreamReader) -> ClientFrame:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return ClientFrame(b0 & 0x0F, payload, bool(b0 & 0x80), bool(b1 & 0x80))


def accept_token(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(":", 1) for line in lines[1:] if line)
    return lines[0], {name.strip().lower(): value.strip() for name, value in pairs}


@dataclass
class Peer:
    """What a scripted server connection sees, for the test to inspect afterwards."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    request_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[ClientFrame] = field(default_factory=list)
    sent_close: bool = False

    def send(self, *frames: bytes) -> None:
        # Only frames passed whole count: a close hidden in raw bytes is the test's business.
        self.sent_close = self.sent_close or any(f[:1] == b"\x88" for f in frames)
        self.writer.write(b"".join(frames))

    async def next_frame(self) -> ClientFrame:
        got = await asyncio.wait_for(read_client_frame(self.reader), GUARD)
        self.frames.append(got)
        return got

    async def read_until_eof(self) -> None:
        """Collect the client's frames until it closes the TCP connection, answering its close
        frame as a server does (unless this server sent one first)."""
        try:
            while True:
                got = await self.next_frame()
                if got.opcode == OP_CLOSE and not self.sent_close:
                    self.send(frame(OP_CLOSE, got.payload[:2]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class FrameServer:
    port: int
    peers: list[Peer]
    done: list[asyncio.Task[None]]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def finished(self) -> Peer:
        """The first connection's peer, once its script has run to the end."""
        await asyncio.wait_for(asyncio.gather(*self.done), GUARD)
        return self.peers[0]


def upgrade_answer(key: str, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_token(key)}\r\n".encode()
        + extra
        + b"\r\n"
    )


@pytest.fixture
async def frame_server() -> AsyncIterator[Callable[..., Awaitable[FrameServer]]]:
    """`await frame_server(script, answer=...)`: a TCP server that answers the upgrade (with
    `answer(key)` bytes, a correct 101 by default) and then runs `script(peer)`."""
    servers: list[asyncio.Server] = []
    peers: list[Peer] = []

    async def start(
        script: Script, *, answer: Callable[[str], bytes] = upgrade_answer
    ) -> FrameServer:
        done: list[asyncio.Task[None]] = []
        started: list[Peer] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = Peer(reader, writer)
            peers.append(peer)
            started.append(peer)
            task = asyncio.current_task()
            assert task is not None
            done.append(task)  # type: ignore[arg-type]
            peer.request_line, peer.headers = await read_head(reader)
            writer.write(answer(peer.headers["sec-websocket-key"]))
            await script(peer)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return FrameServer(int(server.sockets[0].getsockname()[1]), started, done)

    with no_resource_warnings():
        yield start
        for peer in peers:
            peer.writer.transport.abort()
        for server in servers:
            server.close()
            await server.wait_closed()


async def raw_connect(server: FrameServer, **kwargs: object) -> ClientWebSocketResponse:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", server.port)
    kwargs.setdefault("handshake_timeout", GUARD)
    kwargs.setdefault("compress", 0)
    return await websocket_handshake(transport, url=server.url, **kwargs)  # type: ignore[arg-type]


async def receive(ws: ClientWebSocketResponse) -> WSMessage:
    return await asyncio.wait_for(ws.receive(), GUARD)


async def expect_failure(
    frame_server: Callable[..., Awaitable[FrameServer]], data: bytes, code: int
) -> Peer:
    """The server writes `data`; the client must fail the connection with `code`: an ERROR
    message carrying a WebSocketError, the close frame sent to the server, CLOSED after."""

    async def script(peer: Peer) -> None:
        peer.send(data)
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server)
    message = await receive(ws)
    assert message.type is WSMsgType.ERROR, message
    assert isinstance(message.data, WebSocketError)
    assert message.data.code == code
    assert ws.close_code == code
    assert ws.closed
    assert await receive(ws) == CLOSED
    peer = await server.finished()
    closes = [f for f in peer.frames if f.opcode == OP_CLOSE]
    assert [f.close_code for f in closes] == [code]
    assert all(f.masked for f in peer.frames)  # RFC 6455 5.3: every client frame is masked
    assert client_sockets_to(server.port) == []
    return peer


# --- malformed frames: fail the connection with the right code (RFC 6455 7.1.7, 7.4.1) ------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(OP_TEXT, b"hi", mask=b"abcd"), 1002, id="masked-server-frame"),
        pytest.param(frame(OP_TEXT, b"hi", rsv=0b010), 1002, id="rsv2"),
        pytest.param(frame(OP_TEXT, b"hi", rsv=0b001), 1002, id="rsv3"),
        pytest.param(frame(OP_TEXT, b"hi", rsv=0b100), 1002, id="rsv1-without-deflate"),
        pytest.param(frame(0x3, b""), 1002, id="reserved-data-opcode"),
        pytest.param(frame(0xB, b""), 1002, id="reserved-control-opcode"),
        pytest.param(frame(OP_CONT, b"x"), 1002, id="continuation-without-start"),
        pytest.param(
            frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), 1002, id="text-inside-text"
        ),
        pytest.param(frame(OP_PING, b"x" * 126), 1002, id="control-frame-over-125"),
        pytest.param(frame(OP_PING, b"x", fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(OP_CLOSE, b"\x03"), 1002, id="close-with-one-byte"),
        pytest.param(frame(OP_CLOSE, close_payload(999)), 1002, id="close-code-999"),
        pytest.param(frame(OP_CLOSE, close_payload(1005)), 1002, id="close-code-1005-on-wire"),
        pytest.param(frame(OP_CLOSE, close_payload(1006)), 1002, id="close-code-1006-on-wire"),
        pytest.param(frame(OP_CLOSE, close_payload(2999)), 1002, id="close-code-reserved"),
        pytest.param(frame(OP_CLOSE, close_payload(5000)), 1002, id="close-code-5000"),
        pytest.param(frame(OP_TEXT, b"\xc3\x28"), 1007, id="bad-utf8"),
        pytest.param(
            frame(OP_TEXT, b"ok \xe2\x82", fin=False) + frame(OP_CONT, b"\x28"),
            1007,
            id="bad-utf8-across-fragments",
        ),
        pytest.param(
            frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1007, id="bad-utf8-close-reason"
        ),
    ],
)
async def test_malformed_input_fails_the_connection(
    frame_server: Callable[..., Awaitable[FrameServer]], data: bytes, code: int
) -> None:
    await expect_failure(frame_server, data, code)


async def test_fragmented_message_over_the_limit_is_1009(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(*(frame(OP_TEXT if i == 0 else OP_CONT, b"y" * 400, fin=False) for i in range(5)))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server, max_msg_size=1000)
    message = await receive(ws)
    assert message.type is WSMsgType.ERROR
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    peer = await server.finished()
    assert [f.close_code for f in peer.frames if f.opcode == OP_CLOSE] == [1009]


# --- interleaved control frames --------------------------------------------------------------


async def test_ping_between_fragments_is_answered_before_the_message_ends(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    pong_before_end: list[ClientFrame] = []

    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, b"hel", fin=False), frame(OP_PING, b"mid"))
        pong_before_end.append(await peer.next_frame())
        peer.send(frame(OP_CONT, b"lo", fin=False), frame(OP_PONG, b"x"), frame(OP_CONT, b"!"))
        await peer.read_until_eof()

    server = await frame_server(script)
    async with await raw_connect(server) as ws:
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "hello!"
    assert [(f.opcode, f.payload) for f in pong_before_end] == [(OP_PONG, b"mid")]
    await server.finished()


async def test_without_autoping_a_ping_between_fragments_comes_first(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_BINARY, b"\x01", fin=False), frame(OP_PING, b"p"))
        peer.send(frame(OP_CONT, b"\x02"))
        await peer.read_until_eof()

    server = await frame_server(script)
    async with await raw_connect(server, autoping=False) as ws:
        assert await receive(ws) == WSMessage(WSMsgType.PING, b"p", "")
        assert await receive(ws) == WSMessage(WSMsgType.BINARY, b"\x01\x02", "")
    peer = await server.finished()
    assert OP_PONG not in [f.opcode for f in peer.frames]  # the user did not answer it


# --- closing ---------------------------------------------------------------------------------


async def test_without_autoclose_receive_after_close_closes_and_reads_closed(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    """aiohttp: a receive() after the CLOSE message (autoclose=False) sends our close frame
    and returns CLOSED; it must not wait for data a closing server will never send."""

    async def script(peer: Peer) -> None:
        peer.send(frame(OP_CLOSE, close_payload(4000, b"bye")))
        await peer.read_until_eof()  # a server waiting for our close frame, forever

    server = await frame_server(script)
    ws = await raw_connect(server, autoclose=False)
    assert await receive(ws) == WSMessage(WSMsgType.CLOSE, 4000, "bye")
    assert not ws.closed
    assert await receive(ws) == CLOSED
    assert ws.closed
    assert ws.close_code == 4000
    peer = await server.finished()
    assert [f.close_code for f in peer.frames if f.opcode == OP_CLOSE] == [1000]


async def test_without_autoclose_async_for_ends_and_close_answers(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, b"one"), frame(OP_CLOSE, close_payload(1001)))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server, autoclose=False)
    seen = [message async for message in ws]
    assert seen == [WSMessage(WSMsgType.TEXT, "one", "")]
    assert ws.close_code == WSCloseCode.GOING_AWAY
    assert await asyncio.wait_for(ws.close(code=4100), GUARD) is True
    assert ws.close_code == WSCloseCode.GOING_AWAY  # the server's code stays the one reported
    peer = await server.finished()
    assert [f.close_code for f in peer.frames if f.opcode == OP_CLOSE] == [4100]


async def test_empty_close_frame_is_answered_and_reported(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_CLOSE))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server)
    message = await receive(ws)
    assert message.type is WSMsgType.CLOSE
    # RFC 6455 7.1.5: no status code in the frame reads as 1005 (aiohttp reports 0).
    assert message.data == 1005
    assert ws.closed
    peer = await server.finished()
    closes = [f for f in peer.frames if f.opcode == OP_CLOSE]
    assert len(closes) == 1
    assert closes[0].close_code in (None, 1000)  # never 1005 on the wire (RFC 6455 7.4.1)


@pytest.mark.parametrize("autoclose", [True, False])
@pytest.mark.parametrize(
    "late",
    [
        pytest.param(frame(OP_TEXT, b"late"), id="text"),
        pytest.param(frame(OP_PING, b"late"), id="ping"),
        pytest.param(frame(OP_CLOSE, close_payload(1001)), id="second-close"),
        pytest.param(b"\xff\xff", id="garbage"),
    ],
)
async def test_frames_after_the_servers_close_are_ignored(
    frame_server: Callable[..., Awaitable[FrameServer]], late: bytes, autoclose: bool
) -> None:
    """RFC 6455 5.5.1: the close frame is the server's last; what follows it means nothing
    and must neither reach the user nor change the close code."""

    async def script(peer: Peer) -> None:
        peer.writer.write(frame(OP_CLOSE, close_payload(4000, b"bye")))
        await asyncio.sleep(0.05)  # a second read, after the client saw the close
        peer.writer.write(late)
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server, autoclose=autoclose)
    assert await receive(ws) == WSMessage(WSMsgType.CLOSE, 4000, "bye")
    await asyncio.sleep(0.2)  # let the late bytes arrive
    assert await receive(ws) == CLOSED
    assert ws.close_code == 4000
    assert ws.exception() is None
    peer = await server.finished()
    assert [f.opcode for f in peer.frames] == [OP_CLOSE]


async def test_a_long_close_reason_is_cut_to_fit_a_control_frame(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        got = await peer.next_frame()
        peer.send(frame(OP_CLOSE, got.payload))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server)
    assert await asyncio.wait_for(ws.close(code=4000, message="é" * 200), GUARD) is True
    peer = await server.finished()
    (close,) = peer.frames
    assert close.close_code == 4000
    assert len(close.payload) <= 125
    close.payload[2:].decode("utf-8")  # cut on a character boundary


async def test_sending_after_the_server_closed_raises(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_CLOSE, close_payload(1000)))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server)
    assert (await receive(ws)).type is WSMsgType.CLOSE
    with pytest.raises(ClientConnectionResetError):
        await ws.send_str("too late")
    with pytest.raises(ClientConnectionResetError):
        await ws.ping()
    assert await ws.close() is False
    await server.finished()


# --- a server that vanishes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(OP_BINARY, b"x" * 1000)[:500], id="inside-a-frame"),
        pytest.param(b"\x81", id="inside-a-header"),
        pytest.param(frame(OP_TEXT, b"part", fin=False), id="between-fragments"),
    ],
)
@pytest.mark.parametrize("how", ["reset", "fin"])
async def test_server_vanishing_mid_message_reads_closed(
    frame_server: Callable[..., Awaitable[FrameServer]], data: bytes, how: str
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, b"before"), data)
        await peer.writer.drain()
        if how == "fin":
            peer.writer.write_eof()  # half-close: the client must not wait for more
            await peer.reader.read()
        else:
            peer.writer.transport.abort()

    server = await frame_server(script)
    ws = await raw_connect(server)
    assert await receive(ws) == WSMessage(WSMsgType.TEXT, "before", "")
    assert await receive(ws) == CLOSED
    assert ws.closed
    assert ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    assert await ws.close() is False
    await server.finished()
    assert client_sockets_to(server.port) == []


# --- heartbeat -------------------------------------------------------------------------------


@pytest.mark.parametrize("autoping", [True, False])
async def test_heartbeat_pings_and_a_pong_keeps_it_open(
    frame_server: Callable[..., Awaitable[FrameServer]], autoping: bool
) -> None:
    async def script(peer: Peer) -> None:
        for _ in range(2):
            ping = await peer.next_frame()
            assert ping.opcode == OP_PING
            peer.send(frame(OP_PONG, ping.payload))
        peer.send(frame(OP_TEXT, b"still here"))
        await peer.read_until_eof()

    server = await frame_server(script)
    async with await raw_connect(server, heartbeat=0.2, autoping=autoping) as ws:
        message = await receive(ws)
        if not autoping:  # aiohttp hands the pong to a user who turned autoping off
            assert message.type is WSMsgType.PONG
            assert (await receive(ws)).type is WSMsgType.PONG
            message = await receive(ws)
        assert message == WSMessage(WSMsgType.TEXT, "still here", "")
        assert ws.close_code is None
    await server.finished()


# --- handshake -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        pytest.param(
            lambda key: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, id="200"
        ),
        pytest.param(
            lambda key: upgrade_answer(key).replace(b"Upgrade: websocket\r\n", b""),
            101,
            id="no-upgrade-header",
        ),
        pytest.param(
            lambda key: upgrade_answer(key).replace(b"Connection: Upgrade", b"Connection: close"),
            101,
            id="connection-close",
        ),
        pytest.param(
            lambda key: upgrade_answer(key, b"Sec-WebSocket-Protocol: chat\r\n"),
            101,
            id="subprotocol-not-offered",
        ),
        pytest.param(
            lambda key: upgrade_answer(key, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            101,
            id="extension-not-offered",
        ),
    ],
)
async def test_bad_upgrade_answers_raise_handshake_error(
    frame_server: Callable[..., Awaitable[FrameServer]],
    answer: Callable[[str], bytes],
    status: int,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    server = await frame_server(script, answer=answer)
    with pytest.raises(WSServerHandshakeError) as caught:
        await raw_connect(server)
    assert caught.value.status == status
    assert client_sockets_to(server.port) == []


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            lambda key: upgrade_answer(key).replace(b"Upgrade: websocket", b"Upgrade: WebSocket"),
            id="upgrade-token-case",
        ),
        pytest.param(
            lambda key: upgrade_answer(key).replace(
                b"Connection: Upgrade", b"Connection: keep-alive, upgrade"
            ),
            id="connection-token-list",
        ),
        pytest.param(
            lambda key: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            + upgrade_answer(key),
            id="interim-103-first",
        ),
    ],
)
async def test_valid_variations_of_the_upgrade_answer_are_accepted(
    frame_server: Callable[..., Awaitable[FrameServer]], answer: Callable[[str], bytes]
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, b"welcome"))
        await peer.read_until_eof()

    server = await frame_server(script, answer=answer)
    async with await raw_connect(server) as ws:
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "welcome"
    await server.finished()


async def test_interim_answers_split_across_reads_are_skipped(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        answer = (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
            + upgrade_answer(peer.headers["sec-websocket-key"])
            + frame(OP_TEXT, b"after interim")
        )
        for i in range(len(answer)):  # one byte per read: every split point
            peer.writer.write(answer[i : i + 1])
            await peer.writer.drain()
            await asyncio.sleep(0)
        await peer.read_until_eof()

    server = await frame_server(script, answer=lambda key: b"")
    async with await raw_connect(server) as ws:
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "after interim"
    await server.finished()


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(b"client_max_window_bits", id="client-bits-without-value"),
        pytest.param(b"server_max_window_bits", id="server-bits-without-value"),
        pytest.param(b"client_max_window_bits=8", id="client-bits-8"),
        pytest.param(b"server_max_window_bits=16", id="server-bits-16"),
        pytest.param(b"server_max_window_bits=ten", id="bits-not-a-number"),
    ],
)
async def test_bad_deflate_parameters_in_the_answer_fail_the_handshake(
    frame_server: Callable[..., Awaitable[FrameServer]], params: bytes
) -> None:
    """RFC 7692 7.1: a client that cannot accept the server's extension response fails the
    connection; aiohttp raises WSServerHandshakeError for these."""

    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        extension = b"Sec-WebSocket-Extensions: permessage-deflate; " + params + b"\r\n"
        return upgrade_answer(key, extension)

    server = await frame_server(script, answer=answer)
    with pytest.raises(WSServerHandshakeError) as caught:
        await raw_connect(server, compress=15)
    assert caught.value.status == 101
    assert client_sockets_to(server.port) == []


async def test_server_choosing_no_subprotocol_leaves_protocol_none(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    server = await frame_server(script)
    async with await raw_connect(server, protocols=("chat", "superchat")) as ws:
        assert ws.protocol is None
    peer = await server.finished()
    assert peer.headers["sec-websocket-protocol"] == "chat, superchat"


# --- permessage-deflate parameters (RFC 7692) ------------------------------------------------


@pytest.fixture
async def notakeover_url() -> AsyncIterator[str]:
    """A `websockets` server whose permessage-deflate resets both contexts per message and
    compresses with a 10-bit window: it sends its Sec-WebSocket-Extensions answer, then echoes."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    async def handler(ws: ServerConnection) -> None:
        assert ws.response is not None
        await ws.send(ws.response.headers.get("Sec-WebSocket-Extensions", ""))
        async for message in ws:
            await ws.send(message)

    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=10
    )
    with no_resource_warnings():
        async with serve(
            handler, "127.0.0.1", 0, extensions=[factory], compression=None, ping_interval=None
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"ws://127.0.0.1:{port}/"
        assert client_sockets_to(port) == []


async def test_no_context_takeover_both_ways(notakeover_url: str) -> None:
    async with ClientSession() as session, session.ws_connect(notakeover_url, compress=15) as ws:
        answered = await asyncio.wait_for(ws.receive_str(), GUARD)
        assert "server_no_context_takeover" in answered
        assert "client_no_context_takeover" in answered
        assert ws.compress
        assert ws.client_notakeover is True
        text = "the same words again and again " * 50
        for _ in range(5):  # each message must decode on its own, both ways
            await ws.send_str(text)
            assert await asyncio.wait_for(ws.receive_str(), GUARD) == text


async def test_corrupt_deflate_data_fails_with_an_error_not_a_crash(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_BINARY, b"\xff\xff\xff\xff not deflate", rsv=0b100))
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        return upgrade_answer(key, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")

    server = await frame_server(script, answer=answer)
    ws = await raw_connect(server, compress=15)
    message = await receive(ws)
    assert message.type is WSMsgType.ERROR
    assert ws.close_code in (WSCloseCode.PROTOCOL_ERROR, WSCloseCode.INVALID_TEXT)
    await server.finished()


def _deflate(data: bytes) -> bytes:
    import zlib

    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # RFC 7692 7.2.1: the empty stored block's 00 00 ff ff is left off


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(OP_PING, b"p", rsv=0b100), 1002, id="rsv1-on-ping"),
        pytest.param(
            frame(OP_TEXT, _deflate(b"ab"), fin=False, rsv=0b100)
            + frame(OP_CONT, _deflate(b"cd"), rsv=0b100),
            1002,
            id="rsv1-on-continuation",
        ),
        pytest.param(frame(OP_TEXT, _deflate(b"\xc3\x28"), rsv=0b100), 1007, id="bad-utf8"),
    ],
)
async def test_malformed_compressed_input_fails_the_connection(
    frame_server: Callable[..., Awaitable[FrameServer]], data: bytes, code: int
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, _deflate(b"fine"), rsv=0b100), data)
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        return upgrade_answer(key, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")

    server = await frame_server(script, answer=answer)
    ws = await raw_connect(server, compress=15)
    assert await receive(ws) == WSMessage(WSMsgType.TEXT, "fine", "")
    message = await receive(ws)
    assert message.type is WSMsgType.ERROR, message
    assert ws.close_code == code
    peer = await server.finished()
    assert [f.close_code for f in peer.frames if f.opcode == OP_CLOSE] == [code]


# --- JSON ------------------------------------------------------------------------------------


async def test_send_json_and_receive_json_with_custom_codecs(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        got = await peer.next_frame()
        peer.send(frame(OP_TEXT, got.payload.upper()))
        await peer.read_until_eof()

    server = await frame_server(script)
    seen: list[object] = []

    def dumps(obj: object) -> str:
        seen.append(obj)
        return json.dumps(obj, separators=(",", ":"))

    def loads(text: str) -> object:
        seen.append(text)
        return json.loads(text)

    async with await raw_connect(server) as ws:
        await ws.send_json({"a": [1, 2]}, dumps=dumps)
        assert await asyncio.wait_for(ws.receive_json(loads=loads), GUARD) == {"A": [1, 2]}
    assert seen == [{"a": [1, 2]}, '{"A":[1,2]}']
    peer = await server.finished()
    assert peer.frames[0].payload == b'{"a":[1,2]}'


async def test_receive_json_refuses_a_close(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        peer.send(frame(OP_CLOSE, close_payload(1000)))
        await peer.read_until_eof()

    server = await frame_server(script)
    ws = await raw_connect(server)
    with pytest.raises(WSMessageTypeError):
        await asyncio.wait_for(ws.receive_json(), GUARD)
    await server.finished()


# --- through a session: redirects ------------------------------------------------------------


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server
        assert client_sockets_to(server.port) == []


@pytest.mark.parametrize(
    ("status", "scheme"), [(301, "http"), (302, "http"), (303, "http"), (307, "http"), (308, "ws")]
)
async def test_ws_connect_follows_a_redirect_like_aiohttp(
    frame_server: Callable[..., Awaitable[FrameServer]],
    ws_server: WebSocketTestServer,
    status: int,
    scheme: str,
) -> None:
    """aiohttp's ws_connect is a session request that follows redirects; a ws:// Location
    (which aiohttp refuses as "not http") is taken as its http:// twin here."""

    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        location = ws_server.http_url("/echo") if scheme == "http" else ws_server.url("/echo")
        return (
            f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    server = await frame_server(script, answer=answer)
    async with ClientSession() as session, session.ws_connect(server.url) as ws:
        await ws.send_str("followed")
        assert await asyncio.wait_for(ws.receive_str(), GUARD) == "followed"
    assert client_sockets_to(server.port) == []


async def test_ws_connect_redirect_loop_stops(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        return b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"

    server = await frame_server(script, answer=answer)
    async with ClientSession() as session:
        with pytest.raises(TooManyRedirects) as caught:
            await asyncio.wait_for(session.ws_connect(server.url), GUARD)
    assert len(caught.value.history) == 11  # the session's rule: more than 10 is too many
    assert len(server.peers) == 11
    assert client_sockets_to(server.port) == []


async def test_ws_connect_redirect_to_another_origin_drops_credentials(
    frame_server: Callable[..., Awaitable[FrameServer]],
    ws_server: WebSocketTestServer,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        return (
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {ws_server.url('/headers')}\r\n"
            "Set-Cookie: hop=1; Path=/\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    server = await frame_server(script, answer=answer)
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:  # an IP host
        headers = {"Authorization": "Bearer first-origin-only", "X-Kept": "yes"}
        async with session.ws_connect(server.url, headers=headers) as ws:
            seen = json.loads(await asyncio.wait_for(ws.receive_str(), GUARD))
        cookies = {c.key: c.value for c in session.cookie_jar}
    peer = server.peers[0]
    assert peer.headers["authorization"] == "Bearer first-origin-only"
    assert "authorization" not in seen  # 127.0.0.1 on another port is another origin
    assert seen["x-kept"] == ["yes"]
    assert cookies.get("hop") == "1"  # the redirect's Set-Cookie went into the jar


async def test_ws_connect_refused_after_a_redirect_reports_the_history(
    frame_server: Callable[..., Awaitable[FrameServer]],
    ws_server: WebSocketTestServer,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_until_eof()

    def answer(key: str) -> bytes:
        location = ws_server.http_url("/reject")
        return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()

    server = await frame_server(script, answer=answer)
    async with ClientSession() as session:
        with pytest.raises(WSServerHandshakeError) as caught:
            await asyncio.wait_for(session.ws_connect(server.url), GUARD)
    assert caught.value.status == 403
    assert [hop.status for hop in caught.value.history] == [302]
    assert client_sockets_to(server.port) == []


# --- the session's close -----------------------------------------------------------------------


async def test_closing_the_session_closes_its_open_websockets(
    frame_server: Callable[..., Awaitable[FrameServer]],
) -> None:
    """Their sockets left the connector's pool at the handshake: without the session's own
    list they stayed connected after `session.close()` (aiohttp's close them)."""
    ended = asyncio.Event()

    async def script(peer: Peer) -> None:
        peer.send(frame(OP_TEXT, b"hello"))
        await peer.writer.drain()
        await peer.reader.read()  # until the client's socket closes
        ended.set()

    server = await frame_server(script)
    session = ClientSession()
    ws = await session.ws_connect(server.url, compress=0)
    assert await receive(ws) == WSMessage(WSMsgType.TEXT, "hello", "")
    await asyncio.wait_for(session.close(), GUARD)
    await asyncio.wait_for(ended.wait(), GUARD)
    assert await receive(ws) == CLOSED
    assert ws.closed
    assert client_sockets_to(server.port) == []


@pytest.mark.parametrize("code", [70000, -1, 999, 1005, 1006, 1015, 2000, 5000])
async def test_a_close_code_that_cannot_be_sent_is_refused_and_leaves_it_open(
    frame_server: Callable[..., Awaitable[FrameServer]], code: int
) -> None:
    async def script(peer: Peer) -> None:
        got = await read_client_frame(peer.reader)
        assert got.payload == b"still open"
        got = await read_client_frame(peer.reader)
        peer.send(frame(OP_CLOSE, got.payload))
        await peer.writer.drain()

    server = await frame_server(script)
    ws = await raw_connect(server)
    with pytest.raises(ValueError, match=f"close code {code} cannot be sent"):
        await ws.close(code=code)
    assert not ws.closed
    await ws.send_str("still open")
    assert await asyncio.wait_for(ws.close(code=4000), GUARD) is True
    assert ws.close_code == 4000
    await server.finished()
