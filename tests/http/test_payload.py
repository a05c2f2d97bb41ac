"""make_payload / json_payload: which body each kind of `data=` becomes, and the errors."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest
from multidict import MultiDict

from crawler.http.payload import (
    AsyncIterablePayload,
    BytesPayload,
    FilePayload,
    Payload,
    StreamReaderPayload,
    StringPayload,
    json_payload,
    make_payload,
)


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


async def test_bytes_are_sent_as_given_with_octet_stream_type() -> None:
    payload = make_payload(b"\x00raw\xff")
    assert isinstance(payload, BytesPayload)
    assert payload.size == 5
    assert payload.content_type == "application/octet-stream"
    assert payload.replayable
    assert await body_of(payload) == b"\x00raw\xff"


async def test_bytearray_and_memoryview_are_copied_at_creation() -> None:
    buffer = bytearray(b"abc")
    payload = make_payload(buffer)
    view_payload = make_payload(memoryview(b"xyz"))
    buffer[0:1] = b"Z"
    assert await body_of(payload) == b"abc"
    assert await body_of(view_payload) == b"xyz"


async def test_bytes_keep_the_callers_content_type() -> None:
    payload = make_payload(b"{}", content_type="application/json")
    assert payload.content_type == "application/json"


async def test_empty_bytes_give_no_chunks_and_size_zero() -> None:
    payload = make_payload(b"")
    assert payload.size == 0
    assert [chunk async for chunk in payload.chunks()] == []


async def test_large_bytes_are_yielded_in_bounded_chunks() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    payload = BytesPayload(data, chunk_size=65536)
    chunks = [chunk async for chunk in payload.chunks()]
    assert max(len(chunk) for chunk in chunks) == 65536
    assert b"".join(chunks) == data


async def test_bytes_payload_can_be_sent_twice() -> None:
    payload = make_payload(b"again")
    assert await body_of(payload) == await body_of(payload) == b"again"


async def test_str_is_utf8_text_plain_by_default() -> None:
    payload = make_payload("héllo")
    assert isinstance(payload, StringPayload)
    assert payload.content_type == "text/plain; charset=utf-8"
    assert payload.size == len("héllo".encode())
    assert await body_of(payload) == "héllo".encode()


async def test_str_uses_the_charset_of_the_callers_content_type() -> None:
    payload = make_payload("héllo", content_type="text/plain; charset=latin-1")
    assert await body_of(payload) == "héllo".encode("latin-1")
    assert payload.content_type == "text/plain; charset=latin-1"


async def test_str_with_quoted_charset_parameter() -> None:
    payload = make_payload("é", content_type='text/html; Charset="ISO-8859-1"')
    assert await body_of(payload) == b"\xe9"


async def test_str_with_content_type_without_charset_is_utf8() -> None:
    payload = make_payload(json.dumps({"k": "é"}), content_type="application/json")
    assert await body_of(payload) == json.dumps({"k": "é"}).encode()
    assert payload.content_type == "application/json"


def test_str_with_unknown_charset_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown charset 'nope'"):
        make_payload("x", content_type="text/plain; charset=nope")


def test_str_not_encodable_in_the_named_charset_raises() -> None:
    with pytest.raises(UnicodeEncodeError):
        make_payload("ж", content_type="text/plain; charset=ascii")


async def test_dict_becomes_urlencoded_form() -> None:
    payload = make_payload({"key1": "value1", "key2": "a b&c=d"})
    assert payload.content_type == "application/x-www-form-urlencoded"
    assert await body_of(payload) == b"key1=value1&key2=a+b%26c%3Dd"
    assert payload.replayable


async def test_list_of_pairs_keeps_repeated_keys_in_order() -> None:
    payload = make_payload([("a", "1"), ("b", "2"), ("a", "3")])
    assert await body_of(payload) == b"a=1&b=2&a=3"


async def test_multidict_keeps_repeated_keys() -> None:
    payload = make_payload(MultiDict([("a", "1"), ("a", "2")]))
    assert await body_of(payload) == b"a=1&a=2"


async def test_numbers_in_a_form_are_sent_as_text() -> None:
    payload = make_payload({"n": 1, "f": 1.5})
    assert await body_of(payload) == b"n=1&f=1.5"


async def test_dict_with_an_open_file_becomes_multipart() -> None:
    payload = make_payload({"file": io.BytesIO(b"content"), "field": "v"})
    assert payload.content_type is not None
    assert payload.content_type.startswith("multipart/form-data; boundary=")
    assert b"content" in await body_of(payload)


def test_form_value_none_is_rejected_naming_the_field() -> None:
    with pytest.raises(TypeError, match="'missing'"):
        make_payload({"missing": None})


async def test_binary_file_becomes_file_payload_with_known_size(tmp_path) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b'{"a": 1}')
    with path.open("rb") as file:
        payload = make_payload(file)
        assert isinstance(payload, FilePayload)
        assert payload.size == 8
        assert payload.content_type == "application/json"
        assert await body_of(payload) == b'{"a": 1}'


async def test_async_generator_becomes_one_shot_chunked_payload() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    payload = make_payload(generate())
    assert isinstance(payload, AsyncIterablePayload)
    assert payload.size is None
    assert not payload.replayable
    assert await body_of(payload) == b"ab"


async def test_stream_reader_is_recognised_by_readany() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"piped")
    reader.feed_eof()

    class DuckReader:
        async def readany(self) -> bytes:
            return await reader.read(65536)

    payload = make_payload(DuckReader())
    assert isinstance(payload, StreamReaderPayload)
    assert not payload.replayable
    assert await body_of(payload) == b"piped"


def test_a_payload_is_passed_through() -> None:
    payload = BytesPayload(b"x")
    assert make_payload(payload) is payload


def test_text_mode_file_is_rejected(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with path.open("r") as file, pytest.raises(TypeError, match="binary mode"):
        make_payload(file)


def test_closed_file_is_rejected(tmp_path) -> None:
    path = tmp_path / "c.bin"
    path.write_bytes(b"x")
    file = path.open("rb")
    file.close()
    with pytest.raises(ValueError, match="closed"):
        make_payload(file)


def test_sync_generator_is_rejected_with_advice() -> None:
    with pytest.raises(TypeError, match="async generator"):
        make_payload(chunk for chunk in [b"a"])


def test_unsupported_type_names_what_is_accepted() -> None:
    with pytest.raises(TypeError, match=r"data= cannot be int; pass bytes"):
        make_payload(42)


async def test_json_payload_uses_the_given_dumps() -> None:
    payload = json_payload({"a": [1, 2]}, lambda obj: json.dumps(obj, separators=(",", ":")))
    assert payload.content_type == "application/json"
    assert payload.replayable
    assert await body_of(payload) == b'{"a":[1,2]}'


async def test_json_payload_accepts_dumps_returning_bytes() -> None:
    payload = json_payload([1], lambda obj: json.dumps(obj).encode())
    assert await body_of(payload) == b"[1]"


async def test_json_payload_encodes_non_ascii_as_utf8() -> None:
    payload = json_payload({"k": "é"}, lambda obj: json.dumps(obj, ensure_ascii=False))
    assert await body_of(payload) == '{"k": "é"}'.encode()
    assert payload.size == len('{"k": "é"}'.encode())


def test_json_payload_rejects_dumps_returning_something_else() -> None:
    with pytest.raises(TypeError, match="expected str or bytes"):
        json_payload({}, lambda obj: 1)  # type: ignore[arg-type,return-value]


async def test_our_stream_reader_is_streamed_with_readany_not_read() -> None:
    from crawler.http import StreamReader

    reader = StreamReader()
    reader.feed_data(b"line one\n")
    reader.feed_data(b"line two\n")
    reader.feed_eof()
    payload = make_payload(reader)
    assert isinstance(payload, StreamReaderPayload)
    assert await body_of(payload) == b"line one\nline two\n"


def test_object_with_a_coroutine_read_is_not_taken_for_a_file() -> None:
    class AsyncReadOnly:
        async def read(self, size: int = -1) -> bytes:
            return b""

    with pytest.raises(TypeError, match="data= cannot be AsyncReadOnly"):
        make_payload(AsyncReadOnly())
