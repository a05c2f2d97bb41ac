"""Async iterables, async generators and StreamReaders as one-shot, chunked bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crawler.http.payload import AsyncIterablePayload, Payload, StreamReaderPayload, make_payload


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


async def test_async_generator_chunks_are_sent_in_order() -> None:
    async def generate() -> AsyncIterator[bytes]:
        for index in range(100):
            yield b"%d," % index

    payload = make_payload(generate())
    assert await body_of(payload) == b"".join(b"%d," % index for index in range(100))


async def test_bytearray_and_memoryview_chunks_are_accepted() -> None:
    async def generate() -> AsyncIterator[object]:
        yield bytearray(b"ab")
        yield memoryview(b"cd")

    assert await body_of(make_payload(generate())) == b"abcd"


async def test_empty_chunks_are_skipped_so_chunked_framing_does_not_end_early() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"a"
        yield b""
        yield b"b"

    chunks = [chunk async for chunk in make_payload(generate()).chunks()]
    assert chunks == [b"a", b"b"]


async def test_a_class_with_aiter_is_accepted() -> None:
    class Source:
        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._generate()

        async def _generate(self) -> AsyncIterator[bytes]:
            yield b"from a class"

    payload = make_payload(Source())
    assert isinstance(payload, AsyncIterablePayload)
    assert await body_of(payload) == b"from a class"


async def test_a_str_chunk_is_a_type_error_naming_the_problem() -> None:
    async def generate() -> AsyncIterator[object]:
        yield b"fine"
        yield "not bytes"

    with pytest.raises(TypeError, match=r"yielded str at chunk 1; yield bytes"):
        await body_of(make_payload(generate()))


async def test_a_non_bytes_chunk_is_a_type_error() -> None:
    async def generate() -> AsyncIterator[object]:
        yield 5

    with pytest.raises(TypeError, match="yielded int at chunk 0, expected bytes"):
        await body_of(make_payload(generate()))


async def test_an_error_inside_the_generator_propagates() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"half"
        raise OSError("source broke")

    with pytest.raises(OSError, match="source broke"):
        await body_of(make_payload(generate()))


async def test_async_iterable_cannot_be_sent_twice() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"once"

    payload = make_payload(generate())
    assert await body_of(payload) == b"once"
    with pytest.raises(RuntimeError, match="cannot be replayed"):
        await body_of(payload)


async def test_close_closes_the_generator() -> None:
    closed = asyncio.Event()

    async def generate() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            closed.set()

    payload = make_payload(generate())
    chunks = payload.chunks()
    await anext(chunks)
    await chunks.aclose()
    await payload.close()
    assert closed.is_set()


async def test_content_type_defaults_to_octet_stream_and_can_be_given() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b""

    assert make_payload(generate()).content_type == "application/octet-stream"
    assert make_payload(generate(), content_type="text/csv").content_type == "text/csv"


class FedReader:
    """A StreamReader-like object fed by another task, readany() as in ours and aiohttp's."""

    def __init__(self) -> None:
        self._reader = asyncio.StreamReader(limit=2**16)

    def feed_data(self, data: bytes) -> None:
        self._reader.feed_data(data)

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    async def readany(self) -> bytes:
        return await self._reader.read(2**16)

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("a StreamReader must be read with readany(), not by lines")


async def test_stream_reader_fed_by_another_task_is_streamed() -> None:
    reader = FedReader()
    expected = b"".join(b"%05d" % index for index in range(2000))

    async def feed() -> None:
        for start in range(0, len(expected), 333):
            reader.feed_data(expected[start : start + 333])
            await asyncio.sleep(0)
        reader.feed_eof()

    payload = make_payload(reader)
    assert isinstance(payload, StreamReaderPayload)
    assert payload.size is None
    feeder = asyncio.create_task(feed())
    assert await body_of(payload) == expected
    await feeder


async def test_stream_reader_error_propagates() -> None:
    class Broken:
        async def readany(self) -> bytes:
            raise ConnectionResetError("upstream reset")

    with pytest.raises(ConnectionResetError):
        await body_of(make_payload(Broken()))


async def test_stream_reader_is_one_shot() -> None:
    reader = FedReader()
    reader.feed_eof()
    payload = make_payload(reader)
    await body_of(payload)
    with pytest.raises(RuntimeError, match="StreamReader body was already sent"):
        await body_of(payload)
