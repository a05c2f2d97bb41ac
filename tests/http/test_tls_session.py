"""The guide's "SSL control for TCP sockets", end to end: ClientSession, a trustme origin."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from crawler.http import (
    ClientConnectorCertificateError,
    ClientSession,
    ClientTimeout,
    Fingerprint,
    FingerprintMismatch,
    ServerFingerprintMismatch,
    ServerTimeoutError,
    TCPConnector,
)
from tests.support.origin_server import OriginServer
from tests.support.tls_certs import TestPKI, make_pki


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
async def origin(pki: TestPKI) -> AsyncIterator[OriginServer]:
    async with OriginServer(ssl_context=pki.server_context()) as server:
        yield server


async def get_json(session: ClientSession, url: str, **kwargs: object) -> dict:
    async with session.get(url, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status == 200
        return await response.json()


async def test_verification_is_on_by_default(origin: OriginServer) -> None:
    async with ClientSession() as session:
        with pytest.raises(ClientConnectorCertificateError) as caught:
            await session.get(origin.url("/", host="localhost"))
    assert isinstance(caught.value.certificate_error, ssl.SSLCertVerificationError)
    assert origin.requests == []


@pytest.mark.parametrize("failure", ["unknown CA", "host name mismatch", "expired"])
async def test_certificate_errors_are_also_the_standard_ssl_errors(failure: str) -> None:
    # aiohttp's ClientConnectorCertificateError is an ssl.CertificateError: handlers written as
    # `except ssl.SSLError` (or ValueError) must see a refused certificate too.
    pki = make_pki(
        ["www.example.test"] if failure == "host name mismatch" else ["localhost"],
        expired=failure == "expired",
    )
    trusted = None if failure == "unknown CA" else pki.client_context()
    async with (
        OriginServer(ssl_context=pki.server_context()) as origin,
        ClientSession() as session,
    ):
        url = origin.url("/", host="localhost")
        with pytest.raises(ssl.CertificateError) as caught:
            await session.get(url, **({} if trusted is None else {"ssl": trusted}))
        error = caught.value
        assert isinstance(error, ClientConnectorCertificateError)
        assert isinstance(error, ssl.SSLError) and isinstance(error, ValueError)
        assert isinstance(error.certificate_error, ssl.SSLCertVerificationError)
        assert (error.host, error.port) == ("localhost", origin.port)
        # Turning verification off is still the way past a certificate like this one.
        assert (await get_json(session, url, ssl=False))["target"] == "/"
    assert [r.target for r in origin.requests] == ["/"]


async def test_ssl_cert_file_extends_default_trust(
    pki: TestPKI, origin: OriginServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.write_ca_file(tmp_path)))
    async with ClientSession() as session:
        body = await get_json(session, origin.url("/env", host="localhost"))
    assert body["target"] == "/env"


# --- the guide's connector spellings ------------------------------------------------------------


async def test_connector_verify_ssl_false(origin: OriginServer) -> None:
    async with ClientSession(connector=TCPConnector(verify_ssl=False)) as session:
        assert (await get_json(session, origin.url("/v")))["target"] == "/v"


async def test_connector_ssl_context(pki: TestPKI, origin: OriginServer) -> None:
    connector = TCPConnector(ssl_context=pki.client_context())
    async with ClientSession(connector=connector) as session:
        assert (await get_json(session, origin.url("/c", host="localhost")))["target"] == "/c"


async def test_connector_fingerprint(pki: TestPKI, origin: OriginServer) -> None:
    async with ClientSession(connector=TCPConnector(fingerprint=pki.sha256)) as session:
        assert (await get_json(session, origin.url("/f")))["target"] == "/f"


async def test_connector_fingerprint_mismatch_sends_nothing(origin: OriginServer) -> None:
    bad = hashlib.sha256(b"not the certificate").digest()
    async with ClientSession(connector=TCPConnector(fingerprint=bad)) as session:
        with pytest.raises(FingerprintMismatch) as caught:
            await session.get(origin.url("/never"))
    assert caught.value.expected == bad
    assert caught.value.port == origin.port
    assert origin.requests == []


async def test_connector_refuses_md5_fingerprints() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        TCPConnector(fingerprint=hashlib.md5(b"cert").digest())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verify_ssl": False, "ssl_context": ssl.create_default_context()},
        {"verify_ssl": False, "fingerprint": b"\x01" * 32},
        {"ssl_context": ssl.create_default_context(), "fingerprint": b"\x01" * 32},
        {"ssl": False, "ssl_context": ssl.create_default_context()},
    ],
)
async def test_connector_spellings_are_mutually_exclusive(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TCPConnector(**kwargs)  # type: ignore[arg-type]


async def test_connector_modern_ssl_false(origin: OriginServer) -> None:
    async with ClientSession(connector=TCPConnector(ssl=False)) as session:
        assert (await get_json(session, origin.url("/m")))["target"] == "/m"


# --- per request ----------------------------------------------------------------------------------


async def test_request_ssl_false(origin: OriginServer) -> None:
    async with ClientSession() as session:
        assert (await get_json(session, origin.url("/r"), ssl=False))["target"] == "/r"


async def test_request_ssl_context(pki: TestPKI, origin: OriginServer) -> None:
    async with ClientSession() as session:
        url = origin.url("/ctx", host="localhost")
        assert (await get_json(session, url, ssl=pki.client_context()))["target"] == "/ctx"


async def test_request_fingerprint(pki: TestPKI, origin: OriginServer) -> None:
    async with ClientSession() as session:
        body = await get_json(session, origin.url("/pin"), ssl=Fingerprint(pki.sha256))
        assert body["target"] == "/pin"
        with pytest.raises(ServerFingerprintMismatch) as caught:
            await session.get(origin.url("/pin2"), ssl=Fingerprint(bytes(32)))
    assert caught.value.got == pki.sha256
    assert [r.target for r in origin.requests] == ["/pin"]


async def test_server_hostname_overrides_the_checked_name() -> None:
    other = make_pki(["www.example.test"])
    async with (
        OriginServer(ssl_context=other.server_context()) as origin,
        ClientSession() as session,
    ):
        url = origin.url("/sni")  # https://127.0.0.1:port: not a name the certificate has
        with pytest.raises(ClientConnectorCertificateError):
            await session.get(url, ssl=other.client_context())
        body = await get_json(
            session, url, ssl=other.client_context(), server_hostname="www.example.test"
        )
    assert body["target"] == "/sni"


async def test_connections_are_pooled_by_tls_setting(origin: OriginServer) -> None:
    async with ClientSession() as session:
        await get_json(session, origin.url("/relaxed"), ssl=False)
        # Reusing the relaxed connection here would skip verification.
        with pytest.raises(ClientConnectorCertificateError):
            await session.get(origin.url("/strict"))
    assert [r.target for r in origin.requests] == ["/relaxed"]


async def test_stalled_handshake_is_bounded_by_sock_connect() -> None:
    held: list[asyncio.StreamWriter] = []

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        timeout = ClientTimeout(total=30, sock_connect=0.3)
        async with ClientSession(timeout=timeout) as session:
            with pytest.raises(ServerTimeoutError):
                await session.get(f"https://127.0.0.1:{port}/", ssl=False)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- the modern spellings on the connector, the old ones per request ---------------------------


@pytest.mark.parametrize("setting", ["context", "fingerprint"])
async def test_connector_ssl_takes_a_context_or_a_fingerprint(
    pki: TestPKI, origin: OriginServer, setting: str
) -> None:
    value = pki.client_context() if setting == "context" else Fingerprint(pki.sha256)
    async with ClientSession(connector=TCPConnector(ssl=value)) as session:
        body = await get_json(session, origin.url("/modern", host="localhost"))
    assert body["target"] == "/modern"


async def test_connector_ssl_fingerprint_mismatch_is_refused(origin: OriginServer) -> None:
    bad = Fingerprint(hashlib.sha256(b"another certificate").digest())
    async with ClientSession(connector=TCPConnector(ssl=bad)) as session:
        with pytest.raises(ServerFingerprintMismatch):
            await session.get(origin.url("/never"))
    assert origin.requests == []


async def test_request_old_spellings(pki: TestPKI, origin: OriginServer) -> None:
    async with ClientSession() as session:
        url = origin.url("/old", host="localhost")
        assert (await get_json(session, url, verify_ssl=False))["target"] == "/old"
        assert (await get_json(session, url, ssl_context=pki.client_context()))["target"] == "/old"
        assert (await get_json(session, url, fingerprint=pki.sha256))["target"] == "/old"
        with pytest.raises(ServerFingerprintMismatch):
            await session.get(url, fingerprint=bytes(32))
        with pytest.raises(ValueError, match="SHA-256"):
            await session.get(url, fingerprint=hashlib.sha1(pki.der).digest())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verify_ssl": False, "ssl_context": ssl.create_default_context()},
        {"ssl": False, "fingerprint": b"\x01" * 32},
        {"ssl_context": ssl.create_default_context(), "fingerprint": b"\x01" * 32},
        {"ssl": Fingerprint(b"\x01" * 32), "verify_ssl": False},
    ],
)
async def test_request_spellings_are_mutually_exclusive(
    origin: OriginServer, kwargs: dict[str, object]
) -> None:
    async with ClientSession() as session:
        with pytest.raises(ValueError, match="mutually exclusive"):
            await session.get(origin.url("/x"), **kwargs)  # type: ignore[arg-type]
        assert session.connector is not None
        assert session.connector.stats().acquired == 0
    assert origin.requests == []


# --- SNI, as the server sees it ------------------------------------------------------------------


async def test_sni_carries_the_url_host_or_server_hostname() -> None:
    pki = make_pki(["localhost", "www.example.test"])
    seen: list[str | None] = []
    context = pki.server_context()

    def record(_sock: object, name: str | None, _context: object) -> None:
        seen.append(name)

    context.sni_callback = record  # type: ignore[assignment]
    async with OriginServer(ssl_context=context) as origin, ClientSession() as session:
        await get_json(session, origin.url("/a", host="localhost"), ssl=pki.client_context())
        await get_json(
            session,
            origin.url("/b"),  # 127.0.0.1 in the URL, the name given separately
            ssl=pki.client_context(),
            server_hostname="www.example.test",
        )
    assert seen == ["localhost", "www.example.test"]


# --- TLS failures leak nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ClientConnectorCertificateError),  # default verification, unknown CA
        ({"ssl": Fingerprint(bytes(32))}, ServerFingerprintMismatch),
        ({"server_hostname": "other.test", "ssl": "trusting"}, ClientConnectorCertificateError),
    ],
)
async def test_tls_failures_end_in_a_clear_error_and_leave_the_pool_empty(
    pki: TestPKI, origin: OriginServer, kwargs: dict[str, object], error: type[Exception]
) -> None:
    if kwargs.get("ssl") == "trusting":
        kwargs = {**kwargs, "ssl": pki.client_context()}
    connector = TCPConnector()
    async with ClientSession(connector=connector) as session:
        for _ in range(3):  # and again: nothing half-open was kept for the next attempt
            with pytest.raises(error):
                await session.get(origin.url("/tls", host="localhost"), **kwargs)  # type: ignore
            stats = connector.stats()
            assert (stats.acquired, stats.opening, stats.idle, stats.waiters) == (0, 0, 0, 0)
    assert origin.requests == []


def test_https_and_plain_http_never_share_a_pool_key(pki: TestPKI) -> None:
    connector = TCPConnector()
    plain = connector.make_key(URL("http://127.0.0.1:8443/"))
    tls = connector.make_key(URL("https://127.0.0.1:8443/"))
    assert plain != tls  # same host and port, but one speaks TLS
    assert plain.ssl is None  # TLS settings do not split plain connections...
    assert connector.make_key(URL("http://127.0.0.1:8443/"), ssl=False) == plain
    # ...while every TLS setting gets connections of its own.
    settings = [True, False, pki.client_context(), Fingerprint(pki.sha256)]
    keys = {connector.make_key(URL("https://127.0.0.1:8443/"), ssl=s) for s in settings}
    assert len(keys) == len(settings)
    assert connector.make_key(URL("https://127.0.0.1:8443/"), server_hostname="x.test") != tls
