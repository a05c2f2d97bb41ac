"""Client WebSockets: the handshake over a fresh transport, and `ws_connect` through a session.

`websocket_handshake` upgrades a connected transport (TCP or TLS, nothing sent yet) and returns
a `ClientWebSocketResponse`. `ws_connect` is what `ClientSession.ws_connect` runs: the session's
URL, header, cookie, auth, proxy, TLS and timeout settings, a connection from its connector, then
the handshake. Framing is wsproto's (ws_protocol.py); the user's API is in ws_response.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from crawler.http import dialer, proxy_env
from crawler.http.auth import BasicAuth
from crawler.http.connector import connect_within_timeout
from crawler.http.dns_cache import HostResolver
from crawler.http.errors import (
    ConnectionKeyInfo,
    ConnectionTimeoutError,
    RequestInfo,
    ServerDisconnectedError,
    ServerTimeoutError,
    TooManyRedirects,
    WSServerHandshakeError,
)
from crawler.http.redirects import REDIRECT_STATUSES, follow
from crawler.http.request import build_url, merge_headers, pick_auth
from crawler.http.resolver import DefaultResolver
from crawler.http.tls import SSLSetting, resolve_ssl
from crawler.http.ws_handshake import (
    WS_SCHEMES,
    HandshakeFailure,
    HeadersLike,
    build_upgrade_request,
    head_fields,
    negotiated_terms,
    normalize_ws_url,
)
from crawler.http.ws_messages import (
    ClientWSTimeout,
    WebSocketError,
    WSCloseCode,
    WSMessage,
    WSMsgType,
)
from crawler.http.ws_protocol import WebSocketProtocol, discard_transport
from crawler.http.ws_response import ClientWebSocketResponse

if TYPE_CHECKING:
    from crawler.http.session import ClientSession
    from crawler.http.timeouts import ClientTimeout
    from crawler.http.tracing import HandshakeTrace, Trace

__all__ = [
    "DEFAULT_MAX_MSG_SIZE",
    "DEFAULT_WS_CLIENT_TIMEOUT",
    "ClientWSTimeout",
    "ClientWebSocketResponse",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WebSocketError",
    "websocket_handshake",
    "ws_connect",
]

DEFAULT_MAX_MSG_SIZE = 4 * 1024 * 1024
DEFAULT_WS_CLIENT_TIMEOUT = ClientWSTimeout(ws_receive=None, ws_close=10.0)
# Redirects ws_connect follows before giving up: the session's default for requests.
MAX_REDIRECTS = 10


def ws_timeout(
    timeout: ClientWSTimeout | float | None, receive_timeout: float | None
) -> ClientWSTimeout:
    """Merge the two spellings: `timeout=ClientWSTimeout(...)`, or a number (close timeout)."""
    if isinstance(timeout, ClientWSTimeout):
        if receive_timeout is not None:
            return ClientWSTimeout(ws_receive=receive_timeout, ws_close=timeout.ws_close)
        return timeout
    return ClientWSTimeout(ws_receive=receive_timeout, ws_close=timeout)


async def websocket_handshake(
    transport: asyncio.Transport,
    *,
    url: str | URL,
    protocols: Iterable[str] = (),
    headers: HeadersLike | None = None,
    origin: str | None = None,
    compress: int = 15,
    timeout: ClientWSTimeout | float | None = 10.0,
    receive_timeout: float | None = None,
    autoclose: bool = True,
    autoping: bool = True,
    heartbeat: float | None = None,
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
    handshake_timeout: float | None = None,
    on_sent: Callable[[bytes], Awaitable[object]] | None = None,
) -> ClientWebSocketResponse:
    """Upgrade a freshly connected transport (TCP or TLS, nothing sent yet) to a WebSocket.

    The transport becomes the WebSocket's: it is closed on every failure. Raises
    WSServerHandshakeError (with the status) when the server does not upgrade properly,
    ServerDisconnectedError when it closes first, ServerTimeoutError after `handshake_timeout`.
    `timeout` bounds the close handshake (or is a ClientWSTimeout); `receive_timeout` bounds
    each `receive()`. `on_sent` is awaited with the upgrade request's bytes once they are
    written (tracing's request_headers_sent); if it raises, the transport is closed.
    """
    try:
        url = normalize_ws_url(url)
        request = build_upgrade_request(
            url, protocols=protocols, headers=headers, origin=origin, compress=compress
        )
        _check_limits(heartbeat, max_msg_size)
        protocol = WebSocketProtocol(
            asyncio.get_running_loop(),
            autoping=autoping,
            autoclose=autoclose,
            max_msg_size=max_msg_size,
        )
    except ValueError:
        # Nothing was sent; the transport is still ours to close, as on every other failure.
        await discard_transport(transport)
        raise
    budget = asyncio.timeout(handshake_timeout)
    try:
        head = protocol.start(transport, request)
        if on_sent is not None:
            await on_sent(head)
        async with budget:
            outcome = await protocol.wait_handshake()
    except BaseException as exc:
        # Timed out, cancelled (an outer timeout, say) or failed to write: the socket goes,
        # and is gone before we return, so no caller is left with a half-open connection.
        transport.abort()
        if protocol.transport is not None:
            await protocol.wait_closed()
        if isinstance(exc, TimeoutError) and budget.expired():
            raise ServerTimeoutError(
                f"WebSocket handshake with {url} timed out after {handshake_timeout} seconds"
            ) from None
        raise

    if isinstance(outcome, HandshakeFailure):
        await protocol.wait_closed()
        if outcome.status is None:
            raise ServerDisconnectedError(f"{outcome.reason} ({url})")
        headers = outcome.headers
        if not headers and protocol.upgrade_head is not None:
            # A 101 wsproto refused (a wrong Sec-WebSocket-Accept...) keeps no fields in its
            # error; aiohttp's error carries the answer's headers, so take them from the head.
            headers = tuple(head_fields(protocol.upgrade_head))
        raise WSServerHandshakeError(
            _request_info(url, request.extra_headers),
            status=outcome.status,
            message=outcome.reason,
            headers=CIMultiDictProxy(CIMultiDict(headers)),
        )

    ws = ClientWebSocketResponse(
        protocol,
        url=url,
        negotiated=negotiated_terms(outcome),
        timeout=ws_timeout(timeout, receive_timeout),
        autoclose=autoclose,
    )
    if heartbeat is not None:
        protocol.start_heartbeat(heartbeat)
    return ws


def _check_limits(heartbeat: float | None, max_msg_size: int) -> None:
    if heartbeat is not None and heartbeat <= 0:
        raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat}")
    if max_msg_size < 0:
        raise ValueError(f"max_msg_size must be >= 0 (0 = no limit), got {max_msg_size}")


def _request_info(url: URL, extra_headers: list[tuple[bytes, bytes]]) -> RequestInfo:
    headers = CIMultiDict(
        (name.decode("ascii"), value.decode("latin-1")) for name, value in extra_headers
    )
    return RequestInfo(url=url, method="GET", headers=CIMultiDictProxy(headers), real_url=url)


# --- through a session -----------------------------------------------------------------------


async def ws_connect(
    session: ClientSession,
    url: str | URL,
    *,
    protocols: Iterable[str] = (),
    timeout: ClientWSTimeout | float | None = DEFAULT_WS_CLIENT_TIMEOUT,
    receive_timeout: float | None = None,
    autoclose: bool = True,
    autoping: bool = True,
    heartbeat: float | None = None,
    auth: BasicAuth | None = None,
    origin: str | None = None,
    params: Any = None,
    headers: Any = None,
    proxy: str | URL | None = None,
    proxy_auth: BasicAuth | None = None,
    proxy_headers: Mapping[str, str] | None = None,
    ssl: SSLSetting = True,
    verify_ssl: bool | None = None,
    fingerprint: bytes | None = None,
    ssl_context: Any = None,
    server_hostname: str | None = None,
    compress: int = 0,
    max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
) -> ClientWebSocketResponse:
    """Open a WebSocket to `url` (ws://, wss://, http:// or https://) with `session`'s settings.

    The session's base URL, default headers, auth (or netrc with trust_env), cookies, proxy
    (explicit, session default or from the environment), TLS settings and timeout (`connect`
    for getting a connection, `sock_read` for the handshake answer, `total` for both) apply.
    Cookies set by the server's 101 answer go into the session's jar. A 301/302/303/307/308
    answer is followed (at most MAX_REDIRECTS times, TooManyRedirects beyond) as aiohttp's
    session request does, dropping the caller's credentials and cookies on a new origin; a
    ws(s):// Location is taken as http(s)://. `timeout` and the rest are the WebSocket's own
    (see `websocket_handshake`).
    """
    connector = session.connector
    if session.closed or connector is None:
        raise RuntimeError("Session is closed")
    http_url = build_url(_as_http(url), base_url=session.base_url, params=params)
    asked = http_url  # request_start reports it with its credentials, as aiohttp's does
    caller = merge_headers(session.headers, headers)
    http_url, auth = pick_auth(http_url, auth, session.auth, caller)
    if auth is None and session.trust_env:
        auth = proxy_env.netrc_auth(http_url.host or "")
    request_headers = _handshake_headers(session, http_url, caller, auth)
    ws_url = normalize_ws_url(http_url)
    # Refuse bad input (CR/LF in a header, a bad subprotocol...) before opening a connection.
    build_upgrade_request(
        ws_url, protocols=protocols, headers=request_headers, origin=origin, compress=compress
    )
    _check_limits(heartbeat, max_msg_size)
    if ssl is not True or verify_ssl is not None or ssl_context is not None or fingerprint:
        ssl = resolve_ssl(
            ssl, verify_ssl=verify_ssl, ssl_context=ssl_context, fingerprint=fingerprint
        )
    given_proxy_auth = proxy_auth
    proxy_url, proxy_auth = session._proxy_for(http_url, proxy, given_proxy_auth)
    client_timeout = session.timeout
    history: list[WSServerHandshakeError] = []
    tracer: HandshakeTrace | None = None
    if session.trace_configs:
        tracer = await _begin_trace(session, url, asked, caller, protocols, origin)
        tracer.hop(http_url)

    try:
        try:
            async with asyncio.timeout(client_timeout.total) as budget:
                while True:
                    transport = await _open_transport(
                        session,
                        http_url,
                        ssl=ssl,
                        proxy=proxy_url,
                        proxy_auth=proxy_auth,
                        proxy_headers=proxy_headers,
                        server_hostname=server_hostname,
                        timeout=client_timeout,
                        traces=tracer.traces if tracer is not None else None,
                    )
                    try:
                        ws = await websocket_handshake(
                            transport,
                            url=ws_url,
                            protocols=protocols,
                            headers=request_headers,
                            origin=origin,
                            compress=compress,
                            timeout=timeout,
                            receive_timeout=receive_timeout,
                            autoclose=autoclose,
                            autoping=autoping,
                            heartbeat=heartbeat,
                            max_msg_size=max_msg_size,
                            handshake_timeout=client_timeout.sock_read,
                            on_sent=tracer.headers_sent if tracer is not None else None,
                        )
                    except WSServerHandshakeError as exc:
                        location = _redirect_location(exc)
                        if location is None:
                            if history:
                                exc.history = tuple(history)
                            if tracer is not None and exc.status is not None:
                                # aiohttp checks the upgrade after `_request` returned: a
                                # refusal is a request_end with its answer, then the error.
                                await tracer.refused(exc.status, _items(exc.headers))
                            raise
                        # aiohttp's ws_connect is a session request, so it follows redirects
                        # (as RFC 6455 4.1 allows); the answer's cookies count as any response's.
                        assert exc.headers is not None  # _redirect_location checked
                        _store_cookies(session, http_url, exc.headers.getall("Set-Cookie", []))
                        if tracer is not None:
                            await tracer.redirect(exc.status or 0, _items(exc.headers))
                        history.append(exc)
                        if len(history) > MAX_REDIRECTS:
                            raise TooManyRedirects(
                                history[0].request_info,
                                tuple(history),
                                status=exc.status,
                                message=f"more than {MAX_REDIRECTS} redirects",
                                headers=exc.headers,
                            ) from None
                        hop = follow(
                            exc.status or 0,
                            "GET",
                            http_url,
                            str(_as_http(location)),
                            requote=session.requote_redirect_url,
                        )
                        if hop.new_origin:
                            # Credentials and cookies the caller gave were for the first origin.
                            if caller is not None:
                                for name in ("Authorization", "Cookie", "Proxy-Authorization"):
                                    caller.popall(name, None)
                            if tracer is not None:
                                tracer.drop_credentials()
                            auth = None
                        http_url = hop.url.with_fragment(None)
                        if http_url.raw_user is not None or http_url.raw_password is not None:
                            auth, http_url = BasicAuth.from_url(http_url), http_url.with_user(None)
                        if proxy is None:
                            # A default or environment proxy depends on the URL (NO_PROXY...).
                            proxy_url, proxy_auth = session._proxy_for(
                                http_url, None, given_proxy_auth
                            )
                        request_headers = _handshake_headers(session, http_url, caller, auth)
                        ws_url = normalize_ws_url(http_url)
                        if tracer is not None:
                            tracer.follow(location)
                            tracer.hop(http_url)
                        continue
                    break
        except TimeoutError:
            if not budget.expired():
                raise
            raise ServerTimeoutError(
                f"WebSocket connect to {http_url} took longer than the total timeout of "
                f"{client_timeout.total} s"
            ) from None
        _store_cookies(session, http_url, ws.response_headers.getall("Set-Cookie", []))
    except BaseException as exc:
        if tracer is not None:
            # Every failure but a refusal (already told as request_end), as aiohttp's.
            await tracer.failed(exc)
        raise
    if tracer is not None:
        await _end_trace(tracer, ws)
    return ws


async def _begin_trace(
    session: ClientSession,
    given: str | URL,
    asked: URL,
    caller: CIMultiDict[str] | None,
    protocols: Iterable[str],
    origin: str | None,
) -> HandshakeTrace:
    """request_start with the headers aiohttp's ws_connect hands its `_request`: the caller's
    (over the session's) and the upgrade's own. The Sec-WebSocket-Key and -Extensions are not
    among them: wsproto writes those with the head (request_headers_sent has them)."""
    from crawler.http.tracing import HandshakeTrace

    headers: CIMultiDict[str] = CIMultiDict(caller) if caller is not None else CIMultiDict()
    headers.setdefault("Upgrade", "websocket")
    headers.setdefault("Connection", "Upgrade")
    headers.setdefault("Sec-WebSocket-Version", "13")
    offered = list(protocols)
    if offered:
        headers["Sec-WebSocket-Protocol"] = ",".join(offered)
    if origin is not None:
        headers["Origin"] = origin
    return await HandshakeTrace.begin(session, asked, headers, _ws_scheme(given))


async def _end_trace(tracer: HandshakeTrace, ws: ClientWebSocketResponse) -> None:
    """request_end for the 101; a failing callback fails the connect and drops the socket
    (aiohttp closes the response's connection), and the session never lists the WebSocket."""
    try:
        await tracer.opened(ws._protocol.upgrade_head, _items(ws.response_headers))
    except BaseException:
        await ws._abandon()
        raise


def _items(headers: CIMultiDictProxy[str] | None) -> list[tuple[str, str]]:
    return list(headers.items()) if headers is not None else []


def _ws_scheme(url: str | URL) -> str | None:
    """"ws"/"wss" when `url` was given with that scheme (aiohttp reports it so), else None."""
    scheme = URL(url).scheme.lower() if isinstance(url, str) else url.scheme.lower()
    return scheme if scheme in WS_SCHEMES else None


def _redirect_location(exc: WSServerHandshakeError) -> str | None:
    """Where a refused upgrade redirects to, None when it is no redirect."""
    if exc.status not in REDIRECT_STATUSES or exc.headers is None:
        return None
    return exc.headers.get("Location") or exc.headers.get("URI")


def _as_http(url: str | URL) -> str | URL:
    """ws(s):// as http(s)://, so the session's URL rules (and its connector keys) apply."""
    if isinstance(url, URL):
        scheme = WS_SCHEMES.get(url.scheme.lower())
        return url.with_scheme(scheme) if scheme else url
    for ws_scheme, http_scheme in WS_SCHEMES.items():
        prefix = ws_scheme + "://"
        if url[: len(prefix)].lower() == prefix:
            return http_scheme + "://" + url[len(prefix) :]
    return url


def _handshake_headers(
    session: ClientSession,
    url: URL,
    caller: CIMultiDict[str] | None,
    auth: BasicAuth | None,
) -> list[tuple[str, str]]:
    from crawler.http.session import USER_AGENT

    headers = list(caller.items()) if caller is not None else []
    given = {name.lower() for name, _ in headers}
    if "user-agent" not in given and "user-agent" not in session.skip_auto_headers:
        headers.append(("User-Agent", USER_AGENT))
    if auth is not None:
        headers.append(("Authorization", auth.encode()))
    jar_cookies = session.cookie_jar.filter_cookies(url)
    if jar_cookies:
        cookie = "; ".join(f"{name}={morsel.coded_value}" for name, morsel in jar_cookies.items())
        if "cookie" in given:
            # One Cookie header: the caller's pairs first, then the jar's.
            headers = [(n, f"{v}; {cookie}" if n.lower() == "cookie" else v) for n, v in headers]
        else:
            headers.append(("Cookie", cookie))
    return headers


async def _open_transport(
    session: ClientSession,
    url: URL,
    *,
    ssl: SSLSetting,
    proxy: URL | None,
    proxy_auth: BasicAuth | None,
    proxy_headers: Mapping[str, str] | None,
    server_hostname: str | None,
    timeout: ClientTimeout,
    traces: list[Trace] | None = None,
) -> asyncio.Transport:
    """A fresh transport to `url` from the session's connector (TLS and proxy as configured);
    `traces` hear of the connection as a request's do."""
    connector = session.connector
    assert connector is not None
    if proxy is not None and url.scheme == "http":
        # A forward proxy relays requests, not an upgraded connection: plain ws:// needs a
        # CONNECT tunnel too, which the connector only builds for https.
        if not traces:
            return await _open_plain_tunnel(url, proxy, proxy_auth, proxy_headers, timeout)
        # aiohttp's connector opens this connection, so a traced one is told of its creation.
        for trace in traces:
            await trace.send_connection_create_start()
        transport = await _open_plain_tunnel(
            url, proxy, proxy_auth, proxy_headers, timeout, traces
        )
        try:
            for trace in traces:
                await trace.send_connection_create_end()
        except BaseException:
            transport.abort()
            raise
        return transport
    # Past the check above a proxy means an https URL: the session's key names the tunnel.
    key = session._key_for(url, ssl, proxy, proxy_auth, proxy_headers, server_hostname)
    conn = await connect_within_timeout(connector, key, url, timeout, traces=traces)
    return conn.detach()


async def _open_plain_tunnel(
    url: URL,
    proxy: URL,
    proxy_auth: BasicAuth | None,
    proxy_headers: Mapping[str, str] | None,
    timeout: ClientTimeout,
    traces: list[Trace] | None = None,
) -> asyncio.Transport:
    host = url.raw_host or ""
    port = url.port or 80
    base_resolver = DefaultResolver()
    resolver = HostResolver(base_resolver, use_cache=False)
    try:
        async with asyncio.timeout(timeout.connect):
            transport, _ = await dialer.open_tunnel(
                asyncio.Protocol,
                proxy=proxy,
                proxy_headers=dict(proxy_headers or {}),
                target_host=host,
                target_port=port,
                ssl=None,
                server_hostname=None,
                resolver=resolver,
                traces=traces,
                sock_connect=timeout.sock_connect,
                key=ConnectionKeyInfo(host=host, port=port, is_ssl=False, proxy=proxy),
                proxy_auth=proxy_auth,
            )
    except TimeoutError as exc:
        if isinstance(exc, ConnectionTimeoutError):
            raise
        raise ConnectionTimeoutError(
            f"Connection timeout to host {host}:{port} via proxy (connect={timeout.connect} s)"
        ) from None
    finally:
        await resolver.close()
        await base_resolver.close()
    return transport


def _store_cookies(session: ClientSession, url: URL, set_cookies: list[str]) -> None:
    for value in set_cookies:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(value)
        except CookieError:
            continue  # one malformed Set-Cookie must not cost the connection
        session.cookie_jar.update_cookies(cookie, url)
