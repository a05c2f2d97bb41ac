"""Streaming uploads against our own small servers: 1 GiB bodies in flat memory, exact digests,
piping a download into an upload, and bodies that fail half way.

httpbin buffers whole bodies, so these tests use an asyncio sink (httptools parsing) that hashes
what it receives. The 1 GiB uploads run in a child process so its peak RSS is the upload's own.

Run as a script (`python test_upload_streaming.py file|agen URL ...`) it is that child process.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import random
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import pytest
from werkzeug.formparser import parse_form_data

from crawler.http import (
    ClientError,
    ClientSession,
    FormData,
    RedirectClientError,
    StreamReader,
    TCPConnector,
)
from tests.support.memory import peak_rss

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
PEAK_RSS_LIMIT = 100 * MIB
REPOSITORY = Path(__file__).resolve().parents[2]


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    size: int
    sha256: str
    body: bytes | None  # kept when small enough to inspect


@dataclass
class SinkState:
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    # Set to a byte count to drop the connection after that much of a body (a failing server).
    reset_after: int | None = None
    body_bytes: int = 0  # every body byte seen, finished requests or not


KEEP_BODIES_UP_TO = 16 * MIB


class HashingSink(asyncio.Protocol):
    """Hashes each request body as it arrives and answers JSON {"size", "sha256"}.

    `/redirect/<status>` answers that status with `Location: /final` once the body is read;
    `/reject` answers 401 (and closes) as soon as the head arrives, without reading a body.
    """

    def __init__(self, state: SinkState) -> None:
        self._state = state
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0
        self._body: bytearray | None = bytearray()
        self._url = b""
        self._headers: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._state.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._transport is not None
        if self._url.startswith(b"/reject"):
            self._transport.write(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self._transport.close()
        elif self._headers.get("expect", "").lower() == "100-continue":
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._hash.update(body)
        self._size += len(body)
        self._state.body_bytes += len(body)
        if self._body is not None:
            self._body += body
            if len(self._body) > KEEP_BODIES_UP_TO:
                self._body = None
        limit = self._state.reset_after
        if limit is not None and self._size >= limit and self._transport is not None:
            self._transport.abort()

    def on_message_complete(self) -> None:
        received = Received(
            method=self._parser.get_method().decode(),
            path=self._url.decode(),
            headers=self._headers,
            size=self._size,
            sha256=self._hash.hexdigest(),
            body=bytes(self._body) if self._body is not None else None,
        )
        self._state.requests.append(received)
        answer = json.dumps({"size": received.size, "sha256": received.sha256}).encode()
        assert self._transport is not None
        status = b"200 OK"
        extra = b""
        if received.path.startswith("/redirect/"):
            status = received.path.rsplit("/", 1)[1].encode() + b" Redirect"
            extra = b"Location: /final\r\n"
        self._transport.write(
            b"HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, extra, len(answer), answer)
        )


class PatternSource(asyncio.Protocol):
    """Answers any GET with `size` deterministic bytes (Content-Length), keep-alive."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self._size)
        for block in pattern_blocks(self._size):
            self._transport.write(block)


def pattern_blocks(size: int, seed: int = 7) -> list[bytes]:
    generator = random.Random(seed)
    blocks, left = [], size
    while left:
        block = generator.randbytes(min(MIB, left))
        blocks.append(block)
        left -= len(block)
    return blocks


async def start_server(factory: Callable[[], asyncio.Protocol]) -> tuple[asyncio.Server, str]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


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
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, fields, files = parse_form_data(environ)
    return fields, files


def _child_main(argv: list[str]) -> None:
    kind, url, argument = argv
    print(json.dumps(asyncio.run(_child_upload(kind, url, argument))))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
