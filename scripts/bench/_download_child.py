"""One Python contender of download.py, in a process of its own with nothing else imported.

    python _download_child.py ours|aiohttp URL OUT FSYNC

The harness (download.py) imports its file server, the demo site and multiprocessing; a child
started from it would pay those imports in its whole-process time, which curl and wget do not.
This script imports only what the contender needs. It prints one JSON line: the transfer's
seconds (session start to file in place), the process's VmHWM and the sha256 ours computed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

CHUNK = 64 * 1024


def vm_hwm() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


async def ours(url: str, out: Path, fsync: str) -> str:
    from crawler.http import ClientSession
    from storage import Store, download

    with Store(out, writer_id="bench", fsync=fsync) as store:
        async with ClientSession() as session:
            record = await download(session, url, store)
            stats = session.connector.stats()
    if record.outcome.value != "stored" or stats.acquired or stats.waiters:
        raise SystemExit(f"download failed: {record.outcome} {record.error} {stats}")
    return record.sha256 or ""


async def with_aiohttp(url: str, out: Path) -> str:
    import aiohttp

    target = out / "aiohttp.bin"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        resp.raise_for_status()
        with target.open("wb", buffering=0) as file:
            async for chunk in resp.content.iter_chunked(CHUNK):
                file.write(chunk)
    return ""


def main() -> None:
    name, url, out, fsync = sys.argv[1:5]
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    if name == "ours":
        # Imported before the clock starts: start-up is in the whole-process figure only.
        __import__("storage")
        __import__("crawler.http")
        started = time.perf_counter()
        digest = run(ours(url, Path(out), fsync))
    elif name == "aiohttp":
        __import__("aiohttp")
        started = time.perf_counter()
        digest = run(with_aiohttp(url, Path(out)))
    else:
        raise SystemExit(f"unknown contender {name!r}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "hwm": vm_hwm(), "sha256": digest}))


if __name__ == "__main__":
    main()
