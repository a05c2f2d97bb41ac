"""The connection pool: reuse, limits, FIFO waiters, cancellation and expiry, with real sockets."""

from __future__ import annotations

import asyncio

import pytest

from crawler.http import (
    ClientSession,
    ClientTimeout,
    ConnectionTimeoutError,
    ServerDisconnectedError,
    TCPConnector,
)
from tests.http.raw_server import (
    Request,
    ServerState,
    raw_server,
    read_request,
    response,
    serve_forever,
)


class GatedServer:
    """Answers only when the test opens the gate; counts connections open at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.open_now = 0
        self.most_open = 0
        self.order: list[str] = []

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                self.order.append(request.target)
                await self.gate.wait()
                writer.write(response(200, request.target.encode()))
                await writer.drain()
        finally:
            self.open_now -= 1


async def fetch(session: ClientSession, url: str) -> bytes:
    async with session.get(url) as resp:
        return await resp.read()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_sequential_requests_reuse_one_connection() -> None:
    state = ServerState()
    async with (
        raw_server(serve_forever(lambda r: response(200, b"x"), state), state) as base,
        ClientSession() as session,
    ):
        for _ in range(5):
            assert await fetch(session, base) == b"x"
        stats = session.connector.stats()
        assert (stats.acquired, stats.idle) == (0, 1)
    assert state.connections == 1


async def test_total_limit_bounds_open_connections_and_queues_the_rest() -> None:
    server = GatedServer()
    async with (
        raw_server(server.handler) as base,
        ClientSession(connector=TCPConnector(limit=2)) as session,
    ):
        tasks = [asyncio.create_task(fetch(session, f"{base}/{i}")) for i in range(6)]
        await settle()
        stats = session.connector.stats()
        assert (stats.acquired, stats.waiters) == (2, 4)
        server.gate.set()
        assert sorted(await asyncio.gather(*tasks)) == sorted(
            f"/{i}".encode() for i in range(6)
        )
        assert server.most_open == 2
        assert session.connector.stats().acquired == 0


async def test_waiters_are_served_first_in_first_out() -> None:
    server = GatedServer()
    async with (
        raw_server(server.handler) as base,
        ClientSession(connector=TCPConnector(limit=1)) as session,
    ):
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(fetch(session, f"{base}/{i}")))
            await asyncio.sleep(0.01)  # arrive in a known order
        server.gate.set()
        await asyncio.gather(*tasks)
    assert server.order == [f"/{i}" for i in range(5)]


async def test_limit_per_host_is_per_endpoint() -> None:
    one, two = GatedServer(), GatedServer()
    async with raw_server(one.handler) as base_one, raw_server(two.handler) as base_two:
        connector = TCPConnector(limit=10, limit_per_host=2)
        async with ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(fetch(session, f"{base_one}/{i}")) for i in range(5)]
            tasks += [asyncio.create_task(fetch(session, f"{base_two}/{i}")) for i in range(5)]
            await settle()
            stats = connector.stats()
            assert (stats.acquired, stats.waiters) == (4, 6)
            one.gate.set()
            two.gate.set()
            await asyncio.gather(*tasks)
    assert one.most_open == 2 and two.most_open == 2


async def test_no_limit_with_none_or_zero() -> None:
    server = GatedServer()
    async with raw_server(server.handler) as base:
        for limit in (None, 0):
            async with ClientSession(connector=TCPConnector(limit=limit)) as session:
                tasks = [asyncio.create_task(fetch(session, f"{base}/{i}")) for i in range(120)]
                await settle()
                assert session.connector.stats().waiters == 0
                server.gate.set()
                await asyncio.gather(*tasks)
            server.gate.clear()
    assert server.most_open == 120


async def test_a_cancelled_waiter_frees_nothing_it_did_not_hold() -> None:
    server = GatedServer()
    async with (
        raw_server(server.handler) as base,
        ClientSession(connector=TCPConnector(limit=2)) as session,
    ):
        holders = [asyncio.create_task(fetch(session, f"{base}/h{i}")) for i in range(2)]
        await settle()
        waiters = [asyncio.create_task(fetch(session, f"{base}/w{i}")) for i in range(3)]
        await settle()
        assert session.connector.stats().waiters == 3
        waiters[1].cancel()
        await asyncio.gather(waiters[1], return_exceptions=True)
        stats = session.connector.stats()
        assert (stats.acquired, stats.waiters) == (2, 2)
        server.gate.set()
        await asyncio.gather(*holders, waiters[0], waiters[2])
        assert session.connector.stats().acquired == 0
    assert "/w1" not in server.order


async def test_a_waiter_cancelled_right_after_being_granted_gives_its_slot_back() -> None:
    def answer(request: Request) -> bytes:
        return response(200, b"h" * 5_000_000 if request.target == "/holder" else b"ok")

    async with (
        raw_server(serve_forever(answer)) as base,
        ClientSession(connector=TCPConnector(limit=1)) as session,
    ):
        holder = await session.get(f"{base}/holder")  # holds its slot: body not read
        waiter = asyncio.create_task(fetch(session, f"{base}/w"))
        other = asyncio.create_task(fetch(session, f"{base}/other"))
        await settle()
        holder.release()  # the slot goes to `waiter` ...
        waiter.cancel()  # ... which is cancelled before it runs
        assert await other == b"ok"
        assert waiter.cancelled()
        stats = session.connector.stats()
        assert (stats.acquired, stats.waiters) == (0, 0)


async def test_connect_timeout_covers_waiting_for_a_slot() -> None:
    server = GatedServer()
    async with (
        raw_server(server.handler) as base,
        ClientSession(connector=TCPConnector(limit=1)) as session,
    ):
        holder = asyncio.create_task(fetch(session, f"{base}/slow"))
        await settle()
        with pytest.raises(ConnectionTimeoutError):
            await session.get(f"{base}/x", timeout=ClientTimeout(connect=0.1))
        assert session.connector.stats().waiters == 0
        server.gate.set()
        await holder
        assert session.connector.stats().acquired == 0


async def test_connection_close_from_the_server_is_not_reused() -> None:
    state = ServerState()
    answer = serve_forever(lambda r: response(200, b"x", keep_alive=False), state)
    async with raw_server(answer, state) as base, ClientSession() as session:
        for _ in range(3):
            assert await fetch(session, base) == b"x"
        assert session.connector.stats().idle == 0
    assert state.connections == 3


async def test_http10_response_is_not_reused() -> None:
    state = ServerState()

    async def handler(reader, writer) -> None:
        while await read_request(reader):
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")

    async with raw_server(handler, state) as base, ClientSession() as session:
        for _ in range(2):
            assert await fetch(session, base) == b"x"
    assert state.connections == 2


async def test_force_close_opens_a_connection_per_request() -> None:
    state = ServerState()
    async with (
        raw_server(serve_forever(lambda r: response(200, b"x"), state), state) as base,
        ClientSession(connector=TCPConnector(force_close=True)) as session,
    ):
        for _ in range(3):
            assert await fetch(session, base) == b"x"
        assert session.connector.stats().idle == 0
    assert state.connections == 3


async def test_idle_connections_expire_after_keepalive_timeout() -> None:
    state = ServerState()
    async with raw_server(serve_forever(lambda r: response(200, b"x"), state), state) as base:
        connector = TCPConnector(keepalive_timeout=0.05)
        async with ClientSession(connector=connector) as session:
            await fetch(session, base)
            assert connector.stats().idle == 1
            await asyncio.sleep(0.3)
            assert connector.stats().idle == 0
            await fetch(session, base)
    assert state.connections == 2


async def test_server_closing_an_idle_connection_removes_it_from_the_pool() -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(response(200, b"x"))
        await writer.drain()

    async with raw_server(handler) as base, ClientSession() as session:
        await fetch(session, base)
        await settle()
        assert session.connector.stats().idle == 0


async def test_unread_body_release_closes_but_a_read_one_is_reused() -> None:
    state = ServerState()
    big = b"y" * 5_000_000
    answer = serve_forever(lambda r: response(200, big if r.target == "/big" else b"x"), state)
    async with raw_server(answer, state) as base, ClientSession() as session:
        resp = await session.get(base + "/big")
        resp.release()
        assert session.connector.stats().idle == 0
        assert await fetch(session, base + "/small") == b"x"
        assert await fetch(session, base + "/small") == b"x"
    assert state.connections == 2


async def test_a_response_dropped_without_release_frees_its_slot() -> None:
    import gc

    async with (
        raw_server(serve_forever(lambda r: response(200, b"z" * 3_000_000))) as base,
        ClientSession(connector=TCPConnector(limit=1)) as session,
    ):
        resp = await session.get(base)
        del resp
        gc.collect()
        assert session.connector.stats().acquired == 0
        assert len(await fetch(session, base)) == 3_000_000


async def test_detach_hands_over_the_transport_and_frees_the_slot() -> None:
    async with raw_server(serve_forever(lambda r: response(200, b"x"))) as base:
        connector = TCPConnector(limit=1)
        key = connector.make_key(__import__("yarl").URL(base))
        conn = await connector.connect(key)
        assert connector.stats().acquired == 1
        transport = conn.detach()
        assert connector.stats().acquired == 0
        assert not transport.is_closing()
        transport.close()
        await connector.close()


async def test_closing_the_session_closes_idle_and_active_connections() -> None:
    server = GatedServer()
    async with raw_server(server.handler) as base:
        session = ClientSession()
        connector = session.connector
        server.gate.set()
        await fetch(session, base + "/a")
        (idle,) = connector._pool.idle_connections
        server.gate.clear()
        pending = asyncio.create_task(fetch(session, base + "/b"))
        await settle()
        (active,) = connector._pool.active
        await session.close()
        with pytest.raises(ServerDisconnectedError):
            await pending
        assert idle.is_closed and active.is_closed
        assert connector.closed and session.closed
        stats = connector.stats()
        assert (stats.acquired, stats.idle, stats.waiters) == (0, 0, 0)
        server.gate.set()


async def test_many_concurrent_requests_over_a_small_pool() -> None:
    answer = serve_forever(lambda r: response(200, r.target.encode()))
    async with (
        raw_server(answer) as base,
        ClientSession(connector=TCPConnector(limit=4)) as session,
    ):
        results = await asyncio.gather(*(fetch(session, f"{base}/{i}") for i in range(300)))
        assert results == [f"/{i}".encode() for i in range(300)]
        stats = session.connector.stats()
        assert (stats.acquired, stats.waiters) == (0, 0) and stats.idle <= 4

