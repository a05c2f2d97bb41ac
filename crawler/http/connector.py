"""Connectors: where connections come from (`TCPConnector`, `UnixConnector`) and go back to.

A connector owns a `Pool` and opens new connections with the dialer (DNS through a cached
`HostResolver`, Happy Eyeballs, TLS, proxies). Requests call `connect(key)` and get a
`Connection`; the connection itself hands itself back (`_release`) when its response ended
cleanly, or reports that it closed (`_connection_closed`).

`ConnectionKey` names everything a pooled connection depends on: two requests share a connection
only when their keys are equal.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from yarl import URL

from crawler.http import dialer
from crawler.http._soon_writes import SoonWrites
from crawler.http.auth import BasicAuth
from crawler.http.connection import Connection
from crawler.http.dns_cache import HostResolver
from crawler.http.errors import (
    ClientConnectionError,
    ConnectionKeyInfo,
    ConnectionTimeoutError,
    ServerDisconnectedError,
)
from crawler.http.pool import Pool, PoolStats
from crawler.http.resolver import AbstractResolver, DefaultResolver
from crawler.http.timeouts import ClientTimeout
from crawler.http.tls import SSLSetting, resolve_ssl

if TYPE_CHECKING:
    from crawler.http.tracing import Trace

__all__ = [
    "BaseConnector",
    "ConnectionKey",
    "TCPConnector",
    "UnixConnector",
    "announce_reuse",
    "connect_within_timeout",
]

# One receive buffer per connector, shared by its connections: a protocol's buffer is only in
# use during its own buffer_updated() call, and every body piece is copied out of it there.
_READ_BUFFER_SIZE = 256 * 1024

_sentinel: Any = object()


class ConnectionKey(NamedTuple):
    """Everything a pooled connection depends on."""

    host: str
    port: int
    is_ssl: bool
    ssl: SSLSetting | None  # None for plain HTTP: TLS settings do not split plain connections
    proxy: URL | None = None
    proxy_auth: BasicAuth | None = None
    proxy_headers: tuple[tuple[str, str], ...] | None = None
    server_hostname: str | None = None

    def info(self) -> ConnectionKeyInfo:
        return ConnectionKeyInfo(
            host=self.host, port=self.port, is_ssl=self.is_ssl, ssl=self.ssl, proxy=self.proxy
        )


class BaseConnector(ABC):
    """A pool of keep-alive connections with `limit` (total) and `limit_per_host`.

    `limit=None` or `0` means no limit. `keepalive_timeout` is how long an idle connection is
    kept; `force_close=True` closes every connection after its response.
    """

    def __init__(
        self,
        *,
        keepalive_timeout: float | None = _sentinel,
        force_close: bool = False,
        limit: int | None = 100,
        limit_per_host: int = 0,
        enable_cleanup_closed: bool = False,
        timeout_ceil_threshold: float = 5,
    ) -> None:
        if force_close and keepalive_timeout is not _sentinel and keepalive_timeout is not None:
            raise ValueError("keepalive_timeout cannot be set if force_close is True")
        if keepalive_timeout is _sentinel or keepalive_timeout is None:
            keepalive_timeout = 15.0
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0 (0 or None means no limit)")
        if limit_per_host is not None and limit_per_host < 0:
            raise ValueError("limit_per_host must be >= 0 (0 means no limit)")
        self._pool = Pool(
            limit=limit, limit_per_host=limit_per_host or 0, keepalive_timeout=keepalive_timeout
        )
        self._keepalive_timeout = keepalive_timeout
        self._force_close = force_close
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        self._soon_writes: SoonWrites | None = None
        self._owned_by_session = False
        self._source_traceback = traceback.extract_stack(sys._getframe(1), limit=8)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stats()}>"

    def __del__(self, _warnings: Any = warnings) -> None:
        if self._closed or self._owned_by_session:
            return
        if not self._pool.active and not self._pool.idle_connections:
            return
        created = "".join(traceback.format_list(self._source_traceback[-2:])).strip()
        _warnings.warn(
            f"Unclosed connector {self!r} created at:\n{created}", ResourceWarning, stacklevel=1
        )

    # --- public figures ---

    @property
    def limit(self) -> int:
        return self._pool.limit

    @property
    def limit_per_host(self) -> int:
        return self._pool.limit_per_host

    @property
    def force_close(self) -> bool:
        return self._force_close

    @property
    def keepalive_timeout(self) -> float:
        return self._keepalive_timeout

    @property
    def closed(self) -> bool:
        return self._closed

    def soon_writes(self, loop: asyncio.AbstractEventLoop) -> SoonWrites:
        """Where this connector's connections queue their request heads (see `_soon_writes`)."""
        batch = self._soon_writes
        if batch is None or batch.loop is not loop:
            batch = self._soon_writes = SoonWrites(loop)
        return batch

    def stats(self) -> PoolStats:
        """Acquired, opening, idle and waiting counts, to check for leaks."""
        return self._pool.stats()

    # --- getting and giving back connections ---

    def take_idle(self, key: ConnectionKey) -> Connection | None:
        """An idle kept-alive connection for `key`, acquired, when one is ready now (and nobody
        waits for `key`); else None. What `connect` returns first, without awaiting: a caller
        needs no connect timeout around it."""
        if self._closed:
            return None
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return self._pool.take_idle(key, loop.time())

    async def connect(
        self,
        key: ConnectionKey,
        traces: Sequence[Trace] | None = None,
        timeout: ClientTimeout | None = None,
        *,
        fresh: bool = False,
    ) -> Connection:
        """A connection for `key`: an idle one, or a new one once a slot is free (FIFO).

        `fresh=True` skips idle connections (a retry after a kept-alive one proved stale).
        `traces` hear of reuse, queueing, creation and DNS as aiohttp's connector tells them.
        """
        if self._closed:
            raise ClientConnectionError("connector is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        pool = self._pool
        if not fresh:
            conn = pool.take_idle(key, loop.time())
            if conn is not None:
                return await announce_reuse(conn, traces) if traces else conn
        await pool.wait_for_slot(key, traces)
        try:
            conn = None if fresh else pool.take_reserved_idle(key, loop.time())
            if conn is None:
                conn = await self._open(key, timeout, traces)
                pool.opened(conn)
                return conn
        except BaseException:
            pool.release_slot(key)
            raise
        # Outside the try: from here the slot is the connection's, and closing it frees both.
        return await announce_reuse(conn, traces) if traces else conn

    async def _open(
        self, key: ConnectionKey, timeout: ClientTimeout | None, traces: Sequence[Trace] | None
    ) -> Connection:
        """A new connection in a slot already reserved (the caller frees it if this fails)."""
        pool = self._pool
        pool.make_room()
        if traces:
            for trace in traces:
                await trace.send_connection_create_start()
        pool.opening(1)
        try:
            conn = await self._create_connection(
                key, timeout.sock_connect if timeout is not None else None, traces
            )
        finally:
            pool.opening(-1)
        if traces:
            try:
                for trace in traces:
                    await trace.send_connection_create_end()
            except BaseException:
                conn.close()
                raise
        if conn.is_closed:
            raise ServerDisconnectedError("connection closed while it was being opened")
        if self._closed:
            conn.close()
            raise ClientConnectionError("connector is closed")
        return conn

    def _protocol_factory(self, key: ConnectionKey) -> Connection:
        return Connection(self, key, self._buffer)

    @abstractmethod
    async def _create_connection(
        self,
        key: ConnectionKey,
        sock_connect: float | None,
        traces: Sequence[Trace] | None = None,
    ) -> Connection:
        """Open a new connection for `key` (each connector knows how it dials); `traces` are
        told of the DNS look-up, when there is one."""

    def _release(self, conn: Connection) -> None:
        """Called by a connection whose response ended cleanly with keep-alive allowed."""
        transport = conn.transport
        if self._closed or self._force_close or transport is None or transport.is_closing():
            conn.close()
            return
        loop = self._loop or asyncio.get_running_loop()
        self._pool.put_idle(conn, loop.time(), loop)

    def _connection_closed(self, conn: Connection) -> None:
        """Called by a connection that closed or was detached."""
        self._pool.forget(conn)

    # --- closing ---

    async def close(self) -> None:
        """Close every connection (idle and in use) and wait until their sockets are closed."""
        if self._closed:
            return
        self._closed = True
        conns = self._pool.close_all()
        futures = []
        for conn in conns:
            if not conn.closed_future.done():
                futures.append(conn.closed_future)
            conn.close()
        if futures:
            # TLS close_notify may take a moment; a peer that never answers gets aborted.
            _, pending = await asyncio.wait(futures, timeout=2.0)
            for conn in conns:
                if conn.closed_future in pending and conn.transport is not None:
                    conn.transport.abort()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._close_resources()

    async def _close_resources(self) -> None:
        return None


class TCPConnector(BaseConnector):
    """Connections over TCP, with TLS for https and optional HTTP proxies.

    `ssl` is the default TLS setting (`True`: verify, `False`: do not, an `SSLContext`, or a
    `Fingerprint`); `verify_ssl`, `ssl_context` and `fingerprint` are the guide's older
    spellings of it. DNS answers are cached for `ttl_dns_cache` seconds unless
    `use_dns_cache=False`.
    """

    def __init__(
        self,
        *,
        verify_ssl: bool | None = None,
        fingerprint: bytes | None = None,
        use_dns_cache: bool = True,
        ttl_dns_cache: float | None = 10,
        family: int = 0,
        ssl_context: Any = None,
        ssl: SSLSetting = True,
        local_addr: tuple[str, int] | None = None,
        resolver: AbstractResolver | None = None,
        keepalive_timeout: float | None = _sentinel,
        force_close: bool = False,
        limit: int | None = 100,
        limit_per_host: int = 0,
        enable_cleanup_closed: bool = False,
        happy_eyeballs_delay: float | None = 0.25,
        interleave: int | None = None,
        timeout_ceil_threshold: float = 5,
    ) -> None:
        super().__init__(
            keepalive_timeout=keepalive_timeout,
            force_close=force_close,
            limit=limit,
            limit_per_host=limit_per_host,
            enable_cleanup_closed=enable_cleanup_closed,
            timeout_ceil_threshold=timeout_ceil_threshold,
        )
        self._ssl = resolve_ssl(
            ssl, verify_ssl=verify_ssl, ssl_context=ssl_context, fingerprint=fingerprint
        )
        self._own_resolver = resolver is None
        self._base_resolver = resolver if resolver is not None else DefaultResolver()
        self._resolver = HostResolver(
            self._base_resolver, use_cache=use_dns_cache, ttl=ttl_dns_cache
        )
        self._family = family
        self._local_addr = local_addr
        self._happy_eyeballs_delay = happy_eyeballs_delay
        self._interleave = interleave

    @property
    def family(self) -> int:
        return self._family

    @property
    def use_dns_cache(self) -> bool:
        return self._resolver.use_cache

    @property
    def ssl(self) -> SSLSetting:
        return self._ssl

    def clear_dns_cache(self, host: str | None = None, port: int | None = None) -> None:
        self._resolver.clear(host, port)

    def make_key(
        self,
        url: URL,
        *,
        ssl: SSLSetting = True,
        proxy: URL | None = None,
        proxy_auth: BasicAuth | None = None,
        proxy_headers: Mapping[str, str] | None = None,
        server_hostname: str | None = None,
    ) -> ConnectionKey:
        """The pool key for a request to `url` with these TLS and proxy settings."""
        return make_key(
            url,
            ssl=ssl if ssl is not True else self._ssl,
            proxy=proxy,
            proxy_auth=proxy_auth,
            proxy_headers=proxy_headers,
            server_hostname=server_hostname,
        )

    async def _create_connection(
        self,
        key: ConnectionKey,
        sock_connect: float | None,
        traces: Sequence[Trace] | None = None,
    ) -> Connection:
        factory = self._factory_for(key)
        common: dict[str, Any] = {
            "traces": traces,
            "resolver": self._resolver,
            "family": self._family,
            "local_addr": self._local_addr,
            "happy_eyeballs_delay": self._happy_eyeballs_delay,
            "interleave": self._interleave,
            "sock_connect": sock_connect,
        }
        if key.proxy is None:
            _, protocol = await dialer.open_connection(
                factory,
                host=key.host,
                port=key.port,
                ssl=key.ssl if key.is_ssl else None,
                server_hostname=key.server_hostname,
                key=key.info(),
                **common,
            )
        elif key.is_ssl:
            _, protocol = await dialer.open_tunnel(
                factory,
                proxy=key.proxy,
                proxy_headers=dict(key.proxy_headers or ()),
                target_host=key.host,
                target_port=key.port,
                ssl=key.ssl,
                server_hostname=key.server_hostname,
                key=key.info(),
                proxy_auth=key.proxy_auth,
                **common,
            )
        else:
            _, protocol = await dialer.open_proxy_connection(factory, proxy=key.proxy, **common)
        return protocol

    def _factory_for(self, key: ConnectionKey) -> Any:
        return lambda: self._protocol_factory(key)

    async def _close_resources(self) -> None:
        await self._resolver.close()
        if self._own_resolver:
            await self._base_resolver.close()


class UnixConnector(BaseConnector):
    """Every request goes over the Unix socket at `path`, whatever the URL's host."""

    def __init__(
        self,
        path: str,
        *,
        force_close: bool = False,
        keepalive_timeout: float | None = _sentinel,
        limit: int | None = 100,
        limit_per_host: int = 0,
    ) -> None:
        super().__init__(
            force_close=force_close,
            keepalive_timeout=keepalive_timeout,
            limit=limit,
            limit_per_host=limit_per_host,
        )
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def make_key(self, url: URL, **_: Any) -> ConnectionKey:
        # One socket serves every host; the key still splits by host for per-host limits.
        return make_key(url, ssl=None)

    async def _create_connection(
        self,
        key: ConnectionKey,
        sock_connect: float | None,
        traces: Sequence[Trace] | None = None,
    ) -> Connection:
        # No name to resolve: a Unix socket has no DNS signals, as in aiohttp.
        _, protocol = await dialer.open_unix_connection(
            lambda: self._protocol_factory(key),
            path=self._path,
            key=key.info(),
            sock_connect=sock_connect,
        )
        return protocol


def make_key(
    url: URL,
    *,
    ssl: SSLSetting | None,
    proxy: URL | None = None,
    proxy_auth: BasicAuth | None = None,
    proxy_headers: Mapping[str, str] | None = None,
    server_hostname: str | None = None,
) -> ConnectionKey:
    is_ssl = url.scheme in ("https", "wss")
    port = url.port or (443 if is_ssl else 80)
    return ConnectionKey(
        url.raw_host or "",
        port,
        is_ssl,
        (True if ssl is None else ssl) if is_ssl else None,
        proxy,
        proxy_auth,
        tuple(proxy_headers.items()) if proxy_headers else None,
        server_hostname if is_ssl else None,
    )



async def announce_reuse(conn: Connection, traces: Sequence[Trace]) -> Connection:
    """Tell `traces` that `conn`, a kept-alive connection just acquired, is reused.

    A failing callback closes the connection, which also frees its pool slot: the request
    fails without keeping a connection nobody will release.
    """
    try:
        for trace in traces:
            await trace.send_connection_reuseconn()
    except BaseException:
        conn.close()
        raise
    return conn


async def connect_within_timeout(
    connector: BaseConnector,
    key: ConnectionKey,
    url: URL,
    timeout: ClientTimeout,
    *,
    fresh: bool = False,
    traces: Sequence[Trace] | None = None,
) -> Connection:
    """`connector.connect(key)` bounded by `timeout.connect` (waiting for a pool slot included),
    which raises `ConnectionTimeoutError` naming the host."""
    if not timeout.connect:
        return await connector.connect(key, traces, timeout, fresh=fresh)
    try:
        async with asyncio.timeout(timeout.connect):
            return await connector.connect(key, traces, timeout, fresh=fresh)
    except TimeoutError as exc:
        if isinstance(exc, ConnectionTimeoutError):
            raise
        raise ConnectionTimeoutError(
            f"Connection timeout to host {url.host}:{url.port} (connect={timeout.connect} s)"
        ) from None
