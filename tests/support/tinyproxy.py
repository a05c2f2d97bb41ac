"""A real tinyproxy on a free loopback port, for proxy tests.

    proxy = TinyProxy(require_binary("tinyproxy"), basic_auth=("user", "pass"))
    proxy.start(); ...; proxy.stop()

It serves absolute-form requests for http:// URLs and CONNECT tunnels to any port. With
`basic_auth` it answers 407 to requests without the right `Proxy-Authorization`; with
`deny_connect=True` it refuses every CONNECT (403).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port, wait_for_port


class TinyProxy:
    def __init__(
        self,
        binary: str,
        *,
        basic_auth: tuple[str, str] | None = None,
        deny_connect: bool = False,
    ) -> None:
        self.binary = binary
        self.port = free_port()
        self.basic_auth = basic_auth
        self.deny_connect = deny_connect
        self._dir = tempfile.TemporaryDirectory(prefix="crawl-tinyproxy-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "tinyproxy.log"

    def log(self) -> str:
        """What tinyproxy logged (connections, requests), for tests that check it was used."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _config(self) -> str:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "MaxClients 50",
            "Allow 127.0.0.1",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",
            "DisableViaHeader Yes",
        ]
        # Without any ConnectPort line tinyproxy tunnels to every port; one impossible port
        # makes it refuse all CONNECTs.
        if self.deny_connect:
            lines.append("ConnectPort 1")
        if self.basic_auth is not None:
            user, password = self.basic_auth
            lines.append(f"BasicAuth {user} {password}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        config = Path(self._dir.name) / "tinyproxy.conf"
        config.write_text(self._config())
        self._process = subprocess.Popen(
            [self.binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
