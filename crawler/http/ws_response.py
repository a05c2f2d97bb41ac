"""`ClientWebSocketResponse`: the user's side of an open client WebSocket.

Sending (any number of tasks), receiving (one task), closing with the close handshake, with
aiohttp's names: `receive()`, `async for`, `send_str()`, `close()`, `closed`, `close_code`...
A send hands its frame to the socket before it returns, so both `await ws.send_str(...)` and the
client guide's older, un-awaited `ws.send_str(...)` send the message; awaiting adds back-pressure.
The framing and the socket are `WebSocketProtocol`'s (ws_protocol.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from yarl import URL

from crawler.http.errors import ServerTimeoutError, WSMessageTypeError
from crawler.http.ws_handshake import Negotiated
from crawler.http.ws_messages import (
    WS_CLOSED_MESSAGE,
    WS_CLOSING_MESSAGE,
    ClientWSTimeout,
    WSCloseCode,
    WSMessage,
    WSMsgType,
)
from crawler.http.ws_protocol import WebSocketProtocol

__all__ = ["ClientWebSocketResponse", "Sent"]

_MAX_CONTROL_PAYLOAD = 125  # RFC 6455 5.5


class ClientWebSocketResponse:
    """An open client WebSocket.

    Reading: `receive()` (or `async for msg in ws`, which stops at CLOSE/CLOSING/CLOSED) from one
    task at a time. Writing: `send_str()`, `send_bytes()`, `send_json()`, `send_frame()`,
    `ping()`, `pong()` from any number of tasks: each frames its message and writes it at once,
    in call order, and returns an awaitable that waits while the socket's write buffer is full
    (so awaiting writers keep at most one message each beyond the buffer's high-water mark).
    With autoclose=False they still send after the server's CLOSE came, until `close()`
    (as aiohttp's do; RFC 6455 forbids data only after our own close frame). `close()` runs the
    close handshake, bounded by `timeout.ws_close`.
    """

    def __init__(
        self,
        protocol: WebSocketProtocol,
        *,
        url: URL,
        negotiated: Negotiated,
        timeout: ClientWSTimeout,
        autoclose: bool,
    ) -> None:
        self._protocol = protocol
        self._url = url
        self._negotiated = negotiated
        self._timeout = timeout
        self._autoclose = autoclose
        self._closed = False
        # The server's close frame was handed to a user who answers it (autoclose=False).
        self._closing = False
        self._receiving = False
        self._exception: BaseException | None = None

    # --- what was agreed, and the state --------------------------------------------------

    @property
    def url(self) -> URL:
        return self._url

    @property
    def protocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        return self._negotiated.protocol

    @property
    def compress(self) -> int:
        """Window bits of the negotiated permessage-deflate, 0 when compression is off."""
        return self._negotiated.compress

    @property
    def client_notakeover(self) -> bool:
        return self._negotiated.client_notakeover

    @property
    def extensions(self) -> tuple[str, ...]:
        """Names of the extensions the server accepted (e.g. ``("permessage-deflate",)``)."""
        return self._negotiated.extensions

    @property
    def response_headers(self) -> CIMultiDictProxy[str]:
        """Headers of the server's 101 answer, except the WebSocket handshake's own."""
        return CIMultiDictProxy(CIMultiDict(self._negotiated.headers))

    @property
    def closed(self) -> bool:
        """True once we closed, the close handshake completed, or the connection is gone."""
        return self._closed or self._protocol.is_lost

    @property
    def close_code(self) -> int | None:
        """The close code (the server's, 1006 for a lost connection); None while open."""
        return self._protocol.close_code

    def exception(self) -> BaseException | None:
        """The error that ended the connection, if one did."""
        return self._exception or self._protocol.exception

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information (`peername`, `sslcontext`, `ssl_object`...) while open."""
        transport = self._protocol.transport
        if transport is None or self.closed:
            return default
        return transport.get_extra_info(name, default)

    # --- sending -------------------------------------------------------------------------

    def send_str(self, data: str, compress: int | None = None) -> Sent:
        """Send a TEXT message (written before this returns; await it for back-pressure).

        `compress=0` sends this one message uncompressed on a compressed connection (already
        compressed data, say); None or window bits (9..15) use the connection's setting: with
        context takeover one compressor serves every message, so its window is the one the
        handshake agreed on. On a connection without compression nothing is compressed.
        """
        if not isinstance(data, str):
            raise TypeError(f"data argument must be str, got {type(data).__name__}")
        return self._send(TextMessage(data=data), compress)

    def send_bytes(self, data: bytes | bytearray | memoryview, compress: int | None = None) -> Sent:
        """Send a BINARY message (written before this returns; await it for back-pressure).
        `compress` as for `send_str`."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be bytes-like, got {type(data).__name__}")
        return self._send(BytesMessage(data=bytes(data)), compress)

    def send_json(
        self,
        data: Any,
        compress: int | None = None,
        *,
        dumps: Callable[[Any], str] = json.dumps,
    ) -> Sent:
        """Send `dumps(data)` as a TEXT message; `compress` as for `send_str`."""
        return self.send_str(dumps(data), compress)

    def send_json_bytes(
        self,
        data: Any,
        compress: int | None = None,
        *,
        dumps: Callable[[Any], bytes],
    ) -> Sent:
        """Send `dumps(data)` as a BINARY message, for an encoder that returns bytes (orjson,
        msgspec) with no str round trip; `compress` as for `send_str`."""
        return self.send_bytes(dumps(data), compress)

    def send_frame(
        self,
        message: bytes | bytearray | memoryview,
        opcode: WSMsgType,
        compress: int | None = None,
    ) -> Sent:
        """Send `message` as the payload of one frame with `opcode` (aiohttp 3.11+'s call).

        TEXT (the payload must be UTF-8) and BINARY send a whole message, `compress` as for
        `send_str`; PING and PONG a control frame (at most 125 bytes, never compressed, so
        `compress` is ignored); CLOSE our close frame, its payload empty or a sendable close
        code (2 bytes, network order) and a UTF-8 reason, after which only `close()` is left
        to call. Like the other sends it is written before this returns and raises
        ClientConnectionResetError once our close frame is out.

        Unlike aiohttp, which writes whatever it is given, a frame the server would have to
        fail the connection for is a ValueError before anything is sent: CONTINUATION (no
        message is ever left unfinished to continue), CLOSING/CLOSED/ERROR and other
        non-opcodes, text that is not UTF-8, an oversized control payload, a bad close payload.
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError(f"message argument must be bytes-like, got {type(message).__name__}")
        payload = bytes(message)
        if opcode == WSMsgType.TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"a TEXT frame's payload must be UTF-8: {exc}") from None
            return self._send(TextMessage(data=text), compress)
        if opcode == WSMsgType.BINARY:
            return self._send(BytesMessage(data=payload), compress)
        _compresses(compress)  # ignored for control frames, but a bad value is still a bug
        if opcode == WSMsgType.PING:
            return self._send(Ping(payload=_control_payload(payload)))
        if opcode == WSMsgType.PONG:
            return self._send(Pong(payload=_control_payload(payload)))
        if opcode == WSMsgType.CLOSE:
            return self._send(_close_event(payload))
        raise ValueError(
            f"cannot send a frame with opcode {opcode!r}: TEXT, BINARY, PING, PONG or CLOSE"
        )

    def ping(self, message: bytes | str = b"") -> Sent:
        return self._send(Ping(payload=_control_payload(message)))

    def pong(self, message: bytes | str = b"") -> Sent:
        return self._send(Pong(payload=_control_payload(message)))

    def _send(
        self,
        event: TextMessage | BytesMessage | Ping | Pong | CloseConnection,
        compress: int | None = None,
    ) -> Sent:
        # Framing and writing now, in call order, keeps every message whole and in order
        # whatever number of tasks send; raises ClientConnectionResetError once closing.
        self._protocol.send(event, compress=_compresses(compress))
        return Sent(self._protocol)

    # --- receiving -----------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> WSMessage:
        """The next message. TEXT/BINARY (and PING/PONG without autoping) as they come, then
        CLOSE (the server's code in `data`, its reason in `extra`) or ERROR (the exception in
        `data`), then CLOSED for ever. Raises ServerTimeoutError after `timeout` (or
        `receive_timeout`) seconds without a message; the connection stays open."""
        if self._receiving:
            raise RuntimeError("Concurrent call to receive() is not allowed")
        if self._closed:
            return WS_CLOSED_MESSAGE
        if self._closing:
            # After its close frame the server sends nothing more: waiting for a message would
            # hang (until it gives up on us). aiohttp closes here; so do we.
            await self.close()
            return WS_CLOSED_MESSAGE
        wait = timeout or self._timeout.ws_receive
        self._receiving = True
        try:
            if wait:
                try:
                    async with asyncio.timeout(wait):
                        message = await self._protocol.read()
                except TimeoutError:
                    raise ServerTimeoutError(
                        f"No WebSocket message received within {wait} seconds"
                    ) from None
            else:
                message = await self._protocol.read()
        finally:
            self._receiving = False

        if message.type is WSMsgType.CLOSE:
            if self._autoclose:
                # The protocol already answered the close frame; finish with the socket.
                self._closed = True
                await self._protocol.wait_closed()
            else:
                self._closing = True
        elif message.type in (WSMsgType.ERROR, WSMsgType.CLOSED):
            self._closed = True
            await self._protocol.wait_closed()
        return message

    async def receive_str(self, *, timeout: float | None = None) -> str:
        message = await self.receive(timeout)
        if message.type is not WSMsgType.TEXT:
            raise WSMessageTypeError(
                f"Received message {message.type}:{message.data!r} is not str"
            )
        return str(message.data)

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        message = await self.receive(timeout)
        if message.type is not WSMsgType.BINARY:
            raise WSMessageTypeError(
                f"Received message {message.type}:{message.data!r} is not bytes"
            )
        return bytes(message.data)

    async def receive_json(
        self, *, loads: Callable[[Any], Any] = json.loads, timeout: float | None = None
    ) -> Any:
        message = await self.receive(timeout)
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            raise WSMessageTypeError(
                f"Received message {message.type}:{message.data!r} is not JSON data"
            )
        return loads(message.data)

    def __aiter__(self) -> ClientWebSocketResponse:
        return self

    async def __anext__(self) -> WSMessage:
        message = await self.receive()
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return message

    # --- closing -------------------------------------------------------------------------

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes | str = b"") -> bool:
        """Close the WebSocket: send our close frame, wait (up to `timeout.ws_close`) for the
        server's, then close the socket. False if it was already closed. A task blocked in
        `receive()` gets a CLOSING message."""
        if not _sendable_close_code(code):
            # Before anything changes: the WebSocket stays open and usable.
            raise ValueError(
                f"close code {code} cannot be sent (RFC 6455 7.4: 1000-1003, 1007-1014 or "
                "3000-4999)"
            )
        if self._receiving:
            self._protocol.push_front(WS_CLOSING_MESSAGE)
        protocol = self._protocol
        if self._closed:
            await protocol.wait_closed()
            return False
        self._closed = True
        reason = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        protocol.drop_data()
        try:
            protocol.send_close(code, reason)
            if not await protocol.wait_close_frame(self._timeout.ws_close):
                protocol.close_code = WSCloseCode.ABNORMAL_CLOSURE
                self._exception = ServerTimeoutError(
                    f"No WebSocket close frame received within {self._timeout.ws_close} seconds"
                )
                protocol.abort()
            await protocol.wait_closed()
        except BaseException:
            protocol.abort()
            raise
        return True

    async def _abandon(self) -> None:
        """Its session closed: the socket is closed without a close handshake (the session
        owns its connections, as aiohttp's connector does), and receive() then says CLOSED."""
        await self._protocol.wait_closed()

    async def __aenter__(self) -> ClientWebSocketResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ClientWebSocketResponse({self._url}) {state}>"


def _sendable_close_code(code: int) -> bool:
    """Codes an endpoint may put in a close frame (RFC 6455 7.4.1/7.4.2): 1004 is reserved,
    1005, 1006 and 1015 only report what happened; 1016-2999 are for future standards."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def _close_event(payload: bytes) -> CloseConnection:
    """The close frame whose payload is `payload` (RFC 6455 5.5.1), for `send_frame`."""
    if not payload:
        # wsproto writes an empty close frame for this code alone (compared by identity).
        return CloseConnection(code=CloseReason.NO_STATUS_RCVD)
    if len(payload) < 2 or len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError(
            f"a CLOSE frame's payload is empty or 2..125 bytes, got {len(payload)} bytes"
        )
    code = int.from_bytes(payload[:2], "big")
    if not _sendable_close_code(code):
        raise ValueError(
            f"close code {code} cannot be sent (RFC 6455 7.4: 1000-1003, 1007-1014 or "
            "3000-4999)"
        )
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"a CLOSE frame's reason must be UTF-8: {exc}") from None
    return CloseConnection(code=code, reason=reason or None)


def _control_payload(message: bytes | str) -> bytes:
    payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError(f"ping/pong payload is {len(payload)} bytes, at most 125 are allowed")
    return payload


class Sent:
    """What the send methods return: the frame is already written; awaiting waits for drain.

    It also passes for a coroutine (`asyncio.create_task(ws.send_str(...))` works), and one that
    is never awaited neither loses its message nor warns, as the guide's un-awaited calls need.
    """

    __slots__ = ("_coro", "_protocol")

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self._protocol = protocol
        self._coro: Coroutine[Any, Any, None] | None = None

    def _drain(self) -> Coroutine[Any, Any, None]:
        if self._coro is None:
            self._coro = self._protocol.drain()
        return self._coro

    def __await__(self) -> Generator[Any, None, None]:
        return self._drain().__await__()

    def send(self, value: Any) -> Any:
        return self._drain().send(value)

    def throw(self, *args: Any) -> Any:
        return self._drain().throw(*args)

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()


def _compresses(compress: int | None) -> bool:
    """Whether a message goes compressed (when the connection compresses at all)."""
    if compress is None:
        return True
    if isinstance(compress, bool) or not isinstance(compress, int):
        raise TypeError(f"compress must be an int or None, got {type(compress).__name__}")
    if compress == 0:
        return False
    if not 9 <= compress <= 15:
        raise ValueError(f"compress must be 0 (off) or window bits 9..15, got {compress}")
    return True
