"""ClientTimeout: each bound raises its own asyncio.TimeoutError subclass; None/0 disable."""

from __future__ import annotations

import asyncio

import pytest

from crawler.http import (
    ClientSession,
    ClientTimeout,
    ConnectionTimeoutError,
    ServerTimeoutError,
    SocketTimeoutError,
)
from tests.http.raw_server import raw_server, read_request, response


def late_answer(delay: float, body: bytes = b"late"):
    async def handler(reader, writer) -> None:
        while await read_request(reader):
            await asyncio.sleep(delay)
            writer.write(response(200, body))
            await writer.drain()

    return handler


async def silent(reader, writer) -> None:
    await read_request(reader)
    await asyncio.sleep(3600)


def test_defaults_and_number_meaning_total() -> None:
    async def check() -> None:
        async with ClientSession() as session:
            assert session.timeout == ClientTimeout(total=300, sock_connect=30)
        async with ClientSession(timeout=60) as session:
            assert session.timeout.total == 60 and session.timeout.sock_connect is None

    asyncio.run(check())


def test_zero_and_none_disable() -> None:
    assert ClientTimeout(total=0).total is None
    assert ClientTimeout(total=0, sock_read=0).sock_read is None
    with pytest.raises(ValueError):
        ClientTimeout(total=-1)


async def test_total_timeout_while_waiting_for_the_head() -> None:
    async with raw_server(silent) as base, ClientSession() as session:
        with pytest.raises(ServerTimeoutError) as info:
            await session.get(base, timeout=ClientTimeout(total=0.2))
        assert isinstance(info.value, asyncio.TimeoutError)
        assert session.connector.stats().acquired == 0


async def test_a_number_is_a_total_timeout() -> None:
    async with raw_server(silent) as base, ClientSession() as session:
        with pytest.raises(ServerTimeoutError):
            await session.get(base, timeout=0.2)


async def test_session_timeout_applies_to_every_request() -> None:
    async with raw_server(silent) as base, ClientSession(timeout=ClientTimeout(total=0.2)) as s:
        with pytest.raises(ServerTimeoutError):
            await s.get(base)


async def test_sock_read_timeout() -> None:
    async with raw_server(silent) as base, ClientSession() as session:
        with pytest.raises(SocketTimeoutError) as info:
            await session.get(base, timeout=ClientTimeout(sock_read=0.2))
        assert isinstance(info.value, asyncio.TimeoutError)
        assert session.connector.stats().acquired == 0


async def test_sock_read_is_the_gap_between_reads_not_the_whole_body() -> None:
    async def trickle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0.05)
            writer.write(b"x")
            await writer.drain()

    async with (
        raw_server(trickle) as base, ClientSession() as session,
        session.get(base, timeout=ClientTimeout(sock_read=0.3)) as resp,
    ):
        assert await resp.read() == b"x" * 10


async def test_a_slow_reader_is_not_a_read_timeout() -> None:
    body = b"s" * 4_000_000
    async with (
        raw_server(late_answer(0, body)) as base, ClientSession() as session,
        session.get(base, timeout=ClientTimeout(sock_read=0.1)) as resp,
    ):
        await resp.content.read(10)
        await asyncio.sleep(0.4)  # the stream is full, reading is paused: not the server's fault
        rest = await resp.read()
        assert 10 + len(rest) == len(body)


@pytest.mark.parametrize("answers", [True, False])
async def test_sock_read_counts_from_the_end_of_a_slow_upload(answers: bool) -> None:
    # A server waiting for the rest of a streamed body is not silent: aiohttp starts sock_read
    # once the request is written. Each piece comes well within sock_read, the whole upload
    # takes longer than it.
    async def read_all_then(reader, writer) -> None:
        request = await read_request(reader)
        assert request is not None
        if not answers:
            await asyncio.sleep(3600)
        writer.write(response(200, str(len(request.body)).encode()))
        await writer.drain()

    async def slow_body():
        for _ in range(12):
            yield b"piece"
            await asyncio.sleep(0.25)

    timeout = ClientTimeout(total=60, sock_read=1.0)
    async with raw_server(read_all_then) as base, ClientSession(timeout=timeout) as session:
        if answers:
            async with session.post(base, data=slow_body()) as resp:
                assert await resp.read() == b"60"
        else:
            # Silence after the upload is still bounded by sock_read, not only by total.
            with pytest.raises(SocketTimeoutError):
                await session.post(base, data=slow_body())
            assert session.connector.stats().acquired == 0


async def test_connect_timeout_on_a_stalled_tls_handshake() -> None:
    async def no_tls(reader, writer) -> None:
        await asyncio.sleep(3600)

    async with raw_server(no_tls) as base, ClientSession() as session:
        url = base.replace("http://", "https://")
        with pytest.raises(ConnectionTimeoutError):
            await session.get(url, timeout=ClientTimeout(sock_connect=0.2))
        with pytest.raises(ConnectionTimeoutError):
            await session.get(url, timeout=ClientTimeout(connect=0.2))
        assert session.connector.stats().acquired == 0


async def test_disabled_total_lets_a_slow_answer_through() -> None:
    async with raw_server(late_answer(0.3)) as base, ClientSession() as session:
        for timeout in (None, 0, ClientTimeout(total=None)):
            async with session.get(base, timeout=timeout) as resp:
                assert await resp.read() == b"late"


async def test_total_timeout_during_the_body() -> None:
    async def slow_body(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await asyncio.sleep(3600)

    async with raw_server(slow_body) as base, ClientSession() as session:
        resp = await session.get(base, timeout=0.3)
        with pytest.raises(ServerTimeoutError):
            await resp.read()
        assert session.connector.stats().acquired == 0


async def test_an_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    async with raw_server(silent) as base, ClientSession() as session:
        task = asyncio.create_task(session.get(base, timeout=10))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert session.connector.stats().acquired == 0


async def test_an_outer_asyncio_timeout_still_works() -> None:
    async with raw_server(silent) as base, ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await session.get(base, timeout=10)
        assert session.connector.stats().acquired == 0


async def test_a_finished_response_keeps_no_timer() -> None:
    async with raw_server(late_answer(0)) as base, ClientSession() as session:
        loop = asyncio.get_running_loop()
        before = len(loop._scheduled)  # type: ignore[attr-defined]
        for _ in range(20):
            async with session.get(base, timeout=100) as resp:
                await resp.read()
        live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        assert len(live) <= before + 1  # at most the pool's keep-alive sweep
