"""Servers that misbehave: each case ends in the right exception, no hang, and no leaked slot."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct

import pytest
from yarl import URL

from crawler.http import (
    ClientConnectorError,
    ClientOSError,
    ClientPayloadError,
    ClientResponseError,
    ClientSession,
    ClientTimeout,
    ServerDisconnectedError,
    SocketTimeoutError,
    TCPConnector,
)
from tests.http.raw_server import Request, ServerState, raw_server, read_request, response
from tests.support.ports import free_port
from tests.support.ws_server import client_sockets_to


def assert_pool_empty(session: ClientSession) -> None:
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters) == (0, 0, 0), stats


async def assert_nothing_leaked(session: ClientSession, base: str) -> None:
    """No slot held, nothing kept for reuse, and no socket to the server left open."""
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters, stats.idle) == (0, 0, 0, 0), stats
    port = URL(base).port
    for _ in range(100):  # a closed transport lets go of its socket on a later loop turn
        if not client_sockets_to(port):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"sockets to port {port} still open: {client_sockets_to(port)}")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_reset_in_the_middle_of_the_body() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base) as resp:
            with pytest.raises(ClientPayloadError, match="not completed"):
                await resp.read()
        await assert_nothing_leaked(session, base)


async def test_close_in_the_middle_of_a_content_length_body() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async with raw_server(handler) as base, ClientSession() as session:
        resp = await session.get(base)
        with pytest.raises(ClientPayloadError):
            await resp.read()
        await assert_nothing_leaked(session, base)


async def test_truncated_chunked_body() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab")

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base) as resp:
            with pytest.raises(ClientPayloadError):
                async for _ in resp.content.iter_any():
                    pass
        await assert_nothing_leaked(session, base)


async def test_malformed_chunk_size() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nXYZ\r\nhello\r\n")
        await asyncio.sleep(1)

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base) as resp:
            with pytest.raises(ClientPayloadError, match="body"):
                await resp.read()
        await assert_nothing_leaked(session, base)


async def test_garbage_status_line() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await asyncio.sleep(1)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(ClientResponseError, match="status line") as info:
            await session.get(base)
        assert info.value.status == 400
        await assert_nothing_leaked(session, base)


async def test_oversized_header_closes_the_connection() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        huge = b"X-Huge: " + b"a" * 20000 + b"\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\n" + huge + b"Content-Length: 0\r\n\r\n")
        await asyncio.sleep(1)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(ClientResponseError, match="longer than 8190"):
            await session.get(base)
        await assert_nothing_leaked(session, base)
        assert session.connector.stats().idle == 0


async def test_header_limits_are_configurable() -> None:
    async def handler(reader, writer) -> None:
        while await read_request(reader):
            writer.write(response(200, b"", {"X-Medium": "a" * 300}))

    async with raw_server(handler) as base, ClientSession(max_field_size=100) as session:
        with pytest.raises(ClientResponseError, match="longer than 100"):
            await session.get(base)
        async with session.get(base, max_field_size=1000) as resp:
            assert resp.status == 200


async def test_too_many_headers() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-H: v\r\n" * 300 + b"\r\n")
        await asyncio.sleep(1)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(ClientResponseError, match="more than 256 response headers"):
            await session.get(base)
        await assert_nothing_leaked(session, base)


async def test_an_endless_header_line_is_cut_off() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        for _ in range(1000):
            writer.write(b"a" * 1024)
            await writer.drain()

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(ClientResponseError, match="longer than"):
            await session.get(base)
        await assert_nothing_leaked(session, base)


async def test_server_closes_without_answering() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(ServerDisconnectedError):
            await session.get(base)
        await assert_nothing_leaked(session, base)


async def test_server_resets_without_answering() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        reset(writer)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises((ServerDisconnectedError, ClientOSError)):
            await session.get(base)
        await assert_nothing_leaked(session, base)


async def test_connection_refused() -> None:
    port = free_port()
    async with ClientSession() as session:
        with pytest.raises(ClientConnectorError) as info:
            await session.get(f"http://127.0.0.1:{port}/")
        assert info.value.port == port
        assert_pool_empty(session)


async def test_server_that_never_answers_times_out() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        await asyncio.sleep(3600)

    async with raw_server(handler) as base, ClientSession() as session:
        with pytest.raises(SocketTimeoutError):
            await session.get(base, timeout=ClientTimeout(sock_read=0.2))
        with pytest.raises(asyncio.TimeoutError):
            await session.get(base, timeout=0.2)
        await assert_nothing_leaked(session, base)


async def test_body_that_never_ends_times_out() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\nstart")
        await asyncio.sleep(3600)

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base, timeout=ClientTimeout(sock_read=0.2)) as resp:
            with pytest.raises(SocketTimeoutError):
                await resp.read()
        async with session.get(base, timeout=0.3) as resp:
            with pytest.raises(asyncio.TimeoutError):
                await resp.read()
        await assert_nothing_leaked(session, base)


async def test_body_that_trickles_forever_hits_the_total_timeout() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base, timeout=ClientTimeout(total=0.4, sock_read=0.2)) as resp:
            with pytest.raises(asyncio.TimeoutError) as info:
                await resp.read()
        assert "total" in str(info.value)
        await assert_nothing_leaked(session, base)


async def test_decompression_bomb_is_stopped() -> None:
    bomb = gzip.compress(b"\0" * (64 * 2**20))

    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(response(200, bomb, {"Content-Encoding": "gzip"}))
        await writer.drain()

    async with raw_server(handler) as base, ClientSession(max_decompressed_size=2**20) as session:
        async with session.get(base) as resp:
            with pytest.raises(ClientPayloadError, match="max_decompressed_size"):
                await resp.read()
        await assert_nothing_leaked(session, base)


async def test_corrupt_gzip_body() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(response(200, b"\x1f\x8b" + b"garbage" * 10, {"Content-Encoding": "gzip"}))

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base) as resp:
            with pytest.raises(ClientPayloadError, match="gzip"):
                await resp.read()
        await assert_nothing_leaked(session, base)


async def test_stale_keep_alive_connection_is_retried_once() -> None:
    state = ServerState()

    async def handler(reader, writer) -> None:
        # answer one request as keep-alive, then drop the connection without saying so
        request = await read_request(reader)
        if request is not None:
            state.requests.append(request)
            writer.write(response(200, b"ok"))
            await writer.drain()
        await read_request(reader)

    async with raw_server(handler, state) as base, ClientSession() as session:
        for _ in range(3):
            async with session.get(base) as resp:
                assert await resp.read() == b"ok"
        assert_pool_empty(session)
    assert len(state.requests) == 3


async def test_data_after_the_response_closes_the_connection() -> None:
    state = ServerState()

    async def handler(reader, writer) -> None:
        while await read_request(reader):
            writer.write(response(200, b"ok") + b"unexpected trailing bytes")

    async with raw_server(handler, state) as base, ClientSession() as session:
        for _ in range(2):
            async with session.get(base) as resp:
                assert await resp.read() == b"ok"
        await asyncio.sleep(0.05)
        await assert_nothing_leaked(session, base)
    assert state.connections == 2


async def test_read_until_close_body() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of this until the close")

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base) as resp:
            assert await resp.read() == b"all of this until the close"
        await assert_nothing_leaked(session, base)
        assert session.connector.stats().idle == 0


async def test_failed_requests_do_not_leak_under_load() -> None:
    async def handler(reader, writer) -> None:
        request: Request | None = await read_request(reader)
        if request is not None and request.target.endswith("0"):
            reset(writer)
            return
        if request is not None:
            writer.write(response(200, b"fine"))
            await writer.drain()

    async with (
        raw_server(handler) as base,
        ClientSession(connector=TCPConnector(limit=5)) as session,
    ):

        async def one(i: int) -> str:
            try:
                async with session.get(f"{base}/{i}") as resp:
                    return (await resp.read()).decode()
            except (ServerDisconnectedError, ClientOSError):
                return "failed"

        results = await asyncio.gather(*(one(i) for i in range(40)))
        assert results.count("failed") == 4
        assert_pool_empty(session)
