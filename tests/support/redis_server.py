"""A real redis-server on a free loopback port, restartable for fault tests."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port, wait_for_port


class RedisServer:
    """One redis-server process. `restart()` keeps the port, so clients can reconnect."""

    def __init__(self, binary: str, *, persist: bool = False) -> None:
        self.binary = binary
        self.port = free_port()
        self.persist = persist
        self._dir = tempfile.TemporaryDirectory(prefix="crawl-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        return Path(self._dir.name)

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self._dir.name,
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
