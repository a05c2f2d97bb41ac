"""`StreamReader`: a buffer of bytes fed by one side and read, asynchronously, by the other.

A response body arrives in it piece by piece. With a `protocol` it does flow control: past the
high-water mark it asks the protocol to stop reading the socket, and once the reader has drained
it below the low-water mark it asks it to go on, so a slow reader never makes memory grow.
Without one (``StreamReader()``) it is a plain producer/consumer buffer: a producer task calls
`feed_data`/`feed_eof` (and may `await drain()` to wait for room) while a consumer reads.

A producer that reads from a socket may also write in place (`write_buffer` + `commit_write`):
the bytes land in blocks the stream owns and reuses, and a pending `readinto` lends its own
buffer, so a body read that way is copied once (kernel to caller). Reads that return bytes copy
out of the blocks: no body-sized object is made per socket read, and memory is reused.

A chunked body's producer also marks where each HTTP chunk ended (`end_http_chunk_receiving`),
so `readchunk()`/`iter_chunks()` can report those boundaries as aiohttp's do. The marks are byte
offsets kept in a deque made on the first one: a body without them pays nothing for the feature.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol, cast

__all__ = ["DEFAULT_LIMIT", "ChunkEndSink", "EofStream", "FlowControl", "StreamReader"]

DEFAULT_LIMIT = 2**16
# In-place writes: blocks of at most this size, and no write into less room than this (a
# socket read into a sliver of a block costs a system call for a few bytes).
_MAX_BLOCK = 256 * 1024
_MIN_ROOM = 16 * 1024
_TO_BLOCK = 1  # the last write_buffer() lent the current block
_TO_TARGET = 2  # ... the buffer of the pending readinto()


class EofStream(Exception):
    """Internal marker: the stream has ended."""


class FlowControl(Protocol):
    """What a StreamReader needs from the connection feeding it."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class SpliceSource(FlowControl, Protocol):
    """A connection that can move body bytes from its socket into a file in the kernel."""

    def splice_ready(self) -> bool: ...

    async def splice_body(self, fd: int, limit: int) -> int | None: ...

    def hold_for_splice(self) -> None: ...

    def end_splice_hold(self) -> None: ...


class _Block:
    """A reusable piece of memory that socket reads land in."""

    __slots__ = ("fill", "pending", "view")

    def __init__(self, size: int) -> None:
        self.view = memoryview(bytearray(size))
        self.fill = 0  # bytes written so far
        self.pending = 0  # buffered pieces still pointing into it


class StreamReader:
    """Bytes in, bytes out, with back-pressure.

    Readers may rely on: `read(n)` returns at most `n` bytes (and b"" only at the end),
    `readany()` returns everything buffered (at least one byte), `readexactly(n)` returns
    exactly n or raises `asyncio.IncompleteReadError`, `readline()` returns one line with its
    b"\\n",
    `readinto(buffer)` fills part of `buffer` and returns the count (0 only at the end). Once an
    exception is set, every read raises it (after the bytes that came before it).
    """

    __slots__ = (
        "_block",
        "_block_size",
        "_blocks",
        "_buffer",
        "_chunk_ends",
        "_eof",
        "_eof_callbacks",
        "_exception",
        "_free_blocks",
        "_high_water",
        "_high_water_chunks",
        "_lent",
        "_low_water",
        "_low_water_chunks",
        "_offset",
        "_paused",
        "_piece_blocks",
        "_protocol",
        "_reading_into",
        "_size",
        "_space_waiter",
        "_splice_hold",
        "_target",
        "_target_filled",
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
        # Pieces in arrival order: bytes, or memoryviews into a block (see _piece_blocks).
        self._buffer: deque[bytes | memoryview] = deque()
        self._offset = 0  # how much of _buffer[0] was already read
        self._size = 0
        self._eof = False
        self._paused = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._space_waiter: asyncio.Future[None] | None = None
        self._eof_callbacks: list[Callable[[], None]] | None = None
        self.total_bytes = 0
        # In-place writes (made on first use): the block being filled, the blocks of the
        # memoryview pieces in _buffer (same order), spare blocks, how many exist.
        self._block: _Block | None = None
        self._piece_blocks: deque[_Block] = deque()
        self._free_blocks: list[_Block] = []
        self._blocks = 0
        self._block_size = max(_MIN_ROOM * 4, min(limit, _MAX_BLOCK))
        # A pending readinto()'s buffer, lent to the producer while nothing is buffered.
        self._target: memoryview | None = None
        self._target_filled = 0
        self._reading_into = False
        self._lent = 0  # what the last write_buffer() lent: 0, _TO_BLOCK or _TO_TARGET
        self._splice_hold = False  # the protocol keeps reading paused between splices
        # Where HTTP chunks ended, as `total_bytes` offsets not yet reported by readchunk();
        # None until the first end (see end_http_chunk_receiving), and for unchunked bodies.
        self._chunk_ends: deque[int] | None = None

    def __repr__(self) -> str:
        state = "eof" if self._eof else "open"
        return f"<StreamReader {state} buffered={self._size} total={self.total_bytes}>"

    # --- producer side ---

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes (empty bytes are ignored). Not allowed after `feed_eof`."""
        if not data:
            return
        if self._eof:
            raise RuntimeError("feed_data() after feed_eof()")
        if type(data) is not bytes:
            # Only views into our own blocks may sit in the buffer as non-bytes: the readers
            # release a block for each of those. A caller's bytearray could also change later.
            data = bytes(data)
        self._target = None  # later bytes must not overtake these
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

    def write_buffer(self, size_hint: int = -1) -> memoryview | None:
        """Room to write the next bytes into in place, then `commit_write(n)`; None: use
        `feed_data`. The view is valid until the next call of either. `size_hint` (bytes still
        to come, when known) keeps a new block no bigger than needed."""
        if self._eof or self._exception is not None:
            self._lent = 0
            return None
        target = self._target
        if target is not None:
            room = len(target) - self._target_filled
            if room >= _MIN_ROOM or (room and not self._target_filled):
                self._lent = _TO_TARGET
                return target[self._target_filled :]
            self._target = None  # nearly full: the reader takes it as it is
        block = self._block
        if block is None or len(block.view) - block.fill < _MIN_ROOM:
            block = self._next_block(size_hint)
            if block is None:
                self._lent = 0
                return None
        self._lent = _TO_BLOCK
        return block.view[block.fill :]

    def commit_write(self, count: int) -> None:
        """`count` bytes were written at the start of the last `write_buffer()` view."""
        lent, self._lent = self._lent, 0
        if count <= 0:
            return
        self.total_bytes += count
        if lent == _TO_TARGET:
            self._target_filled += count
            self._wake()
            return
        if lent != _TO_BLOCK:
            raise RuntimeError("commit_write() without write_buffer()")
        block = self._block
        assert block is not None
        start = block.fill
        block.fill = start + count
        block.pending += 1
        self._target = None
        self._buffer.append(block.view[start : start + count])
        self._piece_blocks.append(block)
        size = self._size + count
        self._size = size
        self._wake()
        if size > self._high_water and not self._paused and self._protocol is not None:
            self._paused = True
            self._protocol.pause_reading()

    def begin_http_chunk_receiving(self) -> None:
        """aiohttp's call before a chunked body's first byte; optional here (the first
        `end_http_chunk_receiving` starts the boundaries). Like aiohttp's, too late once bytes
        were fed: earlier boundaries would be missing."""
        if self._chunk_ends is None:
            if self.total_bytes:
                raise RuntimeError("begin_http_chunk_receiving() after data was fed")
            self._start_chunk_ends()

    def end_http_chunk_receiving(self) -> None:
        """The bytes fed so far end an HTTP chunk: `readchunk()` reports the boundary there.

        As aiohttp's: an end that adds no byte since the last boundary still pending is
        dropped (the last chunk, or compressed bytes that decoded to nothing yet), and one
        that a reader has already read up to is kept, to be reported as (b"", True). Too many
        boundaries pending pause reading, so a flood of tiny chunks cannot grow memory.
        """
        ends = self._chunk_ends
        total = self.total_bytes
        if ends:
            # The common case, a reader behind the producer: one comparison and an append (as
            # ChunkEndSink.mark does too). An end dropped from the front by a read changes
            # neither (those are below `total`).
            if ends[-1] == total:
                return
            ends.append(total)
            if len(ends) > self._high_water_chunks:
                self._many_chunk_ends()
            # No wake-up: new bytes woke the reader already, and a readchunk() never waits
            # with ends pending (another reader waiting gains nothing from a bare end).
            return
        if ends is None:
            ends = self._start_chunk_ends()
        if not total:
            return  # no byte yet: aiohttp's boundary at 0 is never recorded either
        ends.append(total)
        if self._waiter is not None:
            self._wake()  # a readchunk() may wait for exactly this: (b"", True)

    def _many_chunk_ends(self) -> None:
        """More ends pending than the limit: forget those that other reads (read, readany...)
        went past, as aiohttp does on every read (here only when it matters, so those reads
        stay free of chunk bookkeeping), and pause reading if still too many."""
        ends = self._chunk_ends
        assert ends is not None
        cursor = self.total_bytes - self._size
        while ends[0] < cursor:
            ends.popleft()
        if len(ends) > self._high_water_chunks and not self._paused and self._protocol is not None:
            self._paused = True
            self._protocol.pause_reading()

    def _start_chunk_ends(self) -> deque[int]:
        ends: deque[int] = deque()
        self._chunk_ends = ends
        # aiohttp's limits: at least 4 (one end may stay pending at the read position), and
        # reading resumes only below half, so pauses do not alternate with every chunk.
        self._high_water_chunks = max(4, self._low_water // 16)
        self._low_water_chunks = self._high_water_chunks // 2
        return ends

    def feed_eof(self) -> None:
        """No more data will come; readers get what is buffered, then b""."""
        self._eof = True
        self._target = None
        self._wake()
        callbacks = self._eof_callbacks
        if callbacks:
            self._eof_callbacks = None
            for callback in callbacks:
                callback()

    def set_exception(self, exc: BaseException) -> None:
        """Make every pending and future read raise `exc`."""
        self._exception = exc
        self._target = None
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
        self._splice_hold = False

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

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill the start of `buffer` with what is buffered, or the next bytes; 0 at the end.

        While nothing is buffered the buffer is lent to the producer, so bytes from the socket
        land in it directly. At most one reader at a time, as for every read.
        """
        if self._exception is not None:
            raise self._exception
        view = memoryview(buffer)
        if not len(view):
            return 0
        if self._buffer:
            return self._copy_into(view)
        if self._eof:
            return 0
        if self._waiter is not None or self._reading_into:
            # Refused before touching the buffer another readinto() has lent.
            raise RuntimeError("StreamReader is already being read by another task")
        self._target = view
        self._target_filled = 0
        self._reading_into = True
        try:
            while not self._target_filled and not self._buffer and not self._eof:
                await self._wait()
        except BaseException:
            filled = self._target_filled
            if filled:
                # Cancelled after bytes landed in the lent buffer: keep them for the next read.
                self._buffer.appendleft(bytes(view[:filled]))
                self._offset = 0
                self._size += filled
                self._target_filled = 0
            raise
        finally:
            self._target = None
            self._reading_into = False
            if self._lent == _TO_TARGET:
                self._lent = 0
        filled = self._target_filled
        if filled:
            self._target_filled = 0
            return filled
        return self._copy_into(view) if self._buffer else 0

    @property
    def can_splice(self) -> bool:
        """True when `splice_into` can move the body's bytes from the socket into a file in the
        kernel (a plain connection, a body of known length, nothing to decode)."""
        ready = getattr(self._protocol, "splice_ready", None)
        return ready is not None and bool(ready())

    async def splice_into(self, fd: int, limit: int) -> int:
        """Put up to `limit` next bytes of the body into the file `fd`, at its position; the
        count, 0 at the end.

        Bytes already buffered are written from memory; the rest goes from the socket to the
        file inside the kernel when the connection can (`can_splice`), else through a read.
        Like every read: one reader at a time, and the stream's error is raised after the bytes
        that came before it.
        """
        if self._exception is not None:
            raise self._exception
        if limit <= 0:
            return 0
        if not self._splice_hold and self.can_splice:
            # Stop reading now: the socket keeps what is still to come for the next splice,
            # instead of filling the buffer again while the buffered bytes are written.
            cast(SpliceSource, self._protocol).hold_for_splice()
            self._splice_hold = True
        if self._buffer:
            data = self._read_nowait(limit)
            _write_all(fd, data)
            return len(data)
        if self._eof:
            return 0
        if self._waiter is not None or self._reading_into:
            raise RuntimeError("StreamReader is already being read by another task")
        if self.can_splice:
            source = cast(SpliceSource, self._protocol)
            self._reading_into = True
            try:
                moved = await source.splice_body(fd, limit)
            except BaseException:
                self._splice_hold = False  # the connection ended its hold (or closed)
                raise
            finally:
                self._reading_into = False
            if moved:
                self._splice_hold = not self._eof and self._exception is None
                return moved
            self._splice_hold = False  # no thread was free: this part is read and copied
            if self._exception is not None:
                raise self._exception
        scratch = memoryview(bytearray(min(limit, self._block_size)))
        count = await self.readinto(scratch)
        if count:
            _write_all(fd, scratch[:count])
        return count

    async def readany(self) -> bytes:
        """Everything buffered now, at least one byte (waiting for it); b"" at the end.

        All of it, joined, as aiohttp's: a reader that came late gets what arrived meanwhile in
        one call instead of one call per piece the socket gave.
        """
        if self._exception is not None:
            raise self._exception
        while not self._buffer:
            if self._eof:
                return b""
            await self._wait()
        return self._take_all()

    async def readchunk(self) -> tuple[bytes, bool]:
        """`(data, end_of_http_chunk)`, as aiohttp's `readchunk`.

        For a chunked body, the bytes up to the next HTTP chunk's end with True (b"" with True
        when other reads, or an earlier readchunk() of the chunk's start, already took them),
        else whatever piece is buffered with False. (b"", False) only at the end.
        """
        while True:
            if self._exception is not None:
                raise self._exception
            ends = self._chunk_ends
            if ends:
                cursor = self.total_bytes - self._size
                while ends:
                    end = ends.popleft()
                    if end > cursor:
                        return self._read_nowait(end - cursor), True
                    if end == cursor:
                        return b"", True
                    # Other reads went past this end: aiohttp drops it, and so do we.
            if self._buffer:
                return self._read_first(-1), False
            if self._eof:
                return b"", False
            await self._wait()

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
            self._materialize_first()
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

    def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        """Iterate over `readchunk()` results, up to the end (not included)."""
        return _ChunkIterator(self)

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate over lines."""
        return _Iterator(self.readline)

    # --- internals ---

    async def _wait(self) -> None:
        if self._waiter is not None:
            raise RuntimeError("StreamReader is already being read by another task")
        if self._exception is not None:
            # Set after the last wake-up (bytes that arrived, then a timeout or a reset in the
            # same turn of the loop): it found no waiter to fail, and no more bytes will come.
            raise self._exception
        if self._splice_hold:
            # The last splice left the socket unread; a reader waiting for bytes needs them.
            self._splice_hold = False
            cast(SpliceSource, self._protocol).end_splice_hold()
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
        self._release_all_blocks()
        self._consumed(self._size)
        return data

    def _read_first(self, n: int) -> bytes:
        """Up to n bytes (all when n < 0) from the first buffered piece only."""
        first = self._buffer[0]
        offset = self._offset
        available = len(first) - offset
        if n < 0 or n >= available:
            if type(first) is bytes:
                data = first[offset:] if offset else first
            else:
                data = bytes(first[offset:])
                self._release_block()
            self._buffer.popleft()
            self._offset = 0
        else:
            data = first[offset : offset + n]
            if type(data) is not bytes:
                data = bytes(data)
            self._offset = offset + n
        self._consumed(len(data))
        return data

    def _read_nowait(self, n: int) -> bytes:
        if n < 0:
            return self._take_all()
        buffer = self._buffer
        first = buffer[0]
        if len(first) - self._offset >= n or len(buffer) == 1:
            return self._read_first(n)
        # Spread over several pieces: gather views, copy once.
        parts: list[memoryview] = []
        want = n
        while want and buffer:
            first = buffer[0]
            offset = self._offset
            take = min(len(first) - offset, want)
            parts.append(memoryview(first)[offset : offset + take])
            want -= take
            if offset + take == len(first):
                buffer.popleft()
                self._offset = 0
                if type(first) is not bytes:
                    self._release_block()
            else:
                self._offset = offset + take
        data = b"".join(parts)
        self._consumed(len(data))
        return data

    def _copy_into(self, view: memoryview) -> int:
        """Move buffered bytes into `view`; returns how many."""
        buffer = self._buffer
        done = 0
        room = len(view)
        while done < room and buffer:
            first = buffer[0]
            offset = self._offset
            take = min(len(first) - offset, room - done)
            view[done : done + take] = memoryview(first)[offset : offset + take]
            done += take
            if offset + take == len(first):
                buffer.popleft()
                self._offset = 0
                if type(first) is not bytes:
                    self._release_block()
            else:
                self._offset = offset + take
        self._consumed(done)
        return done

    def _materialize_first(self) -> None:
        """Turn a first piece that points into a block into bytes (for searching it)."""
        first = self._buffer[0]
        if type(first) is not bytes:
            self._buffer[0] = bytes(first)
            self._release_block()

    # --- blocks for in-place writes ---

    def _next_block(self, size_hint: int) -> _Block | None:
        """An empty block to write into, or None when too much is buffered already."""
        block = self._block
        if block is not None and not block.pending:
            block.fill = 0  # everything in it was read: start it over
            return block
        if self._free_blocks:
            block = self._free_blocks.pop()
        elif self._blocks * self._block_size <= self._high_water + self._block_size:
            self._blocks += 1
            size = self._block_size
            if 0 <= size_hint < size:
                size = max(size_hint, _MIN_ROOM)  # the rest of a medium-sized body
            block = _Block(size)
        else:
            return None
        self._block = block
        return block

    def _release_block(self) -> None:
        """The oldest memoryview piece was read (or copied): its block may be reused."""
        block = self._piece_blocks.popleft()
        block.pending -= 1
        if not block.pending:
            if block is self._block:
                block.fill = 0
            else:
                block.fill = 0
                self._free_blocks.append(block)

    def _release_all_blocks(self) -> None:
        while self._piece_blocks:
            self._release_block()

    def _consumed(self, count: int) -> None:
        size = self._size - count
        self._size = size
        if size < self._low_water:
            if self._paused and (self._chunk_ends is None or self._few_chunk_ends()):
                self._paused = False
                if self._protocol is not None:
                    self._protocol.resume_reading()
            space = self._space_waiter
            if space is not None:
                self._space_waiter = None
                if not space.done():
                    space.set_result(None)


    def _few_chunk_ends(self) -> bool:
        """Whether the pending chunk ends allow reading again (checked only while paused)."""
        ends = self._chunk_ends
        assert ends is not None
        cursor = self.total_bytes - self._size
        while ends and ends[0] < cursor:
            ends.popleft()
        return len(ends) < self._low_water_chunks


class ChunkEndSink:
    """`end_http_chunk_receiving()` of whichever stream is `stream` (None: drop the ends), as
    one bound method, `mark`, for a parser that binds its callbacks once (httptools does).

    Chunk ends are the hot path of a chunked body: `mark` does the common case (ends already
    pending) itself, so a chunk end costs one Python call, not a forwarding call plus the
    stream's own; anything else goes to the stream's method.
    """

    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream: StreamReader | None = None

    def mark(self) -> None:
        stream = self.stream
        if stream is None:
            return
        ends = stream._chunk_ends
        if ends:
            # Keep in step with StreamReader.end_http_chunk_receiving's first branch.
            total = stream.total_bytes
            if ends[-1] != total:
                ends.append(total)
                if len(ends) > stream._high_water_chunks:
                    stream._many_chunk_ends()
            return
        stream.end_http_chunk_receiving()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


class _ChunkIterator:
    """`async for` over `readchunk()`, stopping at (b"", False) as aiohttp's does."""

    __slots__ = ("_stream",)

    def __init__(self, stream: StreamReader) -> None:
        self._stream = stream

    def __aiter__(self) -> _ChunkIterator:
        return self

    async def __anext__(self) -> tuple[bytes, bool]:
        data, end = await self._stream.readchunk()
        if not data and not end:
            raise StopAsyncIteration
        return data, end
