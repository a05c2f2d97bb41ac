"""Streaming Content-Encoding decoders: every format, any split, truncation and bombs."""

from __future__ import annotations

import gzip
import os
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.http.decoders import DecompressionError, make_decoder

PLAIN = b"".join(b"line %d of some fairly compressible text\n" % i for i in range(5000))


def raw_deflate(data: bytes) -> bytes:
    obj = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "deflate-raw": raw_deflate(PLAIN),
    "br": brotli.compress(PLAIN),
    "zstd": zstandard.ZstdCompressor().compress(PLAIN),
}


def decode_in_pieces(encoding: str, data: bytes, size: int) -> bytes:
    decoder = make_decoder("deflate" if encoding == "deflate-raw" else encoding)
    assert decoder is not None
    out = [decoder.decompress(data[i : i + size]) for i in range(0, len(data), size)]
    out.append(decoder.flush())
    return b"".join(out)


@pytest.mark.parametrize("encoding", sorted(ENCODED))
@pytest.mark.parametrize("piece", [1, 7, 1000, 1 << 20])
def test_each_encoding_decodes_whatever_the_piece_size(encoding: str, piece: int) -> None:
    data = ENCODED[encoding]
    if piece == 1 and len(data) > 20000:
        piece = 3
    assert decode_in_pieces(encoding, data, piece) == PLAIN


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(sorted(ENCODED)),
    body=st.binary(max_size=5000),
    piece=st.integers(min_value=1, max_value=600),
)
def test_round_trip_property(encoding: str, body: bytes, piece: int) -> None:
    encode = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "deflate-raw": raw_deflate,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[encoding]
    assert decode_in_pieces(encoding, encode(body), piece) == body


def test_concatenated_gzip_members_are_all_decoded() -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_in_pieces("gzip", data, 5) == b"first second"


def test_zstd_frames_one_after_another_are_all_decoded() -> None:
    compressor = zstandard.ZstdCompressor()
    data = compressor.compress(b"one ") + compressor.compress(b"two")
    assert decode_in_pieces("zstd", data, 4) == b"one two"


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_a_truncated_stream_is_an_error(encoding: str) -> None:
    data = ENCODED[encoding][: len(ENCODED[encoding]) // 2]
    with pytest.raises(DecompressionError, match=r"ends before|cannot decode"):
        decode_in_pieces(encoding, data, 1000)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_garbage_is_an_error(encoding: str) -> None:
    decoder = make_decoder(encoding)
    assert decoder is not None
    with pytest.raises(DecompressionError):
        decoder.decompress(os.urandom(64) + b"\x00" * 64)
        decoder.flush()


@pytest.mark.parametrize(
    "encoding,compress",
    [
        ("gzip", gzip.compress),
        ("br", brotli.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
    ],
)
def test_total_output_limit_stops_a_bomb(encoding: str, compress: object) -> None:
    bomb = compress(b"\0" * (20 * 2**20))  # type: ignore[operator]
    decoder = make_decoder(encoding, max_output=2**20)
    assert decoder is not None
    with pytest.raises(DecompressionError, match="max_decompressed_size"):
        for i in range(0, len(bomb), 4096):
            decoder.decompress(bomb[i : i + 4096])
        decoder.flush()


@pytest.mark.parametrize(
    "encoding,compress",
    [("br", brotli.compress), ("zstd", zstandard.ZstdCompressor().compress)],
)
def test_one_tiny_piece_may_not_expand_without_bound(encoding: str, compress: object) -> None:
    bomb = compress(b"\0" * (200 * 2**20))  # type: ignore[operator]
    assert len(bomb) < 65536
    decoder = make_decoder(encoding, max_output=None, max_piece_output=8 * 2**20)
    assert decoder is not None
    with pytest.raises(DecompressionError, match="decompression bomb"):
        decoder.decompress(bomb)


def test_unknown_and_identity_encodings_get_no_decoder() -> None:
    assert make_decoder("identity") is None
    assert make_decoder("compress") is None
    assert make_decoder("gzip, br") is None
