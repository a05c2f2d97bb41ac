"""Opening one transport: TCP (+TLS), a Unix socket, or a tunnel through an HTTP proxy.

No pooling and no HTTP here beyond CONNECT: the connector asks for a transport and gets one, or
an exception from the client's hierarchy that says what went wrong and where:

* the name did not resolve: `ClientConnectorDNSError` naming the host;
* no address accepted TCP: `ClientConnectorError` (`ClientProxyConnectionError` for a proxy);
* the certificate did not verify: `ClientConnectorCertificateError`; other TLS failures:
  `ClientConnectorSSLError`; a pinned certificate did not match: `ServerFingerprintMismatch`,
  raised after closing the transport and before any request byte was written;
* the proxy refused CONNECT: `ClientHttpProxyError` with its status;
* TCP connect plus TLS handshake (plus CONNECT) took longer than `sock_connect`:
  `ConnectionTimeoutError`.

Addresses are tried with Happy Eyeballs (RFC 8305, via `aiohappyeyeballs`): the next address is
started `happy_eyeballs_delay` seconds after the previous one unless that one already connected
or failed, with address families interleaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import aiohappyeyeballs
from yarl import URL

from crawler.http._proxy_tunnel import (
    ConnectResponseReader,
    await_connect_answer,
    hand_over_plain_tunnel,
    proxy_key,
)
from crawler.http._proxy_wire import connect_request, proxy_authorization
from crawler.http.auth import BasicAuth
from crawler.http.dns_cache import HostResolver
from crawler.http.errors import (
    ClientConnectorCertificateError,
    ClientConnectorDNSError,
    ClientConnectorError,
    ClientConnectorSSLError,
    ClientProxyConnectionError,
    ConnectionKeyInfo,
    ConnectionTimeoutError,
    UnixClientConnectorError,
)
from crawler.http.resolver import ResolveResult
from crawler.http.tls import Fingerprint, SSLSetting, ssl_context_for

if TYPE_CHECKING:
    from crawler.http.tracing import Trace

__all__ = [
    "open_connection",
    "open_proxy_connection",
    "open_tunnel",
    "open_unix_connection",
    "proxy_key",
]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
ProtocolFactory = Callable[[], _P]


# --- shared pieces ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _deadline(seconds: float | None, where: str) -> AsyncIterator[None]:
    """Bound the block by `seconds` (None or <= 0: unbounded) and say where it stalled."""
    if seconds is None or seconds <= 0:
        yield
        return
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield
    except TimeoutError as exc:
        if timeout.expired():
            raise ConnectionTimeoutError(f"Connection timeout to {where}") from exc
        raise


def _connect_failure(
    exc: BaseException, key: ConnectionKeyInfo, plain_error: type[ClientConnectorError]
) -> ClientConnectorError:
    """Our exception for an OS or TLS error met while connecting."""
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return ClientConnectorCertificateError(key, exc)
    if isinstance(exc, ssl_module.SSLError):
        return ClientConnectorSSLError(key, exc)
    if isinstance(exc, OSError):
        return plain_error(key, exc)
    # uvloop may raise RuntimeError where asyncio raises OSError.
    return plain_error(key, OSError(None, str(exc) or type(exc).__name__))


def _addr_infos(hosts: list[ResolveResult]) -> list[aiohappyeyeballs.AddrInfoType]:
    infos: list[aiohappyeyeballs.AddrInfoType] = []
    for entry in hosts:
        address: tuple[str, int] | tuple[str, int, int, int]
        if entry["family"] == socket.AF_INET6:
            address = (entry["host"], entry["port"], 0, 0)
        else:
            address = (entry["host"], entry["port"])
        infos.append((entry["family"], socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address))
    return infos


def _server_hostname(host: str, server_hostname: str | None) -> str:
    # A trailing dot is valid in DNS but certificates never carry it.
    return server_hostname if server_hostname else host.rstrip(".")


def _check_pin(
    transport: asyncio.BaseTransport, ssl: SSLSetting | None, host: str, port: int
) -> None:
    """Enforce a `Fingerprint` pin, closing the transport before anything is written on it."""
    if isinstance(ssl, Fingerprint):
        try:
            ssl.check(transport, host, port)
        except BaseException:
            transport.close()
            raise


async def _dial(
    protocol_factory: ProtocolFactory[_P],
    *,
    host: str,
    port: int,
    resolver: HostResolver,
    traces: Sequence[Trace] | None = None,
    ssl: SSLSetting | None,
    server_hostname: str | None,
    family: int,
    local_addr: tuple[str, int] | None,
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    key: ConnectionKeyInfo,
    plain_error: type[ClientConnectorError],
    dns_error: type[ClientConnectorError],
    sock_connect: float | None,
    where: str,
) -> tuple[asyncio.Transport, _P]:
    """Resolve, then race the addresses and do TLS within `sock_connect` seconds."""
    try:
        hosts = await resolver.resolve(host, port, family, traces)
    except OSError as exc:
        raise dns_error(key, exc) from exc
    async with _deadline(sock_connect, where):
        return await _connect(
            protocol_factory,
            _addr_infos(hosts),
            host=host,
            port=port,
            ssl=ssl,
            server_hostname=server_hostname,
            local_addr=local_addr,
            happy_eyeballs_delay=happy_eyeballs_delay,
            interleave=interleave,
            key=key,
            plain_error=plain_error,
        )


async def _connect(
    protocol_factory: ProtocolFactory[_P],
    addr_infos: list[aiohappyeyeballs.AddrInfoType],
    *,
    host: str,
    port: int,
    ssl: SSLSetting | None,
    server_hostname: str | None,
    local_addr: tuple[str, int] | None,
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    key: ConnectionKeyInfo,
    plain_error: type[ClientConnectorError],
) -> tuple[asyncio.Transport, _P]:
    try:
        sock = await aiohappyeyeballs.start_connection(
            addr_infos,
            local_addr_infos=aiohappyeyeballs.addr_to_addr_infos(local_addr),
            happy_eyeballs_delay=happy_eyeballs_delay,
            interleave=interleave,
        )
    except (OSError, RuntimeError) as exc:
        raise _connect_failure(exc, key, plain_error) from exc
    loop = asyncio.get_running_loop()
    try:
        if ssl is None:
            transport, protocol = await loop.create_connection(protocol_factory, sock=sock)
        else:
            transport, protocol = await loop.create_connection(
                protocol_factory,
                sock=sock,
                ssl=ssl_context_for(ssl),
                server_hostname=_server_hostname(host, server_hostname),
            )
    except BaseException as exc:
        # create_connection closes the transport it made; the bare socket is ours to close.
        sock.close()
        if isinstance(exc, OSError | RuntimeError):
            raise _connect_failure(exc, key, plain_error) from exc
        raise
    _check_pin(transport, ssl, host, port)
    return transport, protocol  # type: ignore[return-value]


# --- direct TCP / TLS ------------------------------------------------------------------------


async def open_connection(
    protocol_factory: ProtocolFactory[_P],
    *,
    host: str,
    port: int,
    resolver: HostResolver,
    traces: Sequence[Trace] | None = None,
    ssl: SSLSetting | None,
    server_hostname: str | None = None,
    family: int = 0,
    local_addr: tuple[str, int] | None = None,
    happy_eyeballs_delay: float | None = 0.25,
    interleave: int | None = None,
    sock_connect: float | None = None,
    key: ConnectionKeyInfo,
) -> tuple[asyncio.Transport, _P]:
    """A connected transport to host:port: plain TCP when `ssl` is None, else TLS.

    `server_hostname` overrides both the SNI name and the name the certificate must match.
    `sock_connect` bounds the TCP connect and the TLS handshake together (DNS is not included:
    the caller's `connect` timeout covers it).
    """
    return await _dial(
        protocol_factory,
        host=host,
        port=port,
        resolver=resolver,
        traces=traces,
        ssl=ssl,
        server_hostname=server_hostname,
        family=family,
        local_addr=local_addr,
        happy_eyeballs_delay=happy_eyeballs_delay,
        interleave=interleave,
        key=key,
        plain_error=ClientConnectorError,
        dns_error=ClientConnectorDNSError,
        sock_connect=sock_connect,
        where=f"host {host}:{port}",
    )


# --- Unix sockets ----------------------------------------------------------------------------


async def open_unix_connection(
    protocol_factory: ProtocolFactory[_P],
    *,
    path: str,
    key: ConnectionKeyInfo,
    sock_connect: float | None = None,
) -> tuple[asyncio.Transport, _P]:
    """A transport over the Unix socket at `path` (the URL's host only names the Host header)."""
    loop = asyncio.get_running_loop()
    async with _deadline(sock_connect, f"unix socket {path}"):
        try:
            transport, protocol = await loop.create_unix_connection(protocol_factory, path)
        except OSError as exc:
            raise UnixClientConnectorError(path, key, exc) from exc
    return transport, protocol  # type: ignore[return-value]


# --- HTTP proxies ----------------------------------------------------------------------------


def _proxy_address(proxy: URL) -> tuple[str, int]:
    if proxy.scheme not in ("http", "https") or not proxy.host:
        raise ValueError(f"only http:// and https:// proxies are supported, got {proxy!s}")
    port = proxy.port or (443 if proxy.scheme == "https" else 80)
    return proxy.host, port


async def open_proxy_connection(
    protocol_factory: ProtocolFactory[_P],
    *,
    proxy: URL,
    resolver: HostResolver,
    traces: Sequence[Trace] | None = None,
    sock_connect: float | None = None,
    proxy_ssl: SSLSetting = True,
    family: int = 0,
    local_addr: tuple[str, int] | None = None,
    happy_eyeballs_delay: float | None = 0.25,
    interleave: int | None = None,
) -> tuple[asyncio.Transport, _P]:
    """A transport to the proxy itself (for absolute-form requests to http:// URLs).

    An `https://` proxy is reached over TLS verified by `proxy_ssl`. Every failure to reach it is
    a `ClientProxyConnectionError` (TLS ones keep their certificate / SSL error classes).
    """
    host, port = _proxy_address(proxy)
    return await _dial(
        protocol_factory,
        host=host,
        port=port,
        resolver=resolver,
        traces=traces,
        ssl=proxy_ssl if proxy.scheme == "https" else None,
        server_hostname=None,
        family=family,
        local_addr=local_addr,
        happy_eyeballs_delay=happy_eyeballs_delay,
        interleave=interleave,
        key=proxy_key(proxy),
        plain_error=ClientProxyConnectionError,
        dns_error=ClientProxyConnectionError,
        sock_connect=sock_connect,
        where=f"proxy {host}:{port}",
    )


async def open_tunnel(
    protocol_factory: ProtocolFactory[_P],
    *,
    proxy: URL,
    proxy_headers: Mapping[str, str],
    target_host: str,
    target_port: int,
    ssl: SSLSetting | None,
    server_hostname: str | None,
    resolver: HostResolver,
    traces: Sequence[Trace] | None = None,
    sock_connect: float | None,
    key: ConnectionKeyInfo,
    proxy_auth: BasicAuth | None = None,
    proxy_ssl: SSLSetting = True,
    family: int = 0,
    local_addr: tuple[str, int] | None = None,
    happy_eyeballs_delay: float | None = 0.25,
    interleave: int | None = None,
) -> tuple[asyncio.Transport, _P]:
    """A transport to target_host:target_port through a CONNECT tunnel in `proxy`.

    With `ssl` set, TLS to the origin runs inside the tunnel and is verified against the origin's
    name (or `server_hostname`); with `ssl=None` the tunnel carries plain bytes. Proxy
    credentials (`proxy_auth`, else the proxy URL's user:password) go only to the proxy.
    `sock_connect` bounds reaching the proxy, the CONNECT exchange and the TLS handshake.
    """
    authorization = proxy_authorization(proxy, proxy_auth)
    request = connect_request(target_host, target_port, proxy_headers, authorization=authorization)
    raw, reader = await open_proxy_connection(
        ConnectResponseReader,
        proxy=proxy,
        resolver=resolver,
        traces=traces,
        sock_connect=sock_connect,
        proxy_ssl=proxy_ssl,
        family=family,
        local_addr=local_addr,
        happy_eyeballs_delay=happy_eyeballs_delay,
        interleave=interleave,
    )
    try:
        async with _deadline(sock_connect, f"host {target_host}:{target_port} via proxy"):
            raw.write(request)
            leftover = await await_connect_answer(
                reader, proxy, target_host, target_port, proxy_headers
            )
            protocol = protocol_factory()
            if ssl is None:
                return hand_over_plain_tunnel(raw, protocol, leftover)
            if leftover:
                raise ClientProxyConnectionError(
                    proxy_key(proxy),
                    OSError(None, "proxy sent data inside the tunnel before the TLS handshake"),
                )
            tls = await _start_tls(raw, protocol, ssl, target_host, server_hostname, key)
    except BaseException:
        raw.close()
        raise
    _check_pin(tls, ssl, target_host, target_port)
    return tls, protocol


async def _start_tls(
    raw: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    ssl: SSLSetting,
    target_host: str,
    server_hostname: str | None,
    key: ConnectionKeyInfo,
) -> asyncio.Transport:
    """TLS to the origin inside the tunnel, verified against the origin's name."""
    loop = asyncio.get_running_loop()
    try:
        tls = await loop.start_tls(
            raw,
            protocol,
            ssl_context_for(ssl),
            server_side=False,
            server_hostname=_server_hostname(target_host, server_hostname),
        )
    except (OSError, RuntimeError) as exc:
        raise _connect_failure(exc, key, ClientConnectorError) from exc
    if tls is None:
        raise ClientConnectorError(key, OSError(None, "tunnel closed during TLS handshake"))
    # start_tls does not announce the new transport to the protocol; we do.
    protocol.connection_made(tls)
    return tls
