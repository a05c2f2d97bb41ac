"""Running a demo site: in the current event loop, in a background thread, or as a process.

    async with await start_site(SiteSpec(pages=200, hosts=3)) as served:   # same loop
        crawl(served.seeds)
    with site_in_thread(SiteSpec(pages=200, hosts=3)) as served: ...       # own thread + loop
    with DemoSiteProcess(["--pages", "5000", "--hosts", "3"]) as served: ...  # own process

A process is what benchmarks want (the server gets its own CPU); threads and the current loop
are handy in tests. All of them bind the ports first, then generate the site for those ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from crawler.demo_site.files import load_site, read_manifest
from crawler.demo_site.hosts import HostContent, MemoryHost
from crawler.demo_site.server import DemoServer, bind_sockets
from crawler.demo_site.site import Site, SiteSpec, build_site


@dataclass(slots=True)
class ServedSite:
    """A site being served: its model (for expected results) and its server (for its log)."""

    site: Site
    server: DemoServer

    @property
    def seeds(self) -> list[str]:
        return self.site.seeds

    async def close(self) -> None:
        await self.server.close()

    async def __aenter__(self) -> ServedSite:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _prepare(
    spec: SiteSpec | None,
    root: str | Path | None,
    address: str,
    ports: Sequence[int],
    scheme: str = "http",
) -> tuple[Site, list[HostContent], list[socket.socket]]:
    if root is not None:
        _, manifest_address, manifest_ports = read_manifest(root)
        sockets = bind_sockets(len(manifest_ports), manifest_address, manifest_ports)
        try:
            site, directory_hosts = load_site(root)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return site, list(directory_hosts), sockets
    spec = spec or SiteSpec()
    sockets = bind_sockets(spec.hosts, address, ports)
    try:
        site = build_site(
            spec, [sock.getsockname()[1] for sock in sockets], address, scheme=scheme
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return site, [MemoryHost(host.routes) for host in site.hosts], sockets


async def start_site(
    spec: SiteSpec | None = None,
    *,
    root: str | Path | None = None,
    address: str = "127.0.0.1",
    ports: Sequence[int] = (),
    rate: float | None = None,
    latency: float | None = None,
    log_requests: bool = False,
    tls: ssl.SSLContext | None = None,
) -> ServedSite:
    """Serve a site in the running loop: generated from `spec` in memory on free ports (or on
    `ports`), or the files of a folder written by `write_site` (`root`, on its manifest's ports).
    With `tls` (a server context) it is served over TLS, and a generated site says https://."""
    if tls is not None and root is not None:
        raise ValueError("only a generated site can be served over TLS")
    site, hosts, sockets = _prepare(spec, root, address, ports, "http" if tls is None else "https")
    server = DemoServer(hosts, rate=rate, latency=latency, log_requests=log_requests)
    try:
        await server.start(sockets, ssl=tls)
    except BaseException:
        for sock in sockets:
            sock.close()
        await server.close()
        raise
    return ServedSite(site, server)


@contextmanager
def site_in_thread(
    spec: SiteSpec | None = None,
    *,
    root: str | Path | None = None,
    address: str = "127.0.0.1",
    ports: Sequence[int] = (),
    rate: float | None = None,
    latency: float | None = None,
    log_requests: bool = False,
    tls: ssl.SSLContext | None = None,
) -> Iterator[ServedSite]:
    """`start_site` on an event loop of its own in a background thread, stopped on exit."""
    loop = asyncio.new_event_loop()
    outcome: list[ServedSite | BaseException] = []
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome.append(
                loop.run_until_complete(
                    start_site(
                        spec,
                        root=root,
                        address=address,
                        ports=ports,
                        rate=rate,
                        latency=latency,
                        log_requests=log_requests,
                        tls=tls,
                    )
                )
            )
        except BaseException as error:  # handed to the caller's thread below
            outcome.append(error)
            return
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="demo-site", daemon=True)
    thread.start()
    started.wait()
    served = outcome[0]
    if isinstance(served, BaseException):
        thread.join()
        loop.close()
        raise served
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(served.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@dataclass(slots=True)
class DemoSiteProcess:
    """`python -m crawler.demo_site --serve --json ARGS` as a child process.

    Entering waits until it listens (or raises with its stderr); leaving stops it with SIGTERM.
    `seeds` and `ports` come from the child's ready line.
    """

    args: Sequence[str] = ()
    startup_timeout: float = 60.0
    python: str = sys.executable
    process: subprocess.Popen[bytes] | None = None
    seeds: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    _stderr: IO[bytes] | None = None

    def __enter__(self) -> DemoSiteProcess:
        command = [self.python, "-m", "crawler.demo_site", "--serve", "--json", *self.args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # stderr goes to a file, not a pipe: nobody reads it while serving, and a full pipe
        # would stall the server.
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        try:
            ready = json.loads(self._ready_line())
        except BaseException:
            self.stop()
            raise
        self.seeds = list(ready["seeds"])
        self.ports = [int(port) for port in ready["ports"]]
        return self

    def _ready_line(self) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(self.startup_timeout):
                raise TimeoutError(f"demo site did not start within {self.startup_timeout}s")
        line = self.process.stdout.readline()
        if not line.strip():
            self.process.wait(timeout=10)
            error = ""
            if self._stderr is not None:
                self._stderr.seek(0)
                error = self._stderr.read().decode(errors="replace").strip()
            raise RuntimeError(f"demo site exited with {self.process.returncode}: {error}")
        return line

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
