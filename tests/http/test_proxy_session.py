"""The guide's "Proxy support", end to end: ClientSession, tinyproxy, a recording proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from crawler.http import (
    BasicAuth,
    ClientConnectorCertificateError,
    ClientHttpProxyError,
    ClientProxyConnectionError,
    ClientSession,
    TCPConnector,
)
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.recording_proxy import RecordingProxy
from tests.support.tinyproxy import TinyProxy
from tests.support.tls_certs import TestPKI, make_pki

CREDENTIALS = BasicAuth("crawler", "s3cret")
_PROXY_VARIABLES = [f"{scheme}_proxy" for scheme in ("http", "https", "all", "no", "ws", "wss")] + [
    f"{scheme.upper()}_PROXY" for scheme in ("http", "https", "all", "no", "ws", "wss")
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
async def origin() -> AsyncIterator[OriginServer]:
    async with OriginServer() as server:
        yield server


@pytest.fixture
async def tls_origin(pki: TestPKI) -> AsyncIterator[OriginServer]:
    async with OriginServer(ssl_context=pki.server_context()) as server:
        yield server


@pytest.fixture
async def recording_proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy() as proxy:
        yield proxy


@pytest.fixture
async def auth_proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy(require_auth=CREDENTIALS.encode()) as proxy:
        yield proxy


def with_credentials(proxy_url: str, user: str, password: str) -> str:
    return str(URL(proxy_url).with_user(user).with_password(password))


# --- through tinyproxy ------------------------------------------------------------------------


async def test_http_url_through_tinyproxy(tinyproxy: TinyProxy, origin: OriginServer) -> None:
    async with (
        ClientSession() as session,
        session.get(origin.url("/via?q=1"), proxy=tinyproxy.url) as response,
    ):
        assert response.status == 200
        body = await response.json()
    assert body["target"] == "/via?q=1"
    assert f"GET {origin.url('/via?q=1')}" in tinyproxy.log()


async def test_https_url_through_tinyproxy_connect(
    pki: TestPKI, tinyproxy: TinyProxy, tls_origin: OriginServer
) -> None:
    async with ClientSession() as session:
        url = tls_origin.url("/secure", host="localhost")
        async with session.get(url, proxy=tinyproxy.url, ssl=pki.client_context()) as response:
            assert response.status == 200
            assert (await response.json())["target"] == "/secure"
    assert f"CONNECT localhost:{tls_origin.port}" in tinyproxy.log()


async def test_origin_certificate_is_verified_through_the_tunnel(
    tinyproxy: TinyProxy, tls_origin: OriginServer
) -> None:
    async with ClientSession() as session:
        with pytest.raises(ClientConnectorCertificateError):
            await session.get(tls_origin.url("/", host="localhost"), proxy=tinyproxy.url)
    assert tls_origin.requests == []


# --- what the proxy and the origin see ---------------------------------------------------------


async def test_absolute_form_and_proxy_auth_for_http(
    auth_proxy: RecordingProxy, origin: OriginServer
) -> None:
    async with (
        ClientSession() as session,
        session.get(origin.url("/plain"), proxy=auth_proxy.url, proxy_auth=CREDENTIALS) as response,
    ):
        assert response.status == 200
        await response.read()
    (seen,) = auth_proxy.requests
    assert seen.target == origin.url("/plain")
    assert seen.header("Proxy-Authorization") == CREDENTIALS.encode()
    assert origin.requests[0].header("Proxy-Authorization") is None


async def test_connect_and_proxy_auth_for_https(
    pki: TestPKI, auth_proxy: RecordingProxy, tls_origin: OriginServer
) -> None:
    async with (
        ClientSession() as session,
        session.get(
            tls_origin.url("/tls", host="localhost"),
            proxy=auth_proxy.url,
            proxy_auth=CREDENTIALS,
            ssl=pki.client_context(),
        ) as response,
    ):
        assert response.status == 200
        await response.read()
    (connect,) = auth_proxy.requests
    assert (connect.method, connect.target) == ("CONNECT", f"localhost:{tls_origin.port}")
    assert connect.header("Proxy-Authorization") == CREDENTIALS.encode()
    (at_origin,) = tls_origin.requests
    assert at_origin.header("Proxy-Authorization") is None
    assert at_origin.header("Host") == f"localhost:{tls_origin.port}"


async def test_credentials_in_the_proxy_url(
    auth_proxy: RecordingProxy, origin: OriginServer
) -> None:
    proxy = with_credentials(auth_proxy.url, "crawler", "s3cret")
    async with ClientSession() as session, session.get(origin.url("/u"), proxy=proxy) as response:
        assert response.status == 200
    assert auth_proxy.requests[0].header("Proxy-Authorization") == CREDENTIALS.encode()
    assert origin.requests[0].header("Proxy-Authorization") is None
    assert origin.requests[0].header("Authorization") is None


async def test_proxy_headers_go_to_the_proxy(
    recording_proxy: RecordingProxy, origin: OriginServer
) -> None:
    async with (
        ClientSession() as session,
        session.get(
            origin.url("/h"), proxy=recording_proxy.url, proxy_headers={"X-Via-Test": "1"}
        ) as response,
    ):
        assert response.status == 200
    assert recording_proxy.requests[0].header("X-Via-Test") == "1"


async def test_refused_connect_raises_http_proxy_error(
    auth_proxy: RecordingProxy, tls_origin: OriginServer
) -> None:
    async with ClientSession() as session:
        with pytest.raises(ClientHttpProxyError) as caught:
            await session.get(tls_origin.url("/"), proxy=auth_proxy.url, ssl=False)
    assert caught.value.status == 407
    assert tls_origin.requests == []


async def test_refused_absolute_form_request_is_the_proxys_response(
    auth_proxy: RecordingProxy, origin: OriginServer
) -> None:
    async with (
        ClientSession() as session,
        session.get(origin.url("/"), proxy=auth_proxy.url) as response,
    ):
        assert response.status == 407
    assert origin.requests == []


async def test_unreachable_proxy(origin: OriginServer) -> None:
    port = free_port()
    async with ClientSession() as session:
        with pytest.raises(ClientProxyConnectionError):
            await session.get(origin.url("/"), proxy=f"http://127.0.0.1:{port}")


async def test_proxy_authorization_header_does_not_follow_a_redirect() -> None:
    async with OriginServer() as first, OriginServer() as second:
        target = second.url("/landed", host="localhost")  # another origin (host differs)
        async with (
            ClientSession() as session,
            session.get(
                URL(first.url("/redirect")).with_query(to=target),
                headers={"Proxy-Authorization": CREDENTIALS.encode()},
            ) as response,
        ):
            assert response.status == 200
            assert len(response.history) == 1
    assert first.requests[0].header("Proxy-Authorization") == CREDENTIALS.encode()
    assert second.requests[0].header("Proxy-Authorization") is None


# --- trust_env ----------------------------------------------------------------------------------


async def test_environment_is_ignored_without_trust_env(
    recording_proxy: RecordingProxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", recording_proxy.url)
    async with ClientSession() as session, session.get(origin.url("/direct")) as response:
        assert response.status == 200
    assert recording_proxy.requests == []
    assert origin.requests[0].target == "/direct"


async def test_trust_env_uses_http_proxy(
    recording_proxy: RecordingProxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", recording_proxy.url)
    async with (
        ClientSession(trust_env=True) as session,
        session.get(origin.url("/env")) as response,
    ):
        assert response.status == 200
    assert recording_proxy.requests[0].target == origin.url("/env")


async def test_trust_env_uses_https_proxy_for_https(
    pki: TestPKI,
    recording_proxy: RecordingProxy,
    tls_origin: OriginServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", recording_proxy.url)
    async with ClientSession(trust_env=True) as session:
        url = tls_origin.url("/s", host="localhost")
        async with session.get(url, ssl=pki.client_context()) as response:
            assert response.status == 200
    assert recording_proxy.requests[0].method == "CONNECT"


async def test_trust_env_respects_no_proxy(
    recording_proxy: RecordingProxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", recording_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with (
        ClientSession(trust_env=True) as session,
        session.get(origin.url("/bypass")) as response,
    ):
        assert response.status == 200
    assert recording_proxy.requests == []


@pytest.mark.parametrize(
    ("no_proxy", "origin_host", "direct"),
    [
        ("::1", "::1", True),  # aiohttp matches it; "[::1]:port" once hid the host from urllib
        ("localhost,::1", "::1", True),
        ("::1/128", "::1", True),  # networks in CIDR notation, as curl and requests read them
        ("127.0.0.0/8", "127.0.0.1", True),
        (" 10.0.0.0/8 , 127.0.0.1/32 ", "127.0.0.1", True),
        ("10.0.0.0/8", "127.0.0.1", False),
        ("fd00::/8", "::1", False),
    ],
)
async def test_trust_env_no_proxy_matches_ipv6_and_networks(
    recording_proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
    origin_host: str,
    direct: bool,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", recording_proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    origin = OriginServer()
    await origin.start(origin_host)
    url = origin.url("/np", host=f"[{origin_host}]" if ":" in origin_host else origin_host)
    try:
        async with ClientSession(trust_env=True) as session, session.get(url) as response:
            assert response.status == 200
    finally:
        await origin.close()
    assert [r.target for r in recording_proxy.requests] == ([] if direct else [url])


async def test_trust_env_uses_all_proxy_as_the_fallback(
    recording_proxy: RecordingProxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", recording_proxy.url)
    async with (
        ClientSession(trust_env=True) as session,
        session.get(origin.url("/all")) as response,
    ):
        assert response.status == 200
    assert recording_proxy.requests[0].target == origin.url("/all")


async def test_trust_env_picks_the_proxy_again_for_each_redirect_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first origin is proxied, the redirect's target is in NO_PROXY: that hop goes direct,
    # and the proxy's credentials (from the proxy URL) never travel with it.
    async with (
        RecordingProxy(require_auth=CREDENTIALS.encode()) as proxy,
        OriginServer() as first,
        OriginServer() as second,
    ):
        monkeypatch.setenv("HTTP_PROXY", with_credentials(proxy.url, "crawler", "s3cret"))
        monkeypatch.setenv("NO_PROXY", "localhost")
        target = second.url("/landed", host="localhost")
        start = first.url("/redirect")
        async with (
            ClientSession(trust_env=True) as session,
            session.get(URL(start).with_query(to=target)) as response,
        ):
            assert response.status == 200
            assert response.url == URL(target)
            assert len(response.history) == 1
    [proxied] = proxy.requests
    assert proxied.target.startswith(start)
    assert proxied.header("Proxy-Authorization") == CREDENTIALS.encode()
    [landed] = second.requests
    assert landed.target == "/landed"
    assert landed.header("Proxy-Authorization") is None
    assert first.requests[0].header("Proxy-Authorization") is None


async def test_trust_env_takes_proxy_credentials_from_netrc(
    auth_proxy: RecordingProxy,
    origin: OriginServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login crawler password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", auth_proxy.url)
    async with (
        ClientSession(trust_env=True) as session,
        session.get(origin.url("/netrc")) as response,
    ):
        assert response.status == 200
    assert auth_proxy.requests[0].header("Proxy-Authorization") == CREDENTIALS.encode()


async def test_explicit_proxy_wins_over_the_environment(
    recording_proxy: RecordingProxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    connector = TCPConnector()
    async with (
        ClientSession(connector=connector, trust_env=True) as session,
        session.get(origin.url("/x"), proxy=recording_proxy.url) as response,
    ):
        assert response.status == 200
    assert len(recording_proxy.requests) == 1


async def test_trust_env_takes_origin_credentials_from_netrc(
    origin: OriginServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password books\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    async with (
        ClientSession(trust_env=True) as session,
        session.get(origin.url("/trusted")) as response,
    ):
        assert response.status == 200
    async with ClientSession() as session, session.get(origin.url("/untrusted")) as response:
        assert response.status == 200
    trusted, untrusted = origin.requests
    assert trusted.header("Authorization") == BasicAuth("reader", "books").encode()
    assert untrusted.header("Authorization") is None


# --- pooling of tunnels ---------------------------------------------------------------------------


async def test_tunnels_are_pooled_per_proxy_and_origin(
    pki: TestPKI, tls_origin: OriginServer
) -> None:
    url = tls_origin.url("/pooled", host="localhost")
    context = pki.client_context()
    async with RecordingProxy() as first, RecordingProxy() as second:
        async with ClientSession() as session:
            for proxy in (first.url, first.url, second.url, None):
                async with session.get(url, proxy=proxy, ssl=context) as response:
                    assert response.status == 200
                    await response.read()
        # The second request reused the first tunnel; another proxy, or none, needs its own.
        assert [r.method for r in first.requests] == ["CONNECT"]
        assert [r.method for r in second.requests] == ["CONNECT"]
    assert len(tls_origin.requests) == 4
