"""`readchunk()` / `iter_chunks()`: HTTP chunk boundaries, compared on the wire with aiohttp.

A scripted server (one connection, plain asyncio) writes exactly the bytes a test gives it, when
the test says so, so each write reaches the client as one socket read. The same script runs
through our client and through aiohttp (a test peer), and both must give the expected results.
A script is a list of steps: bytes to send, READ (one `readchunk()`), or CLOSE. A send always
finds the stream drained, so the read after it waits for exactly those bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.http import ClientPayloadError, ClientSession, StreamReader
from tests.http.raw_server import raw_server, read_request

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
GZIP_CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
)
READ = "read"
CLOSE = "close"
CLIENTS = ("ours", "aiohttp")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


LAST = b"0\r\n\r\n"


class ScriptedServer:
    """Answers one request, then writes what the test hands it, one write per `send`."""

    def __init__(self) -> None:
        self._writes: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, data: bytes | None) -> None:
        self._writes.put_nowait(data)  # None: close the connection

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        while (data := await self._writes.get()) is not None:
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def client(kind: str) -> AsyncIterator[Any]:
    session: Any = ClientSession() if kind == "ours" else aiohttp.ClientSession()
    async with session:
        yield session


async def run_script(kind: str, head: bytes, steps: list[Any]) -> list[Any]:
    """`head` (with any body bytes after it) first, then the steps; the readchunk() results,
    an exception's class standing for the result of a read that raised."""
    server = ScriptedServer()
    results: list[Any] = []
    async with raw_server(server.handler) as url, client(kind) as session:
        server.send(head)
        async with session.get(url) as resp:
            for step in steps:
                if step == READ:
                    try:
                        results.append(await asyncio.wait_for(resp.content.readchunk(), 5))
                    except (ClientPayloadError, aiohttp.ClientPayloadError) as exc:
                        results.append(type(exc).__name__)
                elif step == CLOSE:
                    server.send(None)
                else:
                    server.send(step)
        server.send(None)
    return results


async def assert_same_on_the_wire(head: bytes, steps: list[Any], expected: list[Any]) -> None:
    for kind in CLIENTS:
        assert await run_script(kind, head, steps) == expected, kind


# --- boundaries, as aiohttp reports them ----------------------------------------------------


async def test_boundaries_across_several_writes() -> None:
    steps = [
        chunk(b"abc"),
        READ,
        chunk(b"defg") + chunk(b"hi"),
        READ,
        READ,
        LAST,
        READ,  # the last chunk, alone in its read after every boundary was reported
        READ,
    ]
    expected = [(b"abc", True), (b"defg", True), (b"hi", True), (b"", True), (b"", False)]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, expected)


async def test_chunk_split_over_two_reads() -> None:
    steps = [
        b"a\r\n01234",
        READ,
        b"56789\r\n" + chunk(b"xyz") + LAST,
        READ,
        READ,
        READ,
    ]
    expected = [(b"01234", False), (b"56789", True), (b"xyz", True), (b"", False)]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, expected)


async def test_chunk_data_read_before_its_crlf_gives_empty_end() -> None:
    # The data is read before the CRLF that ends the chunk arrives: the end comes alone.
    steps = [chunk(b"abc")[:-2], READ, b"\r\n", READ, chunk(b"d") + LAST, READ, READ]
    expected = [(b"abc", False), (b"", True), (b"d", True), (b"", False)]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, expected)


async def test_many_chunks_in_one_read() -> None:
    pieces = [bytes([65 + i % 26]) * (i + 1) for i in range(50)]
    steps = [b"".join(chunk(p) for p in pieces) + LAST] + [READ] * 51
    expected = [(p, True) for p in pieces] + [(b"", False)]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, expected)


async def test_head_and_body_in_one_write() -> None:
    head = CHUNKED_HEAD + chunk(b"first") + chunk(b"second") + LAST
    await assert_same_on_the_wire(
        head, [READ, READ, READ], [(b"first", True), (b"second", True), (b"", False)]
    )


async def test_chunked_with_trailers() -> None:
    trailers = b"0\r\nX-Checksum: 1234\r\nX-Other: yes\r\n\r\n"
    await assert_same_on_the_wire(
        CHUNKED_HEAD, [chunk(b"abc") + trailers, READ, READ], [(b"abc", True), (b"", False)]
    )
    # The trailers in reads of their own: the last chunk ends after them.
    steps = [chunk(b"abc"), READ, b"0\r\nX-Checksum: 1234\r\n", b"X-Other: yes\r\n\r\n", READ, READ]
    await assert_same_on_the_wire(
        CHUNKED_HEAD, steps, [(b"abc", True), (b"", True), (b"", False)]
    )


async def test_empty_chunked_body() -> None:
    await assert_same_on_the_wire(CHUNKED_HEAD + LAST, [READ, READ], [(b"", False), (b"", False)])


async def test_empty_content_length_and_bodyless_answers() -> None:
    empty = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    await assert_same_on_the_wire(empty, [READ, READ], [(b"", False), (b"", False)])
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert await run_script("ours", no_content, [READ, READ]) == [(b"", False), (b"", False)]
    # A known difference: aiohttp gives a bodyless answer (204, 304, HEAD) its
    # EmptyStreamReader, whose calls after the first say (b"", True). iter_chunks() stops at
    # the first (b"", False) either way; ours stays at (b"", False), as for any ended body.
    assert await run_script("aiohttp", no_content, [READ, READ]) == [(b"", False), (b"", True)]


async def test_non_chunked_body_gives_pieces_with_false() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
    steps = [b"abcd", READ, b"efghi", READ, READ]
    expected = [(b"abcd", False), (b"efghi", False), (b"", False)]
    await assert_same_on_the_wire(head, steps, expected)
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    steps = [b"abcd", READ, b"\r\n0\r\n", READ, CLOSE, READ]
    expected = [(b"abcd", False), (b"\r\n0\r\n", False), (b"", False)]
    await assert_same_on_the_wire(until_close, steps, expected)


async def test_truncated_chunked_body_raises_payload_error() -> None:
    # Both clients' errors are named ClientPayloadError; the name stands for the raise.
    steps = [b"a\r\n01234", READ, CLOSE, READ]
    expected = [(b"01234", False), "ClientPayloadError"]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, expected)
    # Cut inside a chunk's size line, and after a whole chunk but before the last one.
    await assert_same_on_the_wire(CHUNKED_HEAD, [b"1", CLOSE, READ], ["ClientPayloadError"])
    steps = [chunk(b"abc"), READ, CLOSE, READ]
    await assert_same_on_the_wire(CHUNKED_HEAD, steps, [(b"abc", True), "ClientPayloadError"])


async def test_truncated_chunked_body_raises_from_iter_chunks_as_from_read() -> None:
    for use_read in (False, True):
        server = ScriptedServer()
        async with raw_server(server.handler) as url, ClientSession() as session:
            server.send(CHUNKED_HEAD + chunk(b"whole") + b"8\r\npart")
            server.send(None)
            async with session.get(url) as resp:
                with pytest.raises(ClientPayloadError):
                    if use_read:
                        await resp.content.read()
                    else:
                        async for _ in resp.content.iter_chunks():
                            pass


def gzip_pieces() -> tuple[list[bytes], list[bytes]]:
    """A gzip body cut into HTTP chunks, and what each decodes to (b"": nothing yet)."""
    compressor = zlib.compressobj(wbits=31)
    texts = [b"hello " * 20, b"world " * 30, b"again " * 5]
    encoded = [compressor.compress(t) + compressor.flush(zlib.Z_SYNC_FLUSH) for t in texts]
    encoded.append(compressor.flush())  # the stream's end: no more output
    first = encoded.pop(0)
    # Part of the gzip header alone in a chunk decodes to nothing: no boundary for it.
    return [first[:5], first[5:], *encoded], [b"", texts[0], texts[1], texts[2], b""]


async def test_gzip_boundaries_are_where_decoded_bytes_end() -> None:
    pieces, texts = gzip_pieces()
    steps: list[Any] = [b"".join(chunk(p) for p in pieces) + LAST, READ, READ, READ, READ]
    expected = [(texts[1], True), (texts[2], True), (texts[3], True), (b"", False)]
    await assert_same_on_the_wire(GZIP_CHUNKED_HEAD, steps, expected)
    # Chunk by chunk: the header-only chunk and the trailer-only chunk add no boundary of
    # their own; the terminal chunk, arriving after all was reported, gives (b"", True).
    steps = [chunk(pieces[0]), chunk(pieces[1]), READ]
    steps += [chunk(pieces[2]), READ, chunk(pieces[3]), READ, chunk(pieces[4]), LAST, READ, READ]
    expected = [(texts[1], True), (texts[2], True), (texts[3], True), (b"", True), (b"", False)]
    await assert_same_on_the_wire(GZIP_CHUNKED_HEAD, steps, expected)


# --- the other reads are not changed by chunk ends ------------------------------------------


async def test_read_iter_chunked_and_iter_any_ignore_chunk_ends() -> None:
    body = [b"alpha", b"beta", b"gamma" * 100, b"d"]
    wire = CHUNKED_HEAD + b"".join(chunk(p) for p in body) + LAST
    whole = b"".join(body)
    server = ScriptedServer()
    async with raw_server(server.handler) as url, ClientSession() as session:
        server.send(wire)
        async with session.get(url) as resp:
            assert await resp.content.read() == whole
    for size in (1, 3, 7, 1000):
        server = ScriptedServer()
        async with raw_server(server.handler) as url, ClientSession() as session:
            server.send(wire)
            async with session.get(url) as resp:
                pieces = [p async for p in resp.content.iter_chunked(size)]
        assert b"".join(pieces) == whole
        assert all(0 < len(p) <= size for p in pieces)
        # Everything arrived in one read and one piece: read(n) takes n at a time.
        assert len(pieces) == -(-len(whole) // size)
    server = ScriptedServer()
    async with raw_server(server.handler) as url, ClientSession() as session:
        server.send(CHUNKED_HEAD)
        async with session.get(url) as resp:
            got = []
            for part in body:
                server.send(chunk(part))
                got.append(await resp.content.readany())
            server.send(LAST)
            got.append(await resp.content.readany())
    assert got == [*body, b""]


async def test_chunk_end_alone_does_not_end_a_waiting_read() -> None:
    # A chunk end without new bytes wakes a waiting reader (for readchunk's (b"", True)):
    # read() and iter_any() must go on waiting, not return b"" as if at the end.
    for how in ("read", "readany", "iter_chunked"):
        server = ScriptedServer()
        async with raw_server(server.handler) as url, ClientSession() as session:
            server.send(CHUNKED_HEAD + chunk(b"abc")[:-2])
            async with session.get(url) as resp:
                assert await resp.content.read(10) == b"abc"
                if how == "read":
                    waiting = asyncio.ensure_future(resp.content.read(10))
                elif how == "readany":
                    waiting = asyncio.ensure_future(resp.content.readany())
                else:
                    waiting = asyncio.ensure_future(anext(resp.content.iter_chunked(10)))
                server.send(b"\r\n")
                await asyncio.sleep(0.05)
                assert not waiting.done()
                server.send(chunk(b"def") + LAST)
                assert await asyncio.wait_for(waiting, 5) == b"def"
                # The end passed by read() is dropped: readchunk() goes on from here.
                assert await resp.content.readchunk() == (b"", True)
                assert await resp.content.readchunk() == (b"", False)


async def test_iter_chunks_yields_tuples_and_stops_at_end() -> None:
    server = ScriptedServer()
    async with raw_server(server.handler) as url, ClientSession() as session:
        server.send(CHUNKED_HEAD + chunk(b"one") + chunk(b"two") + LAST)
        async with session.get(url) as resp:
            got = [item async for item in resp.content.iter_chunks()]
    assert got == [(b"one", True), (b"two", True)]


# --- the stream on its own: the same as aiohttp's StreamReader, operation by operation -------


class _FakeProtocol:
    connected = True

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self, **_: Any) -> None:  # aiohttp's passes resume_parser=
        self.paused = False


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), st.binary(min_size=1, max_size=6)),
        st.tuples(st.just("end"), st.none()),
        st.tuples(st.just("readchunk"), st.none()),
        st.tuples(st.just("read"), st.integers(min_value=1, max_value=8)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_stream_matches_aiohttp_stream_reader(ops: list[tuple[str, Any]]) -> None:
    async def run() -> None:
        ours = StreamReader(_FakeProtocol(), 2**16)
        theirs = aiohttp.StreamReader(_FakeProtocol(), 2**16, loop=asyncio.get_running_loop())
        theirs.begin_http_chunk_receiving()
        pending: tuple[asyncio.Future[Any], asyncio.Future[Any]] | None = None

        async def settle() -> None:
            nonlocal pending
            for _ in range(3):
                await asyncio.sleep(0)
            if pending is not None:
                a, b = pending
                assert a.done() == b.done()
                if a.done():
                    assert a.result() == b.result()
                    pending = None

        for op, arg in [*ops, ("eof", None), *[("readchunk", None)] * 45]:
            if pending is not None and op in ("readchunk", "read"):
                continue  # one reader at a time: it waits for a feed
            if op == "feed":
                ours.feed_data(arg)
                theirs.feed_data(arg)
            elif op == "end":
                ours.end_http_chunk_receiving()
                theirs.end_http_chunk_receiving()
            elif op == "eof":
                ours.feed_eof()
                theirs.feed_eof()
            elif op == "readchunk":
                pending = (
                    asyncio.ensure_future(ours.readchunk()),
                    asyncio.ensure_future(theirs.readchunk()),
                )
            else:
                pending = (
                    asyncio.ensure_future(ours.read(arg)),
                    asyncio.ensure_future(theirs.read(arg)),
                )
            await settle()
        assert pending is None
        assert ours.at_eof() and theirs.at_eof()

    asyncio.run(run())


async def test_many_pending_chunk_ends_pause_reading_until_read() -> None:
    protocol = _FakeProtocol()
    stream = StreamReader(protocol, limit=64)  # at most max(4, 64 // 16) = 4 pending ends
    for _ in range(4):
        stream.feed_data(b"x")
        stream.end_http_chunk_receiving()
    assert not protocol.paused
    stream.feed_data(b"x")
    stream.end_http_chunk_receiving()
    assert protocol.paused  # 5 bytes buffered: only the number of ends paused it
    assert await stream.readchunk() == (b"x", True)
    assert protocol.paused  # 4 ends still pending: resume below half (2)
    assert await stream.readchunk() == (b"x", True)
    assert await stream.readchunk() == (b"x", True)
    assert protocol.paused
    assert await stream.readchunk() == (b"x", True)
    assert not protocol.paused
    # Reads that go past the ends drop them, so they can resume reading too.
    for _ in range(5):
        stream.feed_data(b"y")
        stream.end_http_chunk_receiving()
    assert protocol.paused
    assert await stream.read(100) == b"xyyyyy"
    assert not protocol.paused
    stream.feed_eof()
    assert await stream.readchunk() == (b"", True)  # the last end, at the read position
    assert await stream.readchunk() == (b"", False)


async def test_ends_passed_by_other_reads_do_not_pile_up() -> None:
    # A reader that never calls readchunk() (read, iter_any) must not keep every chunk end
    # of a long body: they would grow without bound, and pause reading for nothing.
    protocol = _FakeProtocol()
    stream = StreamReader(protocol, limit=64)
    for _ in range(1000):
        for _ in range(3):
            stream.feed_data(b"z")
            stream.end_http_chunk_receiving()
        assert await stream.read(10) == b"zzz"
    assert protocol.pauses == 0
    stream.feed_eof()
    assert await stream.readchunk() == (b"", True)
    assert await stream.readchunk() == (b"", False)


async def test_stream_without_chunk_ends_reports_pieces() -> None:
    stream = StreamReader()
    stream.feed_data(b"one")
    stream.feed_data(b"two")
    stream.feed_eof()
    assert [item async for item in stream.iter_chunks()] == [(b"one", False), (b"two", False)]
    assert await stream.readchunk() == (b"", False)


async def test_begin_http_chunk_receiving_after_data_is_refused() -> None:
    stream = StreamReader()
    stream.begin_http_chunk_receiving()
    stream.begin_http_chunk_receiving()  # again: nothing happens
    late = StreamReader()
    late.feed_data(b"x")
    with pytest.raises(RuntimeError):
        late.begin_http_chunk_receiving()


async def test_readchunk_raises_the_stream_error() -> None:
    stream = StreamReader()
    stream.feed_data(b"abc")
    stream.end_http_chunk_receiving()
    stream.set_exception(ClientPayloadError("broken"))
    with pytest.raises(ClientPayloadError):
        await stream.readchunk()
