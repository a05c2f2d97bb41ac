"""`StreamReader`: a buffer of bytes fed by one side and read, asynchronously, by the other.

A response body arrives in it piece by piece. With a `protocol` it does flow control: past the
high-water mark it asks the protocol to stop reading the socket, and once the reader has drained
it below the low-water mark it asks it to go on, so a slow reader never makes memory grow.
Without one (``StreamReader()``) it is a plain producer/consumer buffer: a producer task calls
`feed_data`/`feed_eof` (and may `await drain()` to wait for room) while a consumer reads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

__all__ = ["DEFAULT_LIMIT", "EofStream", "FlowControl", "StreamReader"]

DEFAULT_LIMIT = 2**16


class EofStream(Exception):
    """Internal marker: the stream has ended."""


class FlowControl(Protocol):
    """What a StreamReader needs from the connection feeding it."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class StreamReader:
    """Bytes in, bytes out, with back-pressure.

    Readers may rely on: `read(n)` returns at most `n` bytes (and b"" only at the end),
    `readany()` returns whatever is buffered first, `readexactly(n)` returns exactly n or raises
    `asyncio.IncompleteReadError`, `readline()` returns one line with its b"\\n". Once an
    exception is set, every read raises it.
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_eof_callbacks",
        "_exception",
        "_high_water",
        "_low_water",
        "_offset",
        "_paused",
        "_protocol",
        "_size",
        "_space_waiter",
        "_waiter",
        "total_bytes",
    )

    def __init__(
        self,
        protocol: FlowControl | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._protocol = protocol
        self._low_water = limit
        self._high_water = limit * 2
        self._buffer: deque[bytes] = deque()
        self._offset = 0  # how much of _buffer[0] was already read
        self._size = 0
        self._eof = False
        self._paused = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._space_waiter: asyncio.Future[None] | None = None
        self._eof_callbacks: list[Callable[[], None]] | None = None
        self.total_bytes = 0

    def __repr__(self) -> str:
        state = "eof" if self._eof else "open"
        return f"<StreamReader {state} buffered={self._size} total={self.total_bytes}>"

    # --- producer side ---

    def feed_data(self, data: bytes) -> None:
        """Append bytes (empty bytes are ignored). Not allowed after `feed_eof`."""
        if not data:
            return
        if self._eof:
            raise RuntimeError("feed_data() after feed_eof()")
        self._buffer.append(data)
        size = self._size + len(data)
        self._size = size
        self.total_bytes += len(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if size > self._high_water and not self._paused and self._protocol is not None:
            self._paused = True
            self._protocol.pause_reading()

    def feed_eof(self) -> None:
        """No more data will come; readers get what is buffered, then b""."""
        self._eof = True
        self._wake()
        callbacks = self._eof_callbacks
        if callbacks:
            self._eof_callbacks = None
            for callback in callbacks:
                callback()

    def set_exception(self, exc: BaseException) -> None:
        """Make every pending and future read raise `exc`."""
        self._exception = exc
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
        space = self._space_waiter
        if space is not None:
            self._space_waiter = None
            if not space.done():
                space.set_exception(exc)

    def exception(self) -> BaseException | None:
        return self._exception

    def detach_protocol(self) -> None:
        """Stop steering the protocol's reading (its exchange is over; buffered data stays)."""
        self._protocol = None
        self._paused = False

    def on_eof(self, callback: Callable[[], None]) -> None:
        """Call `callback` when `feed_eof` happens (at once if it already has)."""
        if self._eof:
            callback()
            return
        if self._eof_callbacks is None:
            self._eof_callbacks = []
        self._eof_callbacks.append(callback)

    async def drain(self) -> None:
        """For producers without a protocol: wait until the buffer is below the low-water mark."""
        while self._size > self._low_water and self._exception is None:
            loop = asyncio.get_running_loop()
            waiter = self._space_waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._space_waiter = None
        if self._exception is not None:
            raise self._exception

    # --- state ---

    def is_eof(self) -> bool:
        """True once `feed_eof` was called (buffered data may remain)."""
        return self._eof

    def at_eof(self) -> bool:
        """True when the stream has ended and everything was read."""
        return self._eof and not self._buffer

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet read."""
        return self._size

    # --- consumer side ---

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all of the rest when n < 0); b"" at the end."""
        if self._exception is not None:
            raise self._exception
        if n == 0:
            return b""
        if n < 0:
            return await self._read_all()
        while not self._buffer:
            if self._eof:
                return b""
            await self._wait()
        return self._read_nowait(n)

    async def readany(self) -> bytes:
        """The next buffered piece, whatever its size; b"" at the end."""
        if self._exception is not None:
            raise self._exception
        while not self._buffer:
            if self._eof:
                return b""
            await self._wait()
        return self._read_first(-1)

    async def readexactly(self, n: int) -> bytes:
        """Exactly `n` bytes, or `asyncio.IncompleteReadError` if the stream ends first."""
        if self._exception is not None:
            raise self._exception
        parts: list[bytes] = []
        missing = n
        while missing > 0:
            while not self._buffer:
                if self._eof:
                    partial = b"".join(parts)
                    raise asyncio.IncompleteReadError(partial, n)
                await self._wait()
            part = self._read_first(missing)
            parts.append(part)
            missing -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def readuntil(self, separator: bytes = b"\n", *, limit: int | None = None) -> bytes:
        """Bytes up to and including `separator` (the rest of the stream if it never comes).

        Raises ValueError when more than `limit` bytes (default: the high-water mark) pass
        without a separator.
        """
        if not separator:
            raise ValueError("separator must not be empty")
        if self._exception is not None:
            raise self._exception
        max_size = self._high_water if limit is None else limit
        parts: list[bytes] = []
        collected = 0
        tail = b""  # the end of what was collected, to find a separator split across pieces
        while True:
            while not self._buffer:
                if self._eof:
                    return b"".join(parts)
                await self._wait()
            first = self._buffer[0]
            offset = self._offset
            search_from = offset
            if tail:
                # A separator may start in the previous piece and end in this one.
                joined = tail + first[offset : offset + len(separator) - 1]
                hit = joined.find(separator)
                if hit != -1:
                    take = hit + len(separator) - len(tail)
                    parts.append(self._read_first(take))
                    return b"".join(parts)
            pos = first.find(separator, search_from)
            if pos != -1:
                parts.append(self._read_first(pos + len(separator) - offset))
                return b"".join(parts)
            part = self._read_first(-1)
            parts.append(part)
            collected += len(part)
            if collected > max_size:
                raise ValueError(f"no {separator!r} within {max_size} bytes")
            tail = part[-(len(separator) - 1) :] if len(separator) > 1 else b""

    async def readline(self) -> bytes:
        """One line, ending with b"\\n" (the last line of the stream may lack it)."""
        return await self.readuntil(b"\n")

    def read_nowait(self, n: int = -1) -> bytes:
        """Whatever is buffered, up to `n` bytes, without waiting."""
        if self._exception is not None:
            raise self._exception
        if not self._buffer:
            return b""
        return self._read_nowait(n)

    def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """Iterate over pieces of at most `n` bytes."""
        return _Iterator(lambda: self.read(n))

    def iter_any(self) -> AsyncIterator[bytes]:
        """Iterate over pieces as they arrived."""
        return _Iterator(self.readany)

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate over lines."""
        return _Iterator(self.readline)

    # --- internals ---

    async def _wait(self) -> None:
        if self._waiter is not None:
            raise RuntimeError("StreamReader is already being read by another task")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _read_all(self) -> bytes:
        # Take pieces out as they come (not only at the end), so flow control keeps working
        # and a body larger than the high-water mark cannot stall its own read.
        parts: list[bytes] = []
        while True:
            if self._buffer:
                parts.append(self._take_all())
            if self._eof:
                break
            await self._wait()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _take_all(self) -> bytes:
        buffer = self._buffer
        if len(buffer) == 1:
            return self._read_first(-1)
        if self._offset:
            buffer[0] = buffer[0][self._offset :]
            self._offset = 0
        data = b"".join(buffer)
        buffer.clear()
        self._consumed(self._size)
        return data

    def _read_first(self, n: int) -> bytes:
        """Up to n bytes (all when n < 0) from the first buffered piece only."""
        first = self._buffer[0]
        offset = self._offset
        available = len(first) - offset
        if n < 0 or n >= available:
            data = first[offset:] if offset else first
            self._buffer.popleft()
            self._offset = 0
        else:
            data = first[offset : offset + n]
            self._offset = offset + n
        self._consumed(len(data))
        return data

    def _read_nowait(self, n: int) -> bytes:
        if n < 0:
            return self._take_all()
        part = self._read_first(n)
        if len(part) == n or not self._buffer:
            return part
        parts = [part]
        n -= len(part)
        while n > 0 and self._buffer:
            part = self._read_first(n)
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def _consumed(self, count: int) -> None:
        size = self._size - count
        self._size = size
        if size < self._low_water:
            if self._paused:
                self._paused = False
                if self._protocol is not None:
                    self._protocol.resume_reading()
            space = self._space_waiter
            if space is not None:
                self._space_waiter = None
                if not space.done():
                    space.set_result(None)


class _Iterator:
    """`async for` over a read function, stopping at b""."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], object]) -> None:
        self._read = read

    def __aiter__(self) -> _Iterator:
        return self

    async def __anext__(self) -> bytes:
        data: bytes = await self._read()  # type: ignore[misc]
        if not data:
            raise StopAsyncIteration
        return data
