"""Compressing a body on the fly for `compress=`: the result is streamed, its size unknown."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from crawler.http._payload_base import Payload

__all__ = ["COMPRESSIONS", "CompressedPayload", "compress_payload", "compressed"]

# Compressing this much takes long enough to be worth a thread hop (the codecs release the GIL).
_THREAD_THRESHOLD = 64 * 1024


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _BrotliCompressor:
    def __init__(self) -> None:
        import brotli

        self._inner = brotli.Compressor()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._inner.process(data))

    def flush(self) -> bytes:
        return bytes(self._inner.finish())


def _zstd() -> _Compressor:
    import zstandard

    return zstandard.ZstdCompressor().compressobj()


# Content-Encoding token -> a fresh streaming compressor. HTTP's "deflate" is the zlib format.
COMPRESSIONS: dict[str, Callable[[], _Compressor]] = {
    "deflate": lambda: zlib.compressobj(wbits=zlib.MAX_WBITS),
    "gzip": lambda: zlib.compressobj(wbits=16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.compressobj(wbits=16 + zlib.MAX_WBITS),
    "br": _BrotliCompressor,
    "zstd": _zstd,
}


class CompressedPayload(Payload):
    """`inner` compressed with `encoding` as it is sent; replayable when `inner` is."""

    size = None

    def __init__(self, inner: Payload, encoding: str = "deflate") -> None:
        token = encoding.strip().lower()
        if token not in COMPRESSIONS:
            raise ValueError(
                f"unsupported compression {encoding!r}; use one of {', '.join(COMPRESSIONS)}"
            )
        self.inner = inner
        self.encoding = token
        self.content_type = inner.content_type
        self.replayable = inner.replayable

    def chunks(
        self, on_raw: Callable[[bytes], Awaitable[object]] | None = None
    ) -> AsyncIterator[bytes]:
        """The compressed pieces; `on_raw` is awaited with each piece of `inner` before it is
        compressed (tracing's request_chunk_sent reports those, as aiohttp's writer does)."""
        return compressed(self.inner.chunks(), COMPRESSIONS[self.encoding](), on_raw)

    def check_sendable(self) -> None:
        self.inner.check_sendable()

    async def close(self) -> None:
        await self.inner.close()


def compress_payload(inner: Payload, encoding: str = "deflate") -> Payload:
    """Wrap `inner` so it is compressed on the fly; set `Content-Encoding: <encoding>` with it."""
    return CompressedPayload(inner, encoding)


async def compressed(
    pieces: AsyncIterator[bytes],
    compressor: _Compressor,
    on_raw: Callable[[bytes], Awaitable[object]] | None = None,
) -> AsyncIterator[bytes]:
    """`pieces` through `compressor`, flushed at the end; a large piece is compressed on a
    thread, so the event loop keeps running meanwhile. Empty outputs are not yielded."""
    loop = asyncio.get_running_loop()
    async for chunk in pieces:
        if on_raw is not None:
            await on_raw(chunk)
        if len(chunk) >= _THREAD_THRESHOLD:
            out = await loop.run_in_executor(None, compressor.compress, chunk)
        else:
            out = compressor.compress(chunk)
        if out:
            yield out
    if tail := compressor.flush():
        yield tail
