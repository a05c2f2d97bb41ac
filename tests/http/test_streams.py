"""StreamReader on its own: reads, iteration, errors and flow control."""

from __future__ import annotations

import asyncio

import pytest

from crawler.http import StreamReader


class FakeTransportProtocol:
    """Records pause/resume calls the stream makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def fed(*parts: bytes, eof: bool = True) -> StreamReader:
    stream = StreamReader()
    for part in parts:
        stream.feed_data(part)
    if eof:
        stream.feed_eof()
    return stream


async def test_read_n_returns_at_most_n_bytes_and_empty_at_end() -> None:
    stream = fed(b"hello ", b"world")
    assert await stream.read(3) == b"hel"
    assert await stream.read(100) == b"lo world"
    assert await stream.read(10) == b""
    assert stream.at_eof()


async def test_read_all_joins_everything() -> None:
    assert await fed(b"a", b"b", b"c").read() == b"abc"


async def test_readany_returns_pieces_as_fed() -> None:
    stream = fed(b"one", b"two")
    assert await stream.readany() == b"one"
    assert await stream.readany() == b"two"
    assert await stream.readany() == b""


async def test_readexactly_spans_pieces_and_raises_when_short() -> None:
    stream = fed(b"ab", b"cd", b"e")
    assert await stream.readexactly(3) == b"abc"
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await stream.readexactly(5)
    assert info.value.partial == b"de"


async def test_readline_and_line_iteration() -> None:
    stream = fed(b"first\nsec", b"ond\r", b"\nlast")
    assert [line async for line in stream] == [b"first\n", b"second\r\n", b"last"]


async def test_readuntil_finds_a_separator_split_across_pieces() -> None:
    stream = fed(b"abc\r", b"\ndef")
    assert await stream.readuntil(b"\r\n") == b"abc\r\n"
    assert await stream.read() == b"def"


async def test_readuntil_refuses_runaway_lines() -> None:
    stream = fed(b"x" * 100, eof=False)
    with pytest.raises(ValueError, match="within 10 bytes"):
        await stream.readuntil(b"\n", limit=10)


async def test_iter_chunked_yields_pieces_of_at_most_n() -> None:
    stream = fed(b"0123456789", b"abc")
    chunks = [chunk async for chunk in stream.iter_chunked(4)]
    assert b"".join(chunks) == b"0123456789abc"
    assert all(0 < len(c) <= 4 for c in chunks)


async def test_iter_any_yields_what_arrived() -> None:
    assert [c async for c in fed(b"a", b"bc").iter_any()] == [b"a", b"bc"]


async def test_reader_waits_for_a_producer_task() -> None:
    stream = StreamReader()

    async def produce() -> None:
        for part in (b"x", b"y", b"z"):
            await asyncio.sleep(0)
            stream.feed_data(part)
        stream.feed_eof()

    producer = asyncio.create_task(produce())
    assert await stream.read() == b"xyz"
    await producer


async def test_exception_reaches_a_waiting_reader_and_later_reads() -> None:
    stream = StreamReader()
    reader = asyncio.create_task(stream.read(10))
    await asyncio.sleep(0)
    stream.set_exception(ValueError("broken"))
    with pytest.raises(ValueError, match="broken"):
        await reader
    with pytest.raises(ValueError, match="broken"):
        await stream.readany()


async def test_two_concurrent_readers_are_refused() -> None:
    stream = StreamReader()
    first = asyncio.create_task(stream.read(1))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="another task"):
        await stream.read(1)
    stream.feed_eof()
    assert await first == b""


async def test_feed_after_eof_is_an_error() -> None:
    stream = fed(b"a")
    with pytest.raises(RuntimeError):
        stream.feed_data(b"b")


async def test_high_water_pauses_and_draining_below_low_water_resumes() -> None:
    protocol = FakeTransportProtocol()
    stream = StreamReader(protocol, limit=10)  # low 10, high 20
    stream.feed_data(b"x" * 15)
    assert protocol.calls == []
    stream.feed_data(b"x" * 10)
    assert protocol.calls == ["pause"]
    stream.feed_data(b"x" * 10)  # already paused: no second call
    assert protocol.calls == ["pause"]
    await stream.read(20)
    assert protocol.calls == ["pause"]  # 15 left: above low water
    await stream.read(10)
    assert protocol.calls == ["pause", "resume"]


async def test_read_all_of_a_body_larger_than_high_water_does_not_stall() -> None:
    protocol = FakeTransportProtocol()
    stream = StreamReader(protocol, limit=4)

    async def produce() -> None:
        for _ in range(50):
            stream.feed_data(b"0123456789")
            await asyncio.sleep(0)
        stream.feed_eof()

    producer = asyncio.create_task(produce())
    assert len(await stream.read()) == 500
    await producer
    assert protocol.calls.count("pause") == protocol.calls.count("resume") >= 1


async def test_drain_waits_for_the_consumer() -> None:
    stream = StreamReader(limit=4)
    stream.feed_data(b"0123456789")
    drained = asyncio.create_task(stream.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    await stream.read(8)
    await asyncio.wait_for(drained, 5)


async def test_on_eof_callbacks_run_once_at_eof() -> None:
    stream = StreamReader()
    seen: list[str] = []
    stream.on_eof(lambda: seen.append("eof"))
    stream.feed_data(b"a")
    assert seen == []
    stream.feed_eof()
    assert seen == ["eof"]
    stream.on_eof(lambda: seen.append("late"))
    assert seen == ["eof", "late"]


async def test_total_bytes_counts_everything_fed() -> None:
    stream = fed(b"abc", b"de")
    await stream.read()
    assert stream.total_bytes == 5
