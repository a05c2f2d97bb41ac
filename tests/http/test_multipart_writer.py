"""MultipartWriter against real peers: aiohttp's writer byte for byte, and httpbin's parser.

The byte-for-byte tests send ours (crawler.http) and aiohttp's writer, built the same way with
the same boundary, to one small server that records each raw request body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crawler.http import ClientSession, MultipartWriter
from crawler.http.multipart import MultipartWriter as MultipartWriterFromModule
from tests.http.raw_server import Request, ServerState, raw_server, response, serve_forever

MIB = 1024 * 1024


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, ServerState]]:
    state = ServerState()
    handler = serve_forever(lambda _request: response(body=b"ok"), state)
    async with raw_server(handler, state) as url:
        yield url, state


async def send_both(
    url: str, state: ServerState, build: Callable[[Any], Any]
) -> tuple[Request, Request]:
    """POST `build(MultipartWriter)` with our session and with aiohttp's; both raw requests."""
    async with ClientSession() as session, session.post(url, data=build(MultipartWriter)) as r:
        assert r.status == 200
    async with (
        aiohttp.ClientSession() as peer,
        peer.post(url, data=build(aiohttp.MultipartWriter)) as r,
    ):
        assert r.status == 200
    ours, theirs = state.requests[-2:]
    return ours, theirs


def assert_same_wire(ours: Request, theirs: Request) -> None:
    assert ours.body == theirs.body
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert ours.headers.get("content-length") == theirs.headers.get("content-length")
    assert ours.headers.get("transfer-encoding") == theirs.headers.get("transfer-encoding")


def test_exported_from_package_and_module() -> None:
    import crawler.http

    assert "MultipartWriter" in crawler.http.__all__
    assert MultipartWriterFromModule is MultipartWriter


async def test_mixed_matches_aiohttp_byte_for_byte(
    recorder: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, state = recorder
    attachment = tmp_path / "report.csv"
    attachment.write_bytes(b"a,b\r\n1,2\r\n")

    def build(writer_class: Any) -> Any:
        with writer_class("mixed", boundary="outer-boundary") as writer:
            writer.append("h\u00e9llo text")
            writer.append(b"\x00\xffbinary", {"X-Part": "2"})
            writer.append_json({"k": [1, 2], "t": "\u00e9"})
            writer.append_form([("a", "1"), ("b", "x y")])
            writer.append(attachment.open("rb"))
            inner = writer_class("related", boundary="inner")
            inner.append("<p>inner</p>", {"Content-Type": "text/html"})
            inner.append(b"img")
            writer.append(inner)
        return writer

    ours, theirs = await send_both(url, state, build)
    assert_same_wire(ours, theirs)
    assert b'Content-Disposition: attachment; filename="report.csv"' in ours.body
    assert ours.headers["content-length"] == str(len(ours.body))
    assert ours.body.endswith(b"\r\n--outer-boundary--\r\n")


async def test_form_data_with_set_content_disposition_matches_aiohttp(
    recorder: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, state = recorder
    upload = tmp_path / "photo.png"
    upload.write_bytes(b"\x89PNG fake")

    def build(writer_class: Any) -> Any:
        writer = writer_class("form-data", boundary="form-boundary")
        writer.append("v1").set_content_disposition("form-data", name="field1")
        part = writer.append(upload.open("rb"))
        part.set_content_disposition("form-data", name="pic", filename="photo.png")
        writer.append_json({"x": 1}).set_content_disposition("form-data", name="meta")
        return writer

    ours, theirs = await send_both(url, state, build)
    assert_same_wire(ours, theirs)
    assert b'Content-Disposition: form-data; name="pic"; filename="photo.png"' in ours.body


async def test_unknown_size_part_is_sent_chunked_like_aiohttp(
    recorder: tuple[str, ServerState],
) -> None:
    url, state = recorder

    def build(writer_class: Any) -> Any:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first "
            yield b"second"

        writer = writer_class("mixed", boundary="stream")
        writer.append("sized")
        writer.append(pieces())
        assert writer.size is None
        return writer

    ours, theirs = await send_both(url, state, build)
    assert ours.headers.get("transfer-encoding") == "chunked"
    assert_same_wire(ours, theirs)
    assert b"first second\r\n--stream--\r\n" in ours.body


async def test_transfer_encoded_and_compressed_parts_match_aiohttp(
    recorder: tuple[str, ServerState],
) -> None:
    url, state = recorder
    text = "line one\r\nline two = \u00e9\t\r\n" * 50

    def build(writer_class: Any) -> Any:
        writer = writer_class("mixed", boundary="enc")
        writer.append(b"\x00\x01\x02" * 1000, {"Content-Transfer-Encoding": "base64"})
        writer.append(text, {"Content-Encoding": "gzip"})
        writer.append(text, {"Content-Encoding": "deflate"})
        return writer

    ours, theirs = await send_both(url, state, build)
    assert_same_wire(ours, theirs)
    sections = ours.body.split(b"--enc\r\n")[1:]
    encoded = sections[0].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    assert base64.b64decode(encoded) == b"\x00\x01\x02" * 1000
    deflated = sections[2].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--enc--", 1)[0]
    # A raw deflate stream, as aiohttp's multipart reader expects for "deflate" parts.
    assert zlib.decompress(deflated, wbits=-zlib.MAX_WBITS) == text.encode()


async def test_httpbin_parses_form_data_writer(httpbin: Any, tmp_path: Path) -> None:
    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"file body \xe2\x9c\x93")
    writer = MultipartWriter("form-data")
    writer.append("plain value").set_content_disposition("form-data", name="title")
    writer.append("\u00e9t\u00e9").set_content_disposition("form-data", name="season")
    writer.append(upload.open("rb")).set_content_disposition(
        "form-data", name="doc", filename="notes.txt"
    )
    writer.append(b"default name")  # aiohttp's section-N default
    async with ClientSession() as session, session.post(httpbin.url + "/post", data=writer) as r:
        assert r.status == 200
        echoed = await r.json()
    assert echoed["form"] == {
        "title": "plain value",
        "season": "\u00e9t\u00e9",
        "section-3": "default name",
    }
    assert echoed["files"] == {"doc": "file body \u2713"}
    assert echoed["headers"]["Content-Type"] == writer.content_type
    assert echoed["headers"]["Content-Length"] == str(writer.size)


async def test_large_file_part_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 50 * MIB
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for index in range(50):
            out.write(bytes([index]) * MIB)
    received: dict[str, Any] = {}

    async def hash_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        digest = hashlib.sha256()
        left = length
        while left:
            chunk = await reader.read(min(left, 256 * 1024))
            digest.update(chunk)
            left -= len(chunk)
        received.update(length=length, sha256=digest.hexdigest())
        writer.write(response(body=b"ok"))
        await writer.drain()

    writer = MultipartWriter("mixed", boundary="big")
    writer.append("small text")
    writer.append(big.open("rb"))
    head = (
        b"--big\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\n"
        b"small text\r\n--big\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="big.bin"\r\n'
        b"Content-Length: %d\r\n\r\n" % size
    )
    tail = b"\r\n--big--\r\n"
    expected = hashlib.sha256(head)
    with big.open("rb") as source:
        while block := source.read(MIB):
            expected.update(block)
    expected.update(tail)
    assert writer.size == len(head) + size + len(tail)

    async with raw_server(hash_body) as url, ClientSession() as session:
        tracemalloc.start()
        try:
            async with session.post(url, data=writer) as r:
                assert r.status == 200
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert received == {"length": writer.size, "sha256": expected.hexdigest()}
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB for a 50 MiB part"


def test_size_headers_len_and_iteration() -> None:
    writer = MultipartWriter("related", boundary="b1")
    assert writer.headers["Content-Type"] == "multipart/related; boundary=b1"
    assert writer.boundary == "b1"
    assert len(writer) == 0 and bool(writer)
    assert writer.size == len(b"--b1--\r\n")
    part = writer.append(b"abc")
    assert [entry.payload for entry in writer] == [part]
    payload, encoding, te_encoding = next(iter(writer))
    assert (payload, encoding, te_encoding) == (part, None, None)
    assert part.headers["Content-Length"] == "3"
    head = b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\n"
    assert writer.size == len(head) + 3 + 2 + len(b"--b1--\r\n")


async def test_close_boundary_false_leaves_out_the_closing_delimiter() -> None:
    writer = MultipartWriter("mixed", boundary="open", close_boundary=False)
    writer.append("x")
    body = b"".join([chunk async for chunk in writer.chunks()])
    assert body.endswith(b"\r\n\r\nx\r\n")
    assert b"--open--" not in body
    assert writer.size == len(body)


async def test_nested_writer_grown_after_append_gets_a_current_length() -> None:
    outer = MultipartWriter("mixed", boundary="o")
    inner = MultipartWriter("mixed", boundary="i")
    outer.append(inner)
    inner.append("late part")  # aiohttp would keep the stale Content-Length from append()
    body = b"".join([chunk async for chunk in outer.chunks()])
    assert inner.headers["Content-Length"] == str(inner.size)
    nested = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--o--\r\n", 1)[0]
    assert len(nested) == inner.size
    assert outer.size == len(body)


async def test_form_data_part_without_name_fails_before_sending(
    recorder: tuple[str, ServerState],
) -> None:
    url, state = recorder
    writer = MultipartWriter("form-data")
    writer.append("x").set_content_disposition("attachment")
    async with ClientSession() as session:
        with pytest.raises(ValueError, match="needs a name"):
            await session.post(url, data=writer)
    assert state.requests == []


def test_refused_parts_and_headers() -> None:
    form = MultipartWriter("form-data")
    with pytest.raises(ValueError, match="Content-Length"):
        form.append("x", {"Content-Length": "1"})
    mixed = MultipartWriter()
    with pytest.raises(ValueError, match="Content-Encoding"):
        mixed.append("x", {"Content-Encoding": "br"})
    with pytest.raises(ValueError, match="Content-Transfer-Encoding"):
        mixed.append("x", {"Content-Transfer-Encoding": "uuencode"})
    with pytest.raises(TypeError, match="append_form"):
        mixed.append({"a": "b"})
    with pytest.raises(ValueError, match="boundary"):
        MultipartWriter(boundary="bad\r\nboundary")
    with pytest.raises(ValueError, match="disposition type"):
        mixed.append("x").set_content_disposition("bad type")
    assert len(mixed) == 1


def test_set_content_disposition_escapes_like_browsers() -> None:
    part = MultipartWriter("form-data").append("v")
    part.set_content_disposition("form-data", name='a"b\r\n', filename="caf\u00e9 1.txt")
    assert part.headers["Content-Disposition"] == (
        'form-data; name="a%22b%0D%0A"; filename="caf\u00e9 1.txt"'
    )
    with pytest.raises(ValueError, match="must not contain"):
        part.set_content_disposition("form-data", quote_fields=False, name='a"b')
    with pytest.raises(ValueError, match="UTF-8"):
        part.set_content_disposition("form-data", _charset="latin-1", name="n")


async def test_string_part_uses_the_charset_its_header_names() -> None:
    writer = MultipartWriter(boundary="cs")
    writer.append("\u00e9", {"Content-Type": "text/plain; charset=latin-1"})
    body = b"".join([chunk async for chunk in writer.chunks()])
    assert b"\r\n\r\n\xe9\r\n" in body


async def test_files_are_closed_after_the_request(
    recorder: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, _state = recorder
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    file = path.open("rb")
    writer = MultipartWriter()
    writer.append(file)
    writer.append(io.BytesIO(b"memory"))
    async with ClientSession() as session, session.post(url, data=writer) as r:
        assert r.status == 200
    assert file.closed
    assert len(writer) == 2
