"""Streaming decoders for Content-Encoding: gzip, deflate (zlib or raw), br and zstd.

A decoder turns compressed pieces into decompressed pieces as the body arrives. Every decoder
guards its output: no single input piece may expand past `max_piece_output`, and the whole body
may not expand past `max_output`, so a small hostile body (a "decompression bomb") ends in a
`DecompressionError` instead of exhausting memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_MAX_PIECE_OUTPUT",
    "SUPPORTED_ENCODINGS",
    "Decoder",
    "DecompressionError",
    "accept_encoding",
    "make_decoder",
]

# A whole decoded body may reach 1 GiB; one received piece may expand to 64 MiB at most. The
# largest legitimate ratios (gzip of zeros) stay near 1:1000, so 64 KiB pieces never hit it.
DEFAULT_MAX_OUTPUT = 2**30
DEFAULT_MAX_PIECE_OUTPUT = 64 * 2**20
# Output is produced in slices of this size, so the guard can stop before memory balloons.
_SLICE = 2**20
# zstd has no output limit per call: feed it input in slices small enough that one slice
# cannot expand past the piece limit (zstd's worst case is about 1:32768).
_ZSTD_INPUT_SLICE = 2048


class DecompressionError(ValueError):
    """The body is not valid for its Content-Encoding, or expands beyond the limits."""


class Decoder:
    """Decode one body. `decompress` per received piece, then `flush` once at the end."""

    __slots__ = ("_done_output", "_impl", "encoding", "max_output", "max_piece_output")

    def __init__(
        self,
        encoding: str,
        impl: _Impl,
        *,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
        max_piece_output: int = DEFAULT_MAX_PIECE_OUTPUT,
    ) -> None:
        self.encoding = encoding
        self._impl = impl
        self.max_output = max_output
        self.max_piece_output = max_piece_output
        self._done_output = 0

    def decompress(self, data: bytes | memoryview) -> bytes:
        """Decode one received piece (a memoryview is only read during the call)."""
        try:
            out = self._impl.decompress(data, self.max_piece_output)
        except DecompressionError:
            raise
        except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
            raise DecompressionError(f"cannot decode {self.encoding} body: {exc}") from None
        self._account(len(out))
        return out

    def flush(self) -> bytes:
        """The last output; raises when the compressed stream was cut short."""
        try:
            out = self._impl.flush()
        except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
            raise DecompressionError(f"cannot decode {self.encoding} body: {exc}") from None
        self._account(len(out))
        return out

    def _account(self, produced: int) -> None:
        total = self._done_output + produced
        self._done_output = total
        if self.max_output is not None and total > self.max_output:
            raise DecompressionError(
                f"{self.encoding} body expands past max_decompressed_size={self.max_output} bytes"
            )


class _Impl:
    """One compression format: `decompress(data, limit)` and `flush()`."""

    __slots__ = ()

    def decompress(self, data: bytes | memoryview, limit: int) -> bytes:
        raise DecompressionError("no decoder")

    def flush(self) -> bytes:
        return b""


def _too_big(encoding: str, limit: int) -> DecompressionError:
    return DecompressionError(
        f"{encoding} body: one received piece expands past {limit} bytes (decompression bomb)"
    )


class _Zlib(_Impl):
    """gzip (possibly several members) and deflate (zlib-wrapped or raw, told by the header)."""

    __slots__ = ("_first", "_gzip", "_obj", "_started")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._first = b""
        self._started = False
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def decompress(self, data: bytes | memoryview, limit: int) -> bytes:
        if self._obj is None:
            # RFC 9110 says zlib format, but many servers send raw deflate: a zlib stream
            # starts with a CM=8 header byte whose 16-bit header is a multiple of 31.
            data = self._first + data  # bytes: a memoryview piece is not kept past this call
            if len(data) < 2:
                self._first = data
                return b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        self._started = True
        obj = self._obj
        parts: list[bytes] = []
        produced = 0
        while data:
            out = obj.decompress(data, _SLICE)
            if out:
                produced += len(out)
                if produced > limit:
                    raise _too_big("gzip" if self._gzip else "deflate", limit)
                parts.append(out)
            if obj.eof and obj.unused_data and self._gzip:
                # Another gzip member follows (RFC 1952 allows concatenation).
                data = obj.unused_data
                obj = self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            data = obj.unconsumed_tail
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def flush(self) -> bytes:
        if self._obj is None:
            if self._first:
                raise DecompressionError("deflate body ends before the compressed stream")
            return b""
        out = self._obj.flush()
        if self._started and not self._obj.eof:
            raise DecompressionError(
                f"{'gzip' if self._gzip else 'deflate'} body ends before the compressed stream"
            )
        return out


class _Brotli(_Impl):
    __slots__ = ("_obj",)

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decompress(self, data: bytes | memoryview, limit: int) -> bytes:
        obj = self._obj
        parts = [obj.process(data, output_buffer_limit=_SLICE)]
        produced = len(parts[0])
        while not obj.can_accept_more_data():
            out = obj.process(b"", output_buffer_limit=_SLICE)
            produced += len(out)
            if produced > limit:
                raise _too_big("br", limit)
            parts.append(out)
        if produced > limit:
            raise _too_big("br", limit)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def flush(self) -> bytes:
        if not self._obj.is_finished():
            raise DecompressionError("br body ends before the compressed stream")
        return b""


class _Zstd(_Impl):
    __slots__ = ("_dctx", "_obj", "_seen")

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._seen = False

    def _feed(self, data: bytes | memoryview) -> bytes:
        out: bytes = self._obj.decompress(data)
        while self._obj.eof and self._obj.unused_data:
            # Another frame follows (RFC 8878 allows concatenated frames).
            rest = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
            out += self._obj.decompress(rest)
        return out

    def decompress(self, data: bytes | memoryview, limit: int) -> bytes:
        if not data:
            return b""
        self._seen = True
        if self._obj.eof:
            self._obj = self._dctx.decompressobj()
        if len(data) <= _ZSTD_INPUT_SLICE:
            out = self._feed(data)
            if len(out) > limit:
                raise _too_big("zstd", limit)
            return out
        view = memoryview(data)
        parts: list[bytes] = []
        produced = 0
        for start in range(0, len(data), _ZSTD_INPUT_SLICE):
            piece = self._feed(view[start : start + _ZSTD_INPUT_SLICE])
            if piece:
                produced += len(piece)
                if produced > limit:
                    raise _too_big("zstd", limit)
                parts.append(piece)
        return b"".join(parts)

    def flush(self) -> bytes:
        out: bytes = self._obj.flush()
        if self._seen and not self._obj.eof:
            raise DecompressionError("zstd body ends before the compressed stream")
        return out


_FACTORIES: dict[str, Callable[[], _Impl]] = {
    "gzip": lambda: _Zlib(gzip=True),
    "x-gzip": lambda: _Zlib(gzip=True),
    "deflate": lambda: _Zlib(gzip=False),
    "br": _Brotli,
    "zstd": _Zstd,
}
SUPPORTED_ENCODINGS = frozenset(_FACTORIES)


def accept_encoding() -> str:
    """The Accept-Encoding value we send by default."""
    return "gzip, deflate, br, zstd"


def make_decoder(
    content_encoding: str,
    *,
    max_output: int | None = DEFAULT_MAX_OUTPUT,
    max_piece_output: int = DEFAULT_MAX_PIECE_OUTPUT,
) -> Decoder | None:
    """A decoder for a (lower-cased) Content-Encoding value, or None for identity/unknown.

    Several stacked codings ("gzip, br") are not decoded: the body is passed on as received.
    """
    factory = _FACTORIES.get(content_encoding)
    if factory is None:
        return None
    return Decoder(
        content_encoding, factory(), max_output=max_output, max_piece_output=max_piece_output
    )
