"""Request heads queued for the loop's next iteration (`crawler.http._soon_writes`): sent in
order once the loop turns, never for a connection closed meanwhile, and a write that fails
aborts its connection so the request fails instead of waiting for an answer."""

from __future__ import annotations

import asyncio

import pytest

from crawler.http import ClientConnectionError, ClientSession, ServerDisconnectedError
from crawler.http._soon_writes import SoonWrites
from tests.http.raw_server import ServerState, raw_server, read_request, response


class FakeTransport:
    def __init__(self, log: list[tuple[str, bytes]], name: str, *, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails
        self.closing = False
        self.aborted = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        if self.fails:
            raise OSError("write failed")
        self.log.append((self.name, data))

    def abort(self) -> None:
        self.aborted = self.closing = True


async def test_queued_writes_go_out_in_order_when_the_loop_turns() -> None:
    log: list[tuple[str, bytes]] = []
    soon = SoonWrites(asyncio.get_running_loop())
    first, second = FakeTransport(log, "a"), FakeTransport(log, "b")
    soon.add(first, b"1")
    soon.add(second, b"2")
    soon.add(first, b"3")
    assert log == []  # nothing yet: this iteration is still running
    await asyncio.sleep(0)
    assert log == [("a", b"1"), ("b", b"2"), ("a", b"3")]
    soon.add(second, b"4")  # a later batch is sent on a later turn
    await asyncio.sleep(0)
    assert log[-1] == ("b", b"4")


async def test_a_transport_closed_meanwhile_gets_nothing_and_a_failed_write_aborts() -> None:
    log: list[tuple[str, bytes]] = []
    soon = SoonWrites(asyncio.get_running_loop())
    closed = FakeTransport(log, "closed")
    broken = FakeTransport(log, "broken", fails=True)
    fine = FakeTransport(log, "fine")
    soon.add(closed, b"x")
    soon.add(broken, b"y")
    soon.add(fine, b"z")
    closed.closing = True
    await asyncio.sleep(0)
    assert log == [("fine", b"z")]  # the failure in between stopped nothing after it
    assert broken.aborted


async def test_concurrent_gets_are_answered_and_the_heads_sent_whole() -> None:
    state = ServerState()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        while (request := await read_request(reader)) is not None:
            state.requests.append(request)
            writer.write(response(200, request.target.encode()))
            await writer.drain()

    async with raw_server(handler) as base, ClientSession() as session:

        async def get(n: int) -> bytes:
            async with session.get(f"{base}/page/{n}") as resp:
                return await resp.read()

        bodies = await asyncio.gather(*(get(n) for n in range(20)))
        again = await get(99)  # on a kept-alive connection
    assert bodies == [f"/page/{n}".encode() for n in range(20)]
    assert again == b"/page/99"
    assert sorted(r.target for r in state.requests) == sorted(
        [f"/page/{n}" for n in range(20)] + ["/page/99"]
    )


async def test_a_request_whose_connection_fails_before_its_head_is_sent_raises() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(handler) as base, ClientSession() as session:
        queue = BreakingSoonWrites(asyncio.get_running_loop())
        session.connector.soon_writes = lambda loop: queue  # type: ignore[method-assign]
        with pytest.raises((ServerDisconnectedError, ClientConnectionError)):
            await asyncio.wait_for(session.get(f"{base}/never-sent"), 10)
        assert queue.broken == 1


class BreakingSoonWrites(SoonWrites):
    """Queues every write through a transport whose writes fail."""

    __slots__ = ("broken",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.broken = 0

    def add(self, transport: asyncio.BaseTransport, data: bytes) -> None:
        self.broken += 1
        super().add(BrokenWrite(transport), data)  # type: ignore[arg-type]


class BrokenWrite:
    """A real transport whose writes fail."""

    def __init__(self, inner: asyncio.BaseTransport) -> None:
        self.inner = inner

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def write(self, data: bytes) -> None:
        raise OSError("no buffer space")

    def abort(self) -> None:
        self.inner.abort()  # type: ignore[attr-defined]
