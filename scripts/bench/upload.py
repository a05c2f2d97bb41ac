"""Upload throughput: a 1 GiB file streamed to one local sink server, our client against aiohttp.

    python scripts/bench/upload.py [--size-mib 1024] [--repeat 3] [--file PATH] [--loops ...]

The sink runs in its own process (uvloop when installed; bodies counted, never copied). Each
upload runs in a fresh client process, ours and aiohttp's taking turns, on each event loop asked
for; the best of `--repeat` rounds counts (the machine is shared, so single runs are noisy).
Prints MB/s per client and the ratio to aiohttp on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

CLIENTS = ("ours", "aiohttp")
BLOCK = 1024 * 1024


# --- the sink server -------------------------------------------------------------------------


class SinkProtocol(asyncio.BufferedProtocol):
    """Counts each request body and answers with the count; keep-alive, sized or chunked bodies.

    Body bytes are only counted, never copied out of the receive buffer, so the sink is not what
    limits the clients it measures. Heads and chunk-size lines are parsed by hand (small, rare).
    """

    def __init__(self) -> None:
        self._buffer = memoryview(bytearray(1024 * 1024))
        self._transport: asyncio.Transport | None = None
        self._line = bytearray()  # a head or a chunk-size line being gathered
        self._state = "head"
        self._left = 0  # body (or chunk) bytes still to come
        self._received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._buffer[:nbytes]
        while data:
            if self._state in ("body", "chunk"):
                taken = min(self._left, len(data))
                self._left -= taken
                self._received += taken
                data = data[taken:]
                if self._left == 0:
                    self._state = "chunk-end" if self._state == "chunk" else "head"
                    if self._state == "head":
                        self._answer()
                continue
            data = self._gather_line(data)

    def _gather_line(self, data: memoryview) -> memoryview:
        marker = b"\r\n\r\n" if self._state in ("head", "trailer") else b"\r\n"
        before = len(self._line)
        self._line += data
        end = self._line.find(marker, max(0, before - len(marker) + 1))
        if end < 0:
            return data[len(data) :]
        consumed = end + len(marker) - before
        line = bytes(self._line[:end])
        self._line.clear()
        self._line_done(line)
        return data[consumed:]

    def _line_done(self, line: bytes) -> None:
        if self._state == "head":
            headers = {}
            for raw in line.split(b"\r\n")[1:]:
                name, _, value = raw.partition(b":")
                headers[name.strip().lower()] = value.strip().lower()
            if headers.get(b"expect") == b"100-continue" and self._transport is not None:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._received = 0
            if headers.get(b"transfer-encoding") == b"chunked":
                self._state = "size"
            else:
                self._left = int(headers.get(b"content-length", b"0"))
                self._state = "body"
                if self._left == 0:
                    self._state = "head"
                    self._answer()
        elif self._state == "size":
            self._left = int(line.split(b";")[0], 16)
            # After the last chunk come optional trailers and an empty line: "0\r\n\r\n".
            self._state = "chunk" if self._left else "trailer"
            if self._state == "trailer":
                self._line += b"\r\n"
        elif self._state == "chunk-end":
            self._state = "size"
        elif self._state == "trailer":
            self._state = "head"
            self._answer()

    def _answer(self) -> None:
        answer = str(self._received).encode()
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (len(answer), answer)
        )


def serve(port: int, ready: Event) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            SinkProtocol, "127.0.0.1", port, backlog=128
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the clients (each in its own process) ---------------------------------------------------


async def upload_ours(url: str, path: Path) -> int:
    from crawler.http import ClientSession

    async with ClientSession() as session:
        with path.open("rb") as file:
            async with session.post(url, data=file) as response:
                response.raise_for_status()
                return int(await response.text())


async def upload_aiohttp(url: str, path: Path) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with path.open("rb") as file:
            async with session.post(url, data=file) as response:
                response.raise_for_status()
                return int(await response.text())


def run_client(client: str, loop_name: str, url: str, path: Path) -> None:
    if loop_name == "uvloop":
        import uvloop

        uvloop.install()
    upload = upload_ours if client == "ours" else upload_aiohttp
    started = time.perf_counter()
    received = asyncio.run(upload(url, path))
    elapsed = time.perf_counter() - started
    print(json.dumps({"received": received, "seconds": elapsed}))


# --- orchestration ---------------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(BLOCK)
    with path.open("wb") as file:
        for _ in range(size // BLOCK):
            file.write(block)
        file.write(block[: size % BLOCK])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(client: str, loop_name: str, url: str, path: Path, size: int) -> float:
    command = [sys.executable, __file__, "--client", client, "--loop", loop_name]
    command += ["--url", url, "--file", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{client} on {loop_name} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["received"] != size:
        raise SystemExit(f"{client}: server received {result['received']} of {size} bytes")
    return size / result["seconds"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best one counts")
    parser.add_argument("--file", type=Path, help="file to upload (made if missing or wrong size)")
    parser.add_argument("--loops", default=None, help="comma list: asyncio,uvloop")
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.client:
        run_client(args.client, args.loop, args.url, args.file)
        return

    loops = args.loops.split(",") if args.loops else ["asyncio"]
    if args.loops is None:
        try:
            import uvloop  # noqa: F401

            loops.append("uvloop")
        except ImportError:
            pass
    size = args.size_mib * BLOCK
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as scratch:
        path = args.file or Path(scratch) / "upload.bin"
        make_file(path, size)
        port = free_port()
        ready = multiprocessing.Event()
        server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(10):
                raise SystemExit("sink server did not start")
            url = f"http://127.0.0.1:{port}/upload"
            print(
                f"upload of {size / BLOCK:.0f} MiB from a file to a local sink, "
                f"best of {args.repeat} runs each"
            )
            print(f"{'loop':8} {'client':8} {'MB/s':>8} {'vs aiohttp':>11}")
            for loop_name in loops:
                rates = dict.fromkeys(CLIENTS, 0.0)
                for round_number in range(args.repeat):
                    order = CLIENTS if round_number % 2 == 0 else CLIENTS[::-1]
                    for client in order:
                        rate = measure(client, loop_name, url, path, size)
                        rates[client] = max(rates[client], rate)
                for client in CLIENTS:
                    ratio = rates[client] / rates["aiohttp"]
                    print(f"{loop_name:8} {client:8} {rates[client]:8.0f} {ratio:10.2f}x")
        finally:
            server.terminate()
            server.join(5)


if __name__ == "__main__":
    main()
