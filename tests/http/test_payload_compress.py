"""compress_payload: deflate, gzip, br and zstd on the fly; the result decodes to the original."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import AsyncIterator, Callable

import brotli
import pytest
import zstandard

from crawler.http.payload import CompressedPayload, Payload, compress_payload, make_payload

DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "deflate": zlib.decompress,
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


@pytest.mark.parametrize("encoding", sorted(DECODERS))
async def test_compressed_body_decodes_to_the_original(encoding: str) -> None:
    original = os.urandom(300_000) + b"repetitive " * 100_000
    payload = compress_payload(make_payload(original), encoding)
    assert DECODERS[encoding](await body_of(payload)) == original


async def test_deflate_is_the_zlib_format_and_the_default() -> None:
    payload = compress_payload(make_payload(b"a" * 10_000))
    compressed = await body_of(payload)
    assert compressed[0] == 0x78  # zlib header: what HTTP calls "deflate"
    assert zlib.decompress(compressed) == b"a" * 10_000
    assert len(compressed) < 100


async def test_size_is_unknown_and_type_and_replayability_come_from_inner() -> None:
    inner = make_payload({"k": "v"})
    payload = compress_payload(inner, "gzip")
    assert payload.size is None
    assert payload.content_type == "application/x-www-form-urlencoded"
    assert payload.replayable
    assert gzip.decompress(await body_of(payload)) == gzip.decompress(await body_of(payload))


async def test_compressing_a_stream_is_streamed_and_one_shot() -> None:
    async def generate() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield os.urandom(100_000)

    payload = compress_payload(make_payload(generate()))
    assert not payload.replayable
    total = 0
    decompressor = zlib.decompressobj()
    async for chunk in payload.chunks():
        total += len(decompressor.decompress(chunk))
    assert total == 5_000_000


async def test_empty_body_still_produces_a_valid_stream() -> None:
    payload = compress_payload(make_payload(b""), "gzip")
    assert gzip.decompress(await body_of(payload)) == b""


async def test_encoding_name_is_case_insensitive() -> None:
    payload = compress_payload(make_payload(b"x"), "GZip")
    assert isinstance(payload, CompressedPayload)
    assert payload.encoding == "gzip"


def test_unknown_encoding_is_a_value_error_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unsupported compression 'lzma'.*deflate"):
        compress_payload(make_payload(b"x"), "lzma")


async def test_close_reaches_the_inner_payload() -> None:
    file = io.BytesIO(b"data")
    payload = compress_payload(make_payload(file))
    await payload.close()
    assert file.closed
