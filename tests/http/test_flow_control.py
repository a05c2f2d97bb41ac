"""Flow control: a slow reader never makes the process's memory grow with the body."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from crawler.http import ClientSession

BODY_SIZE = 200 * 2**20

# A plain blocking server in another process, so its buffers do not count in our memory.
PUSH_SERVER = r"""
import socket, sys
size = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.recv(65536)
conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
block = bytes(range(256)) * 4096
sent = 0
while sent < size:
    conn.sendall(block)
    sent += len(block)
conn.close()
"""


@pytest.fixture
def push_server() -> Iterator[int]:
    """The port of a server that pushes BODY_SIZE bytes as fast as the socket takes them."""
    server = subprocess.Popen(
        [sys.executable, "-c", PUSH_SERVER, str(BODY_SIZE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


async def test_slow_reader_keeps_memory_flat_while_the_server_pushes_200_mb(
    push_server: int,
) -> None:
    me = psutil.Process()
    async with ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{push_server}/") as resp:
            # A reader that does not read at all: the buffer stops at the high-water mark.
            await asyncio.sleep(0.5)
            stalled = resp.content.buffered
            baseline = me.memory_info().rss
            received = 0
            peak = baseline
            reads = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                received += len(chunk)
                reads += 1
                if reads % 16 == 0:
                    await asyncio.sleep(0.001)  # and then a slow one
                    peak = max(peak, me.memory_info().rss)
        stats = session.connector.stats()
    assert received == BODY_SIZE
    assert 0 < stalled <= 2 * 2**20
    assert peak - baseline < 32 * 2**20, f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB"
    assert (stats.acquired, stats.waiters) == (0, 0)


def pushed_sha256() -> str:
    digest = hashlib.sha256()
    block = bytes(range(256)) * 4096
    for _ in range(BODY_SIZE // len(block)):
        digest.update(block)
    return digest.hexdigest()


async def test_slow_readinto_reader_keeps_memory_flat_and_gets_every_byte(
    push_server: int,
) -> None:
    me = psutil.Process()
    digest = hashlib.sha256()
    buffer = bytearray(1 << 20)
    async with ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{push_server}/") as resp:
            await asyncio.sleep(0.5)  # not reading: the stream stops at its high-water mark
            stalled = resp.content.buffered
            baseline = peak = me.memory_info().rss
            received = reads = 0
            while count := await resp.content.readinto(buffer):
                digest.update(memoryview(buffer)[:count])
                received += count
                reads += 1
                if reads % 8 == 0:
                    await asyncio.sleep(0.001)
                    peak = max(peak, me.memory_info().rss)
        stats = session.connector.stats()
    assert received == BODY_SIZE
    assert digest.hexdigest() == pushed_sha256()
    assert 0 < stalled <= 2 * 2**20
    assert peak - baseline < 32 * 2**20, f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB"
    assert (stats.acquired, stats.waiters) == (0, 0)
