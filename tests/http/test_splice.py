"""`StreamReader.splice_into`: a body moved from the socket into a file inside the kernel.

Every case runs on asyncio's own loop and on uvloop (what workers use). Each ends with the bytes
in the file exactly as sent, or with the body's error after the bytes that came before it, and
with no connection slot, splice thread or file descriptor left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from crawler.http import (
    ClientPayloadError,
    ClientSession,
    ClientTimeout,
    SocketTimeoutError,
    TCPConnector,
    _splice,
)
from tests.http.raw_server import ServerState, raw_server, read_request
from tests.http.test_faults import assert_nothing_leaked, assert_pool_empty, reset
from tests.support.binaries import require_feature
from tests.support.tls_certs import make_pki

MiB = 1 << 20
STEP = 1 * MiB


@pytest.fixture(autouse=True)
def _needs_splice() -> None:
    require_feature(_splice.SPLICE_AVAILABLE, "splice(2) and eventfd are Linux-only")


RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


def on_both_loops(scenario: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A test running `scenario` (with its fixtures) once on each loop, each time a new one."""

    def test(loop: str, **fixtures: Any) -> None:
        RUNNERS[loop](scenario(**fixtures))

    signature = inspect.signature(scenario)
    loop = inspect.Parameter("loop", inspect.Parameter.KEYWORD_ONLY)
    test.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[loop, *(p.replace(kind=p.KEYWORD_ONLY) for p in signature.parameters.values())]
    )
    test.__name__ = scenario.__name__
    test.__doc__ = scenario.__doc__
    return pytest.mark.parametrize("loop", sorted(RUNNERS))(test)


@pytest.fixture
def kernel_moves(monkeypatch: pytest.MonkeyPatch) -> list[_splice.MoveResult]:
    """Every move made by a splice thread, so a test can tell the kernel path was taken."""
    results: list[_splice.MoveResult] = []
    real = _splice.BodyMove._move

    def counting(self: _splice.BodyMove) -> _splice.MoveResult:
        result = real(self)
        results.append(result)
        return result

    monkeypatch.setattr(_splice.BodyMove, "_move", counting)
    return results


def body_of(size: int, seed: int = 0) -> bytes:
    # A prime-length period: no read or splice boundary lines up with it.
    block = bytes((i * 31 + seed) % 251 for i in range(65521))
    return (block * (size // len(block) + 1))[:size]


def head_for(length: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


def send_body(body: bytes, *, requests: int = 1) -> Callable:
    """A keep-alive handler answering `requests` requests with `body`, in 256 KiB writes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(requests):
            if await read_request(reader) is None:
                return
            writer.write(head_for(len(body)))
            for start in range(0, len(body), 256 * 1024):
                writer.write(body[start : start + 256 * 1024])
                await writer.drain()
        await reader.read()  # until the client closes

    return handler


async def splice_all(content, path: Path, step: int = STEP) -> int:  # type: ignore[no-untyped-def]
    """The loop storage runs: splice_into until 0, into `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = 0
    try:
        while count := await content.splice_into(fd, step):
            total += count
    finally:
        os.close(fd)
    return total


def open_fds() -> set[str]:
    """This process's sockets, pipes, eventfds and files: what a move duplicates or makes."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed while listed
        if target.startswith(("socket:", "pipe:", "anon_inode:[eventfd]", "/tmp", "/dev/shm")):
            out.add(f"{name} {target}")
    return out


async def no_fds_beyond(before: set[str]) -> None:
    """Wait (boundedly) until no descriptor is open that was not open `before`: transports
    close their sockets on a later loop turn."""
    for _ in range(200):
        extra = open_fds() - before
        if not extra:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"descriptors left open: {sorted(extra)}")


async def threads_idle() -> None:
    """Wait (boundedly) until every splice thread is back in the pool."""
    for _ in range(500):
        if _splice._slots._value == _splice.THREADS:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a splice thread is still busy")


@on_both_loops
async def test_body_lands_byte_exact_and_the_connection_is_reused(
    tmp_path: Path, kernel_moves: list[_splice.MoveResult]
) -> None:
    body = body_of(9 * MiB + 7, seed=3)
    state = ServerState()
    async with raw_server(send_body(body, requests=2), state) as base, ClientSession() as session:
        for attempt in range(2):
            async with session.get(base + "/big") as resp:
                assert resp.content.can_splice
                assert await splice_all(resp.content, tmp_path / "a.bin") == len(body)
                assert resp.content.at_eof()
            assert (tmp_path / "a.bin").read_bytes() == body, attempt
        assert state.connections == 1  # the spliced body ended cleanly: kept alive, reused
        assert_pool_empty(session)
    moved = sum(result.moved for result in kernel_moves)
    # All but what came in with the head (the first read) went through the kernel.
    assert 2 * len(body) - 2 * MiB <= moved <= 2 * len(body)
    assert all(result.error is None and not result.eof for result in kernel_moves)
    await threads_idle()


@on_both_loops
async def test_reset_mid_body_gives_the_bytes_then_a_payload_error(tmp_path: Path) -> None:
    body = body_of(8 * MiB, seed=4)
    cut = 5 * MiB + 123

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(len(body)) + body[:cut])
        await writer.drain()
        await asyncio.sleep(0.2)
        reset(writer)

    fds = open_fds()
    target = tmp_path / "cut.bin"
    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base + "/") as resp:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
            got = 0
            try:
                with pytest.raises(ClientPayloadError):
                    while count := await resp.content.splice_into(fd, STEP):
                        got += count
            finally:
                os.close(fd)
        # Whatever was counted is in the file, and is the body's start; nothing else is.
        assert 0 < got <= cut
        assert target.read_bytes() == body[:got]
        await assert_nothing_leaked(session, base)
    await threads_idle()
    await no_fds_beyond(fds)


@on_both_loops
async def test_server_closing_mid_body_is_an_incomplete_payload(tmp_path: Path) -> None:
    body = body_of(6 * MiB, seed=5)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(len(body)) + body[: 4 * MiB])
        await writer.drain()
        writer.close()

    async with raw_server(handler) as base, ClientSession() as session:
        async with session.get(base + "/") as resp:
            with pytest.raises(ClientPayloadError, match="not completed"):
                await splice_all(resp.content, tmp_path / "short.bin")
        await assert_nothing_leaked(session, base)
    assert (tmp_path / "short.bin").read_bytes() == body[: (tmp_path / "short.bin").stat().st_size]
    await threads_idle()


@on_both_loops
async def test_a_stalled_body_ends_in_sock_read_timeout(tmp_path: Path) -> None:
    body = body_of(6 * MiB, seed=6)
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(len(body)) + body[: 2 * MiB])
        await writer.drain()
        await release.wait()  # never sends the rest

    timeout = ClientTimeout(sock_read=0.3)
    try:
        async with raw_server(handler) as base, ClientSession(timeout=timeout) as session:
            async with session.get(base + "/") as resp:
                with pytest.raises(SocketTimeoutError):
                    await asyncio.wait_for(splice_all(resp.content, tmp_path / "s.bin"), 30)
            await assert_nothing_leaked(session, base)
    finally:
        release.set()
    await threads_idle()


@on_both_loops
async def test_cancelling_a_splice_frees_its_thread_and_descriptors(tmp_path: Path) -> None:
    body = body_of(6 * MiB, seed=7)
    release = asyncio.Event()
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(len(body)) + body[: 3 * MiB])
        await writer.drain()
        sent.set()
        await release.wait()

    fds = open_fds()
    try:
        async with raw_server(handler) as base, ClientSession() as session:
            async with session.get(base + "/") as resp:
                task = asyncio.create_task(splice_all(resp.content, tmp_path / "c.bin"))
                await sent.wait()
                for _ in range(500):  # until a thread waits in the kernel for the rest
                    if _splice._slots._value < _splice.THREADS:  # type: ignore[attr-defined]
                        break
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The body's framing went with the cancelled move: reading on is an error, not
                # a body with a hole in it.
                with pytest.raises(ClientPayloadError):
                    await resp.content.read()
            await threads_idle()  # woken at once, not at a timeout (there is none)
            await assert_nothing_leaked(session, base)
    finally:
        release.set()
    await no_fds_beyond(fds)


@on_both_loops
async def test_reading_on_after_a_splice_does_not_wait_forever(tmp_path: Path) -> None:
    body = body_of(7 * MiB, seed=8)
    async with raw_server(send_body(body)) as base, ClientSession() as session:
        async with session.get(base + "/") as resp:
            fd = os.open(tmp_path / "head.bin", os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                first = 0
                while first < 3 * MiB:
                    first += await resp.content.splice_into(fd, STEP)
            finally:
                os.close(fd)
            # The last splice left reading paused; a plain read must resume it.
            rest = await asyncio.wait_for(resp.content.read(), 30)
        assert (tmp_path / "head.bin").read_bytes() + rest == body
        assert_pool_empty(session)


@on_both_loops
async def test_with_every_thread_busy_the_body_is_copied_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_moves: list[_splice.MoveResult]
) -> None:
    monkeypatch.setattr(_splice, "_slots", threading.BoundedSemaphore(1))
    assert _splice._slots.acquire(blocking=False)  # the only thread is taken
    body = body_of(5 * MiB, seed=9)
    async with (
        raw_server(send_body(body)) as base,
        ClientSession() as session,
        session.get(base + "/") as resp,
    ):
        assert await splice_all(resp.content, tmp_path / "busy.bin") == len(body)
    assert (tmp_path / "busy.bin").read_bytes() == body
    assert kernel_moves == []  # never waited for a thread: copied through user space


@on_both_loops
async def test_encoded_body_is_not_spliced_and_lands_decoded(
    tmp_path: Path, kernel_moves: list[_splice.MoveResult]
) -> None:
    body = body_of(5 * MiB, seed=10)
    packed = gzip.compress(body, compresslevel=1)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(len(packed), "Content-Encoding: gzip\r\n") + packed)
        await writer.drain()
        await reader.read()

    async with (
        raw_server(handler) as base,
        ClientSession() as session,
        session.get(base + "/") as resp,
    ):
        assert not resp.content.can_splice
        assert await splice_all(resp.content, tmp_path / "gz.bin") == len(body)
    assert (tmp_path / "gz.bin").read_bytes() == body
    assert kernel_moves == []


@contextlib.asynccontextmanager
async def tls_origin() -> AsyncIterator[tuple[str, ssl.SSLContext, bytes]]:
    pki = make_pki()
    body = body_of(5 * MiB, seed=11)
    server = await asyncio.start_server(send_body(body), "127.0.0.1", 0, ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/", pki.client_context(), body
    finally:
        server.close()
        await server.wait_closed()


@on_both_loops
async def test_tls_body_is_not_spliced_and_lands_whole(
    tmp_path: Path, kernel_moves: list[_splice.MoveResult]
) -> None:
    async with (
        tls_origin() as (url, context, body),
        ClientSession(connector=TCPConnector(ssl=context)) as session,
        session.get(url) as resp,
    ):
        assert not resp.content.can_splice  # the socket carries ciphertext
        assert await splice_all(resp.content, tmp_path / "tls.bin") == len(body)
    assert (tmp_path / "tls.bin").read_bytes() == body
    assert kernel_moves == []


ABANDONED_SPLICE = """
import asyncio, os, sys
from crawler.http import ClientSession, _splice

async def serve(reader, writer):
    await reader.readuntil(b"\\r\\n\\r\\n")
    writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 9000000\\r\\n\\r\\n" + b"x" * 5_000_000)
    await writer.drain()
    await asyncio.sleep(3600)  # then silence, and no sock_read timeout to end it

async def start(path):
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = ClientSession()
    resp = await session.get(f"http://127.0.0.1:{port}/")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)

    async def splice_all():
        while await resp.content.splice_into(fd, 1 << 20):
            pass

    asyncio.get_running_loop().create_task(splice_all())
    while _splice._slots._value == _splice.THREADS:  # until a thread waits in the kernel
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)

loop = asyncio.new_event_loop()
loop.run_until_complete(start(sys.argv[1]))
print("abandoned", flush=True)  # the loop stops here, its tasks never cancelled
"""


def test_a_splice_abandoned_with_its_loop_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ABANDONED_SPLICE, str(tmp_path / "out.bin")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "abandoned" in done.stdout
