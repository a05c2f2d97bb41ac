"""The connection pool: limits, FIFO waiters, idle connections per key, keep-alive expiry.

Accounting, exact under cancellation:

* a connection is *acquired* from the moment a request holds a slot for it (while it is being
  opened too) until it goes back to the idle lists or is closed; `limit` (total) and
  `limit_per_host` (per key) bound acquired connections;
* *idle* connections sit in a per-key insertion-ordered dict (LIFO reuse, O(1) removal) and in
  one global one (oldest first, for expiry and for making room under `limit`);
* *waiters* queue FIFO for a slot; a waiter woken with a slot that is cancelled before it runs
  hands the slot back, and a cancelled waiter frees nothing it did not hold.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler.http.connection import ConnState

if TYPE_CHECKING:
    from crawler.http.connection import Connection
    from crawler.http.tracing import Trace

__all__ = ["Pool", "PoolStats"]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of the pool: every figure is back to 0 (idle aside) when nothing leaks."""

    acquired: int  # held by requests, including those being opened
    opening: int  # slots whose connection is still being opened
    idle: int  # open and waiting for reuse
    waiters: int  # requests queued for a slot
    limit: int
    limit_per_host: int


class Pool:
    """Slots and idle connections, keyed by whatever the connector uses as a connection key."""

    def __init__(self, *, limit: int | None, limit_per_host: int, keepalive_timeout: float) -> None:
        self.limit = limit or 0
        self.limit_per_host = limit_per_host or 0
        self.keepalive_timeout = keepalive_timeout
        self._acquired = 0
        self._opening = 0
        self._per_key: dict[Hashable, int] = {}
        self._active: set[Connection] = set()
        self._idle: dict[Hashable, dict[Connection, None]] = {}
        self._idle_all: dict[Connection, None] = {}
        self._waiter_count = 0
        # One FIFO when only the total limit applies; one per key with per-host limits.
        self._waiters: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._cleanup_handle: asyncio.TimerHandle | None = None

    # --- figures ---

    def stats(self) -> PoolStats:
        return PoolStats(
            acquired=self._acquired,
            opening=self._opening,
            idle=len(self._idle_all),
            waiters=self._waiter_count,
            limit=self.limit,
            limit_per_host=self.limit_per_host,
        )

    def acquired_for(self, key: Hashable) -> int:
        return self._per_key.get(key, 0)

    @property
    def active(self) -> set[Connection]:
        return self._active

    @property
    def idle_connections(self) -> list[Connection]:
        return list(self._idle_all)

    # --- getting a slot ---

    def take_idle(self, key: Hashable, now: float) -> Connection | None:
        """A reusable idle connection for `key`, now acquired; None when there is none.

        Only when no one is queued for it, so waiters keep their turn.
        """
        if self._waiter_count and self._waiters.get(key if self.limit_per_host else None):
            return None
        conn = self._pop_idle(key, now)
        if conn is not None:
            self._count_in(key)
            self._active.add(conn)
        return conn

    def _pop_idle(self, key: Hashable, now: float) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn, _ = idle.popitem()
            del self._idle_all[conn]
            if not idle:
                del self._idle[key]
            if conn.is_reusable() and now - conn.idle_since < self.keepalive_timeout:
                conn.state = ConnState.ACTIVE
                return conn
            conn.state = ConnState.CLOSED
            if conn.transport is not None:
                conn.transport.close()
            idle = self._idle.get(key)
        return None

    def has_slot(self, key: Hashable) -> bool:
        if self.limit and self._acquired >= self.limit:
            return False
        return not (self.limit_per_host and self._per_key.get(key, 0) >= self.limit_per_host)

    async def wait_for_slot(self, key: Hashable, traces: Sequence[Trace] | None = None) -> None:
        """Reserve a slot for `key`, queueing FIFO while none is free.

        Only a request that really queues tells its `traces` (connection_queued_start/end).
        """
        queue_key = key if self.limit_per_host else None
        if self.has_slot(key) and not (self._waiter_count and self._waiters.get(queue_key)):
            self._count_in(key)
            return
        queue = self._waiters.get(queue_key)
        if queue is None:
            queue = self._waiters[queue_key] = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        self._waiter_count += 1
        try:
            # Inside the try: a failing callback leaves the queue (or hands a granted slot
            # back) exactly as a cancellation would.
            if traces:
                for trace in traces:
                    await trace.send_connection_queued_start()
            await waiter
            if traces:
                for trace in traces:
                    await trace.send_connection_queued_end()
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted a slot, but cancelled before we could use it: give it back.
                self.release_slot(key)
            else:
                waiter.cancel()
                self._waiter_count -= 1
                if not queue:
                    self._waiters.pop(queue_key, None)
            raise

    def take_reserved_idle(self, key: Hashable, now: float) -> Connection | None:
        """With a slot already reserved: an idle connection to use it on, if any."""
        conn = self._pop_idle(key, now)
        if conn is not None:
            self._active.add(conn)
        return conn

    def opening(self, delta: int) -> None:
        self._opening += delta

    def opened(self, conn: Connection) -> None:
        """A new connection fills a reserved slot."""
        self._active.add(conn)

    def release_slot(self, key: Hashable) -> None:
        """Give back a reserved slot that got no connection (open failed, cancelled)."""
        self._count_out(key)
        self._wake(key)

    def make_room(self) -> None:
        """Close the oldest idle connections so open sockets stay within `limit`."""
        if not self.limit:
            return
        while self._idle_all and self._acquired + len(self._idle_all) > self.limit:
            self._close_idle(next(iter(self._idle_all)))

    # --- giving back ---

    def put_idle(self, conn: Connection, now: float, loop: asyncio.AbstractEventLoop) -> None:
        """An acquired connection finished its exchange and may be reused."""
        key = conn.key
        self._active.discard(conn)
        self._count_out(key)
        conn.state = ConnState.IDLE
        conn.idle_since = now
        conn.reused = True
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = {}
        idle[conn] = None
        self._idle_all[conn] = None
        if self._cleanup_handle is None:
            self._cleanup_handle = loop.call_at(now + self.keepalive_timeout, self._cleanup, loop)
        self._wake(key)

    def forget(self, conn: Connection) -> None:
        """A connection closed (by us or the peer) or was detached: drop it from the figures."""
        if conn in self._active:
            self._active.discard(conn)
            self._count_out(conn.key)
            self._wake(conn.key)
            return
        if conn in self._idle_all:
            del self._idle_all[conn]
            idle = self._idle.get(conn.key)
            if idle is not None:
                idle.pop(conn, None)
                if not idle:
                    del self._idle[conn.key]

    def close_all(self) -> list[Connection]:
        """Every connection the pool knows (to be closed by the caller); fail the waiters."""
        conns = list(self._active) + list(self._idle_all)
        for queue in self._waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(ConnectionError("connector is closed"))
        if self._cleanup_handle is not None:
            self._cleanup_handle.cancel()
            self._cleanup_handle = None
        return conns

    # --- internals ---

    def _count_in(self, key: Hashable) -> None:
        self._acquired += 1
        if self.limit_per_host:
            self._per_key[key] = self._per_key.get(key, 0) + 1

    def _count_out(self, key: Hashable) -> None:
        self._acquired -= 1
        if self.limit_per_host:
            left = self._per_key.get(key, 0) - 1
            if left > 0:
                self._per_key[key] = left
            else:
                self._per_key.pop(key, None)

    def _wake(self, freed_key: Hashable) -> None:
        """Hand freed slots to the longest-waiting requests that can use them."""
        if not self._waiter_count:
            return
        if not self.limit_per_host:
            queue = self._waiters.get(None)
            while queue and self.has_slot(None):
                self._grant(queue.popleft(), None)
            if not queue:
                self._waiters.pop(None, None)
            return
        # Per-host limits: the key that just freed a slot first, then the others in order.
        keys = [freed_key, *(k for k in self._waiters if k != freed_key)]
        for key in keys:
            queue = self._waiters.get(key)
            while queue and self.has_slot(key):
                self._grant(queue.popleft(), key)
            if queue is not None and not queue:
                del self._waiters[key]
            if self.limit and self._acquired >= self.limit:
                return

    def _grant(self, waiter: asyncio.Future[None], key: Hashable) -> None:
        if waiter.done():
            return  # cancelled while queued: it already left the count
        self._waiter_count -= 1
        self._count_in(key)
        waiter.set_result(None)

    def _close_idle(self, conn: Connection) -> None:
        self.forget(conn)
        conn.state = ConnState.CLOSED
        if conn.transport is not None:
            conn.transport.close()

    def _cleanup(self, loop: asyncio.AbstractEventLoop) -> None:
        self._cleanup_handle = None
        now = loop.time()
        deadline = now - self.keepalive_timeout
        while self._idle_all:
            oldest = next(iter(self._idle_all))
            if oldest.idle_since > deadline:
                self._cleanup_handle = loop.call_at(
                    oldest.idle_since + self.keepalive_timeout, self._cleanup, loop
                )
                return
            self._close_idle(oldest)
