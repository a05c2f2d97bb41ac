"""Serving a site folder (written by `write_site`) with nginx, for benchmarks that want a server
that is surely not the bottleneck. Everything nginx writes (pid, logs, temp files) stays in a
temporary folder; redirects become `return` locations. Fault resources need our own server.

    with NginxSite("site-dir") as seeds: ...
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from crawler.demo_site.files import host_folder, load_site
from crawler.demo_site.resources import Flaky, Redirect
from crawler.demo_site.site import Site, SiteError

_TYPES = """
    types {
        text/html html htm;
        text/css css;
        text/plain txt;
        application/octet-stream bin;
    }
"""


def nginx_config(site: Site, root: Path, work_dir: Path, *, workers: int = 1) -> str:
    """An nginx.conf serving `site`'s files under `root`, writing only inside `work_dir`."""
    if any(isinstance(r, Flaky) for host in site.hosts for r in host.routes.values()):
        raise SiteError("a site with faults needs the demo server; nginx cannot count failures")
    temp = work_dir / "temp"
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
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
    return (
        f"{user}daemon off;\nworker_processes {workers};\n"
        f"pid {work_dir / 'nginx.pid'};\nerror_log {work_dir / 'error.log'} warn;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        f"    access_log off;\n{_TYPES}    default_type application/octet-stream;\n"
        "    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n"
        "    keepalive_requests 1000000;\n    keepalive_timeout 75s;\n"
        "    absolute_redirect off;\n    server_tokens off;\n    etag on;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n" + "".join(servers) + "}\n"
    )


def _wait_listening(address: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class NginxSite:
    """nginx serving a site folder on the ports of its manifest, for a `with` block."""

    def __init__(self, root: str | Path, *, workers: int = 1, binary: str | None = None) -> None:
        self.root = Path(root)
        self.workers = workers
        self.binary = binary or shutil.which("nginx") or "/usr/sbin/nginx"
        self.site: Site | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None

    @property
    def seeds(self) -> list[str]:
        assert self.site is not None, "the site is not started"
        return self.site.seeds

    def __enter__(self) -> NginxSite:
        self.site, _ = load_site(self.root)
        self._work = tempfile.TemporaryDirectory(prefix="crawl-nginx-")
        work = Path(self._work.name)
        (work / "temp").mkdir()
        config = work / "nginx.conf"
        config.write_text(nginx_config(self.site, self.root, work, workers=self.workers))
        command = [self.binary, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        for host in self.site.hosts:
            if not _wait_listening(host.address, host.port, deadline):
                log = (work / "error.log").read_text(errors="replace") if work.exists() else ""
                self.__exit__(None, None, None)
                last = log.strip().splitlines()[-1:] or ["no log"]
                raise RuntimeError(f"nginx did not listen on port {host.port}: {last[0]}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
