"""Streaming uploads against our own small servers: 1 GiB bodies in flat memory, exact digests,
piping a download into an upload, and bodies that fail half way.

httpbin buffers whole bodies (and refuses chunked ones), so these tests use an asyncio sink
(`tests.support.upload_sink`) that hashes what it receives. The 1 GiB uploads run in a child
process so its peak RSS is the upload's own.

Run as a script (`python test_upload_streaming.py file|agen URL ...`) it is that child process.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import random
import socket
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.http import (
    ClientError,
    ClientPayloadError,
    ClientSession,
    FormData,
    RedirectClientError,
    StreamReader,
    TCPConnector,
)
from tests.http.raw_server import raw_server, read_request
from tests.support.form_parser import parse_form
from tests.support.memory import peak_rss
from tests.support.upload_sink import (
    HashingSink,
    PatternSource,
    SinkState,
    pattern_blocks,
    start_server,
)

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
PEAK_RSS_LIMIT = 100 * MIB
REPOSITORY = Path(__file__).resolve().parents[2]


# --- the child process that uploads 1 GiB ----------------------------------------------------


async def _child_upload(kind: str, url: str, argument: str) -> dict[str, Any]:
    sent = hashlib.sha256()
    async with ClientSession() as session:
        if kind == "file":
            with open(argument, "rb") as file:
                async with session.post(url, data=file) as response:
                    answer = await response.json()
                    status = response.status
        else:
            total = int(argument)

            async def generate() -> AsyncIterator[bytes]:
                generator = random.Random(11)
                left = total
                while left:
                    chunk = generator.randbytes(min(256 * 1024, left))
                    sent.update(chunk)
                    left -= len(chunk)
                    yield chunk

            async with session.post(url, data=generate()) as response:
                answer = await response.json()
                status = response.status
    return {"status": status, "answer": answer, "sent": sent.hexdigest(), "peak": peak_rss()}


async def run_child(*args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode(errors="replace")
    return dict(json.loads(stdout.decode().strip().splitlines()[-1]))


def write_generated_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    generator = random.Random(5)
    with path.open("wb") as file:
        for _ in range(size // MIB):
            block = generator.randbytes(MIB)
            digest.update(block)
            file.write(block)
    return digest.hexdigest()


# --- tests -----------------------------------------------------------------------------------


@pytest.fixture
async def sink() -> AsyncIterator[tuple[SinkState, str]]:
    state = SinkState()
    server, url = await start_server(lambda: HashingSink(state))
    async with server:
        yield state, url


@pytest.mark.slow
async def test_one_gib_file_upload_keeps_memory_flat_and_arrives_exact(
    sink: tuple[SinkState, str], tmp_path: Path
) -> None:
    state, url = sink
    path = tmp_path / "big.bin"
    expected = await asyncio.to_thread(write_generated_file, path, GIB)
    result = await run_child("file", url + "/upload", str(path))
    assert result["status"] == 200
    assert result["answer"] == {"size": GIB, "sha256": expected}
    [received] = state.requests
    assert received.headers["content-length"] == str(GIB)
    assert result["peak"] < PEAK_RSS_LIMIT, f"peak RSS {result['peak'] / MIB:.0f} MiB"


@pytest.mark.slow
async def test_one_gib_async_generator_upload_keeps_memory_flat_and_arrives_exact(
    sink: tuple[SinkState, str],
) -> None:
    state, url = sink
    result = await run_child("agen", url + "/upload", str(GIB))
    assert result["status"] == 200
    assert result["answer"] == {"size": GIB, "sha256": result["sent"]}
    [received] = state.requests
    assert received.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in received.headers
    assert result["peak"] < PEAK_RSS_LIMIT, f"peak RSS {result['peak'] / MIB:.0f} MiB"


# --- chunked, compressed and streamed bodies --------------------------------------------------


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession(connector=TCPConnector()) as client:
        yield client


def pool_of(session: ClientSession) -> Any:
    connector = session.connector
    assert isinstance(connector, TCPConnector)
    return connector.stats()


async def test_async_generator_is_sent_chunked_and_exact(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    pieces = [os.urandom(size) for size in (1, 1000, 70_000, 3)]

    async def generate() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async with session.post(url + "/up", data=generate()) as response:
        assert response.status == 200
    [received] = state.requests
    assert received.body == b"".join(pieces)
    assert received.headers["transfer-encoding"] == "chunked"
    assert received.headers["content-type"] == "application/octet-stream"


async def test_chunked_true_frames_a_sized_body_in_chunks(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    async with session.post(url + "/up", data=b"sized", chunked=True) as response:
        assert response.status == 200
    [received] = state.requests
    assert received.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in received.headers
    assert received.body == b"sized"


@pytest.mark.parametrize(
    ("compress", "token", "decode"),
    [
        (True, "deflate", zlib.decompress),
        ("deflate", "deflate", zlib.decompress),
        ("gzip", "gzip", gzip.decompress),
    ],
)
async def test_compress_sends_a_compressed_body_that_decodes_to_the_original(
    sink: tuple[SinkState, str],
    session: ClientSession,
    compress: bool | str,
    token: str,
    decode: Callable[[bytes], bytes],
) -> None:
    state, url = sink
    original = b"compressible line\n" * 50_000
    async with session.post(url + "/up", data=original, compress=compress) as response:
        assert response.status == 200
    [received] = state.requests
    assert received.headers["content-encoding"] == token
    assert received.headers["transfer-encoding"] == "chunked"
    assert received.body is not None and len(received.body) < len(original) // 10
    assert decode(received.body) == original


async def test_compressing_a_streamed_file(
    sink: tuple[SinkState, str], session: ClientSession, tmp_path: Path
) -> None:
    state, url = sink
    path = tmp_path / "log.txt"
    original = b"".join(b"line %d\n" % index for index in range(200_000))
    await asyncio.to_thread(path.write_bytes, original)
    with path.open("rb") as file:
        async with session.post(url + "/up", data=file, compress="deflate") as response:
            assert response.status == 200
    [received] = state.requests
    assert received.body is not None
    assert zlib.decompress(received.body) == original
    assert received.headers["content-type"] == "text/plain"


async def test_multipart_with_a_streamed_file_part_parses_with_werkzeug(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    content = os.urandom(300_000)

    async def generate() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    form = FormData()
    form.add_field("title", "värde")
    form.add_field("upload", generate(), filename="naïve file.bin", content_type="image/png")
    async with session.post(url + "/up", data=form) as response:
        assert response.status == 200
    [received] = state.requests
    assert received.body is not None
    fields, files = parse_multipart(received.body, received.headers["content-type"])
    assert fields["title"] == "värde"
    assert files["upload"].filename == "naïve file.bin"
    assert files["upload"].content_type == "image/png"
    assert files["upload"].read() == content


async def test_expect100_sends_the_body_after_100_continue(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    body = os.urandom(200_000)
    async with session.post(url + "/up", data=body, expect100=True) as response:
        assert response.status == 200
        assert await response.json() == {"size": len(body), "sha256": sha256_of(body)}
    assert state.requests[0].headers["expect"] == "100-continue"


async def test_expect100_sends_no_body_when_the_server_answers_at_once(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink

    async def generate() -> AsyncIterator[bytes]:
        yield os.urandom(100_000)

    async with session.post(url + "/reject", data=generate(), expect100=True) as response:
        assert response.status == 401
    assert state.body_bytes == 0
    assert pool_of(session).acquired == 0


# --- StreamReader bodies and piping ----------------------------------------------------------


async def test_stream_reader_fed_by_another_task_as_in_the_guide(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    stream = StreamReader()
    digest = hashlib.sha256()
    highest = 0

    async def feed_stream() -> str:
        nonlocal highest
        for block in pattern_blocks(20 * MIB):
            for start in range(0, len(block), 65536):
                chunk = block[start : start + 65536]
                digest.update(chunk)
                stream.feed_data(chunk)
                highest = max(highest, stream.buffered)
                await stream.drain()  # back-pressure: wait while the upload is behind
        stream.feed_eof()
        return digest.hexdigest()

    upload = asyncio.create_task(session.post(url + "/up", data=stream))
    file_hash = await feed_stream()
    async with await upload as response:
        assert await response.json() == {"size": 20 * MIB, "sha256": file_hash}
    assert highest < 2 * MIB  # the producer never ran far ahead of the socket
    assert state.requests[0].headers["transfer-encoding"] == "chunked"


async def test_piping_a_download_into_an_upload_is_byte_identical(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, sink_url = sink
    size = 30 * MIB + 12345
    expected = sha256_of(b"".join(pattern_blocks(size)))
    source, source_url = await start_server(lambda: PatternSource(size))
    async with source:
        response = await session.get(source_url + "/download")
        async with session.post(sink_url + "/up", data=response.content) as upload:
            assert await upload.json() == {"size": size, "sha256": expected}
        response.release()
        stats = pool_of(session)
        assert stats.acquired == 0
        assert stats.idle == 2  # both keep-alive connections are back in the pool
        # And they are reused: another round opens nothing new.
        async with session.get(source_url + "/again") as again:
            await again.read()
        assert pool_of(session).idle == 2
    assert state.connections == 1


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
async def test_307_308_resend_a_replayable_body(
    sink: tuple[SinkState, str], session: ClientSession, status: int
) -> None:
    state, url = sink
    body = os.urandom(100_000)
    async with session.post(url + f"/redirect/{status}", data=body) as response:
        assert response.status == 200
        assert str(response.url).endswith("/final")
    assert [request.path for request in state.requests] == [f"/redirect/{status}", "/final"]
    assert state.requests[0].body == state.requests[1].body == body


async def test_307_with_a_one_shot_stream_raises_a_clear_error(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink

    async def generate() -> AsyncIterator[bytes]:
        yield b"only once"

    with pytest.raises(RedirectClientError, match="one-shot stream"):
        await session.post(url + "/redirect/307", data=generate())
    assert [request.path for request in state.requests] == ["/redirect/307"]
    assert pool_of(session).acquired == 0


# --- bodies that fail ------------------------------------------------------------------------


async def test_generator_failing_half_way_closes_the_connection(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink

    async def generate() -> AsyncIterator[bytes]:
        yield b"half of the body"
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):
        async with session.post(url + "/up", data=generate()) as response:
            await response.read()
    assert state.requests == []  # the server never saw a complete (truncated) body
    stats = pool_of(session)
    assert stats.acquired == 0 and stats.idle == 0
    async with session.post(url + "/up", data=b"next") as response:
        assert response.status == 200
    assert state.connections == 2  # the broken connection was not reused


async def test_generator_yielding_str_is_a_type_error_and_no_reuse(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink

    async def generate() -> AsyncIterator[Any]:
        yield b"bytes first"
        yield "then text"

    with pytest.raises(TypeError, match="yielded str"):
        async with session.post(url + "/up", data=generate()) as response:
            await response.read()
    stats = pool_of(session)
    assert stats.acquired == 0 and stats.idle == 0
    assert state.requests == []


async def test_text_mode_file_is_refused_before_connecting(
    sink: tuple[SinkState, str], session: ClientSession, tmp_path: Path
) -> None:
    state, url = sink
    path = tmp_path / "t.txt"
    path.write_text("text")
    with path.open("r") as file, pytest.raises(TypeError, match="binary mode"):
        await session.post(url + "/up", data=file)
    assert state.connections == 0


async def test_closed_file_is_refused_before_connecting(
    sink: tuple[SinkState, str], session: ClientSession, tmp_path: Path
) -> None:
    state, url = sink
    path = tmp_path / "c.bin"
    path.write_bytes(b"x")
    file = path.open("rb")
    file.close()
    with pytest.raises(ValueError, match="closed"):
        await session.post(url + "/up", data=file)
    assert state.connections == 0


async def test_server_dropping_the_upload_ends_in_an_error_not_a_hang(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    state.reset_after = 1 * MIB

    async def endless() -> AsyncIterator[bytes]:
        block = os.urandom(65536)
        while True:
            yield block

    with pytest.raises(ClientError):
        async with session.post(url + "/up", data=endless()) as response:
            await response.read()
    stats = pool_of(session)
    assert stats.acquired == 0 and stats.idle == 0


def parse_multipart(body: bytes, content_type: str) -> tuple[Any, Any]:
    return parse_form(body, content_type)


def _child_main(argv: list[str]) -> None:
    kind, url, argument = argv
    print(json.dumps(asyncio.run(_child_upload(kind, url, argument))))


if __name__ == "__main__":
    _child_main(sys.argv[1:])


# --- compress= leaves nothing behind; unsized files ---------------------------------------------


async def test_compress_applies_to_its_own_request_only(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    async with session.post(url + "/packed", data=b"x" * 1000, compress=True) as response:
        assert response.status == 200
    async with session.post(url + "/plain", data=b"plain") as response:
        assert response.status == 200
    async with session.get(url + "/get") as response:
        assert response.status == 200
    packed, plain, get = state.requests
    assert packed.headers["content-encoding"] == "deflate"
    assert "content-encoding" not in plain.headers
    assert plain.body == b"plain"
    assert "content-encoding" not in get.headers


async def test_compress_without_a_body_adds_no_content_encoding(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    async with session.post(url + "/empty", compress="deflate") as response:
        assert response.status == 200
    [received] = state.requests
    assert "content-encoding" not in received.headers
    assert received.headers["content-length"] == "0"


async def test_a_pipe_is_streamed_chunked_and_arrives_exact(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, url = sink
    content = os.urandom(3 * MIB + 17)
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            for start in range(0, len(content), 100_000):
                writer.write(content[start : start + 100_000])

    producer = asyncio.create_task(asyncio.to_thread(produce))
    with os.fdopen(read_fd, "rb") as pipe:
        async with session.post(url + "/pipe", data=pipe) as response:
            assert await response.json() == {"size": len(content), "sha256": sha256_of(content)}
    await producer
    [received] = state.requests
    # A pipe has no size to announce: chunked framing, never a guessed Content-Length.
    assert received.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in received.headers
    assert pool_of(session).acquired == 0


async def test_piping_a_download_that_breaks_half_way_fails_the_upload(
    sink: tuple[SinkState, str], session: ClientSession
) -> None:
    state, sink_url = sink

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 300_000)
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST in the middle of the download

    async with raw_server(source) as source_url:
        download = await session.get(source_url + "/big")
        with pytest.raises(ClientPayloadError, match="not completed"):
            async with session.post(sink_url + "/up", data=download.content) as upload:
                await upload.read()
        download.release()
    # The sink never saw a whole (truncated) request, and neither connection is kept.
    assert state.requests == []
    stats = pool_of(session)
    assert (stats.acquired, stats.idle) == (0, 0)
