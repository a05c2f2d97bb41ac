"""`ClientTimeout` and the deadline that enforces `total` across a whole request.

`total` bounds everything from the call to the last body byte: waiting for a pool slot,
connecting, sending, the head, and reading the body. `connect` bounds getting a connection (pool
wait included), `sock_connect` each TCP connect plus TLS handshake, `sock_read` the silence
between two reads. `None` or `0` disables a bound. Timeouts raise subclasses of
`asyncio.TimeoutError`: `ServerTimeoutError` (total), `ConnectionTimeoutError` (connect,
sock_connect) and `SocketTimeoutError` (sock_read).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler.http.errors import ServerTimeoutError

if TYPE_CHECKING:
    from crawler.http.connection import Connection
    from crawler.http.streams import StreamReader

__all__ = ["DEFAULT_TIMEOUT", "ClientTimeout", "Deadline", "as_timeout"]


def _bound(value: float | None) -> float | None:
    return value if value else None


@dataclass(frozen=True, slots=True)
class ClientTimeout:
    """Timeouts in seconds; None or 0 turns one off."""

    total: float | None = None
    connect: float | None = None
    sock_read: float | None = None
    sock_connect: float | None = None
    ceil_threshold: float = 5

    def __post_init__(self) -> None:
        for name in ("total", "connect", "sock_read", "sock_connect"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"ClientTimeout.{name} must be a non-negative number or None")
            object.__setattr__(self, name, _bound(value))


# The guide: "By default all IO operations have 5min timeout."
DEFAULT_TIMEOUT = ClientTimeout(total=300, sock_connect=30)


def as_timeout(value: ClientTimeout | float | None) -> ClientTimeout:
    """A request's `timeout=`: a ClientTimeout, a number of seconds (total), or None (none)."""
    if isinstance(value, ClientTimeout):
        return value
    if value is None:
        return ClientTimeout()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a ClientTimeout or a number, not {type(value).__name__}")
    return ClientTimeout(total=value)


class Deadline:
    """The `total` timeout of one request.

    While the request is being made (`enter`..`exit`) expiry cancels the task doing it, and
    `exit` turns that cancellation into `ServerTimeoutError`. Once a response is handed out,
    `watch_body` moves the deadline onto its body: expiry then fails the body stream.
    """

    __slots__ = (
        "_body_conn",
        "_body_stream",
        "_cancelling",
        "_expired",
        "_handle",
        "_task",
        "total",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, total: float) -> None:
        self.total = total
        self._expired = False
        self._task: asyncio.Task[object] | None = asyncio.current_task(loop)
        self._cancelling = self._task.cancelling() if self._task is not None else 0
        self._body_conn: Connection | None = None
        self._body_stream: StreamReader | None = None
        self._handle: asyncio.TimerHandle | None = loop.call_at(loop.time() + total, self._fire)

    @property
    def expired(self) -> bool:
        return self._expired

    def error(self) -> ServerTimeoutError:
        return ServerTimeoutError(f"request took longer than the total timeout of {self.total} s")

    def _fire(self) -> None:
        self._handle = None
        self._expired = True
        conn, stream = self._body_conn, self._body_stream
        if stream is not None:
            if conn is not None and conn.owns(stream):
                conn.fail(self.error())
            elif not stream.is_eof() and stream.exception() is None:
                stream.set_exception(self.error())
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def check_cancelled(self) -> bool:
        """True when a CancelledError caught by the request came from this deadline.

        Undoes our own cancel (so an outer `asyncio.timeout` or cancel still works).
        """
        if not self._expired or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def watch_body(self, conn: Connection | None, stream: StreamReader) -> None:
        """Keep bounding the request while its body is read; stop once the body has ended."""
        if self._handle is None:
            return
        if stream.is_eof():
            self.cancel()
            return
        self._body_conn = conn
        self._body_stream = stream
        stream.on_eof(self.cancel)

    def cancel(self) -> None:
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()
        self._body_conn = None
        self._body_stream = None
