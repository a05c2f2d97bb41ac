"""Client throughput: crawler.http against aiohttp and httpx, against one local server.

    python scripts/bench/client.py [--rounds 3] [--parts get,stream,upload] [--loops asyncio,uvloop]

Parts (each client in its own fresh process, the clients taking turns round after round):
  get     --requests keep-alive GETs of a --small-bytes body at --concurrency; req/s
  stream  one --big-mib body read in --chunk-kib chunks and written to /dev/null; MB/s
  upload  a --big-mib file streamed as a request body, ours against aiohttp (upload.py); MB/s
The server is nginx when installed (one worker, sendfile), else a Python server (--server).
Each figure is the best of --rounds (the machine is shared: noise only ever slows a run), with
the median beside it, and the ratio of the best to aiohttp's best on the same event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload
from _file_server import FileServer

CLIENTS = ("ours", "aiohttp", "httpx")
PARTS = ("get", "stream", "upload")
MiB = 1 << 20


# --- the work each client does (in a fresh process) ------------------------------------------


async def _spread(requests: int, concurrency: int, one: Callable[[], Awaitable[int]]) -> int:
    """`requests` calls of `one`, by `concurrency` tasks; returns the bytes received."""
    left = requests
    received = 0

    async def worker() -> None:
        nonlocal left, received
        while left > 0:
            left -= 1
            got = await one()  # not `received += await ...`: that would add to a stale value
            received += got

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return received


async def get_ours(url: str, requests: int, concurrency: int) -> int:
    from crawler.http import ClientSession, TCPConnector

    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:

        async def one() -> int:
            async with session.get(url) as resp:
                return len(await resp.read())

        return await _spread(requests, concurrency, one)


async def get_aiohttp(url: str, requests: int, concurrency: int) -> int:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> int:
            async with session.get(url) as resp:
                return len(await resp.read())

        return await _spread(requests, concurrency, one)


async def get_httpx(url: str, requests: int, concurrency: int) -> int:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def one() -> int:
            resp = await client.get(url)
            return len(resp.content)

        return await _spread(requests, concurrency, one)


async def stream_ours(url: str, chunk: int, sink: int) -> int:
    from crawler.http import ClientSession

    received = 0
    async with ClientSession() as session, session.get(url) as resp:
        async for piece in resp.content.iter_chunked(chunk):
            os.write(sink, piece)
            received += len(piece)
    return received


async def stream_aiohttp(url: str, chunk: int, sink: int) -> int:
    import aiohttp

    received = 0
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for piece in resp.content.iter_chunked(chunk):
            os.write(sink, piece)
            received += len(piece)
    return received


async def stream_httpx(url: str, chunk: int, sink: int) -> int:
    import httpx

    received = 0
    async with httpx.AsyncClient(timeout=300) as client, client.stream("GET", url) as resp:
        async for piece in resp.aiter_raw(chunk):
            os.write(sink, piece)
            received += len(piece)
    return received


GETS = {"ours": get_ours, "aiohttp": get_aiohttp, "httpx": get_httpx}
STREAMS = {"ours": stream_ours, "aiohttp": stream_aiohttp, "httpx": stream_httpx}


def run_worker(args: argparse.Namespace) -> None:
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    # Imports happen before the clock starts: the figure is the transfer, not start-up.
    __import__("crawler.http" if args.worker == "ours" else args.worker)
    if args.part == "get":
        coro = GETS[args.worker](args.url, args.requests, args.concurrency)
    else:
        sink = os.open(os.devnull, os.O_WRONLY)
        coro = STREAMS[args.worker](args.url, args.chunk_kib * 1024, sink)
    started = time.perf_counter()
    received = asyncio.run(coro)
    elapsed = time.perf_counter() - started
    print(json.dumps({"received": received, "seconds": elapsed}))


# --- orchestration ---------------------------------------------------------------------------


def measure(client: str, part: str, loop: str, url: str, args: argparse.Namespace) -> float:
    """One run in a fresh process: req/s for `get`, MB/s for `stream`."""
    command = [sys.executable, __file__, "--worker", client, "--part", part, "--loop", loop]
    command += ["--url", url, "--requests", str(args.requests)]
    command += ["--concurrency", str(args.concurrency), "--chunk-kib", str(args.chunk_kib)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{client} {part} on {loop} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if part == "get":
        expected = args.requests * args.small_bytes
        if result["received"] != expected:
            raise SystemExit(f"{client}: received {result['received']} of {expected} bytes")
        return args.requests / result["seconds"]
    expected = args.big_mib * MiB
    if result["received"] != expected:
        raise SystemExit(f"{client}: received {result['received']} of {expected} bytes")
    return expected / result["seconds"] / 1e6


def make_files(root: Path, small: int, big: int) -> None:
    (root / "small.bin").write_bytes(os.urandom(small))
    upload.make_file(root / "big.bin", big)


def report(title: str, unit: str, loop: str, runs: dict[str, list[float]]) -> None:
    base = max(runs["aiohttp"]) if runs.get("aiohttp") else None
    for client, figures in runs.items():
        best = max(figures)
        ratio = f"{best / base:10.2f}x" if base else f"{'-':>11}"
        print(
            f"{title:7} {loop:8} {client:8} {best:10.0f} {statistics.median(figures):10.0f}"
            f" {unit:6} {ratio}",
            flush=True,
        )


def default_loops() -> list[str]:
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    return loops


def run_part(part: str, loop: str, clients: list[str], url: str, args: argparse.Namespace) -> None:
    runs: dict[str, list[float]] = {c: [] for c in clients}
    for round_number in range(args.rounds):
        shift = round_number % len(clients)
        for client in clients[shift:] + clients[:shift]:
            runs[client].append(measure(client, part, loop, url, args))
    unit = "req/s" if part == "get" else "MB/s"
    report(part, unit, loop, runs)


def run_upload(loop: str, path: Path, args: argparse.Namespace) -> None:
    """The upload part, with upload.py's sink server and clients (ours and aiohttp only)."""
    import multiprocessing

    size = args.big_mib * MiB
    port = upload.free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=upload.serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(10):
            raise SystemExit("upload sink server did not start")
        url = f"http://127.0.0.1:{port}/upload"
        runs: dict[str, list[float]] = {c: [] for c in upload.CLIENTS}
        for round_number in range(args.rounds):
            order = upload.CLIENTS if round_number % 2 == 0 else upload.CLIENTS[::-1]
            for client in order:
                runs[client].append(upload.measure(client, loop, url, path, size))
        report("upload", "MB/s", loop, runs)
    finally:
        server.terminate()
        server.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per client (default 3)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of get,stream,upload (default: all)"
    )
    parser.add_argument(
        "--loops", default=None, help="comma list of asyncio,uvloop (default: both when installed)"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma list of ours,aiohttp,httpx"
    )
    parser.add_argument("--requests", type=int, default=20_000, help="GETs per run (20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="GETs in flight (64)")
    parser.add_argument("--small-bytes", type=int, default=1024, help="GET body size (1024)")
    parser.add_argument(
        "--big-mib", type=int, default=1024, help="streamed and uploaded body size (1024)"
    )
    parser.add_argument("--chunk-kib", type=int, default=64, help="stream read size (64)")
    parser.add_argument(
        "--server", choices=("auto", "nginx", "python"), default="auto", help="(auto: nginx)"
    )
    parser.add_argument("--data-dir", type=Path, help="where to make the files (temp folder)")
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        run_worker(args)
        return

    parts = [p for p in args.parts.split(",") if p]
    clients = [c for c in args.clients.split(",") if c]
    loops = args.loops.split(",") if args.loops else default_loops()
    for name in parts:
        if name not in PARTS:
            parser.error(f"unknown part {name!r}")
    if "aiohttp" not in clients:
        parser.error("aiohttp is the baseline: keep it in --clients")
    with tempfile.TemporaryDirectory(prefix="client-bench-", dir=args.data_dir) as scratch:
        root = Path(scratch)
        make_files(root, args.small_bytes, args.big_mib * MiB)
        with FileServer(root, kind=args.server) as server:
            print(
                f"server: {server.kind}; {args.rounds} rounds; get: {args.requests} x "
                f"{args.small_bytes} B at concurrency {args.concurrency}; stream/upload: "
                f"{args.big_mib} MiB, {args.chunk_kib} KiB reads",
                flush=True,
            )
            print(
                f"{'part':7} {'loop':8} {'client':8} {'best':>10} {'median':>10} "
                f"{'unit':6} {'vs aiohttp':>11}",
                flush=True,
            )
            for loop in loops:
                for part in parts:
                    if part == "get":
                        run_part(part, loop, clients, server.url("small.bin"), args)
                    elif part == "stream":
                        run_part(part, loop, clients, server.url("big.bin"), args)
                    else:
                        run_upload(loop, root / "big.bin", args)


if __name__ == "__main__":
    main()
