"""A `http.server` handler class served on a free loopback port in a thread, for tests of the
`crawl` command against small purpose-made sites (a spider trap, sitemaps, cookies, auth).

    with handler_server(MyHandler) as origin:    # "http://127.0.0.1:PORT"
        crawl("run", ..., origin + "/")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def handler_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="handler-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing (the default writes a line per request to stderr)."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(
        self, status: int, body: bytes, content_type: str = "text/html", **headers: str
    ) -> None:
        """One whole response with a Content-Length (header names: Set_Cookie -> Set-Cookie)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)
