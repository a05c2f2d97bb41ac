"""httpbin on werkzeug's threaded server, over TCP or a Unix socket, with chunked uploads.

pytest-httpbin's `httpbin` fixture runs on wsgiref: one connection at a time, and no chunked
request bodies (httpbin answers 501 to those unless it runs under gunicorn). The guide's
streaming-upload examples send chunked bodies, and its Unix-socket example needs httpbin on a
socket file, so this runs the same httpbin app on werkzeug's server, which de-chunks request
bodies itself (it sets `wsgi.input_terminated`, as gunicorn does). httpbin only believes that of
gunicorn, so the server software is reported as such; nothing else changes.

    with running_httpbin() as base: ...                     # "http://127.0.0.1:PORT"
    with running_httpbin(unix_path="/tmp/x.sock") as base:   # base is "http://httpbin.local"
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from httpbin import app as httpbin_app
from werkzeug.serving import make_server

__all__ = ["running_httpbin"]


def _accept_chunked(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("wsgi.input_terminated"):
            environ["SERVER_SOFTWARE"] = "gunicorn/werkzeug-dechunked"
        return app(environ, start_response)

    return wrapped


@contextmanager
def running_httpbin(*, unix_path: str | None = None) -> Iterator[str]:
    """Serve httpbin in a thread; yield its base URL."""
    host = f"unix://{unix_path}" if unix_path is not None else "127.0.0.1"
    server = make_server(host, 0, _accept_chunked(httpbin_app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        if unix_path is not None:
            yield "http://httpbin.local"
        else:
            yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
