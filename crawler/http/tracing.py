"""Client tracing: aiohttp's `TraceConfig` API, fired at the points where aiohttp fires it.

    async def on_start(session, ctx, params: TraceRequestStartParams) -> None: ...
    config = TraceConfig()
    config.on_request_start.append(on_start)
    ClientSession(trace_configs=[config])

Each signal is a list of async callbacks, frozen when a session takes the config. A request
makes one `Trace` per config (with a fresh `trace_config_ctx`) and the code that fires a signal
loops over that request's traces; a session without configs has no traces, and every firing
point is guarded by `if traces:`, so tracing costs nothing when unused. Nor is this module
imported until something asks for it (a `crawler.http.Trace*` name, or a traced request):
making its params classes takes ~15 ms, which only tracing programs should pay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, overload

from multidict import CIMultiDict
from yarl import URL

if TYPE_CHECKING:
    from crawler.http.response import ClientResponse
    from crawler.http.session import ClientSession

# The names aiohttp exports; `Signal`, `Trace` and the helpers are ours, not public.
__all__ = [
    "TraceConfig",
    "TraceConnectionCreateEndParams",
    "TraceConnectionCreateStartParams",
    "TraceConnectionQueuedEndParams",
    "TraceConnectionQueuedStartParams",
    "TraceConnectionReuseconnParams",
    "TraceDnsCacheHitParams",
    "TraceDnsCacheMissParams",
    "TraceDnsResolveHostEndParams",
    "TraceDnsResolveHostStartParams",
    "TraceRequestChunkSentParams",
    "TraceRequestEndParams",
    "TraceRequestExceptionParams",
    "TraceRequestHeadersSentParams",
    "TraceRequestRedirectParams",
    "TraceRequestStartParams",
    "TraceResponseChunkReceivedParams",
]

Callback = Callable[..., Awaitable[object]]


class Signal(MutableSequence[Callback]):
    """A list of async callbacks that becomes read-only once frozen (aiosignal's `Signal`).

    Callbacks are added with any list method (or `@signal` as a decorator) until `freeze()`;
    `send()` awaits them in order and refuses to run before the list is frozen, so no callback
    can be added half way through a request.
    """

    __slots__ = ("_items", "_owner")

    def __init__(self, owner: object) -> None:
        self._owner = owner
        # A list while open; a tuple once frozen, which is also what makes freezing stick.
        self._items: list[Callback] | tuple[Callback, ...] = []

    def __repr__(self) -> str:
        return f"<Signal owner={self._owner}, frozen={self.frozen}, {list(self._items)!r}>"

    @property
    def frozen(self) -> bool:
        return isinstance(self._items, tuple)

    def freeze(self) -> None:
        self._items = tuple(self._items)

    def _open_items(self) -> list[Callback]:
        items = self._items
        if isinstance(items, tuple):
            raise RuntimeError("Cannot modify frozen list.")
        return items

    @overload
    def __getitem__(self, index: int) -> Callback: ...
    @overload
    def __getitem__(self, index: slice) -> MutableSequence[Callback]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self._items[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._open_items()[index] = value

    def __delitem__(self, index: int | slice) -> None:
        del self._open_items()[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self._items)

    def insert(self, index: int, value: Callback) -> None:
        self._open_items().insert(index, value)

    def __eq__(self, other: object) -> bool:
        return list(self._items) == list(other) if isinstance(other, Signal | list) else False

    __hash__ = None  # type: ignore[assignment]  # mutable until frozen, as a list

    def __call__(self, func: Callback) -> Callback:
        """Use the signal as a decorator: `@config.on_request_start`."""
        self.append(func)
        return func

    async def send(self, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self._items, tuple):
            raise RuntimeError("Cannot send non-frozen signal.")
        for receiver in self._items:
            await receiver(*args, **kwargs)


class TraceConfig:
    """The callbacks to run for requests of the sessions given this config.

    `trace_config_ctx_factory` makes each request's context object (a `SimpleNamespace` unless
    told otherwise), called with `trace_request_ctx=` the request's `trace_request_ctx`.
    """

    def __init__(
        self, trace_config_ctx_factory: Callable[..., SimpleNamespace] = SimpleNamespace
    ) -> None:
        self._on_request_start = Signal(self)
        self._on_request_chunk_sent = Signal(self)
        self._on_response_chunk_received = Signal(self)
        self._on_request_end = Signal(self)
        self._on_request_exception = Signal(self)
        self._on_request_redirect = Signal(self)
        self._on_connection_queued_start = Signal(self)
        self._on_connection_queued_end = Signal(self)
        self._on_connection_create_start = Signal(self)
        self._on_connection_create_end = Signal(self)
        self._on_connection_reuseconn = Signal(self)
        self._on_dns_resolvehost_start = Signal(self)
        self._on_dns_resolvehost_end = Signal(self)
        self._on_dns_cache_hit = Signal(self)
        self._on_dns_cache_miss = Signal(self)
        self._on_request_headers_sent = Signal(self)
        self._trace_config_ctx_factory = trace_config_ctx_factory

    def trace_config_ctx(self, trace_request_ctx: Any = None) -> SimpleNamespace:
        """A new context for one request."""
        return self._trace_config_ctx_factory(trace_request_ctx=trace_request_ctx)

    def freeze(self) -> None:
        for signal in self._signals():
            signal.freeze()

    def _signals(self) -> tuple[Signal, ...]:
        return (
            self._on_request_start,
            self._on_request_chunk_sent,
            self._on_response_chunk_received,
            self._on_request_end,
            self._on_request_exception,
            self._on_request_redirect,
            self._on_connection_queued_start,
            self._on_connection_queued_end,
            self._on_connection_create_start,
            self._on_connection_create_end,
            self._on_connection_reuseconn,
            self._on_dns_resolvehost_start,
            self._on_dns_resolvehost_end,
            self._on_dns_cache_hit,
            self._on_dns_cache_miss,
            self._on_request_headers_sent,
        )

    @property
    def on_request_start(self) -> Signal:
        return self._on_request_start

    @property
    def on_request_chunk_sent(self) -> Signal:
        return self._on_request_chunk_sent

    @property
    def on_response_chunk_received(self) -> Signal:
        return self._on_response_chunk_received

    @property
    def on_request_end(self) -> Signal:
        return self._on_request_end

    @property
    def on_request_exception(self) -> Signal:
        return self._on_request_exception

    @property
    def on_request_redirect(self) -> Signal:
        return self._on_request_redirect

    @property
    def on_connection_queued_start(self) -> Signal:
        return self._on_connection_queued_start

    @property
    def on_connection_queued_end(self) -> Signal:
        return self._on_connection_queued_end

    @property
    def on_connection_create_start(self) -> Signal:
        return self._on_connection_create_start

    @property
    def on_connection_create_end(self) -> Signal:
        return self._on_connection_create_end

    @property
    def on_connection_reuseconn(self) -> Signal:
        return self._on_connection_reuseconn

    @property
    def on_dns_resolvehost_start(self) -> Signal:
        return self._on_dns_resolvehost_start

    @property
    def on_dns_resolvehost_end(self) -> Signal:
        return self._on_dns_resolvehost_end

    @property
    def on_dns_cache_hit(self) -> Signal:
        return self._on_dns_cache_hit

    @property
    def on_dns_cache_miss(self) -> Signal:
        return self._on_dns_cache_miss

    @property
    def on_request_headers_sent(self) -> Signal:
        return self._on_request_headers_sent


# --- what each signal is given (aiohttp's field names and order) -----------------------------


@dataclass(frozen=True, slots=True)
class TraceRequestStartParams:
    method: str
    url: URL
    headers: CIMultiDict[str]


@dataclass(frozen=True, slots=True)
class TraceRequestChunkSentParams:
    method: str
    url: URL
    chunk: bytes


@dataclass(frozen=True, slots=True)
class TraceResponseChunkReceivedParams:
    method: str
    url: URL
    chunk: bytes


@dataclass(frozen=True, slots=True)
class TraceRequestEndParams:
    method: str
    url: URL
    headers: CIMultiDict[str]
    response: ClientResponse


@dataclass(frozen=True, slots=True)
class TraceRequestExceptionParams:
    method: str
    url: URL
    headers: CIMultiDict[str]
    exception: BaseException


@dataclass(frozen=True, slots=True)
class TraceRequestRedirectParams:
    method: str
    url: URL
    headers: CIMultiDict[str]
    response: ClientResponse


@dataclass(frozen=True, slots=True)
class TraceRequestHeadersSentParams:
    method: str
    url: URL
    headers: CIMultiDict[str]


@dataclass(frozen=True, slots=True)
class TraceConnectionQueuedStartParams:
    pass


@dataclass(frozen=True, slots=True)
class TraceConnectionQueuedEndParams:
    pass


@dataclass(frozen=True, slots=True)
class TraceConnectionCreateStartParams:
    pass


@dataclass(frozen=True, slots=True)
class TraceConnectionCreateEndParams:
    pass


@dataclass(frozen=True, slots=True)
class TraceConnectionReuseconnParams:
    pass


@dataclass(frozen=True, slots=True)
class TraceDnsResolveHostStartParams:
    host: str


@dataclass(frozen=True, slots=True)
class TraceDnsResolveHostEndParams:
    host: str


@dataclass(frozen=True, slots=True)
class TraceDnsCacheHitParams:
    host: str


@dataclass(frozen=True, slots=True)
class TraceDnsCacheMissParams:
    host: str


# --- one request's view of one config --------------------------------------------------------


class Trace:
    """A session, a config and the context of one request: what every signal is sent with."""

    __slots__ = ("_config", "_ctx", "_session")

    def __init__(
        self, session: ClientSession, config: TraceConfig, ctx: SimpleNamespace
    ) -> None:
        self._session = session
        self._config = config
        self._ctx = ctx

    async def _send(self, signal: Signal, params: object) -> None:
        await signal.send(self._session, self._ctx, params)

    async def send_request_start(
        self, method: str, url: URL, headers: CIMultiDict[str]
    ) -> None:
        await self._send(
            self._config.on_request_start, TraceRequestStartParams(method, url, headers)
        )

    async def send_request_chunk_sent(self, method: str, url: URL, chunk: bytes) -> None:
        await self._send(
            self._config.on_request_chunk_sent, TraceRequestChunkSentParams(method, url, chunk)
        )

    async def send_response_chunk_received(self, method: str, url: URL, chunk: bytes) -> None:
        await self._send(
            self._config.on_response_chunk_received,
            TraceResponseChunkReceivedParams(method, url, chunk),
        )

    async def send_request_end(
        self, method: str, url: URL, headers: CIMultiDict[str], response: ClientResponse
    ) -> None:
        await self._send(
            self._config.on_request_end, TraceRequestEndParams(method, url, headers, response)
        )

    async def send_request_exception(
        self, method: str, url: URL, headers: CIMultiDict[str], exception: BaseException
    ) -> None:
        await self._send(
            self._config.on_request_exception,
            TraceRequestExceptionParams(method, url, headers, exception),
        )

    async def send_request_redirect(
        self, method: str, url: URL, headers: CIMultiDict[str], response: ClientResponse
    ) -> None:
        await self._send(
            self._config.on_request_redirect,
            TraceRequestRedirectParams(method, url, headers, response),
        )

    async def send_request_headers(
        self, method: str, url: URL, headers: CIMultiDict[str]
    ) -> None:
        await self._send(
            self._config.on_request_headers_sent,
            TraceRequestHeadersSentParams(method, url, headers),
        )

    async def send_connection_queued_start(self) -> None:
        await self._send(
            self._config.on_connection_queued_start, TraceConnectionQueuedStartParams()
        )

    async def send_connection_queued_end(self) -> None:
        await self._send(self._config.on_connection_queued_end, TraceConnectionQueuedEndParams())

    async def send_connection_create_start(self) -> None:
        await self._send(
            self._config.on_connection_create_start, TraceConnectionCreateStartParams()
        )

    async def send_connection_create_end(self) -> None:
        await self._send(self._config.on_connection_create_end, TraceConnectionCreateEndParams())

    async def send_connection_reuseconn(self) -> None:
        await self._send(self._config.on_connection_reuseconn, TraceConnectionReuseconnParams())

    async def send_dns_resolvehost_start(self, host: str) -> None:
        await self._send(
            self._config.on_dns_resolvehost_start, TraceDnsResolveHostStartParams(host)
        )

    async def send_dns_resolvehost_end(self, host: str) -> None:
        await self._send(self._config.on_dns_resolvehost_end, TraceDnsResolveHostEndParams(host))

    async def send_dns_cache_hit(self, host: str) -> None:
        await self._send(self._config.on_dns_cache_hit, TraceDnsCacheHitParams(host))

    async def send_dns_cache_miss(self, host: str) -> None:
        await self._send(self._config.on_dns_cache_miss, TraceDnsCacheMissParams(host))


async def begin_request(
    session: ClientSession,
    configs: list[TraceConfig],
    trace_request_ctx: Any,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
) -> list[Trace]:
    """One request's traces, each made with a fresh context and sent `request_start`.

    As in aiohttp, a trace joins the list only once its `request_start` went through: those
    are the ones owed a closing `request_end` or `request_exception`, so when a later config's
    callback fails, the earlier traces hear of it here.
    """
    traces: list[Trace] = []
    try:
        for config in configs:
            trace = Trace(session, config, config.trace_config_ctx(trace_request_ctx))
            await trace.send_request_start(method, url, headers)
            traces.append(trace)
    except BaseException as exc:
        await request_failed(traces, method, url, headers, exc)
        raise
    return traces


async def request_failed(
    traces: list[Trace], method: str, url: URL, headers: CIMultiDict[str], exc: BaseException
) -> None:
    for trace in traces:
        await trace.send_request_exception(method, url, headers, exc)


# --- a WebSocket handshake ---------------------------------------------------------------------


class HandshakeTrace:
    """The signals of one traced `ws_connect`, in the order aiohttp's `_request` sends them.

    aiohttp's ws_connect is a session GET, so a traced one sees request_start, the connector's
    signals, request_headers_sent, request_redirect per followed 3xx and request_end with the
    answer, 101 or not (the WebSocket checks come after `_request` returned); any other failure
    is a request_exception. Ours speaks the handshake through wsproto, not `_request`, so
    `websocket.ws_connect` calls these at the same points, and only when the session traces.
    The URL is reported as aiohttp has it: a ws(s):// URL stays ws(s):// (ours connects by its
    http(s) twin), also across a relative redirect; an absolute Location replaces it.
    """

    __slots__ = ("_history", "_sent", "_ws_scheme", "ended", "headers", "traces", "url")

    def __init__(
        self, traces: list[Trace], url: URL, headers: CIMultiDict[str], ws_scheme: str | None
    ) -> None:
        self.traces = traces
        self.url = url
        self.headers = headers
        self._ws_scheme = ws_scheme
        self._sent: list[tuple[str, str]] = []
        self._history: list[ClientResponse] = []
        # Set once request_end went out: a refusal raised after it is no request_exception.
        self.ended = False

    @classmethod
    async def begin(
        cls,
        session: ClientSession,
        asked: URL,
        headers: CIMultiDict[str],
        ws_scheme: str | None,
    ) -> HandshakeTrace:
        """request_start for `asked` (credentials kept, as aiohttp reports it). aiohttp's
        ws_connect passes no `trace_request_ctx`, so neither do we."""
        url = asked.with_scheme(ws_scheme) if ws_scheme else asked
        traces = await begin_request(session, session.trace_configs, None, "GET", url, headers)
        return cls(traces, url, headers, ws_scheme)

    def hop(self, http_url: URL) -> None:
        """The request now goes to `http_url` (credentials already taken out of it)."""
        self.url = http_url.with_scheme(self._ws_scheme) if self._ws_scheme else http_url

    def follow(self, location: str) -> None:
        """A redirect is followed: aiohttp joins a relative Location to the ws(s):// URL (the
        scheme stays), while an absolute one is an http(s):// URL of its own."""
        if self._ws_scheme and URL(location).scheme:
            self._ws_scheme = None

    def drop_credentials(self) -> None:
        """A hop to another origin: aiohttp strips these from the headers its signals carry."""
        for name in ("Authorization", "Cookie", "Proxy-Authorization"):
            self.headers.popall(name, None)

    async def headers_sent(self, head: bytes) -> None:
        """request_headers_sent with the upgrade head as written (fragment-less URL, as
        aiohttp's request object has it)."""
        from crawler.http.ws_handshake import head_fields

        self._sent = head_fields(head)
        url = self.url.with_fragment(None) if self.url.raw_fragment else self.url
        headers = CIMultiDict(self._sent)
        for trace in self.traces:
            await trace.send_request_headers("GET", url, headers)

    async def redirect(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        response = self._response(status, headers, ())
        self._history.append(response)
        for trace in self.traces:
            await trace.send_request_redirect("GET", self.url, self.headers, response)

    async def refused(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """request_end for an answer that is no upgrade; ws_connect raises after it."""
        await self._end(self._response(status, headers, tuple(self._history)))

    async def opened(
        self, head: bytes | None, headers: Iterable[tuple[str, str]]
    ) -> ClientResponse:
        """request_end for the 101 (its body, the WebSocket, is not the response's): with the
        fields of its `head` as received, else (a head too big to keep) the `headers` left."""
        from crawler.http.ws_handshake import head_fields

        fields = head_fields(head) if head is not None else headers
        response = self._response(101, fields, tuple(self._history))
        await self._end(response)
        return response

    async def failed(self, exc: BaseException) -> None:
        if not self.ended:
            self.ended = True
            await request_failed(self.traces, "GET", self.url, self.headers, exc)

    async def _end(self, response: ClientResponse) -> None:
        # As aiohttp's `_request`: a failing request_end callback is the request's exception.
        self.ended = True
        try:
            for trace in self.traces:
                await trace.send_request_end("GET", self.url, self.headers, response)
        except BaseException as exc:
            await request_failed(self.traces, "GET", self.url, self.headers, exc)
            raise

    def _response(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        history: tuple[ClientResponse, ...],
    ) -> ClientResponse:
        """A bodiless `ClientResponse` for an answer wsproto parsed: what aiohttp's signals
        carry, so callbacks read `.status`, `.headers`, `.url` and the rest as they do there."""
        from http import HTTPStatus

        from crawler.http._wire import ResponseHead
        from crawler.http.response import ClientResponse
        from crawler.http.streams import StreamReader

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        head = ResponseHead(
            status=status,
            reason=reason,
            version=(1, 1),
            raw_headers=raw,
            content_length=None,
            chunked=False,
            content_encoding="",
            has_set_cookie=False,  # the jar already took them (ws_connect does)
            keep_alive=False,
            upgrade=status == 101,
        )
        content = StreamReader()
        content.feed_eof()  # the answer's body went with its socket, unread as in aiohttp
        # The response drops the URL's fragment itself (keeping it as real_url), as aiohttp's.
        return ClientResponse(
            "GET", self.url, head, content, None, request_headers=list(self._sent), history=history
        )
