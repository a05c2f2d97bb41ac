"""`ClientSession.ws_connect`: the guide's WebSockets section, and the session's settings (URLs,
headers, auth, cookies, TLS, proxies, timeouts, the pool) applied to a WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

import crawler.http
from crawler.http import BasicAuth, ClientSession, ClientTimeout, CookieJar, TCPConnector
from crawler.http.errors import (
    ClientHttpProxyError,
    ServerTimeoutError,
    WSServerHandshakeError,
)
from crawler.http.websocket import WSMsgType
from tests.support.binaries import require_binary
from tests.support.tinyproxy import TinyProxy
from tests.support.tls_certs import TestPKI, make_pki
from tests.support.ws_server import WebSocketTestServer, client_sockets_to, running_ws_server


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server
        assert client_sockets_to(server.port) == []


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
async def wss_server(pki: TestPKI) -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server(pki=pki) as server:
        yield server
        assert client_sockets_to(server.port) == []


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


def _proxy(**kwargs: object) -> Iterator[TinyProxy]:
    proxy = TinyProxy(require_binary("tinyproxy"), **kwargs)  # type: ignore[arg-type]
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def tinyproxy() -> Iterator[TinyProxy]:
    yield from _proxy()


@pytest.fixture
def refusing_proxy() -> Iterator[TinyProxy]:
    yield from _proxy(deny_connect=True)


# --- the guide -------------------------------------------------------------------------------


async def test_the_guide_example_runs_as_written(ws_server: WebSocketTestServer) -> None:
    session = crawler.http.ClientSession()
    async with session.ws_connect(ws_server.http_url("/guide")) as ws:

        async for msg in ws:
            if msg.type == crawler.http.WSMsgType.TEXT:
                if msg.data == 'close cmd':
                    await ws.close()
                    break
                else:
                    await ws.send_str(msg.data + '/answer')
            elif msg.type == crawler.http.WSMsgType.CLOSED:  # noqa: SIM114  (the guide's shape)
                break
            elif msg.type == crawler.http.WSMsgType.ERROR:
                break

    await session.close()
    assert ws_server.answers == ["hello/answer"]
    assert ws.closed
    assert await ws_server.next_close() == ("/guide", 1000, "")


async def test_await_form_and_ws_url(
    ws_server: WebSocketTestServer, session: ClientSession
) -> None:
    ws = await session.ws_connect(ws_server.url("/echo"))
    await ws.send_str("awaited")
    assert await ws.receive_str() == "awaited"
    assert await ws.close()


async def test_base_url_and_params(ws_server: WebSocketTestServer) -> None:
    async with (
        ClientSession(base_url=ws_server.http_url("/")) as session,
        session.ws_connect("/headers", params={"q": "1"}) as ws,
    ):
        assert ws.url.path == "/headers"
        assert ws.url.query_string == "q=1"
        assert (await ws.receive_json())["host"] == [f"127.0.0.1:{ws_server.port}"]


# --- what the session adds to the handshake --------------------------------------------------


async def test_session_headers_auth_and_cookies_reach_the_server(
    ws_server: WebSocketTestServer,
) -> None:
    jar = CookieJar(unsafe=True)
    async with ClientSession(
        headers={"X-Session": "s"},
        auth=BasicAuth("crawler", "secret"),
        cookies={"visited": "yes"},
        cookie_jar=jar,
    ) as session, session.ws_connect(
        ws_server.http_url("/headers"), headers={"X-Call": "c"}, origin="http://o.test"
    ) as ws:
        seen = await ws.receive_json()
    assert seen["x-session"] == ["s"]
    assert seen["x-call"] == ["c"]
    assert seen["origin"] == ["http://o.test"]
    assert seen["authorization"] == [BasicAuth("crawler", "secret").encode()]
    assert seen["cookie"] == ["visited=yes"]
    assert seen["user-agent"][0].startswith("Python/")


async def test_cookies_set_by_the_upgrade_answer_go_into_the_jar(
    ws_server: WebSocketTestServer,
) -> None:
    jar = CookieJar(unsafe=True)
    async with ClientSession(cookie_jar=jar) as session:
        async with session.ws_connect(ws_server.http_url("/set-cookie")) as ws:
            assert ws.response_headers["Set-Cookie"].startswith("ws_session=")
        async with session.ws_connect(ws_server.http_url("/headers")) as ws:
            seen = await ws.receive_json()
    assert seen["cookie"] == ["ws_session=abc123"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"X-Bad": "a\r\nb: c"}},
        {"origin": "http://o.test\r\nX: y"},
        {"protocols": ["two words"]},
        {"heartbeat": 0},
        {"max_msg_size": -1},
        {"compress": 30},
    ],
)
async def test_bad_arguments_are_refused_before_connecting(
    ws_server: WebSocketTestServer, session: ClientSession, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        await session.ws_connect(ws_server.url("/echo"), **kwargs)
    assert ws_server.requests == []
    assert client_sockets_to(ws_server.port) == []
    connector = session.connector
    assert connector is not None
    assert connector.stats().acquired == 0


# --- failures --------------------------------------------------------------------------------


async def test_rejected_upgrade_raises_with_status_and_frees_the_slot(
    ws_server: WebSocketTestServer, session: ClientSession
) -> None:
    with pytest.raises(WSServerHandshakeError) as caught:
        async with session.ws_connect(ws_server.http_url("/reject")):
            pass
    assert caught.value.status == 403
    connector = session.connector
    assert connector is not None
    assert connector.stats().acquired == 0


async def test_closed_session_refuses(ws_server: WebSocketTestServer) -> None:
    session = ClientSession()
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        await session.ws_connect(ws_server.url())


async def test_total_timeout_bounds_the_handshake() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # never answers the upgrade; returns when the client gives up
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ClientSession(timeout=ClientTimeout(total=0.3)) as session:
            with pytest.raises(ServerTimeoutError):
                await session.ws_connect(f"ws://127.0.0.1:{port}/")
        assert client_sockets_to(port) == []
    finally:
        server.close()
        await server.wait_closed()


# --- the pool --------------------------------------------------------------------------------


async def test_an_open_websocket_does_not_hold_a_pool_slot(
    ws_server: WebSocketTestServer,
) -> None:
    async with ClientSession(connector=TCPConnector(limit=1)) as session:
        first = await session.ws_connect(ws_server.url("/echo"))
        second = await asyncio.wait_for(session.ws_connect(ws_server.url("/echo")), 10)
        for ws, word in ((first, "one"), (second, "two")):
            await ws.send_str(word)
            assert await ws.receive_str() == word
        assert session.connector is not None
        assert session.connector.stats().acquired == 0
        await first.close()
        await second.close()


# --- TLS -------------------------------------------------------------------------------------


async def test_wss_with_the_connector_ssl_context(
    wss_server: WebSocketTestServer, pki: TestPKI
) -> None:
    connector = TCPConnector(ssl=pki.client_context())
    async with (
        ClientSession(connector=connector) as session,
        session.ws_connect(wss_server.url("/echo")) as ws,
    ):
        assert ws.get_extra_info("ssl_object") is not None
        await ws.send_bytes(b"over tls")
        assert await ws.receive_bytes() == b"over tls"


async def test_wss_with_a_per_call_ssl_context(
    wss_server: WebSocketTestServer, pki: TestPKI, session: ClientSession
) -> None:
    async with session.ws_connect(wss_server.http_url("/echo"), ssl=pki.client_context()) as ws:
        await ws.send_str("https:// works too")
        assert await ws.receive_str() == "https:// works too"


async def test_wss_refuses_an_untrusted_certificate(
    wss_server: WebSocketTestServer, session: ClientSession
) -> None:
    with pytest.raises(crawler.http.ClientConnectorCertificateError):
        await session.ws_connect(wss_server.url("/echo"))
    assert wss_server.requests == []


# --- proxies ---------------------------------------------------------------------------------


async def test_ws_through_a_proxy_tunnel(
    ws_server: WebSocketTestServer, tinyproxy: TinyProxy, session: ClientSession
) -> None:
    async with session.ws_connect(ws_server.url("/echo"), proxy=tinyproxy.url) as ws:
        await ws.send_str("tunnelled")
        assert await ws.receive_str() == "tunnelled"
    assert "CONNECT" in tinyproxy.log()


async def test_wss_through_a_proxy_tunnel(
    wss_server: WebSocketTestServer, pki: TestPKI, tinyproxy: TinyProxy
) -> None:
    connector = TCPConnector(ssl=pki.client_context())
    async with (
        ClientSession(connector=connector, proxy=tinyproxy.url) as session,
        session.ws_connect(wss_server.url("/echo")) as ws,
    ):
        await ws.send_str("tls in a tunnel")
        assert await ws.receive_str() == "tls in a tunnel"
    assert "CONNECT" in tinyproxy.log()


async def test_proxy_refusing_connect_raises_its_status(
    ws_server: WebSocketTestServer, refusing_proxy: TinyProxy, session: ClientSession
) -> None:
    with pytest.raises(ClientHttpProxyError) as caught:
        await session.ws_connect(ws_server.url("/echo"), proxy=refusing_proxy.url)
    assert caught.value.status == 403
    assert ws_server.requests == []


async def test_websocket_message_types_are_exported_like_the_guide_says() -> None:
    assert crawler.http.WSMsgType is WSMsgType
    assert crawler.http.ClientWebSocketResponse.__name__ == "ClientWebSocketResponse"
