"""A local static-file server for the client benchmarks: nginx when installed, else Python.

    with FileServer(root) as server:
        server.url("big.bin")

nginx (one worker, sendfile, keep-alive without limit, no access log) runs from a temporary
folder (`crawler.demo_site.nginx.NginxProcess`). Without
nginx, a small asyncio server in its own process answers GET and HEAD with `loop.sendfile`
(zero-copy), keep-alive, and `Range: bytes=N-` (what a resumed download asks).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

from crawler.demo_site.nginx import NginxProcess, find_nginx, static_files_config

__all__ = ["FileServer", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FileServer:
    """Serves the files under `root` on a free loopback port for a `with` block."""

    def __init__(self, root: str | Path, *, kind: str = "auto") -> None:
        self.root = Path(root).resolve()
        binary = find_nginx()
        if kind == "auto":
            kind = "nginx" if binary else "python"
        if kind == "nginx" and binary is None:
            raise SystemExit("nginx is not installed (use --server python)")
        self.kind = kind
        self.port = free_port()
        self._nginx = NginxProcess(binary) if kind == "nginx" else None
        self._python: multiprocessing.Process | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def pids(self) -> list[int]:
        """The server's processes (nginx master and worker, or the Python one)."""
        if self._python is not None and self._python.pid is not None:
            return [self._python.pid]
        return self._nginx.pids if self._nginx is not None else []

    def __enter__(self) -> FileServer:
        if self._nginx is not None:
            try:
                self._nginx.start(
                    lambda work: static_files_config(self.root, work, "127.0.0.1", self.port),
                    [("127.0.0.1", self.port)],
                )
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
        else:
            ready = multiprocessing.get_context("spawn").Event()
            self._python = multiprocessing.get_context("spawn").Process(
                target=_serve_python, args=(str(self.root), self.port, ready), daemon=True
            )
            self._python.start()
            if not ready.wait(15):
                self.__exit__(None, None, None)
                raise SystemExit("the Python file server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._nginx is not None:
            self._nginx.stop()
        if self._python is not None:
            self._python.terminate()
            self._python.join(5)
            self._python = None


# --- the Python fallback server (its own process) --------------------------------------------


def _serve_python(root: str, port: int, ready: object) -> None:
    # The stock asyncio loop on purpose: its sendfile() is os.sendfile (uvloop has none).
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                path = Path(root) / target.split("?", 1)[0].lstrip("/")
                if not path.is_file() or Path(root) not in path.resolve().parents:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                size = path.stat().st_size
                start, status = 0, "200 OK"
                extra = ""
                wanted = headers.get("range", "")
                if wanted.startswith("bytes=") and wanted.endswith("-"):
                    start = int(wanted[6:-1])
                    status = "206 Partial Content"
                    extra = f"Content-Range: bytes {start}-{size - 1}/{size}\r\n"
                mtime = int(path.stat().st_mtime)
                writer.write(
                    (
                        f"HTTP/1.1 {status}\r\nContent-Length: {size - start}\r\n"
                        f'ETag: "{mtime:x}-{size:x}"\r\n'
                        f"Last-Modified: {formatdate(mtime, usegmt=True)}\r\n"
                        f"Accept-Ranges: bytes\r\n{extra}\r\n"
                    ).encode()
                )
                if method == "HEAD":
                    continue
                if size - start <= 64 * 1024:
                    writer.write(path.read_bytes()[start:])
                    continue
                with path.open("rb") as file:
                    await writer.drain()
                    await loop.sendfile(writer.transport, file, start, size - start)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()  # type: ignore[attr-defined]
        async with server:
            await server.serve_forever()

    asyncio.run(main())
