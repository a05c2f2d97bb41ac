"""Streamed bodies: sync binary files, async iterables of bytes, and StreamReader-like objects.

None of them is ever read whole. File reads run in the default executor (disk and pipe reads
block) with one read in flight ahead of the chunk being sent, so the disk and the socket overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import mimetypes
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from crawler.http._payload_base import OneShotPayload, Payload
from crawler.http.errors import ClientPayloadError

__all__ = [
    "AsyncIterablePayload",
    "FilePayload",
    "StreamReaderPayload",
    "guess_filename",
    "is_file_like",
    "is_stream_reader",
]

OCTET_STREAM = "application/octet-stream"


# File reads are larger than other bodies' chunks: each costs a thread hop and a transport
# write, and at 1 MiB those overheads vanish next to the copy (1 GiB uploads measured about
# 1.4x faster than with 256 KiB on both event loops). Two chunks in flight stay far from a
# memory concern.
FILE_CHUNK_SIZE = 1024 * 1024

def is_file_like(value: object) -> bool:
    """A sync file object: an `io.IOBase`, or anything with a `read` that is not a coroutine."""
    if isinstance(value, io.IOBase):
        return True
    read = getattr(value, "read", None)
    return callable(read) and not asyncio.iscoroutinefunction(read)


def is_stream_reader(value: object) -> bool:
    """Duck-typed StreamReader: has a `readany()` coroutine function (ours, aiohttp's)."""
    return asyncio.iscoroutinefunction(getattr(value, "readany", None))


def guess_filename(file: object, default: str | None = None) -> str | None:
    """The base name of `file.name`, unless it is a pseudo name like `<stdin>` or a descriptor."""
    name = getattr(file, "name", None)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if isinstance(name, str) and name and not (name.startswith("<") and name.endswith(">")):
        return os.path.basename(name) or default
    return default


def _check_binary_open_file(file: object) -> None:
    if isinstance(file, io.TextIOBase):
        name = getattr(file, "name", type(file).__name__)
        raise TypeError(
            f"file {name!r} is opened in text mode; open it in binary mode ('rb') to upload it"
        )
    if getattr(file, "closed", False):
        name = getattr(file, "name", type(file).__name__)
        raise ValueError(f"cannot upload file {name!r}: it is closed")


def _start_offset(file: Any) -> int | None:
    """Where the body starts in a seekable file, or None for a one-shot stream (pipe, socket)."""
    try:
        if not file.seekable():
            return None
        return int(file.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _remaining_size(file: Any, start: int | None) -> int | None:
    """Bytes left from `start` to the end, when that can be known without reading."""
    if start is None:
        return None
    try:
        fd = file.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        info = os.fstat(fd)
        # A FIFO, socket or device has no meaningful st_size: send those chunked.
        return max(info.st_size - start, 0) if stat.S_ISREG(info.st_mode) else None
    if isinstance(file, io.BytesIO):
        return max(file.getbuffer().nbytes - start, 0)
    try:
        end = int(file.seek(0, io.SEEK_END))
        file.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - start, 0)


class FilePayload(Payload):
    """A sync binary file object, streamed in chunks.

    `size` is the bytes from the current position to the end for regular and in-memory files
    (Content-Length), None for pipes and other streams (chunked). A seekable file is replayable:
    each send starts again from the position it had when the payload was made.
    """

    def __init__(
        self,
        file: Any,
        *,
        content_type: str | None = None,
        filename: str | None = None,
        chunk_size: int = FILE_CHUNK_SIZE,
    ) -> None:
        _check_binary_open_file(file)
        self._file = file
        self._chunk_size = chunk_size
        self._start = _start_offset(file)
        self.size = _remaining_size(file, self._start)
        self.replayable = self._start is not None
        self._sent = False
        # Each send takes the next number; a send that is no longer the latest stops reading,
        # so two sends (a redirect's resend, the same form posted twice) never share the file
        # position. The last read issued by any send is kept to be waited for before a seek.
        self._generation = 0
        self._inflight: asyncio.Future[Any] | None = None
        self.filename = filename if filename is not None else guess_filename(file)
        if content_type is None and self.filename:
            content_type = mimetypes.guess_type(self.filename, strict=False)[0]
        self.content_type = content_type or OCTET_STREAM
        # In-memory buffers gain nothing from a thread; everything else may block on I/O.
        self._in_thread = not isinstance(file, io.BytesIO)
        reader = getattr(file, "read1", None)
        self._read = reader if callable(reader) else file.read

    def check_sendable(self) -> None:
        if self._sent and not self.replayable:
            raise RuntimeError(
                f"file body {self.filename or self._file!r} is a one-shot stream that was "
                "already sent; it cannot be replayed"
            )
        if getattr(self._file, "closed", False):
            raise ValueError(f"cannot upload file {self.filename or self._file!r}: it is closed")

    def _rewind(self) -> None:
        self.check_sendable()
        if self._start is not None:
            self._file.seek(self._start)
        self._sent = True

    def _read_ahead(
        self, loop: asyncio.AbstractEventLoop, size: int, generation: int
    ) -> asyncio.Future[Any]:
        if generation != self._generation:
            raise RuntimeError(
                f"file body {self.filename or self._file!r} was restarted by another send "
                "while this one was in progress; send one request with it at a time"
            )
        if self._in_thread:
            future = loop.run_in_executor(None, self._read, size)
        else:
            future = loop.create_future()
            try:
                future.set_result(self._read(size))
            except Exception as exc:
                future.set_exception(exc)
        self._inflight = future
        return future

    def _check_chunk(self, chunk: object) -> bytes:
        if isinstance(chunk, bytes):
            return chunk
        if isinstance(chunk, bytearray | memoryview):
            return bytes(chunk)
        if isinstance(chunk, str):
            raise TypeError(
                f"file {self.filename or self._file!r} returned str; "
                "open it in binary mode ('rb') to upload it"
            )
        raise TypeError(f"file read() returned {type(chunk).__name__}, expected bytes")

    async def chunks(self) -> AsyncIterator[bytes]:
        self.check_sendable()
        self._generation += 1
        generation = self._generation
        if self._inflight is not None:
            # A send this one replaces (a cancelled writer, the first try of a 307) may still
            # have a read running in a thread: seeking under it would splice the two streams.
            await _settle(self._inflight)
        self._rewind()
        loop = asyncio.get_running_loop()
        remaining = self.size
        pending: asyncio.Future[Any] | None = self._read_ahead(
            loop, self._want(remaining), generation
        )
        try:
            while pending is not None:
                chunk = self._check_chunk(await pending)
                pending = None
                if not chunk:
                    break
                if remaining is not None:
                    # Content-Length was promised: never send more, even if the file grew.
                    chunk = chunk[:remaining]
                    remaining -= len(chunk)
                if remaining != 0:
                    pending = self._read_ahead(loop, self._want(remaining), generation)
                yield chunk
            if remaining:
                raise ClientPayloadError(
                    f"file {self.filename or self._file!r} ended {remaining} bytes short of the "
                    f"{self.size} bytes announced in Content-Length (was it truncated?)"
                )
        finally:
            if pending is not None:
                await _settle(pending)

    def sendfile_source(self) -> tuple[Any, int, int] | None:
        if self._start is None or self.size is None or not self._in_thread:
            return None
        try:
            fd = self._file.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        self._generation += 1  # a send in progress through chunks() must stop reading
        self._rewind()
        return self._file, self._start, self.size

    def _want(self, remaining: int | None) -> int:
        return self._chunk_size if remaining is None else min(self._chunk_size, remaining)

    async def close(self) -> None:
        if not getattr(self._file, "closed", True):
            if self._in_thread:
                await asyncio.get_running_loop().run_in_executor(None, self._file.close)
            else:
                self._file.close()


async def _settle(future: asyncio.Future[Any]) -> None:
    """Wait for a read still running in a thread (so the file is not closed under it)."""
    if not future.done():
        await asyncio.wait([future])
    if not future.cancelled():
        with contextlib.suppress(Exception):
            future.result()


def _as_bytes(chunk: object, index: int, what: str) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        raise TypeError(f"{what} yielded str at chunk {index}; yield bytes (encode the text first)")
    raise TypeError(f"{what} yielded {type(chunk).__name__} at chunk {index}, expected bytes")


class AsyncIterablePayload(OneShotPayload):
    """An async iterable or async generator of bytes; sent chunked, once."""

    def __init__(self, iterable: AsyncIterable[Any], *, content_type: str | None = None) -> None:
        if not hasattr(iterable, "__aiter__"):
            raise TypeError(f"{type(iterable).__name__} is not an async iterable")
        super().__init__("async iterable")
        self._iterable = iterable
        self._iterator: AsyncIterator[Any] | None = None
        self.size = None
        self.content_type = content_type or OCTET_STREAM

    async def chunks(self) -> AsyncIterator[bytes]:
        self._claim()
        self._iterator = aiter(self._iterable)
        index = 0
        async for item in self._iterator:
            chunk = _as_bytes(item, index, "async iterable body")
            index += 1
            # An empty chunk would end a chunked body early on the wire: skip it.
            if chunk:
                yield chunk

    async def close(self) -> None:
        target = self._iterator if self._iterator is not None else self._iterable
        aclose = getattr(target, "aclose", None)
        if aclose is not None:
            await aclose()


class StreamReaderPayload(OneShotPayload):
    """Anything with a `readany()` coroutine (a response's `content`, a fed StreamReader)."""

    def __init__(self, reader: Any, *, content_type: str | None = None) -> None:
        if not is_stream_reader(reader):
            raise TypeError(f"{type(reader).__name__} has no readany() coroutine")
        super().__init__("StreamReader")
        self._reader = reader
        self.size = None
        self.content_type = content_type or OCTET_STREAM

    async def chunks(self) -> AsyncIterator[bytes]:
        self._claim()
        index = 0
        while True:
            chunk = _as_bytes(await self._reader.readany(), index, "StreamReader body")
            if not chunk:
                return
            index += 1
            yield chunk
