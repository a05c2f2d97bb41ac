"""Reaching origins through HTTP proxies: CONNECT tunnels and absolute-form, with real proxies.

tinyproxy is the real-world peer; the recording proxy shows what a proxy receives and lets the
origin prove it never saw the proxy's credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from yarl import URL

from crawler.http.auth import BasicAuth
from crawler.http.dialer import open_proxy_connection, open_tunnel
from crawler.http.dns_cache import HostResolver
from crawler.http.errors import (
    ClientConnectorCertificateError,
    ClientHttpProxyError,
    ClientProxyConnectionError,
    ConnectionKeyInfo,
    ConnectionTimeoutError,
    ServerFingerprintMismatch,
)
from crawler.http.resolver import ThreadedResolver
from crawler.http.tls import Fingerprint, SSLSetting
from tests.support.binaries import require_binary
from tests.support.client_protocol import CollectingProtocol, get_request
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.recording_proxy import RecordingProxy
from tests.support.tinyproxy import TinyProxy
from tests.support.tls_certs import TestPKI, make_pki

CREDENTIALS = BasicAuth("crawler", "s3cret")


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
async def tls_origin(pki: TestPKI) -> AsyncIterator[OriginServer]:
    async with OriginServer(ssl_context=pki.server_context()) as origin:
        yield origin


@pytest.fixture
async def plain_origin() -> AsyncIterator[OriginServer]:
    async with OriginServer() as origin:
        yield origin


@pytest.fixture
def resolver() -> HostResolver:
    return HostResolver(ThreadedResolver())


def _tinyproxy(**kwargs: object) -> Iterator[TinyProxy]:
    proxy = TinyProxy(require_binary("tinyproxy"), **kwargs)  # type: ignore[arg-type]
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def tinyproxy() -> Iterator[TinyProxy]:
    yield from _tinyproxy()


@pytest.fixture
def tinyproxy_with_auth() -> Iterator[TinyProxy]:
    yield from _tinyproxy(basic_auth=(CREDENTIALS.login, CREDENTIALS.password))


@pytest.fixture
def tinyproxy_denying_connect() -> Iterator[TinyProxy]:
    yield from _tinyproxy(deny_connect=True)


async def tunnel(
    proxy: str | URL,
    origin_port: int,
    resolver: HostResolver,
    ssl: SSLSetting | None,
    *,
    target_host: str = "localhost",
    proxy_headers: dict[str, str] | None = None,
    sock_connect: float | None = 10,
    **kwargs: object,
) -> tuple[asyncio.Transport, CollectingProtocol]:
    proxy_url = URL(proxy)
    return await open_tunnel(
        CollectingProtocol,
        proxy=proxy_url,
        proxy_headers=proxy_headers or {},
        target_host=target_host,
        target_port=origin_port,
        ssl=ssl,
        server_hostname=None,
        resolver=resolver,
        sock_connect=sock_connect,
        key=ConnectionKeyInfo(
            host=target_host, port=origin_port, is_ssl=ssl is not None, ssl=ssl, proxy=proxy_url
        ),
        **kwargs,  # type: ignore[arg-type]
    )


async def exchange(
    transport: asyncio.Transport, protocol: CollectingProtocol, request: bytes
) -> dict:
    transport.write(request)
    _head, body = await protocol.read_response()
    transport.close()
    await protocol.closed
    return body


# --- CONNECT through tinyproxy ----------------------------------------------------------------


async def test_tls_tunnel_through_tinyproxy_verifies_the_origin(
    pki: TestPKI, tinyproxy: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    transport, protocol = await tunnel(
        tinyproxy.url, tls_origin.port, resolver, pki.client_context()
    )
    assert transport.get_extra_info("ssl_object").server_hostname == "localhost"
    assert protocol.made == 1
    body = await exchange(transport, protocol, get_request("/inside", "localhost"))
    assert body["target"] == "/inside"
    assert f"CONNECT localhost:{tls_origin.port}" in tinyproxy.log()


async def test_origin_certificate_is_checked_inside_the_tunnel(
    tinyproxy: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    # Default verification does not know the test CA.
    with pytest.raises(ClientConnectorCertificateError) as caught:
        await tunnel(tinyproxy.url, tls_origin.port, resolver, True)
    assert caught.value.host == "localhost"
    assert tls_origin.requests == []


async def test_pin_is_checked_inside_the_tunnel(
    pki: TestPKI, tinyproxy: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    with pytest.raises(ServerFingerprintMismatch) as caught:
        await tunnel(tinyproxy.url, tls_origin.port, resolver, Fingerprint(bytes(32)))
    assert caught.value.got == pki.sha256
    transport, protocol = await tunnel(
        tinyproxy.url, tls_origin.port, resolver, Fingerprint(pki.sha256)
    )
    await exchange(transport, protocol, get_request("/pinned", "localhost"))
    assert [r.target for r in tls_origin.requests] == ["/pinned"]


async def test_plain_tunnel_carries_bytes_unchanged(
    tinyproxy: TinyProxy, plain_origin: OriginServer, resolver: HostResolver
) -> None:
    transport, protocol = await tunnel(
        tinyproxy.url, plain_origin.port, resolver, None, target_host="127.0.0.1"
    )
    body = await exchange(transport, protocol, get_request("/plain", "127.0.0.1"))
    assert body["target"] == "/plain"


async def test_tinyproxy_asks_for_credentials_with_407(
    tinyproxy_with_auth: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    with pytest.raises(ClientHttpProxyError) as caught:
        await tunnel(tinyproxy_with_auth.url, tls_origin.port, resolver, False)
    assert caught.value.status == 407
    assert "407" in str(caught.value)


async def test_proxy_auth_opens_tinyproxys_tunnel(
    tinyproxy_with_auth: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    transport, protocol = await tunnel(
        tinyproxy_with_auth.url, tls_origin.port, resolver, False, proxy_auth=CREDENTIALS
    )
    await exchange(transport, protocol, get_request("/authed", "localhost"))
    assert tls_origin.requests[0].header("Proxy-Authorization") is None


async def test_credentials_in_the_proxy_url_open_tinyproxys_tunnel(
    tinyproxy_with_auth: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    proxy = URL(tinyproxy_with_auth.url).with_user("crawler").with_password("s3cret")
    transport, protocol = await tunnel(proxy, tls_origin.port, resolver, False)
    await exchange(transport, protocol, get_request("/authed", "localhost"))
    assert [r.target for r in tls_origin.requests] == ["/authed"]


async def test_refused_connect_raises_http_proxy_error_with_status(
    tinyproxy_denying_connect: TinyProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    with pytest.raises(ClientHttpProxyError) as caught:
        await tunnel(tinyproxy_denying_connect.url, tls_origin.port, resolver, False)
    assert caught.value.status == 403
    assert caught.value.request_info is not None
    assert caught.value.request_info.method == "CONNECT"


# --- absolute-form through tinyproxy ---------------------------------------------------------


async def test_absolute_form_request_through_tinyproxy(
    tinyproxy: TinyProxy, plain_origin: OriginServer, resolver: HostResolver
) -> None:
    transport, protocol = await open_proxy_connection(
        CollectingProtocol, proxy=URL(tinyproxy.url), resolver=resolver, sock_connect=10
    )
    target = plain_origin.url("/absolute?x=1")
    body = await exchange(
        transport, protocol, get_request(target, f"127.0.0.1:{plain_origin.port}")
    )
    assert body["target"] == "/absolute?x=1"


async def test_unreachable_proxy_is_a_proxy_connection_error(resolver: HostResolver) -> None:
    port = free_port()
    with pytest.raises(ClientProxyConnectionError) as caught:
        await tunnel(f"http://127.0.0.1:{port}", 443, resolver, True, target_host="example.com")
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)


async def test_proxy_scheme_must_be_http_or_https(resolver: HostResolver) -> None:
    with pytest.raises(ValueError, match="proxies are supported"):
        await tunnel("socks5://127.0.0.1:1080", 443, resolver, True)


# --- what a proxy and the origin see (recording proxy) ----------------------------------------


@pytest.fixture
async def recording_proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy(require_auth=CREDENTIALS.encode()) as proxy:
        yield proxy


async def test_proxy_authorization_goes_to_the_proxy_only(
    pki: TestPKI,
    recording_proxy: RecordingProxy,
    tls_origin: OriginServer,
    resolver: HostResolver,
) -> None:
    transport, protocol = await tunnel(
        recording_proxy.url,
        tls_origin.port,
        resolver,
        pki.client_context(),
        proxy_auth=CREDENTIALS,
        proxy_headers={"X-Proxy-Note": "hello"},
    )
    await exchange(transport, protocol, get_request("/secret-free", "localhost"))
    (connect,) = recording_proxy.requests
    assert connect.method == "CONNECT"
    assert connect.target == f"localhost:{tls_origin.port}"
    assert connect.header("Host") == f"localhost:{tls_origin.port}"
    assert connect.header("Proxy-Authorization") == CREDENTIALS.encode()
    assert connect.header("X-Proxy-Note") == "hello"
    (at_origin,) = tls_origin.requests
    assert at_origin.header("Proxy-Authorization") is None
    assert at_origin.header("X-Proxy-Note") is None


async def test_url_credentials_become_proxy_authorization(
    recording_proxy: RecordingProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    proxy = URL(recording_proxy.url).with_user("crawler").with_password("s3cret")
    transport, protocol = await tunnel(proxy, tls_origin.port, resolver, False)
    await exchange(transport, protocol, get_request("/", "localhost"))
    assert recording_proxy.requests[0].header("Proxy-Authorization") == CREDENTIALS.encode()


async def test_explicit_proxy_auth_wins_over_url_credentials(
    recording_proxy: RecordingProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    proxy = URL(recording_proxy.url).with_user("someone").with_password("else")
    transport, protocol = await tunnel(
        proxy, tls_origin.port, resolver, False, proxy_auth=CREDENTIALS
    )
    await exchange(transport, protocol, get_request("/", "localhost"))
    assert recording_proxy.requests[0].header("Proxy-Authorization") == CREDENTIALS.encode()


async def test_407_error_does_not_carry_the_credentials(
    recording_proxy: RecordingProxy, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    wrong = BasicAuth("crawler", "wrong")
    proxy = URL(recording_proxy.url).with_user("crawler").with_password("wrong")
    with pytest.raises(ClientHttpProxyError) as caught:
        await tunnel(proxy, tls_origin.port, resolver, False)
    assert caught.value.status == 407
    assert caught.value.headers is not None
    assert caught.value.headers["Proxy-Authenticate"].startswith("Basic")
    info = caught.value.request_info
    assert info is not None
    assert "Proxy-Authorization" not in info.headers
    assert "wrong" not in str(info.real_url) and "wrong" not in str(caught.value)
    assert recording_proxy.requests[0].header("Proxy-Authorization") == wrong.encode()


async def test_cr_lf_in_a_proxy_header_is_refused_before_connecting(
    recording_proxy: RecordingProxy, resolver: HostResolver
) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        await tunnel(
            recording_proxy.url,
            443,
            resolver,
            True,
            proxy_headers={"X-Evil": "a\r\nProxy-Authorization: Basic Zm9vOmJhcg=="},
        )
    assert recording_proxy.requests == []


async def test_proxy_hanging_up_on_connect_is_a_proxy_connection_error(
    resolver: HostResolver,
) -> None:
    async with RecordingProxy(hang_up_on_connect=True) as proxy:
        with pytest.raises(ClientProxyConnectionError, match="before answering CONNECT"):
            await tunnel(proxy.url, 443, resolver, True)


async def test_proxy_stalling_on_connect_is_bounded_by_sock_connect(
    resolver: HostResolver,
) -> None:
    async with RecordingProxy(stall_on_connect=True) as proxy:
        with pytest.raises(ConnectionTimeoutError, match="via proxy"):
            await tunnel(proxy.url, 443, resolver, True, sock_connect=0.3)
        assert [r.method for r in proxy.requests] == ["CONNECT"]


async def test_any_non_2xx_connect_answer_is_refused(
    tls_origin: OriginServer, resolver: HostResolver
) -> None:
    async with RecordingProxy(connect_status=502) as proxy:
        with pytest.raises(ClientHttpProxyError) as caught:
            await tunnel(proxy.url, tls_origin.port, resolver, False)
    assert caught.value.status == 502
    assert caught.value.message == "Refused by test"
    assert tls_origin.requests == []


async def test_absolute_form_through_recording_proxy_strips_proxy_headers_at_origin(
    plain_origin: OriginServer, resolver: HostResolver
) -> None:
    async with RecordingProxy() as proxy:
        transport, protocol = await open_proxy_connection(
            CollectingProtocol, proxy=URL(proxy.url), resolver=resolver
        )
        target = plain_origin.url("/abs")
        request = get_request(
            target,
            f"127.0.0.1:{plain_origin.port}",
            extra=f"Proxy-Authorization: {CREDENTIALS.encode()}\r\n",
        )
        body = await exchange(transport, protocol, request)
    assert proxy.requests[0].target == target
    assert body["target"] == "/abs"
    assert plain_origin.requests[0].header("Proxy-Authorization") is None


# --- an https:// proxy: TLS to the proxy, TLS to the origin inside it --------------------------


async def test_tls_tunnel_inside_a_tls_proxy(
    pki: TestPKI, tls_origin: OriginServer, resolver: HostResolver
) -> None:
    async with RecordingProxy(ssl_context=pki.server_context()) as proxy:
        transport, protocol = await tunnel(
            proxy.url,
            tls_origin.port,
            resolver,
            pki.client_context(),
            proxy_ssl=pki.client_context(),
        )
        body = await exchange(transport, protocol, get_request("/nested", "localhost"))
    assert body["target"] == "/nested"
    assert proxy.requests[0].method == "CONNECT"


async def test_tls_proxy_certificate_is_verified(
    tls_origin: OriginServer, resolver: HostResolver, pki: TestPKI
) -> None:
    async with RecordingProxy(ssl_context=pki.server_context()) as proxy:
        proxy_port = proxy.port
        with pytest.raises(ClientConnectorCertificateError) as caught:
            await tunnel(proxy.url, tls_origin.port, resolver, False)
    assert (caught.value.host, caught.value.port) == ("localhost", proxy_port)
    assert proxy.requests == []


async def test_bytes_arriving_with_the_connect_answer_reach_a_plain_tunnel(
    plain_origin: OriginServer, resolver: HostResolver
) -> None:
    async with RecordingProxy(bytes_after_connect=b"BANNER\r\n") as proxy:
        transport, protocol = await tunnel(
            proxy.url, plain_origin.port, resolver, None, target_host="127.0.0.1"
        )
        assert bytes(protocol.received) == b"BANNER\r\n"
        protocol.received.clear()
        body = await exchange(transport, protocol, get_request("/after", "127.0.0.1"))
    assert body["target"] == "/after"


async def test_bytes_before_the_tls_handshake_are_refused(
    tls_origin: OriginServer, resolver: HostResolver
) -> None:
    async with RecordingProxy(bytes_after_connect=b"garbage") as proxy:
        with pytest.raises(ClientProxyConnectionError, match="before the TLS handshake"):
            await tunnel(proxy.url, tls_origin.port, resolver, False)


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 200 Connection established\n\n", b"HTTP/1.0 200 OK\nProxy-Agent: t\n\r\n"],
)
async def test_connect_answer_with_bare_lf_line_ends_opens_the_tunnel(
    pki: TestPKI, tls_origin: OriginServer, resolver: HostResolver, answer: bytes
) -> None:
    # aiohttp (and our response parser) accept lines ended by a lone LF from a server; such a
    # CONNECT answer once left the tunnel waiting for CRLF CRLF until sock_connect ran out.
    async with RecordingProxy(connect_answer=answer) as proxy:
        transport, protocol = await tunnel(
            proxy.url, tls_origin.port, resolver, pki.client_context(), sock_connect=5
        )
        body = await exchange(transport, protocol, get_request("/lf", "localhost"))
    assert body["target"] == "/lf"
