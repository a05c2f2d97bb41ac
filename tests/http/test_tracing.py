"""Client tracing against real local peers, each main scenario run by our client and aiohttp's.

Every scenario is a function of the library (`crawler.http` or `aiohttp`): both clients make the
same requests to the same server with a `TraceConfig` that records every signal, and the test
asserts the two recordings agree (signal names in order, and the key params: method, url,
host, chunk, response status, exception class).
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import aiohttp
import aiohttp.tracing
import attr
import pytest
from multidict import CIMultiDict
from yarl import URL

import crawler.http as http
from crawler.http import tracing
from tests.http.raw_server import Request, raw_server, read_request, response, serve_forever
from tests.support.dns_server import TinyDNSServer
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port

SIGNALS = (
    "request_start",
    "request_chunk_sent",
    "response_chunk_received",
    "request_end",
    "request_exception",
    "request_redirect",
    "request_headers_sent",
    "connection_queued_start",
    "connection_queued_end",
    "connection_create_start",
    "connection_create_end",
    "connection_reuseconn",
    "dns_resolvehost_start",
    "dns_resolvehost_end",
    "dns_cache_hit",
    "dns_cache_miss",
)
LIBS = {"ours": http, "aiohttp": aiohttp}


# --- recording ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Event:
    name: str
    session: Any
    ctx: SimpleNamespace
    params: Any

    def summary(self) -> tuple[str, tuple[tuple[str, object], ...]]:
        """The name and the params both clients must agree on."""
        params = self.params
        fields: dict[str, object] = {}
        for name in ("method", "host"):
            if hasattr(params, name):
                fields[name] = getattr(params, name)
        if self.name == "request_chunk_sent":
            # What we sent is the same; a response echoing our request (User-Agent) is not.
            fields["chunk"] = params.chunk
        if hasattr(params, "url"):
            fields["url"] = str(params.url)
        if hasattr(params, "response"):
            fields["status"] = params.response.status
        if hasattr(params, "exception"):
            fields["exception"] = type(params.exception).__name__
        return self.name, tuple(sorted(fields.items()))


class Recorder:
    """A `TraceConfig` of `lib` with a callback on every signal, and what they saw."""

    def __init__(self, lib: ModuleType, **config_kwargs: Any) -> None:
        self.config = lib.TraceConfig(**config_kwargs)
        self.events: list[Event] = []
        for name in SIGNALS:
            getattr(self.config, f"on_{name}").append(self._callback(name))

    def _callback(self, name: str) -> Callable[..., Awaitable[None]]:
        async def record(session: Any, ctx: SimpleNamespace, params: Any) -> None:
            self.events.append(Event(name, session, ctx, params))

        return record

    def names(self, request: object = None) -> list[str]:
        return [e.name for e in self.of(request)]

    def summaries(self, request: object = None) -> list[tuple[str, tuple[Any, ...]]]:
        return [e.summary() for e in self.of(request)]

    def of(self, request: object = None) -> list[Event]:
        """Every event, or those of the request made with `trace_request_ctx=request`."""
        if request is None:
            return list(self.events)
        return [e for e in self.events if e.ctx.trace_request_ctx == request]

    def first(self, name: str) -> Event:
        return next(e for e in self.events if e.name == name)


Scenario = Callable[[ModuleType, Recorder], Awaitable[None]]


async def both(scenario: Scenario) -> tuple[Recorder, Recorder]:
    """Run `scenario` with our client, then with aiohttp's; each with its own recorder."""
    ours, theirs = Recorder(http), Recorder(aiohttp)
    await scenario(http, ours)
    await scenario(aiohttp, theirs)
    return ours, theirs


def assert_same(ours: Recorder, theirs: Recorder, request: object = None) -> None:
    assert ours.names(request) == theirs.names(request)
    assert ours.summaries(request) == theirs.summaries(request)


# --- peers -------------------------------------------------------------------------------------


@pytest.fixture
async def origin() -> AsyncIterator[OriginServer]:
    async with OriginServer() as server:
        yield server


@pytest.fixture
def dns() -> Iterator[TinyDNSServer]:
    with TinyDNSServer({"shop.test": ["127.0.0.1"]}) as server:
        yield server


async def get(session: Any, url: str, **kwargs: Any) -> bytes:
    async with session.get(url, **kwargs) as resp:
        return await resp.read()


# --- the main scenarios, ours against aiohttp --------------------------------------------------


async def test_plain_get_fires_what_aiohttp_fires(httpbin: Any) -> None:
    url = httpbin.url + "/get?q=1"
    bodies: list[bytes] = []

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            bodies.append(
                await get(session, url, headers={"X-Trace": "yes"}, trace_request_ctx="plain")
            )

    ours, theirs = await both(scenario)
    assert ours.names() == [
        "request_start",
        "connection_create_start",
        "connection_create_end",
        "request_headers_sent",
        "request_end",
        "response_chunk_received",
    ]
    assert_same(ours, theirs)
    start = ours.first("request_start").params
    assert start.url == URL(url) and isinstance(start.url, URL)
    assert isinstance(start.headers, CIMultiDict) and start.headers["X-Trace"] == "yes"
    sent = ours.first("request_headers_sent").params.headers
    assert isinstance(sent, CIMultiDict)
    assert sent["Host"] == URL(url).raw_authority and sent["X-Trace"] == "yes"
    end = ours.first("request_end").params
    assert end.response.status == 200 and end.headers is start.headers
    received = [rec.first("response_chunk_received").params for rec in (ours, theirs)]
    assert [p.chunk for p in received] == bodies and b'"q": "1"' in bodies[0]
    assert received[0].url == URL(url) and received[0].method == "GET"


async def test_each_request_gets_a_fresh_context_with_its_trace_request_ctx(
    origin: OriginServer,
) -> None:
    class Context(SimpleNamespace):
        pass

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            await get(session, origin.url("/1"), trace_request_ctx={"n": 1})
            await get(session, origin.url("/2"))

    for lib in LIBS.values():
        rec = Recorder(lib, trace_config_ctx_factory=Context)
        await scenario(lib, rec)
        first, second = rec.first("request_start"), rec.events[-1]
        assert type(first.ctx) is Context and first.ctx.trace_request_ctx == {"n": 1}
        assert second.ctx is not first.ctx and second.ctx.trace_request_ctx is None
        # Every signal of one request gets that request's context.
        assert all(e.ctx is first.ctx for e in rec.events[: len(rec.of({"n": 1}))])
        assert all(isinstance(e.session, lib.ClientSession) for e in rec.events)


async def test_redirect_chain(httpbin: Any) -> None:
    url = httpbin.url + "/redirect/2"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            await get(session, url)

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    redirects = [e.params for e in ours.events if e.name == "request_redirect"]
    assert [(p.response.status, p.url.path) for p in redirects] == [
        (302, "/redirect/2"),
        (302, "/relative-redirect/1"),
    ]
    end = ours.first("request_end").params
    assert end.url.path == "/get" and end.method == "GET"
    # Redirect bodies are not read for the caller: only the final body is reported.
    assert ours.names().count("response_chunk_received") == 1


async def test_303_after_post_reports_the_get(origin: OriginServer) -> None:
    target = origin.url("/landed")

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.post(
            origin.url("/redirect") + f"?to={target}", data=b"x"
        ):
            pass

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert [(e.params.method, e.params.url.path) for e in ours.events if e.name in (
        "request_redirect", "request_end"
    )] == [("POST", "/redirect"), ("GET", "/landed")]


async def test_connection_reuse(origin: OriginServer) -> None:
    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            await get(session, origin.url("/a"), trace_request_ctx="a")
            await get(session, origin.url("/b"), trace_request_ctx="b")

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names("b") == [
        "request_start",
        "connection_reuseconn",
        "request_headers_sent",
        "request_end",
        "response_chunk_received",
    ]


async def test_stale_kept_alive_connection_is_retried_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One answer kept alive, then the connection is dropped without a word.
        if await read_request(reader) is not None:
            writer.write(response(200, b"ok"))
            await writer.drain()
        await read_request(reader)

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            assert await get(session, base + "/1", trace_request_ctx=1) == b"ok"
            assert await get(session, base + "/2", trace_request_ctx=2) == b"ok"

    async with raw_server(handler) as base:
        ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    # The failed attempt on the stale connection announced its head; the retry does again.
    assert ours.names(2) == [
        "request_start",
        "connection_reuseconn",
        "request_headers_sent",
        "connection_create_start",
        "connection_create_end",
        "request_headers_sent",
        "request_end",
        "response_chunk_received",
    ]


async def test_waiting_for_a_pool_slot_is_queued_then_reused(origin: OriginServer) -> None:
    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        connector = lib.TCPConnector(limit=1)
        async with lib.ClientSession(connector=connector, trace_configs=[rec.config]) as session:
            await asyncio.gather(
                get(session, origin.url("/a"), trace_request_ctx="a"),
                get(session, origin.url("/b"), trace_request_ctx="b"),
            )

    ours, theirs = await both(scenario)
    assert_same(ours, theirs, "a")
    assert_same(ours, theirs, "b")
    assert ours.names("b")[:4] == [
        "request_start",
        "connection_queued_start",
        "connection_queued_end",
        "connection_reuseconn",
    ]


async def test_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/nothing-listens"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session:
            with pytest.raises(lib.ClientConnectorError):
                await session.get(url)

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names() == ["request_start", "connection_create_start", "request_exception"]
    failed = ours.first("request_exception").params
    assert isinstance(failed.exception, http.ClientConnectorError)
    assert failed.url == URL(url) and failed.method == "GET"


async def test_dns_resolve_then_cache_hit(dns: TinyDNSServer, origin: OriginServer) -> None:
    url = f"http://shop.test:{origin.port}/"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        resolver = lib.AsyncResolver(nameservers=[dns.nameserver], timeout=3, tries=1)
        # force_close: the second request opens a connection too, and so asks for the address.
        connector = lib.TCPConnector(resolver=resolver, force_close=True, ttl_dns_cache=300)
        try:
            async with lib.ClientSession(
                connector=connector, trace_configs=[rec.config]
            ) as session:
                await get(session, url, trace_request_ctx=1)
                await get(session, url, trace_request_ctx=2)
        finally:
            await resolver.close()

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names(1)[1:6] == [
        "connection_create_start",
        "dns_cache_miss",
        "dns_resolvehost_start",
        "dns_resolvehost_end",
        "connection_create_end",
    ]
    assert ours.names(2)[1:4] == [
        "connection_create_start",
        "dns_cache_hit",
        "connection_create_end",
    ]
    assert {e.params.host for e in ours.events if e.name.startswith("dns_")} == {"shop.test"}


async def test_dns_without_cache_resolves_each_time(
    dns: TinyDNSServer, origin: OriginServer
) -> None:
    url = f"http://shop.test:{origin.port}/"

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        resolver = lib.AsyncResolver(nameservers=[dns.nameserver], timeout=3, tries=1)
        connector = lib.TCPConnector(resolver=resolver, force_close=True, use_dns_cache=False)
        try:
            async with lib.ClientSession(
                connector=connector, trace_configs=[rec.config]
            ) as session:
                await get(session, url, trace_request_ctx=1)
                await get(session, url, trace_request_ctx=2)
        finally:
            await resolver.close()

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names(2)[1:5] == [
        "connection_create_start",
        "dns_resolvehost_start",
        "dns_resolvehost_end",
        "connection_create_end",
    ]


async def test_dns_failure_ends_in_request_exception(dns: TinyDNSServer) -> None:
    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        resolver = lib.AsyncResolver(nameservers=[dns.nameserver], timeout=3, tries=1)
        connector = lib.TCPConnector(resolver=resolver)
        try:
            async with lib.ClientSession(
                connector=connector, trace_configs=[rec.config]
            ) as session:
                with pytest.raises(lib.ClientConnectorError):
                    await session.get("http://nowhere.test/")
        finally:
            await resolver.close()

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names()[-3:] == ["dns_cache_miss", "dns_resolvehost_start", "request_exception"]


async def test_post_bytes_body_is_one_chunk(httpbin: Any) -> None:
    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.post(
            httpbin.url + "/post", data=b"hello body"
        ) as resp:
            assert (await resp.json())["data"] == "hello body"

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    names = ours.names()
    assert names.index("request_headers_sent") < names.index("request_chunk_sent")
    assert names.index("request_chunk_sent") < names.index("request_end")
    sent = ours.first("request_chunk_sent").params
    assert (sent.method, sent.chunk) == ("POST", b"hello body")


async def test_streamed_post_body_reports_each_chunk() -> None:
    received: list[Request] = []

    def answer(request: Request) -> bytes:
        received.append(request)
        return response(200, b"got it")

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async def body() -> AsyncIterator[bytes]:
            for piece in (b"first ", b"second ", b"third"):
                yield piece

        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.post(
            base + "/up", data=body()
        ) as resp:
            assert await resp.read() == b"got it"

    async with raw_server(serve_forever(answer)) as base:
        ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    chunks = [e.params.chunk for e in ours.events if e.name == "request_chunk_sent"]
    assert chunks == [b"first ", b"second ", b"third"]  # as given, before chunked framing
    assert [r.body for r in received] == [b"first second third"] * 2


async def test_raise_for_status_is_a_request_exception(httpbin: Any) -> None:
    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config], raise_for_status=True) as s:
            with pytest.raises(lib.ClientResponseError):
                await s.get(httpbin.url + "/status/404")

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names()[-1] == "request_exception"
    assert "request_end" not in ours.names()


async def test_body_cut_short_reports_no_chunk_received() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        async with lib.ClientSession(trace_configs=[rec.config]) as session, session.get(
            base
        ) as resp:
            with pytest.raises(lib.ClientPayloadError):
                await resp.read()

    async with raw_server(handler) as base:
        ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names()[-1] == "request_end"


async def test_failing_start_callback_reaches_only_the_earlier_configs(
    origin: OriginServer,
) -> None:
    class Refused(Exception):
        pass

    async def refuse(*_: object) -> None:
        raise Refused

    async def scenario(lib: ModuleType, rec: Recorder) -> None:
        failing = lib.TraceConfig()
        failing.on_request_start.append(refuse)
        async with lib.ClientSession(trace_configs=[rec.config, failing]) as session:
            with pytest.raises(Refused):
                await session.get(origin.url())

    ours, theirs = await both(scenario)
    assert_same(ours, theirs)
    assert ours.names() == ["request_start", "request_exception"]
    assert isinstance(ours.first("request_exception").params.exception, Refused)
    assert origin.requests == []


async def test_failing_reuse_callback_gives_the_slot_back(origin: OriginServer) -> None:
    class Refused(Exception):
        pass

    calls = 0

    async def refuse_once(*_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Refused

    config = http.TraceConfig()
    config.on_connection_reuseconn.append(refuse_once)
    connector = http.TCPConnector(limit=1)
    async with http.ClientSession(connector=connector, trace_configs=[config]) as session:
        await get(session, origin.url("/1"))
        with pytest.raises(Refused):
            await get(session, origin.url("/2"))
        stats = connector.stats()
        assert (stats.acquired, stats.waiters) == (0, 0), stats
        # With limit=1 a leaked slot would make this wait forever.
        async with asyncio.timeout(5):
            await get(session, origin.url("/3"))


# --- the API itself ----------------------------------------------------------------------------


def test_every_aiohttp_tracing_name_is_exported_with_the_same_fields() -> None:
    assert sorted(tracing.__all__) == sorted(aiohttp.tracing.__all__)
    assert set(tracing.__all__) == http._TRACING_NAMES  # the lazy list is the module's
    for name in aiohttp.tracing.__all__:
        ours = getattr(http, name)
        assert name in http.__all__
        if name.endswith("Params"):
            theirs = getattr(aiohttp.tracing, name)
            ours_fields = [f.name for f in dataclasses.fields(ours)]
            assert ours_fields == [f.name for f in attr.fields(theirs)], name
    for signal in SIGNALS:
        assert isinstance(getattr(http.TraceConfig(), f"on_{signal}"), tracing.Signal)


def test_importing_the_client_does_not_load_tracing() -> None:
    # Building the params classes takes ~15 ms: a program that never traces must not pay it.
    probe = (
        "import sys, crawler.http as h\n"
        "h.ClientSession, h.TCPConnector\n"
        "assert 'crawler.http.tracing' not in sys.modules, 'loaded early'\n"
        "assert h.TraceConfig.__module__ == 'crawler.http.tracing'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


@pytest.mark.parametrize("lib", LIBS.values(), ids=LIBS.keys())
async def test_signals_freeze_when_a_session_takes_the_config(lib: ModuleType) -> None:
    config = lib.TraceConfig()
    signal = config.on_request_end

    async def callback(*_: object) -> None:
        pass

    signal.append(callback)
    with pytest.raises(RuntimeError):
        await signal.send(None, None, None)  # not frozen yet
    async with lib.ClientSession(trace_configs=[config]) as session:
        assert session.trace_configs == [config]
        assert signal.frozen
        with pytest.raises(RuntimeError):
            signal.append(callback)
        with pytest.raises(RuntimeError):
            del signal[0]
        assert list(signal) == [callback] and len(signal) == 1


def test_signal_is_a_decorator_and_a_list() -> None:
    config = http.TraceConfig()

    @config.on_dns_cache_hit
    async def hit(*_: object) -> None:
        pass

    async def other(*_: object) -> None:
        pass

    config.on_dns_cache_hit.insert(0, other)
    assert list(config.on_dns_cache_hit) == [other, hit]
    assert config.on_dns_cache_hit == [other, hit]
    config.freeze()
    with pytest.raises(RuntimeError):
        config.on_dns_cache_hit.clear()


async def test_no_trace_objects_without_trace_configs(
    origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("tracing ran for a session without trace_configs")

    monkeypatch.setattr(tracing.Trace, "__init__", forbidden)
    monkeypatch.setattr(tracing.Signal, "send", forbidden)
    monkeypatch.setattr(tracing, "begin_request", forbidden)
    async with http.ClientSession() as session:
        assert session.trace_configs == []
        await get(session, origin.url("/1"))
        await get(session, origin.url("/2"))  # reused
        async with session.post(origin.url("/3"), data=b"body") as resp:
            await resp.read()
