"""A local static-file server for the client benchmarks: nginx when installed, else Python.

    with FileServer(root) as server:
        server.url("big.bin")

nginx (one worker, sendfile, keep-alive without limit, no access log) runs from a temporary
folder that holds its config, pid, logs and temp files, like `crawler.demo_site.nginx`. Without
nginx, a small asyncio server in its own process answers GET and HEAD with `loop.sendfile`
(zero-copy), keep-alive, and `Range: bytes=N-` (what a resumed download asks).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

__all__ = ["FileServer", "free_port", "nginx_binary"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _nginx_config(root: Path, work: Path, port: int) -> str:
    temp = work / "temp"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\n"
        f"pid {work / 'nginx.pid'};\nerror_log {work / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n    default_type application/octet-stream;\n"
        "    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n"
        "    keepalive_requests 1000000;\n    keepalive_timeout 75s;\n"
        "    server_tokens off;\n    etag on;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        root {root};\n    }}\n"
        "}\n"
    )


def _wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class FileServer:
    """Serves the files under `root` on a free loopback port for a `with` block."""

    def __init__(self, root: str | Path, *, kind: str = "auto") -> None:
        self.root = Path(root).resolve()
        binary = nginx_binary()
        if kind == "auto":
            kind = "nginx" if binary else "python"
        if kind == "nginx" and binary is None:
            raise SystemExit("nginx is not installed (use --server python)")
        self.kind = kind
        self._binary = binary
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._python: multiprocessing.Process | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def pids(self) -> list[int]:
        """The server's processes (nginx master and worker, or the Python one)."""
        if self._python is not None and self._python.pid is not None:
            return [self._python.pid]
        if self._process is None:
            return []
        try:
            import psutil

            master = psutil.Process(self._process.pid)
            return [master.pid, *(child.pid for child in master.children())]
        except Exception:
            return [self._process.pid]

    def __enter__(self) -> FileServer:
        if self.kind == "nginx":
            self._start_nginx()
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

    def _start_nginx(self) -> None:
        assert self._binary is not None
        self._work = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        work = Path(self._work.name)
        (work / "temp").mkdir()
        config = work / "nginx.conf"
        config.write_text(_nginx_config(self.root, work, self.port))
        self._process = subprocess.Popen(
            [self._binary, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_listening(self.port, time.monotonic() + 15):
            log = (work / "error.log").read_text(errors="replace").strip().splitlines()
            self.__exit__(None, None, None)
            raise SystemExit(f"nginx did not start: {(log or ['no log'])[-1]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGQUIT)
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._python is not None:
            self._python.terminate()
            self._python.join(5)
            self._python = None
        if self._work is not None:
            self._work.cleanup()
            self._work = None


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
