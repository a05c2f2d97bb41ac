"""`ClientSession`: defaults, cookies and the life of a request, top to bottom.

prepare (URL, headers, auth, body) -> acquire a connection -> send -> read the head -> follow
redirects -> hand out the response. The `total` timeout spans all of it and the body read.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import sys
import traceback
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict
from yarl import URL

from crawler.http import proxy_env
from crawler.http._payload_length import DeclaredLengthPayload, declared_length
from crawler.http._wire import (
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    ResponseHead,
    WireError,
    encode_request_head,
)
from crawler.http.auth import BasicAuth
from crawler.http.connection import Connection, ExchangeOptions
from crawler.http.connector import (
    BaseConnector,
    ConnectionKey,
    TCPConnector,
    announce_reuse,
    connect_within_timeout,
    make_key,
)
from crawler.http.cookies import AbstractCookieJar, CookieJar, LooseCookies
from crawler.http.decoders import DEFAULT_MAX_OUTPUT, accept_encoding
from crawler.http.errors import (
    ClientConnectionResetError,
    ClientOSError,
    ClientResponseError,
    RequestBodyNotReplayableError,
    RequestInfo,
    ServerDisconnectedError,
    TooManyRedirects,
)
from crawler.http.exchange import OnChunk, send_request
from crawler.http.payload import Payload, compress_payload, json_payload, make_payload
from crawler.http.redirects import REDIRECT_STATUSES, follow
from crawler.http.request import (
    HeaderPlan,
    build_url,
    checked_url,
    merge_headers,
    origin_of,
    pick_auth,
    request_target,
)
from crawler.http.response import CharsetResolver, ClientResponse
from crawler.http.streams import StreamReader
from crawler.http.timeouts import DEFAULT_TIMEOUT, ClientTimeout, Deadline, as_timeout
from crawler.http.tls import SSLSetting, resolve_ssl

if TYPE_CHECKING:
    # Loaded on first traced request only: building its params classes costs ~15 ms at import.
    from crawler.http.tracing import Trace, TraceConfig

__all__ = ["ClientSession"]

_sentinel: Any = object()
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
# A redirect's own body is read (so its connection can be reused) only when this small.
_DRAIN_LIMIT = 64 * 1024
USER_AGENT = f"Python/{sys.version_info[0]}.{sys.version_info[1]} crawler.http/0.1"


class ClientSession:
    """A pool of connections plus defaults shared by every request made through it."""

    def __init__(
        self,
        base_url: str | URL | None = None,
        *,
        connector: BaseConnector | None = None,
        cookies: LooseCookies | None = None,
        headers: Any = None,
        skip_auto_headers: Iterable[str] | None = None,
        auth: BasicAuth | None = None,
        json_serialize: Callable[[Any], str | bytes] = jsonlib.dumps,
        cookie_jar: AbstractCookieJar | None = None,
        connector_owner: bool = True,
        raise_for_status: bool | Callable[[ClientResponse], Awaitable[None]] = False,
        timeout: ClientTimeout | float | None = _sentinel,
        auto_decompress: bool = True,
        trust_env: bool = False,
        requote_redirect_url: bool = True,
        read_bufsize: int = 2**18,
        max_line_size: int = MAX_LINE_SIZE,
        max_field_size: int = MAX_FIELD_SIZE,
        max_headers: int = MAX_HEADERS,
        max_decompressed_size: int | None = DEFAULT_MAX_OUTPUT,
        proxy: str | URL | None = None,
        proxy_auth: BasicAuth | None = None,
        fallback_charset_resolver: CharsetResolver | None = None,
        trace_configs: list[TraceConfig] | None = None,
    ) -> None:
        self._source_traceback = traceback.extract_stack(sys._getframe(1), limit=10)
        self._closed = True  # until fully built, so __del__ of a half-made session stays quiet
        if base_url is not None:
            base_url = checked_url(base_url, "base_url")
            if not base_url.absolute:
                raise ValueError(f"base_url must be an absolute URL, got {base_url!s}")
            if not base_url.path.endswith("/"):
                # Joined as RFC 3986 says, "/api/v1" + "users" would be "/api/users": refuse,
                # as aiohttp does, rather than drop the last segment without a word.
                raise ValueError(f"base_url must have a trailing '/', got {base_url!s}")
        self._base_url: URL | None = base_url
        if connector is None:
            connector = TCPConnector()
            connector_owner = True
        if connector_owner:
            connector._owned_by_session = True
        self._connector: BaseConnector | None = connector
        self._connector_owner = connector_owner
        self._cookie_jar = cookie_jar if cookie_jar is not None else CookieJar()
        if cookies:
            self._cookie_jar.update_cookies(cookies)
        self._default_headers: CIMultiDict[str] | None = (
            merge_headers(None, headers) if headers else None
        )
        self._skip_auto_headers = frozenset(h.lower() for h in (skip_auto_headers or ()))
        self._auto_headers = [
            ("Accept", "*/*"),
            ("Accept-Encoding", accept_encoding()),
            ("User-Agent", USER_AGENT),
        ]
        if auth is not None and not isinstance(auth, BasicAuth):
            raise TypeError("auth must be a BasicAuth")
        self._default_auth = auth
        self._json_serialize = json_serialize
        self._raise_for_status = raise_for_status
        self._timeout = DEFAULT_TIMEOUT if timeout is _sentinel else as_timeout(timeout)
        self._auto_decompress = auto_decompress
        self._fallback_charset_resolver = fallback_charset_resolver
        self._trust_env = trust_env
        self._requote_redirect_url = requote_redirect_url
        self._options = ExchangeOptions(
            auto_decompress=auto_decompress,
            max_decompressed_size=max_decompressed_size,
            read_bufsize=read_bufsize,
            sock_read=self._timeout.sock_read,
            max_line_size=max_line_size,
            max_field_size=max_field_size,
            max_headers=max_headers,
        )
        self._default_proxy = checked_url(proxy, "proxy") if proxy is not None else None
        self._default_proxy_auth = proxy_auth
        # Frozen now, as aiohttp does: no callback can be added while requests are running.
        self._trace_configs = trace_configs or []
        for trace_config in self._trace_configs:
            trace_config.freeze()
        self._background: set[asyncio.Task[None]] = set()
        # Open WebSockets: their sockets left the connector's pool at the handshake, so the
        # connector's close does not reach them; close() does (as aiohttp's does).
        self._websockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ClientSession {'closed' if self._closed else 'open'} {self._connector!r}>"

    def __del__(self, _warnings: Any = warnings) -> None:
        if self._closed:
            return
        self._closed = True
        where = "".join(traceback.format_list(self._source_traceback[-3:])).rstrip()
        _warnings.warn(
            f"Unclosed client session {self!r}; created at:\n{where}", ResourceWarning, stacklevel=1
        )

    # --- properties ---

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connector(self) -> BaseConnector | None:
        return self._connector

    @property
    def connector_owner(self) -> bool:
        return self._connector_owner

    @property
    def cookie_jar(self) -> AbstractCookieJar:
        return self._cookie_jar

    @property
    def headers(self) -> CIMultiDict[str]:
        if self._default_headers is None:
            self._default_headers = CIMultiDict()
        return self._default_headers

    @property
    def skip_auto_headers(self) -> frozenset[str]:
        return self._skip_auto_headers

    @property
    def auth(self) -> BasicAuth | None:
        return self._default_auth

    @property
    def timeout(self) -> ClientTimeout:
        return self._timeout

    @property
    def base_url(self) -> URL | None:
        return self._base_url

    @property
    def auto_decompress(self) -> bool:
        return self._auto_decompress

    @property
    def raise_for_status(self) -> bool | Callable[[ClientResponse], Awaitable[None]]:
        return self._raise_for_status

    @property
    def trust_env(self) -> bool:
        return self._trust_env

    @property
    def json_serialize(self) -> Callable[[Any], str | bytes]:
        return self._json_serialize

    @property
    def requote_redirect_url(self) -> bool:
        return self._requote_redirect_url

    @property
    def trace_configs(self) -> list[TraceConfig]:
        return self._trace_configs

    # --- requests ---

    def request(self, method: str, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        """Make a request; the result is both awaitable and an async context manager."""
        return _RequestContextManager(self._request(method, url, **kwargs))

    def get(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("GET", url, **kwargs))

    def options(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("OPTIONS", url, **kwargs))

    def head(self, url: str | URL, *, allow_redirects: bool = False, **kwargs: Any) -> Any:
        return _RequestContextManager(
            self._request("HEAD", url, allow_redirects=allow_redirects, **kwargs)
        )

    def post(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("POST", url, data=data, **kwargs))

    def put(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("PUT", url, data=data, **kwargs))

    def patch(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("PATCH", url, data=data, **kwargs))

    def delete(self, url: str | URL, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("DELETE", url, **kwargs))

    def ws_connect(self, url: str | URL, **kwargs: Any) -> Any:
        """Open a WebSocket (see `crawler.http.websocket.ws_connect`)."""
        from crawler.http import websocket

        return _WebSocketContextManager(self._tracked_ws(websocket.ws_connect(self, url, **kwargs)))

    async def _tracked_ws(self, opening: Awaitable[Any]) -> Any:
        ws = await opening
        self._websockets.add(ws)
        return ws

    async def _request(
        self,
        method: str,
        str_or_url: str | URL,
        *,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        cookies: LooseCookies | None = None,
        headers: Any = None,
        skip_auto_headers: Iterable[str] | None = None,
        auth: BasicAuth | None = None,
        allow_redirects: bool = True,
        max_redirects: int = 10,
        compress: str | bool | None = None,
        chunked: bool | None = None,
        expect100: bool = False,
        raise_for_status: Any = None,
        read_until_eof: bool = True,
        proxy: str | URL | None = None,
        proxy_auth: BasicAuth | None = None,
        proxy_headers: Any = None,
        timeout: ClientTimeout | float | None = _sentinel,
        ssl: SSLSetting = True,
        server_hostname: str | None = None,
        verify_ssl: bool | None = None,
        fingerprint: bytes | None = None,
        ssl_context: Any = None,
        auto_decompress: bool | None = None,
        max_line_size: int | None = None,
        max_field_size: int | None = None,
        read_bufsize: int | None = None,
        trace_request_ctx: Any = None,
    ) -> ClientResponse:
        if self._closed or self._connector is None:
            raise RuntimeError("Session is closed")
        if data is not None and json is not None:
            raise ValueError("data and json parameters can not be used at the same time")
        method = method.upper()
        url = build_url(str_or_url, base_url=self._base_url, params=params)
        asked = url  # request_start reports the URL as asked for (credentials kept), as aiohttp
        caller = merge_headers(self._default_headers, headers)
        url, auth = pick_auth(url, auth, self._default_auth, caller)
        if auth is None and self._trust_env:
            auth = proxy_env.netrc_auth(url.host or "")
        skip = self._skip_auto_headers
        if skip_auto_headers:
            skip = skip | {name.lower() for name in skip_auto_headers}
        plan = HeaderPlan.make(caller, self._auto_headers, skip)
        payload, chunked = self._body(method, data, json, caller, compress, chunked)
        if compress and payload is not None:
            plan.add_auto("Content-Encoding", "deflate" if compress is True else compress)
        real_timeout = self._timeout if timeout is _sentinel else as_timeout(timeout)
        options = self._exchange_options(
            real_timeout, auto_decompress, max_line_size, max_field_size, read_bufsize
        )
        if ssl is not True or verify_ssl is not None or ssl_context is not None or fingerprint:
            ssl = resolve_ssl(
                ssl, verify_ssl=verify_ssl, ssl_context=ssl_context, fingerprint=fingerprint
            )
        given_proxy_auth = proxy_auth
        proxy_url, proxy_auth = self._proxy_for(url, proxy, given_proxy_auth)
        raise_status = self._raise_for_status if raise_for_status is None else raise_for_status
        traces: list[Trace] | None = None
        if self._trace_configs:
            # The caller's headers as the plan keeps them (a cross-origin hop strips them in
            # place), so every signal of the request sees them as they are then.
            trace_headers = caller if caller is not None else CIMultiDict()
            traces = await self._begin_tracing(
                trace_request_ctx, method, asked, trace_headers, payload
            )

        loop = asyncio.get_running_loop()
        deadline = Deadline(loop, real_timeout.total) if real_timeout.total else None
        history: list[ClientResponse] = []
        first_origin = origin_of(url)
        try:
            while True:
                same_origin = origin_of(url) == first_origin
                is_ssl = url.scheme == "https"
                extra: list[tuple[str, str]] = []
                if proxy_url is not None and not is_ssl:
                    extra.extend(self._plain_proxy_headers(proxy_url, proxy_auth, proxy_headers))
                if payload is None and method not in _BODYLESS_METHODS:
                    extra.append(("Content-Length", "0"))
                if expect100 and payload is not None and (caller is None or "Expect" not in caller):
                    extra.append(("Expect", "100-continue"))
                header_list = plan.head_for(
                    url,
                    skip=skip,
                    cookie=self._cookie_header(url, cookies if same_origin else None),
                    authorization=auth.encode() if auth is not None else None,
                    payload=payload,
                    chunked=chunked,
                    extra=extra,
                )
                target = request_target(url, absolute=proxy_url is not None and not is_ssl)
                head = encode_request_head(method, target, header_list)
                key = self._key_for(url, ssl, proxy_url, proxy_auth, proxy_headers, server_hostname)
                if payload is not None:
                    # A closed file or a spent stream fails here, before a head promising a
                    # body is on the wire.
                    payload.check_sendable()
                conn, response_head, body = await self._send(
                    key, head, method, url, header_list, history, payload, chunked,
                    expect100, options, real_timeout, traces,
                )
                response = ClientResponse(
                    method, url, response_head, body,
                    conn, request_headers=header_list, history=tuple(history),
                    resolve_charset=self._fallback_charset_resolver,
                )
                if response_head.has_set_cookie:
                    # The fields, not response.cookies: that keeps one cookie per name, and
                    # two fields may set one name for two paths.
                    self._cookie_jar.update_cookies_from_headers(
                        response.headers.getall("Set-Cookie", ()), url
                    )
                location = None
                if allow_redirects and response.status in REDIRECT_STATUSES:
                    if traces:
                        # Before the Location is looked at: aiohttp tells of a 3xx without one.
                        await _announce_redirect(traces, method, url, trace_headers, response)
                    location = response.headers.get("Location") or response.headers.get("URI")
                if location is None:
                    break
                history.append(response)
                if len(history) > max_redirects:
                    response.release()
                    raise TooManyRedirects(
                        history[0].request_info,
                        tuple(history),
                        status=response.status,
                        message=f"more than {max_redirects} redirects",
                        headers=response.headers,
                    )
                await _discard_body(response)
                hop = follow(
                    response.status, method, url, location, requote=self._requote_redirect_url
                )
                if hop.drop_body and payload is not None:
                    await payload.close()
                    payload, chunked = None, False
                    plan.strip_body_headers()
                    plan.auto = [(n, v) for n, v in plan.auto if n != "Content-Encoding"]
                if hop.new_origin:
                    plan.strip_for_new_origin()
                    auth = None
                method, url = hop.method, hop.url
                if url.raw_user is not None or url.raw_password is not None:
                    # Credentials in a Location are for the URL they are in, as a caller's are:
                    # Basic auth there (and on its same-origin hops), never in the request.
                    auth, url = BasicAuth.from_url(url), url.with_user(None)
                if proxy is None and self._trust_env:
                    # The environment's proxy depends on the URL (scheme, NO_PROXY): ask again,
                    # so a hop to a bypassed host goes direct, without the proxy's credentials.
                    proxy_url, proxy_auth = self._proxy_for(url, None, given_proxy_auth)
                if payload is not None and not payload.replayable:
                    # Never resend what is left of a stream (an empty or partial body).
                    raise RequestBodyNotReplayableError(
                        f"cannot follow the {response.status} redirect to {url}: the request "
                        "body is a one-shot stream that cannot be sent again; pass bytes or a "
                        "seekable file, or set allow_redirects=False"
                    )
        except asyncio.CancelledError as exc:
            timed_out = deadline is not None and deadline.check_cancelled()
            if deadline is not None:
                deadline.cancel()
            error = deadline.error() if timed_out and deadline is not None else exc
            if traces:
                await _announce_failure(traces, method, url, trace_headers, error)
            if error is exc:
                raise
            raise error from None
        except BaseException as exc:
            if deadline is not None:
                deadline.cancel()
            if payload is not None:
                await _close_quietly(payload)
            if traces:
                await _announce_failure(traces, method, url, trace_headers, exc)
            raise
        if payload is not None:
            await self._close_payload_when_sent(conn, payload)
        if deadline is not None:
            response._deadline = deadline
            deadline.watch_body(conn, response.content)
        if traces:
            return await _end_traced(response, raise_status, traces, method, url, trace_headers)
        if raise_status:
            if callable(raise_status):
                await raise_status(response)
            else:
                response.raise_for_status()
        return response

    async def _send(
        self,
        key: ConnectionKey,
        head: bytes,
        method: str,
        url: URL,
        header_list: list[tuple[str, str]],
        history: list[ClientResponse],
        payload: Payload | None,
        chunked: bool,
        expect100: bool,
        options: ExchangeOptions,
        timeout: ClientTimeout,
        traces: list[Trace] | None = None,
    ) -> tuple[Connection, ResponseHead, StreamReader]:
        """Get a connection and the response head; retry once when a reused one was stale."""
        connector = self._connector
        assert connector is not None
        take_idle = getattr(connector, "take_idle", None)
        on_chunk = None
        for attempt in (1, 2):
            # A kept-alive connection ready now needs no timer (most requests of a crawl).
            conn = take_idle(key) if attempt == 1 and take_idle is not None else None
            if conn is None:
                conn = await connect_within_timeout(
                    connector, key, url, timeout, fresh=attempt > 1, traces=traces
                )
            elif traces:
                await announce_reuse(conn, traces)
            try:
                if traces:
                    # Each attempt sends its head again, and says so, as aiohttp's retry does.
                    on_chunk = await _announce_head(traces, method, url, header_list)
                response_head, body = await send_request(
                    conn,
                    head,
                    head_request=method == "HEAD",
                    options=options,
                    payload=payload,
                    chunked=chunked,
                    expect100=expect100,
                    on_chunk=on_chunk,
                )
            except (ServerDisconnectedError, ClientOSError, ClientConnectionResetError):
                conn.close()
                # A kept-alive connection the server had just closed: try a fresh one.
                if (
                    attempt == 1
                    and conn.reused
                    and not connector.closed
                    and (payload is None or payload.replayable)
                ):
                    continue
                raise
            except WireError as exc:
                conn.close()
                raise ClientResponseError(
                    RequestInfo(url, method, CIMultiDict(header_list), url),  # type: ignore[arg-type]
                    tuple(history),
                    status=400,
                    message=str(exc),
                ) from None
            except BaseException:
                conn.close()
                raise
            return conn, response_head, body
        raise AssertionError("unreachable")  # pragma: no cover

    # --- request pieces ---

    async def _begin_tracing(
        self,
        trace_request_ctx: Any,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        payload: Payload | None,
    ) -> list[Trace]:
        """The request's traces, told request_start; the body is closed if a callback fails
        (nothing else will: the request ends before it began)."""
        from crawler.http.tracing import begin_request

        try:
            return await begin_request(
                self, self._trace_configs, trace_request_ctx, method, url, headers
            )
        except BaseException:
            if payload is not None:
                await _close_quietly(payload)
            raise

    def _body(
        self,
        method: str,
        data: Any,
        json: Any,
        caller: CIMultiDict[str] | None,
        compress: str | bool | None,
        chunked: bool | None,
    ) -> tuple[Payload | None, bool]:
        if json is not None:
            payload: Payload | None = json_payload(json, self._json_serialize)
        elif data is not None:
            content_type = caller.get("Content-Type") if caller is not None else None
            payload = make_payload(data, content_type=content_type)
        else:
            payload = None
        has = caller.__contains__ if caller is not None else (lambda _: False)
        declared = None
        if caller is not None and "Content-Length" in caller:
            declared = _checked_content_length(caller, payload, compress, chunked)
        if compress:
            if has("Content-Encoding"):
                raise ValueError("compress can not be set if Content-Encoding header is set")
            if payload is not None:
                payload = compress_payload(payload, "deflate" if compress is True else compress)
        if payload is None:
            return None, False
        if declared is not None and payload.size is None:
            # The caller's length frames the stream: sent as is, no chunked framing beside it.
            return DeclaredLengthPayload(payload, declared), False
        by_header = caller is not None and "chunked" in caller.get("Transfer-Encoding", "")
        return payload, bool(chunked) or by_header or payload.size is None

    def _exchange_options(
        self,
        timeout: ClientTimeout,
        auto_decompress: bool | None,
        max_line_size: int | None,
        max_field_size: int | None,
        read_bufsize: int | None,
    ) -> ExchangeOptions:
        base = self._options
        if auto_decompress is None and max_line_size is None and max_field_size is None and (
            read_bufsize is None
        ):
            return base.with_sock_read(timeout.sock_read)
        return ExchangeOptions(
            auto_decompress=base.auto_decompress if auto_decompress is None else auto_decompress,
            max_decompressed_size=base.max_decompressed_size,
            read_bufsize=read_bufsize or base.read_bufsize,
            sock_read=timeout.sock_read,
            max_line_size=max_line_size or base.max_line_size,
            max_field_size=max_field_size or base.max_field_size,
            max_headers=base.max_headers,
        )

    def _cookie_header(self, url: URL, request_cookies: LooseCookies | None) -> str | None:
        jar = self._cookie_jar
        if not len(jar) and not request_cookies:
            return None
        found = jar.filter_cookies(url)
        if request_cookies:
            extra = CookieJar(quote_cookie=jar.quote_cookie)
            extra.update_cookies(request_cookies)
            for name, morsel in extra.filter_cookies(url).items():
                dict.__setitem__(found, name, morsel)
        if not found:
            return None
        return "; ".join(f"{name}={morsel.coded_value}" for name, morsel in found.items())

    def _proxy_for(
        self, url: URL, proxy: str | URL | None, proxy_auth: BasicAuth | None
    ) -> tuple[URL | None, BasicAuth | None]:
        if proxy is not None:
            return checked_url(proxy, "proxy"), proxy_auth
        if self._default_proxy is not None:
            return self._default_proxy, proxy_auth or self._default_proxy_auth
        if self._trust_env:
            env_proxy, env_auth = proxy_env.proxy_from_env(url)
            if env_proxy is not None:
                return env_proxy, proxy_auth or env_auth
        return None, proxy_auth

    @staticmethod
    def _plain_proxy_headers(
        proxy: URL, proxy_auth: BasicAuth | None, proxy_headers: Any
    ) -> list[tuple[str, str]]:
        extra = list(dict(proxy_headers).items()) if proxy_headers else []
        if proxy_auth is None:
            proxy_auth = BasicAuth.from_url(proxy)
        if proxy_auth is not None and not any(
            name.lower() == "proxy-authorization" for name, _ in extra
        ):
            extra.append(("Proxy-Authorization", proxy_auth.encode()))
        return extra

    def _key_for(
        self,
        url: URL,
        ssl: SSLSetting,
        proxy: URL | None,
        proxy_auth: BasicAuth | None,
        proxy_headers: Any,
        server_hostname: str | None,
    ) -> ConnectionKey:
        connector = self._connector
        maker = getattr(connector, "make_key", None)
        tunnel = proxy is not None and url.scheme == "https"
        if maker is not None:
            return maker(  # type: ignore[no-any-return]
                url,
                ssl=ssl,
                proxy=proxy,
                proxy_auth=proxy_auth if tunnel else None,
                proxy_headers=proxy_headers if tunnel else None,
                server_hostname=server_hostname,
            )
        return make_key(url, ssl=ssl, proxy=proxy, server_hostname=server_hostname)

    async def _close_payload_when_sent(self, conn: Connection, payload: Payload) -> None:
        """Close the body once its writer is done (it may still be sending after the head)."""
        writer = conn.writer
        if writer is None or writer.done():
            await _close_quietly(payload)
            return

        def later(_: object) -> None:
            task = asyncio.get_running_loop().create_task(_close_quietly(payload))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        writer.add_done_callback(later)

    # --- closing ---

    async def close(self) -> None:
        """Close the session and, when it owns it, the connector with all its connections."""
        if self._closed:
            return
        self._closed = True
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._websockets:
            await asyncio.gather(
                *(ws._abandon() for ws in list(self._websockets)), return_exceptions=True
            )
        if self._connector is not None and self._connector_owner:
            await self._connector.close()
        self._connector = None

    def detach(self) -> None:
        """Forget the connector without closing it."""
        self._closed = True
        self._connector = None

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _RequestContextManager:
    """`await session.get(...)` or `async with session.get(...) as resp`."""

    __slots__ = ("_coro", "_resp")

    def __init__(self, coro: Coroutine[Any, Any, ClientResponse]) -> None:
        self._coro = coro
        self._resp: ClientResponse | None = None

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    async def __aenter__(self) -> ClientResponse:
        self._resp = await self._coro
        return self._resp

    async def __aexit__(self, *exc_info: object) -> None:
        if self._resp is not None:
            self._resp.release()


class _WebSocketContextManager:
    """Gives a coroutine returning a WebSocket both `await` and `async with` forms."""

    __slots__ = ("_coro", "_ws")

    def __init__(self, coro: Awaitable[Any]) -> None:
        self._coro = coro
        self._ws: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    async def __aenter__(self) -> Any:
        self._ws = await self._coro
        return self._ws

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            await self._ws.close()


async def _discard_body(response: ClientResponse) -> None:
    """Finish a redirect response: read a small body (keeps its connection), else close."""
    length = response.content_length
    conn = response.connection
    if conn is None or not conn.owns(response.content):
        response.release()
        return
    if length is not None and length <= _DRAIN_LIMIT:
        try:
            await response.read()
        except Exception:
            response.close()
            return
    response.release()


async def _check_status(
    response: ClientResponse, raise_status: bool | Callable[[ClientResponse], Awaitable[None]]
) -> None:
    if callable(raise_status):
        await raise_status(response)
    else:
        response.raise_for_status()


async def _announce_head(
    traces: list[Trace], method: str, url: URL, header_list: list[tuple[str, str]]
) -> OnChunk:
    """request_headers_sent for a head about to go out; returns the body's chunk reporter.

    The URL is the request's without its fragment, as aiohttp's request object keeps it.
    """
    url = url.with_fragment(None) if url.raw_fragment else url
    headers = CIMultiDict(header_list)
    for trace in traces:
        await trace.send_request_headers(method, url, headers)

    async def on_chunk(chunk: bytes) -> None:
        for trace in traces:
            await trace.send_request_chunk_sent(method, url, chunk)

    return on_chunk


async def _announce_failure(
    traces: list[Trace], method: str, url: URL, headers: CIMultiDict[str], exc: BaseException
) -> None:
    for trace in traces:
        await trace.send_request_exception(method, url, headers, exc)


async def _announce_redirect(
    traces: list[Trace],
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    response: ClientResponse,
) -> None:
    """request_redirect; a failing callback closes the response (its connection is held)."""
    try:
        for trace in traces:
            await trace.send_request_redirect(method, url, headers, response)
    except BaseException:
        response.close()
        raise


async def _end_traced(
    response: ClientResponse,
    raise_status: bool | Callable[[ClientResponse], Awaitable[None]],
    traces: list[Trace],
    method: str,
    url: URL,
    headers: CIMultiDict[str],
) -> ClientResponse:
    """The end of a traced request: the status check, then request_end, or, when either
    fails, request_exception with the response closed (as aiohttp does)."""
    # Only the response handed out reports its body: redirect bodies are drained unseen.
    response._traces = traces
    try:
        if raise_status:
            await _check_status(response, raise_status)
        for trace in traces:
            await trace.send_request_end(method, url, headers, response)
    except BaseException as exc:
        response.close()
        await _announce_failure(traces, method, url, headers, exc)
        raise
    return response


async def _close_quietly(payload: Payload) -> None:
    try:
        await payload.close()
    except Exception:
        pass


def _checked_content_length(
    caller: CIMultiDict[str],
    payload: Payload | None,
    compress: str | bool | None,
    chunked: bool | None,
) -> int:
    """The caller's Content-Length, refused (ValueError, before anything is sent) unless it is
    the length the body will have: a server frames the request by it, so a longer body would
    be read as another request (smuggling) and a shorter one would leave it waiting."""
    values = caller.getall("Content-Length")
    lengths = {declared_length(value) for value in values}
    if len(lengths) != 1:
        raise ValueError(f"conflicting Content-Length headers: {', '.join(values)}")
    (length,) = lengths
    if chunked or "chunked" in caller.get("Transfer-Encoding", ""):
        raise ValueError("chunked can not be set if Content-Length header is set")
    if "Transfer-Encoding" in caller:
        raise ValueError("Transfer-Encoding can not be set if Content-Length header is set")
    if compress:
        raise ValueError("compress can not be set if Content-Length header is set")
    size = 0 if payload is None else payload.size
    if size is not None and size != length:
        raise ValueError(
            f"Content-Length header says {length} bytes but the body has {size}"
        )
    return length
