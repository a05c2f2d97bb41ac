"""One client WebSocket on one asyncio transport: wsproto does the framing, this does the I/O.

The protocol takes over a freshly connected transport, sends the upgrade, and from then on turns
wsproto events into whole `WSMessage`s in a queue that one reader drains. It answers what must be
answered at once, whoever is reading: pings (autoping) and the server's close frame (autoclose).
It owns flow control both ways (reading pauses while too much unread data is queued; writers wait
in `drain()` while the transport's buffer is full), the heartbeat, and failing the connection
when the server breaks the protocol or a limit (close frame with the code, then the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from crawler.http.errors import ClientConnectionResetError, ServerTimeoutError
from crawler.http.ws_assembler import MessageAssembler
from crawler.http.ws_handshake import HandshakeFailure, head_end, tidy_extensions_header
from crawler.http.ws_messages import (
    WS_CLOSED_MESSAGE,
    WebSocketError,
    WSCloseCode,
    WSMessage,
    WSMsgType,
    as_close_code,
)

__all__ = ["WebSocketProtocol", "discard_transport"]

# Unread data above which we stop reading from the socket, and below which we start again.
_READ_HIGH_WATER = 1 << 18
_READ_LOW_WATER = 1 << 16
# With permessage-deflate on, input is fed to wsproto in slices this big so that one slice
# inflates to at most ~1000x its size before the message size limit is checked again.
_INFLATE_SLICE = 4096
# How long a closing transport may take to flush before it is aborted.
_CLOSE_GRACE = 5.0
# Interim (1xx) heads before the upgrade answer are skipped up to this many bytes in all.
_MAX_INTERIM = 1 << 16
# An upgrade answer's head is held back until complete up to this size, h11's default limit
# for an incomplete head: past it, wsproto gets the bytes and refuses them as it always did.
_MAX_UPGRADE_HEAD = 16 * 1024

_CAN_SEND_CLOSE = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


class WebSocketProtocol(asyncio.Protocol):
    """The transport's protocol once `start()` swapped it in. One reader, any number of writers."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        autoping: bool = True,
        autoclose: bool = True,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> None:
        self._loop = loop
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._autoping = autoping
        self._autoclose = autoclose
        self._assembler = MessageAssembler(max_msg_size)
        self.transport: asyncio.Transport | None = None

        self._handshake: asyncio.Future[AcceptConnection | HandshakeFailure] = loop.create_future()
        self._inflating = False
        self._failed = False
        # Bytes read before the answer's status line is known; None once it is (see
        # _skip_interim_heads).
        self._head_start: bytearray | None = bytearray()
        self._interim_skipped = 0
        # The 101 answer's head as received: wsproto's event keeps only the headers it does
        # not check itself, and tracing's request_end shows the whole answer, as aiohttp's.
        self.upgrade_head: bytes | None = None

        self._messages: deque[WSMessage] = deque()
        self._queued_bytes = 0
        self._read_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._dropping_data = False  # closing: data messages are not queued (see drop_data)

        self._writing_paused = False
        self._drain_waiters: deque[asyncio.Future[None]] = deque()

        # Results only (never exceptions) so that an unawaited future never logs a warning.
        self._close_received: asyncio.Future[None] = loop.create_future()
        self._lost: asyncio.Future[None] = loop.create_future()
        self._abort_handle: asyncio.TimerHandle | None = None

        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.exception: BaseException | None = None

        self._heartbeat: float | None = None
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._last_received = 0.0
        self._ping_sent_at = 0.0

    # --- opening -------------------------------------------------------------------------

    def start(self, transport: asyncio.Transport, request: Request) -> bytes:
        """Take over `transport` (connected, nothing sent yet) and send the upgrade request.

        Returns the request's bytes: wsproto makes the Sec-WebSocket-Key as it writes them, so
        they are the only record of the head actually sent (tracing's request_headers_sent).
        """
        if transport.is_closing():
            raise ClientConnectionResetError("the connection closed before the WebSocket upgrade")
        self.transport = transport
        transport.set_protocol(self)
        head = self._ws.send(request)
        transport.write(head)
        is_reading = getattr(transport, "is_reading", None)
        if is_reading is not None and not is_reading():
            transport.resume_reading()
        return head

    async def wait_handshake(self) -> AcceptConnection | HandshakeFailure:
        """The server's acceptance, or why there was none."""
        return await asyncio.shield(self._handshake)

    # --- asyncio.Protocol ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._failed or self._lost.done():
            return
        self._last_received = self._loop.time()
        if self._head_start is not None:
            skipped = self._skip_interim_heads(data)
            if skipped is None:
                return
            data = skipped
        # Sliced while the handshake is pending too: frames may follow the 101 in the same read.
        sliced = self._inflating or not self._handshake.done()
        if sliced and len(data) > _INFLATE_SLICE:
            view = memoryview(data)
            for start in range(0, len(data), _INFLATE_SLICE):
                if not self._feed(view[start : start + _INFLATE_SLICE]):
                    return
        else:
            self._feed(data)

    def _skip_interim_heads(self, data: bytes) -> bytes | None:
        """Drop 1xx answers other than 101 (103 Early Hints, a stray 100 Continue) in front of
        the upgrade answer: RFC 9110 15.2 has clients parse and skip them, as aiohttp does,
        while wsproto takes any 1xx for the final refusal. Returns the bytes to give wsproto
        from the real answer on, or None while its status line (or a 101's whole head) is still
        incomplete."""
        head = self._head_start
        assert head is not None
        head += data
        while True:
            if len(head) < 12:  # b"HTTP/1.1 103": the status code decides
                return None
            status = bytes(head[9:12])
            if not (head.startswith(b"HTTP/1.") and status[:1] == b"1" and status != b"101"):
                break
            end = head.find(b"\r\n\r\n")
            if end < 0 and len(head) <= _MAX_INTERIM:
                return None
            self._interim_skipped += end + 4
            if end < 0 or self._interim_skipped > _MAX_INTERIM:
                break  # endless interim answers: wsproto refuses what is left
            del head[: end + 4]
        if head.startswith(b"HTTP/1.") and head[9:12] == b"101":
            # The upgrade answer is kept whole so that its Sec-WebSocket-Extensions can be
            # tidied before wsproto reads it (see tidy_extensions_header).
            end = head_end(head)
            if end < 0 and len(head) <= _MAX_UPGRADE_HEAD:
                return None
            if end >= 0:
                self.upgrade_head = bytes(head[:end])
                head[:end] = tidy_extensions_header(self.upgrade_head)
        self._head_start = None
        return bytes(head)

    def eof_received(self) -> bool | None:
        return None  # let the transport close itself; connection_lost does the bookkeeping

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            reason = "the server closed the connection before completing the WebSocket upgrade"
            self._handshake.set_result(HandshakeFailure(None, reason))
        if not self._close_received.done():
            # No close frame ever came: RFC 6455 7.1.5 calls that 1006.
            if self.close_code is None:
                self.close_code = WSCloseCode.ABNORMAL_CLOSURE
                if exc is not None and self.exception is None:
                    self.exception = exc
            self._close_received.set_result(None)
        self._lost.set_result(None)
        self._cancel_timers()
        self._wake_reader()
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- incoming events -----------------------------------------------------------------

    def _feed(self, data: bytes | memoryview) -> bool:
        """Give wsproto some bytes and handle what comes out; False once the connection failed."""
        if self._ws.state is ConnectionState.CLOSED:
            return False  # both close frames are out: whatever else arrives means nothing
        try:
            self._ws.receive_data(data)  # type: ignore[arg-type]  # wsproto buffers memoryviews
            for event in self._ws.events():
                self._handle(event)
                if self._failed:
                    return False
        except WebSocketError as exc:
            self._fail(exc.code, exc)
        except RemoteProtocolError as exc:
            # Only the handshake raises this: the server's answer is not a valid upgrade.
            self._fail_handshake(HandshakeFailure(101, str(exc)))
        except (LocalProtocolError, AssertionError, ValueError, IndexError, KeyError) as exc:
            # wsproto asserts on some malformed frames instead of raising ParseFailed, and its
            # permessage-deflate answer parser indexes blindly ("client_max_window_bits" with
            # no value is an IndexError). Escaping data_received, these would only be logged
            # as a fatal transport error and read as a server that hung up.
            what = "upgrade answer" if not self._handshake.done() else "data"
            message = f"malformed WebSocket {what}: {exc or type(exc).__name__}"
            self._fail(
                WSCloseCode.PROTOCOL_ERROR, WebSocketError(WSCloseCode.PROTOCOL_ERROR, message)
            )
        return not self._failed

    def _handle(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            message = self._assembler.feed(event)
            if message is not None:
                self._enqueue(message)
        elif isinstance(event, Ping):
            if self._autoping:
                self._send_quietly(event.response())
            else:
                self._enqueue(WSMessage(WSMsgType.PING, bytes(event.payload), ""))
        elif isinstance(event, Pong):
            if not self._autoping:
                self._enqueue(WSMessage(WSMsgType.PONG, bytes(event.payload), ""))
        elif isinstance(event, CloseConnection):
            self._on_close_frame(event)
        elif isinstance(event, AcceptConnection):
            self._inflating = bool(event.extensions)
            if not self._handshake.done():
                self._handshake.set_result(event)
        elif isinstance(event, RejectConnection):
            headers = tuple(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
            )
            reason = f"the server answered the WebSocket upgrade with HTTP {event.status_code}"
            self._fail_handshake(HandshakeFailure(event.status_code, reason, headers))
        elif isinstance(event, RejectData):
            pass  # the body of a refusal: the status already said it all, the socket is going

    def _on_close_frame(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state not in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED):
            # wsproto reports a frame it could not parse as a CloseConnection that leaves the
            # state alone: that is a protocol violation (or bad UTF-8), not the server closing.
            code = event.code or WSCloseCode.PROTOCOL_ERROR
            raise WebSocketError(code, f"WebSocket protocol violation: {event.reason}")
        self.close_code = as_close_code(event.code)
        self.close_reason = event.reason or ""
        if self._heartbeat_handle is not None:
            # As aiohttp's _set_closing(): no more heartbeat pings once the server said goodbye.
            # Pings can still be sent until our close (autoclose=False), but the server owes
            # no pong any more, and a missing one must not fail a close that is going fine.
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        if state is ConnectionState.REMOTE_CLOSING and self._autoclose:
            self._send_quietly(event.response())
        self._enqueue(WSMessage(WSMsgType.CLOSE, self.close_code, self.close_reason))
        if not self._close_received.done():
            self._close_received.set_result(None)
        if self._ws.state is ConnectionState.CLOSED:
            # Both close frames are out: the connection has nothing left to carry.
            self.shutdown()

    # --- the message queue (one reader) --------------------------------------------------

    def _enqueue(self, message: WSMessage) -> None:
        if self._dropping_data and message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        self._messages.append(message)
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self._queued_bytes += len(message.data)
            if self._queued_bytes > _READ_HIGH_WATER and not self._reading_paused:
                self._set_reading(False)
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push_front(self, message: WSMessage) -> None:
        """Hand `message` to the reader before anything queued (used to break a pending read)."""
        self._messages.appendleft(message)
        self._wake_reader()

    async def read(self) -> WSMessage:
        """The next message; CLOSED once the connection is gone and nothing is left to read."""
        while not self._messages:
            if self._lost.done():
                return WS_CLOSED_MESSAGE
            waiter = self._loop.create_future()
            self._read_waiter = waiter
            try:
                await waiter
            finally:
                self._read_waiter = None
        message = self._messages.popleft()
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self._queued_bytes -= len(message.data)
            if self._reading_paused and self._queued_bytes <= _READ_LOW_WATER:
                self._set_reading(True)
        return message

    def drop_data(self) -> None:
        """From now on, text and binary messages (queued or still to come) are dropped, and the
        socket is read again if flow control paused it. For `close()`: nobody reads them any
        more, and the server's close frame may be behind them (RFC 6455 7.1.2: after sending a
        close frame, an endpoint reads on until it gets one); left paused, it never arrived."""
        self._dropping_data = True
        data = (WSMsgType.TEXT, WSMsgType.BINARY)
        self._messages = deque(m for m in self._messages if m.type not in data)
        self._queued_bytes = 0
        if self._reading_paused:
            self._set_reading(True)

    def _set_reading(self, reading: bool) -> None:
        transport = self.transport
        if transport is None or self._lost.done() or transport.is_closing():
            return
        self._reading_paused = not reading
        if reading:
            transport.resume_reading()
        else:
            transport.pause_reading()

    # --- writing (many writers) ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._ws.state

    @property
    def is_lost(self) -> bool:
        return self._lost.done()

    def send(self, event: Event, *, compress: bool = True) -> None:
        """Frame `event` and hand it to the transport; ClientConnectionResetError if closing.

        `compress=False` sends a message uncompressed on a permessage-deflate connection.
        Once the server's close frame came in but before ours went out (autoclose=False),
        messages, pings and pongs still go, as with aiohttp (see `_frame_remote_closing`).
        """
        transport = self.transport
        if transport is None or self._lost.done() or transport.is_closing():
            raise ClientConnectionResetError("Cannot write to closing transport")
        try:
            if self._ws.state is ConnectionState.REMOTE_CLOSING and isinstance(
                event, Message | Ping | Pong
            ):
                data = self._frame_remote_closing(event, compress)
            elif compress:
                data = self._ws.send(event)
            else:
                data = self._uncompressed(lambda: self._ws.send(event))
        except LocalProtocolError as exc:
            raise ClientConnectionResetError(
                f"Cannot send {type(event).__name__}: the WebSocket is {self._ws.state.name}"
            ) from exc
        transport.write(data)

    def _frame_protocol(self) -> FrameProtocol | None:
        # wsproto's framer sits behind a private attribute: looked up defensively, so that a
        # later wsproto that moves it only costs the two features that use it.
        frames = getattr(self._ws.connection, "_proto", None)
        return frames if isinstance(frames, FrameProtocol) else None

    def _frame_remote_closing(self, event: Message | Ping | Pong, compress: bool) -> bytes:
        """`event` framed after the server's close frame, before ours (autoclose=False).

        RFC 6455 5.5.1 forbids data frames only after *sending* a Close (the answer to the
        server's is `close()`, which the user calls when done, and an endpoint "MAY delay"
        it); aiohttp's writer likewise sends until its own close. wsproto's Connection refuses
        every message in REMOTE_CLOSING, so the frame comes from its framer directly: the
        very calls Connection.send makes when OPEN, with no state of its own to skip (data
        frames change no connection state), masked and compressed alike. Without that framer
        the send fails as it did before.
        """
        frames = self._frame_protocol()
        if frames is None:
            raise LocalProtocolError("the server closed the WebSocket")

        def frame() -> bytes:
            assert frames is not None
            if isinstance(event, Ping):
                return bytes(frames.ping(event.payload))
            if isinstance(event, Pong):
                return bytes(frames.pong(event.payload))
            return bytes(frames.send_data(event.data, event.message_finished))

        return frame() if compress else self._uncompressed(frame)

    def _uncompressed(self, frame: Callable[[], bytes]) -> bytes:
        """What `frame()` returns, framed without the negotiated extensions (RSV1 clear).

        RFC 7692 section 6 lets any message go uncompressed, and the compressor's context is
        left as it was for the next compressed one. wsproto has no per-message switch, so its
        frame protocol's extension list is emptied for this one synchronous call; should a
        later wsproto keep it elsewhere, the message simply goes compressed.
        """
        frames = self._frame_protocol()
        extensions = frames.extensions if frames is not None else None
        if frames is None or not extensions:
            return frame()
        frames.extensions = []
        try:
            return frame()
        finally:
            frames.extensions = extensions

    def _send_quietly(self, event: Event) -> None:
        # Replies (pong, close echo) the server may no longer be able to take: nothing to report.
        with contextlib.suppress(ClientConnectionResetError):
            self.send(event)

    def send_close(self, code: int, reason: str) -> bool:
        """Send our close frame if the state allows one; True when it was sent."""
        if self._ws.state not in _CAN_SEND_CLOSE:
            return False
        try:
            self.send(CloseConnection(code=code, reason=reason or None))
        except ClientConnectionResetError:
            return False
        return True

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._lost.done():
            raise ClientConnectionResetError("the WebSocket connection is closed")
        if not self._writing_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._drain_waiters.remove(waiter)
        if self._lost.done():
            raise ClientConnectionResetError("the WebSocket connection closed while writing")

    # --- closing -------------------------------------------------------------------------

    async def wait_close_frame(self, timeout: float | None) -> bool:
        """Wait for the server's close frame (or the connection's end); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._close_received)
        except TimeoutError:
            return False
        return True

    def shutdown(self) -> None:
        """Close the transport after it flushed, but abort it if flushing takes too long."""
        transport = self.transport
        if transport is None or self._lost.done():
            return
        if not transport.is_closing():
            transport.close()
        if self._abort_handle is None:
            self._abort_handle = self._loop.call_later(_CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        """Drop the connection now, unsent data included."""
        if self.transport is not None and not self._lost.done():
            self.transport.abort()

    async def wait_closed(self) -> None:
        """Make sure the socket is closed, and wait until it is."""
        if self.transport is None or self._lost.done():
            return
        self.shutdown()
        await asyncio.shield(self._lost)

    def _fail(self, code: int, exc: BaseException) -> None:
        """Fail the connection (RFC 6455 7.1.7): our close frame if possible, then the socket."""
        if self._failed:
            return
        self._failed = True
        self.close_code = as_close_code(code)
        self.exception = exc
        if not self._handshake.done():
            self._handshake.set_result(HandshakeFailure(101, str(exc)))
        elif code != WSCloseCode.ABNORMAL_CLOSURE and self.send_close(code, str(exc)):
            self._enqueue(WSMessage(WSMsgType.ERROR, exc, None))
            self.shutdown()
            return
        self._enqueue(WSMessage(WSMsgType.ERROR, exc, None))
        self.abort()

    def _fail_handshake(self, failure: HandshakeFailure) -> None:
        self._failed = True
        if not self._handshake.done():
            self._handshake.set_result(failure)
        self.abort()

    # --- heartbeat -----------------------------------------------------------------------

    def start_heartbeat(self, interval: float) -> None:
        """Ping after `interval` seconds without incoming data; fail with 1006 if nothing comes
        back within `interval / 2` (any incoming data counts: a busy server may queue its pong
        behind a long frame)."""
        if interval <= 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {interval}")
        self._heartbeat = interval
        self._last_received = self._loop.time()
        self._heartbeat_handle = self._loop.call_at(self._last_received + interval, self._ping_due)

    def _ping_due(self) -> None:
        assert self._heartbeat is not None
        if self._close_received.done():
            # The server's close frame may come with the 101, before the heartbeat started:
            # see _on_close_frame for why no ping follows it.
            self._heartbeat_handle = None
            return
        now = self._loop.time()
        due = self._last_received + self._heartbeat
        if self._reading_paused:
            # We are the ones not reading: the server's answer would sit unread, not missing.
            due = now + self._heartbeat
        if now < due:
            self._heartbeat_handle = self._loop.call_at(due, self._ping_due)
            return
        try:
            self.send(Ping(b""))
        except ClientConnectionResetError:
            self._heartbeat_handle = None
            return
        self._ping_sent_at = now
        self._heartbeat_handle = self._loop.call_at(now + self._heartbeat / 2, self._pong_due)

    def _pong_due(self) -> None:
        assert self._heartbeat is not None
        if self._last_received >= self._ping_sent_at or self._reading_paused:
            self._heartbeat_handle = self._loop.call_at(
                max(self._last_received, self._ping_sent_at) + self._heartbeat, self._ping_due
            )
            return
        self._heartbeat_handle = None
        self._fail(
            WSCloseCode.ABNORMAL_CLOSURE,
            ServerTimeoutError(f"No PONG received after {self._heartbeat / 2} seconds"),
        )

    def _cancel_timers(self) -> None:
        for handle in (self._heartbeat_handle, self._abort_handle):
            if handle is not None:
                handle.cancel()
        self._heartbeat_handle = None
        self._abort_handle = None


class _LossWatcher(asyncio.Protocol):
    def __init__(self, lost: asyncio.Future[None]) -> None:
        self._lost = lost

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)


async def discard_transport(transport: asyncio.Transport) -> None:
    """Abort a transport we will not use, and wait until its socket is really closed."""
    if transport.is_closing():
        return
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    transport.set_protocol(_LossWatcher(lost))
    transport.abort()
    await asyncio.shield(lost)
