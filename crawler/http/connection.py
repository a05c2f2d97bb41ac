"""One HTTP/1.1 connection: an asyncio protocol that feeds the wire parser and a body stream.

A `Connection` carries one exchange at a time. It reads into a buffer shared by all connections
of its connector (`BufferedProtocol`: no bytes object per read), hands the bytes to the
`ResponseParser`, and turns the parser's events into a head for the waiting request and body
pieces (decoded when asked) for the response's `StreamReader`. The stream's high-water mark pauses
reading; draining it resumes reading.

Inside a plain body (the parser's `direct_body`: identity framing, nothing to decode) the socket
is read straight into the stream's own memory (`StreamReader.write_buffer`), or into the buffer
of a pending `readinto`: those bytes are never copied by us. On a plain socket such a body can
also skip user space altogether: `splice_body` moves it into a file inside the kernel
(`_splice.py`) while reading stays paused, and the parser only counts it (`consume_body`).

When a response ends cleanly and the server allows keep-alive, the connection goes back to its
pool at once (its body is already buffered). Any other ending closes it. Its lifecycle is
`ConnState`, changed only here.
"""

from __future__ import annotations

import asyncio
import enum
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crawler.http import _splice
from crawler.http._wire import (
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    ResponseHead,
    ResponseParser,
    WireError,
)
from crawler.http.decoders import DEFAULT_MAX_OUTPUT, Decoder, DecompressionError, make_decoder
from crawler.http.errors import (
    ClientConnectionResetError,
    ClientOSError,
    ClientPayloadError,
    ServerDisconnectedError,
    SocketTimeoutError,
)
from crawler.http.streams import ChunkEndSink, StreamReader

if TYPE_CHECKING:
    from crawler.http.connector import BaseConnector, ConnectionKey

__all__ = ["ConnState", "Connection", "ExchangeOptions"]


class ConnState(enum.Enum):
    OPENING = "opening"  # transport not made yet
    ACTIVE = "active"  # held by a request
    IDLE = "idle"  # in the pool, waiting for reuse
    CLOSED = "closed"
    DETACHED = "detached"  # transport handed to someone else (WebSocket)


class ExchangeOptions:
    """How one response is read: decoding, limits and the read timeout."""

    __slots__ = (
        "auto_decompress",
        "max_decompressed_size",
        "max_field_size",
        "max_headers",
        "max_line_size",
        "read_bufsize",
        "sock_read",
    )

    def __init__(
        self,
        *,
        auto_decompress: bool = True,
        max_decompressed_size: int | None = DEFAULT_MAX_OUTPUT,
        read_bufsize: int = 2**18,
        sock_read: float | None = None,
        max_line_size: int = MAX_LINE_SIZE,
        max_field_size: int = MAX_FIELD_SIZE,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.auto_decompress = auto_decompress
        self.max_decompressed_size = max_decompressed_size
        self.read_bufsize = read_bufsize
        self.sock_read = sock_read
        self.max_line_size = max_line_size
        self.max_field_size = max_field_size
        self.max_headers = max_headers

    def with_sock_read(self, sock_read: float | None) -> ExchangeOptions:
        if sock_read == self.sock_read:
            return self
        return ExchangeOptions(
            auto_decompress=self.auto_decompress,
            max_decompressed_size=self.max_decompressed_size,
            read_bufsize=self.read_bufsize,
            sock_read=sock_read,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
        )


_DEFAULT_OPTIONS = ExchangeOptions()


class Connection(asyncio.BufferedProtocol):
    """A pooled HTTP/1.1 connection (the transport's protocol)."""

    __slots__ = (
        "_body_done",
        "_chunk_sink",
        "_continue_waiter",
        "_decoder",
        "_direct",
        "_drain_waiter",
        "_head",
        "_head_waiter",
        "_keep_alive",
        "_last_read",
        "_loop",
        "_must_close",
        "_options",
        "_parser",
        "_payload",
        "_pool",
        "_read_paused",
        "_read_timer",
        "_request_sent",
        "_sock_fd",
        "_splice_hold",
        "_to_stream",
        "_view",
        "_write_paused",
        "_writer",
        "closed_future",
        "idle_since",
        "key",
        "on_chunk_complete",
        "reused",
        "state",
        "transport",
    )

    def __init__(
        self,
        pool: BaseConnector | None,
        key: ConnectionKey | None,
        buffer: memoryview,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = pool
        self.key = key
        self._view = buffer
        self._direct: memoryview | None = None  # the stream's memory lent to the next read
        self._to_stream = False  # the bytes being parsed are already in the stream
        self.transport: asyncio.Transport | None = None
        self.state = ConnState.OPENING
        self.idle_since = 0.0
        self.reused = False
        # The parser's chunk-end callback, bound before the parser is made (httptools binds
        # it then): the sink's `mark` goes straight to the body stream, one call per chunk.
        self._chunk_sink = ChunkEndSink()
        self.on_chunk_complete: Callable[[], None] = self._chunk_sink.mark
        self._parser = ResponseParser(self)
        self._options = _DEFAULT_OPTIONS
        self._head: ResponseHead | None = None
        self._head_waiter: asyncio.Future[tuple[ResponseHead, StreamReader]] | None = None
        self._continue_waiter: asyncio.Future[bool] | None = None
        self._payload: StreamReader | None = None
        self._decoder: Decoder | None = None
        self._body_done = False
        self._keep_alive = False
        self._must_close = False
        self._request_sent = True
        self._sock_fd = -1  # the plain socket's descriptor: bodies may be spliced from it
        self._splice_hold = False  # reading stays paused between two splices
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self.closed_future: asyncio.Future[None] = self._loop.create_future()

    def __repr__(self) -> str:
        return f"<Connection {self.key} {self.state.value}>"

    # --- asyncio protocol callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state = ConnState.ACTIVE
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        plain = (
            sock is not None
            and transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("ssl_object") is None
        )
        self._sock_fd = sock.fileno() if plain and _splice.SPLICE_AVAILABLE else -1

    def get_buffer(self, sizehint: int) -> memoryview:
        payload = self._payload
        parser = self._parser
        if payload is not None and self._decoder is None and parser.direct_body:
            view = payload.write_buffer(parser.body_left)
            if view is not None:
                self._direct = view
                return view
        self._direct = None
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        direct = self._direct
        if direct is None:
            self._received(self._view[:nbytes])
            return
        self._direct = None
        self._to_stream = True
        try:
            self._received(direct[:nbytes])
        finally:
            self._to_stream = False

    def data_received(self, data: bytes) -> None:
        """For transports that hand over bytes (a proxy tunnel's leftover, say)."""
        self._received(data)

    def _received(self, data: bytes | memoryview) -> None:
        if self.state is not ConnState.ACTIVE or self._body_done:
            # Bytes nobody asked for (on an idle connection, or after the response): the
            # connection's framing can no longer be trusted.
            self.close()
            return
        if self._read_timer is not None:
            self._last_read = self._loop.time()
        try:
            self._parser.feed(data)
        except (WireError, DecompressionError) as exc:
            self._fail_with(exc)
            return
        if self._body_done:
            self._end_exchange()

    def eof_received(self) -> bool:
        if self.state is ConnState.ACTIVE and not self._body_done:
            self._feed_eof()
        return False  # let the transport close itself

    def connection_lost(self, exc: BaseException | None) -> None:
        was_closed = self.state is ConnState.CLOSED or self.state is ConnState.DETACHED
        if self.state is not ConnState.DETACHED:
            self.state = ConnState.CLOSED
        if not self._body_done and (self._head_waiter is not None or self._payload is not None):
            self._feed_eof(exc)
        self._stop_read_timer()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(ClientConnectionResetError("connection lost while sending"))
        cont = self._continue_waiter
        if cont is not None and not cont.done():
            cont.set_result(False)
        if not self.closed_future.done():
            self.closed_future.set_result(None)
        if not was_closed and self._pool is not None:
            self._pool._connection_closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._read_timer is not None:
            # sock_read counts the server's silence from when our bytes are out, not before.
            self._last_read = self._loop.time()
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- flow control, called by the body stream -----------------------------------------------

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            try:
                self.transport.pause_reading()
            except (AttributeError, RuntimeError):
                pass

    def resume_reading(self) -> None:
        if self._splice_hold:
            return  # the body's next bytes wait in the socket for a splice
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            if self._read_timer is not None:
                self._last_read = self._loop.time()
            try:
                self.transport.resume_reading()
            except (AttributeError, RuntimeError):
                pass

    # --- what requests do with a connection ----------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.state is ConnState.CLOSED or self.state is ConnState.DETACHED

    def is_reusable(self) -> bool:
        transport = self.transport
        return self.state is ConnState.IDLE and transport is not None and not transport.is_closing()

    def start_exchange(
        self,
        head_request: bool,
        options: ExchangeOptions,
        *,
        expect_continue: bool = False,
        body_pending: bool = False,
    ) -> asyncio.Future[tuple[ResponseHead, StreamReader]]:
        """Get ready for one response; returns the future of its head and body stream.

        The stream comes with the head because, once a short body has arrived whole, the
        connection may already serve another request when the waiting task wakes up.
        """
        self._parser.expect(
            head_request=head_request,
            max_line_size=options.max_line_size,
            max_field_size=options.max_field_size,
            max_headers=options.max_headers,
        )
        self._options = options
        self._head = None
        self._payload = None
        self._decoder = None
        self._body_done = False
        self._keep_alive = False
        self._request_sent = not body_pending
        waiter = self._head_waiter = self._loop.create_future()
        self._continue_waiter = self._loop.create_future() if expect_continue else None
        if options.sock_read:
            self._start_read_timer(options.sock_read)
        return waiter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientConnectionResetError("cannot write: the connection is closed")
        transport.write(data)

    def write_soon(self, data: bytes) -> None:
        """`write(data)` at the start of the loop's next iteration, with the other request
        heads of this one (see `_soon_writes`). Only for a request that writes nothing more
        before its answer: nothing else may come between."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientConnectionResetError("cannot write: the connection is closed")
        pool = self._pool
        if pool is None:
            transport.write(data)
            return
        pool.soon_writes(self._loop).add(transport, data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self.transport is None or self.transport.is_closing():
            raise ClientConnectionResetError("cannot write: the connection is closed")
        if not self._write_paused:
            return
        waiter = self._drain_waiter = self._loop.create_future()
        await waiter

    def set_writer(self, task: asyncio.Task[None]) -> None:
        """The task writing the request body; cancelled if the connection closes first."""
        self._writer = task
        task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if self._writer is task:
            self._writer = None
            if self._read_timer is not None:
                # The upload is over: the server's silence is counted from now on.
                self._last_read = self._loop.time()
        if not task.cancelled():
            task.exception()  # failures were delivered through fail(); mark them retrieved

    def must_close(self) -> None:
        """This connection may not be reused after the current exchange."""
        self._must_close = True

    def request_sent(self) -> None:
        """The whole request body is on its way: the connection may be reused afterwards."""
        self._request_sent = True
        if self._body_done:
            self._end_exchange()

    @property
    def writer(self) -> asyncio.Task[None] | None:
        return self._writer

    @property
    def continue_waiter(self) -> asyncio.Future[bool] | None:
        return self._continue_waiter

    @property
    def payload(self) -> StreamReader | None:
        return self._payload

    def owns(self, payload: StreamReader) -> bool:
        """True while `payload` is the body this connection is still delivering."""
        return self._payload is payload and not self._body_done and not self.is_closed

    def fail(self, exc: BaseException) -> None:
        """Abort the exchange with `exc` (a timeout, a failed upload) and close."""
        self._deliver_error(exc)
        self.close()

    def close(self) -> None:
        """Close now; the pool forgets the connection at once."""
        if self.state is ConnState.CLOSED or self.state is ConnState.DETACHED:
            return
        self.state = ConnState.CLOSED
        self._stop_read_timer()
        writer = self._writer
        if writer is not None and not writer.done() and writer is not asyncio.current_task():
            writer.cancel()
        payload = self._payload
        if payload is not None and not self._body_done:
            self._body_done = True
            if payload.exception() is None and not payload.is_eof():
                payload.set_exception(ClientPayloadError("response body was not read: closed"))
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ServerDisconnectedError("connection closed before the response"))
        if self.transport is not None:
            self.transport.close()
        if self._pool is not None:
            self._pool._connection_closed(self)

    def detach(self) -> asyncio.Transport:
        """Give the transport to the caller (WebSocket); the pool forgets this connection."""
        transport = self.transport
        if transport is None or self.is_closed:
            raise ClientConnectionResetError("cannot detach: the connection is closed")
        self.state = ConnState.DETACHED
        self._stop_read_timer()
        if self._pool is not None:
            self._pool._connection_closed(self)
        return transport

    def release(self) -> None:
        """The holder is done without a response in flight: back to the pool, or close."""
        if self.state is not ConnState.ACTIVE:
            return
        if self._head_waiter is not None and not self._body_done:
            self.close()
            return
        if self._pool is not None:
            self._pool._release(self)
        else:
            self.close()

    # --- splicing a body into a file ------------------------------------------------------------

    def splice_ready(self) -> bool:
        """True when the rest of this body can go from the socket to a file in the kernel: a
        plain socket, a counted identity body with bytes to come, nothing to decode."""
        return (
            self._sock_fd >= 0
            and self.state is ConnState.ACTIVE
            and not self._body_done
            and self._decoder is None
            and self._parser.direct_body
            and self._parser.body_left > 0
        )

    async def splice_body(self, fd: int, limit: int) -> int | None:
        """Move up to `limit` bytes of the body from the socket to the file `fd` (at its
        position), without them passing through user space; how many moved. None: no thread is
        free right now (nothing moved; copy this part instead).

        Reading stays paused after a move that did not end the body, so the next move finds the
        bytes still in the socket; the stream resumes it (`end_splice_hold`) before it waits for
        bytes itself. When the move fails after some bytes reached the file, their count is
        returned and the error is the stream's, raised by its next read. A failure before any
        byte raises at once. The connection is closed either way.
        """
        if not self.splice_ready():
            raise RuntimeError("splice_body() on a body that cannot be spliced")
        move = _splice.BodyMove(
            self._sock_fd, fd, min(limit, self._parser.body_left), self._options.sock_read
        )
        self.hold_for_splice()
        started = move.try_start()
        if started is None:
            self.end_splice_hold()
            return None
        try:
            result = await asyncio.wrap_future(started)
        except asyncio.CancelledError:
            move.cancel()
            # The thread may still take a few bytes off the socket before it stops: the body's
            # framing is lost, so the connection goes, and later reads raise rather than miss.
            self._splice_hold = False
            self.fail(ClientPayloadError("Response payload is not completed: cancelled"))
            raise
        if self.state is not ConnState.ACTIVE:
            # Closed meanwhile (the session, a failed upload): the bytes are in the file, and
            # the stream already holds the error its next read raises.
            self._splice_hold = False
            return result.moved
        return self._spliced(result)

    def hold_for_splice(self) -> None:
        """Stop reading the socket: the body's next bytes are to be spliced from it."""
        self._splice_hold = True
        self.pause_reading()

    def end_splice_hold(self) -> None:
        """Let the transport read again after splicing (someone reads the stream instead)."""
        if self._splice_hold:
            self._splice_hold = False
            if self.state is ConnState.ACTIVE:
                self.resume_reading()

    def _spliced(self, result: _splice.MoveResult) -> int:
        moved = result.moved
        if moved:
            self._last_read = self._loop.time()
            payload = self._payload
            if payload is not None:
                payload.total_bytes += moved
            try:
                self._parser.consume_body(moved)  # the last bytes end the message
            except ValueError as exc:
                self.fail(ClientPayloadError(f"spliced body: {exc}"))
                return moved
            if self._body_done:
                self._splice_hold = False
                self._end_exchange()
                return moved
        failure = _splice_failure(result, self._options.sock_read)
        if failure is None:
            return moved
        self._splice_hold = False
        if not moved:
            self.fail(failure)
            raise failure
        self.fail(failure)  # the stream raises it on the next read
        return moved

    # --- parser receiver -----------------------------------------------------------------------

    def on_informational(self, head: ResponseHead) -> None:
        cont = self._continue_waiter
        if head.status == 100 and cont is not None and not cont.done():
            cont.set_result(True)

    def on_head(self, head: ResponseHead) -> None:
        self._head = head
        options = self._options
        # Bodyless answers (HEAD, 204, 304, Content-Length: 0) end in on_message_complete
        # right after this call, which feeds EOF.
        payload = self._payload = StreamReader(self, options.read_bufsize)
        # llhttp reports chunk ends (on_chunk_complete) for chunked bodies only. Each lands
        # where the stream's bytes end then: after that chunk's bytes, decoded when the body
        # is, which is where aiohttp places it too.
        self._chunk_sink.stream = payload
        if options.auto_decompress and head.content_encoding:
            self._decoder = make_decoder(
                head.content_encoding, max_output=options.max_decompressed_size
            )
        cont = self._continue_waiter
        if cont is not None and not cont.done():
            # A final answer instead of 100 Continue: the body must not be sent.
            cont.set_result(False)
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((head, payload))

    def on_body(self, data: bytes | memoryview) -> None:
        payload = self._payload
        if self._to_stream:
            # Read into the stream's own memory: only say how much of it is body.
            if payload is not None:
                payload.commit_write(len(data))
            return
        decoder = self._decoder
        if decoder is not None:
            data = decoder.decompress(data)
        elif type(data) is not bytes:
            data = bytes(data)  # a slice of the shared read buffer, reused by the next read
        if payload is not None:
            payload.feed_data(data)

    def on_message_complete(self, keep_alive: bool) -> None:
        decoder = self._decoder
        payload = self._payload
        if decoder is not None:
            tail = decoder.flush()
            if tail and payload is not None:
                payload.feed_data(tail)
        self._keep_alive = keep_alive
        self._body_done = True
        if payload is not None and not payload.is_eof():
            payload.feed_eof()

    # --- internals -----------------------------------------------------------------------------

    def _end_exchange(self) -> None:
        """The response was received whole: reuse the connection or close it."""
        self._stop_read_timer()
        payload = self._payload
        if payload is not None:
            # The stream outlives the exchange: it must no longer steer this transport.
            payload.detach_protocol()
        if self._read_paused:
            self.resume_reading()
        if not self._request_sent:
            # The answer came before the whole upload: the request's framing is unfinished.
            self.close()
            return
        if not self._keep_alive or self._must_close or self._pool is None:
            self.close()
            return
        self._head_waiter = None
        self._continue_waiter = None
        self._pool._release(self)

    def _feed_eof(self, exc: BaseException | None = None) -> None:
        try:
            self._parser.feed_eof()
        except WireError as wire_error:
            self._deliver_error(self._lost_error(exc, str(wire_error)))
            self.close()
            return
        except DecompressionError as decode_error:
            self._deliver_error(_body_error(decode_error))
            self.close()
            return
        if self._body_done:
            self._keep_alive = False
            self._end_exchange()
        else:
            self._deliver_error(self._lost_error(exc, None))
            self.close()

    def _lost_error(self, exc: BaseException | None, detail: str | None) -> BaseException:
        if self._head is None:
            if isinstance(exc, OSError):
                return ClientOSError(exc.errno, f"connection lost before the response: {exc}")
            return ServerDisconnectedError(detail)
        reason = detail or "connection closed"
        if exc is not None:
            reason = f"{reason}: {exc!r}"
        return ClientPayloadError(f"Response payload is not completed: {reason}")

    def _fail_with(self, exc: WireError | DecompressionError) -> None:
        if self._head is None:
            self._deliver_error(exc)  # the request maps head errors to ClientResponseError
        else:
            self._deliver_error(_body_error(exc))
        self.close()

    def _deliver_error(self, exc: BaseException) -> None:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            self._body_done = True
            return
        payload = self._payload
        if payload is not None and not self._body_done:
            self._body_done = True
            payload.set_exception(exc)

    def _start_read_timer(self, timeout: float) -> None:
        self._last_read = now = self._loop.time()
        if self._read_timer is None:
            self._read_timer = self._loop.call_at(now + timeout, self._on_read_timer, timeout)

    def _stop_read_timer(self) -> None:
        timer = self._read_timer
        if timer is not None:
            self._read_timer = None
            timer.cancel()

    def _on_read_timer(self, timeout: float) -> None:
        # One timer per exchange, re-armed lazily: a read only stores the time it happened.
        self._read_timer = None
        if self.state is not ConnState.ACTIVE or self._body_done:
            return
        now = self._loop.time()
        # While we are still sending (a body writer at work, or a write buffer over its
        # high-water mark) a quiet server is only waiting for the rest of the request, as
        # aiohttp sees it: its sock_read starts once the request is written.
        writer = self._writer
        waiting = (
            self._read_paused or self._write_paused or (writer is not None and not writer.done())
        )
        if waiting or now - self._last_read < timeout:
            # A paused reader is the caller being slow, not the server.
            base = now if waiting else self._last_read
            self._read_timer = self._loop.call_at(base + timeout, self._on_read_timer, timeout)
            return
        self.fail(SocketTimeoutError(f"no data from the server for {timeout} s (sock_read)"))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)


def _splice_failure(result: _splice.MoveResult, sock_read: float | None) -> BaseException | None:
    """The client error for a move that stopped short; None when it did not."""
    if result.timed_out:
        return SocketTimeoutError(f"no data from the server for {sock_read} s (sock_read)")
    if result.eof:
        return ClientPayloadError("Response payload is not completed: connection closed")
    if result.error is not None:
        return ClientPayloadError(f"Response payload is not completed: {result.error!r}")
    # The file, not the server, failed: the caller's own error, as a failed write() would be.
    return result.write_error


def _body_error(exc: WireError | DecompressionError) -> ClientPayloadError:
    """A body that arrived but could not be read (bad framing, undecodable): its cause kept,
    so a caller can tell it from a body the connection cut short."""
    error = ClientPayloadError(str(exc))
    error.__cause__ = exc
    return error
