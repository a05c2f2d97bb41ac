"""Serving files with nginx, for benchmarks that want a server that is surely not the bottleneck.

`NginxProcess` runs nginx from a temporary folder that holds its config, pid, logs and temp
files, so nothing is written anywhere else. `NginxSite` serves a site folder (written by
`write_site`) on the ports of its manifest, redirects becoming `return` locations (fault
resources need our own server); `static_files_config` serves one plain folder.

    with NginxSite("site-dir") as nginx: ...nginx.seeds...
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from crawler.demo_site.files import host_folder, load_site
from crawler.demo_site.resources import Flaky, Redirect
from crawler.demo_site.site import Site, SiteError

__all__ = ["NginxProcess", "NginxSite", "find_nginx", "nginx_config", "static_files_config"]

_TYPES = """
    types {
        text/html html htm;
        text/css css;
        text/plain txt;
        application/octet-stream bin;
    }
"""


def find_nginx() -> str | None:
    """The nginx binary (on PATH, or Debian's /usr/sbin, which a user's PATH often lacks)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _main_and_http(work_dir: Path, *, workers: int, types: str) -> str:
    """Everything of an nginx.conf but its `server` blocks (and the closing brace)."""
    temp = work_dir / "temp"
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes {workers};\n"
        f"pid {work_dir / 'nginx.pid'};\nerror_log {work_dir / 'error.log'} warn;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        f"    access_log off;\n{types}    default_type application/octet-stream;\n"
        "    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n"
        "    keepalive_requests 1000000;\n    keepalive_timeout 75s;\n"
        "    absolute_redirect off;\n    server_tokens off;\n    etag on;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
    )


def static_files_config(root: Path, work_dir: Path, address: str, port: int) -> str:
    """An nginx.conf serving the files under `root` on `address:port` (one worker)."""
    return (
        _main_and_http(work_dir, workers=1, types="")
        + f"    server {{\n        listen {address}:{port};\n        root {root};\n    }}\n}}\n"
    )


def nginx_config(site: Site, root: Path, work_dir: Path, *, workers: int = 1) -> str:
    """An nginx.conf serving `site`'s files under `root`, writing only inside `work_dir`."""
    if any(isinstance(r, Flaky) for host in site.hosts for r in host.routes.values()):
        raise SiteError("a site with faults needs the demo server; nginx cannot count failures")
    servers = []
    for host in site.hosts:
        redirects = "".join(
            f"        location = {path} {{ return {resource.status} {resource.location}; }}\n"
            for path, resource in host.routes.items()
            if isinstance(resource, Redirect)
        )
        servers.append(
            f"    server {{\n"
            f"        listen {host.address}:{host.port} reuseport;\n"
            f"        root {host_folder(root, host.index).resolve()};\n"
            f"        charset utf-8;\n"
            f"        charset_types text/html text/css text/plain;\n"
            f"{redirects}"
            f"    }}\n"
        )
    return _main_and_http(work_dir, workers=workers, types=_TYPES) + "".join(servers) + "}\n"


def _wait_listening(address: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class NginxProcess:
    """One nginx, run from a temporary folder, until `stop()`.

    `start(config_for, listens)` writes `config_for(work_dir)` as its nginx.conf, starts it and
    waits until every (address, port) of `listens` accepts connections; a failed start raises
    RuntimeError with the last line nginx logged.
    """

    def __init__(self, binary: str | None = None) -> None:
        found = binary or find_nginx()
        if found is None:
            raise RuntimeError("nginx is not installed")
        self.binary = found
        self.process: subprocess.Popen[bytes] | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None

    def start(
        self, config_for: Callable[[Path], str], listens: Sequence[tuple[str, int]]
    ) -> None:
        self._work = tempfile.TemporaryDirectory(prefix="crawl-nginx-")
        work = Path(self._work.name)
        (work / "temp").mkdir()
        config = work / "nginx.conf"
        config.write_text(config_for(work))
        command = [self.binary, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        for address, port in listens:
            if not _wait_listening(address, port, deadline):
                log = (work / "error.log").read_text(errors="replace") if work.exists() else ""
                self.stop()
                last = log.strip().splitlines()[-1:] or ["no log"]
                raise RuntimeError(f"nginx did not listen on port {port}: {last[0]}")

    @property
    def pids(self) -> list[int]:
        """The master's pid and its workers' (read from /proc; the master alone elsewhere)."""
        if self.process is None:
            return []
        master = self.process.pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            children = []
        return [master, *map(int, children)]

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._work is not None:
            self._work.cleanup()
            self._work = None


class NginxSite:
    """nginx serving a site folder on the ports of its manifest, for a `with` block."""

    def __init__(self, root: str | Path, *, workers: int = 1, binary: str | None = None) -> None:
        self.root = Path(root)
        self.workers = workers
        self.site: Site | None = None
        self._nginx = NginxProcess(binary)

    @property
    def seeds(self) -> list[str]:
        assert self.site is not None, "the site is not started"
        return self.site.seeds

    def __enter__(self) -> NginxSite:
        site, _ = load_site(self.root)
        self.site = site
        self._nginx.start(
            lambda work: nginx_config(site, self.root, work, workers=self.workers),
            [(host.address, host.port) for host in site.hosts],
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._nginx.stop()
