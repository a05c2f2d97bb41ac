"""Opening transports: TCP, TLS (verified, relaxed, pinned), Unix sockets, Happy Eyeballs."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crawler.http.dialer import open_connection, open_unix_connection
from crawler.http.dns_cache import HostResolver
from crawler.http.errors import (
    ClientConnectorCertificateError,
    ClientConnectorDNSError,
    ClientConnectorError,
    ClientConnectorSSLError,
    ClientSSLError,
    ConnectionKeyInfo,
    ConnectionTimeoutError,
    ServerFingerprintMismatch,
    UnixClientConnectorError,
)
from crawler.http.resolver import AbstractResolver, AsyncResolver, ResolveResult, ThreadedResolver
from crawler.http.tls import Fingerprint, SSLSetting
from tests.support.client_protocol import CollectingProtocol, get_request
from tests.support.dns_server import TinyDNSServer
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.tls_certs import TestPKI, make_pki


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


class RawSink:
    """A TLS server that records every byte each connection sends after the handshake."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.received: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._done: list[asyncio.Future[None]] = []
        self._seen = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        finished = asyncio.get_running_loop().create_future()
        self._done.append(finished)
        self._seen.set()
        data = b""
        try:
            data = await reader.read()
        except (ConnectionError, OSError):
            pass
        finally:
            self.received.append(data)
            writer.close()
            finished.set_result(None)

    async def __aenter__(self) -> RawSink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        return self

    async def all_closed(self) -> None:
        """Wait until a connection was accepted and every one has ended."""
        async with asyncio.timeout(10):
            await self._seen.wait()
            await asyncio.gather(*self._done)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def key_for(host: str, port: int, ssl_setting: SSLSetting | None) -> ConnectionKeyInfo:
    return ConnectionKeyInfo(host=host, port=port, is_ssl=ssl_setting is not None, ssl=ssl_setting)


async def dial(
    resolver: HostResolver,
    port: int,
    ssl_setting: SSLSetting | None,
    *,
    host: str = "localhost",
    **kwargs: object,
) -> tuple[asyncio.Transport, CollectingProtocol]:
    return await open_connection(
        CollectingProtocol,
        host=host,
        port=port,
        resolver=resolver,
        ssl=ssl_setting,
        key=key_for(host, port, ssl_setting),
        sock_connect=10,
        **kwargs,  # type: ignore[arg-type]
    )


async def exchange(transport: asyncio.Transport, protocol: CollectingProtocol) -> dict:
    transport.write(get_request("/hello", "localhost"))
    _head, body = await protocol.read_response()
    transport.close()
    await protocol.closed
    return body


# --- TLS verification ------------------------------------------------------------------------


async def test_default_verification_rejects_an_unknown_ca(
    resolver: HostResolver, tls_origin: OriginServer
) -> None:
    with pytest.raises(ClientConnectorCertificateError) as caught:
        await dial(resolver, tls_origin.port, True)
    assert isinstance(caught.value.certificate_error, ssl.SSLCertVerificationError)
    assert isinstance(caught.value, ClientSSLError)
    assert caught.value.host == "localhost"
    assert tls_origin.requests == []


async def test_context_trusting_the_ca_connects(
    pki: TestPKI, resolver: HostResolver, tls_origin: OriginServer
) -> None:
    transport, protocol = await dial(resolver, tls_origin.port, pki.client_context())
    body = await exchange(transport, protocol)
    assert body["target"] == "/hello"


async def test_ssl_cert_file_is_honoured_by_default_verification(
    pki: TestPKI,
    resolver: HostResolver,
    tls_origin: OriginServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.write_ca_file(tmp_path)))
    transport, protocol = await dial(resolver, tls_origin.port, True)
    assert (await exchange(transport, protocol))["method"] == "GET"


async def test_ssl_false_skips_verification(
    resolver: HostResolver, tls_origin: OriginServer
) -> None:
    transport, protocol = await dial(resolver, tls_origin.port, False)
    assert (await exchange(transport, protocol))["target"] == "/hello"


async def test_host_name_must_match_the_certificate(resolver: HostResolver) -> None:
    other = make_pki(["www.example.test"])
    async with OriginServer(ssl_context=other.server_context()) as origin:
        with pytest.raises(ClientConnectorCertificateError, match=r"match|mismatch"):
            await dial(resolver, origin.port, other.client_context())


async def test_server_hostname_overrides_sni_and_the_checked_name(resolver: HostResolver) -> None:
    other = make_pki(["www.example.test"])
    async with OriginServer(ssl_context=other.server_context()) as origin:
        transport, protocol = await dial(
            resolver, origin.port, other.client_context(), server_hostname="www.example.test"
        )
        assert transport.get_extra_info("ssl_object").server_hostname == "www.example.test"
        assert (await exchange(transport, protocol))["target"] == "/hello"


async def test_tls_to_a_plain_server_is_an_ssl_error(resolver: HostResolver) -> None:
    async def answer_in_plain_text(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(answer_in_plain_text, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ClientConnectorSSLError) as caught:
            await dial(resolver, port, False, host="127.0.0.1")
        assert isinstance(caught.value, ssl.SSLError)
        assert caught.value.port == port
    finally:
        server.close()
        await server.wait_closed()


async def test_stalled_tls_handshake_is_bounded_by_sock_connect(resolver: HostResolver) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        held.append(writer)  # keep the TCP connection open, never answer the ClientHello

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionTimeoutError, match=str(port)):
            await open_connection(
                CollectingProtocol,
                host="127.0.0.1",
                port=port,
                resolver=resolver,
                ssl=False,
                key=key_for("127.0.0.1", port, False),
                sock_connect=0.3,
            )
        assert held, "the server accepted the TCP connection"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- pinning ---------------------------------------------------------------------------------


async def test_matching_pin_connects(
    pki: TestPKI, resolver: HostResolver, tls_origin: OriginServer
) -> None:
    transport, protocol = await dial(resolver, tls_origin.port, Fingerprint(pki.sha256))
    assert (await exchange(transport, protocol))["target"] == "/hello"


async def test_pin_mismatch_closes_before_any_byte_is_sent(
    pki: TestPKI, resolver: HostResolver
) -> None:
    wrong = bytes(32)
    async with RawSink(pki.server_context()) as sink:
        port = sink.port
        with pytest.raises(ServerFingerprintMismatch) as caught:
            await dial(resolver, port, Fingerprint(wrong), host="127.0.0.1")
        await sink.all_closed()
    assert caught.value.expected == wrong
    assert caught.value.got == pki.sha256
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert sink.connections == 1
    assert sink.received == [b""]


# --- plain TCP, DNS and Happy Eyeballs --------------------------------------------------------


async def test_plain_tcp_connection(resolver: HostResolver, plain_origin: OriginServer) -> None:
    transport, protocol = await dial(resolver, plain_origin.port, None, host="127.0.0.1")
    assert transport.get_extra_info("ssl_object") is None
    assert (await exchange(transport, protocol))["target"] == "/hello"


async def test_refused_connection_names_host_and_port(resolver: HostResolver) -> None:
    port = free_port()
    with pytest.raises(ClientConnectorError) as caught:
        await dial(resolver, port, None, host="127.0.0.1")
    assert not isinstance(caught.value, ClientConnectorDNSError)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert isinstance(caught.value.os_error, ConnectionRefusedError)


@pytest.fixture
def dns() -> Iterator[TinyDNSServer]:
    with TinyDNSServer({"origin.test": ["127.0.0.1"]}) as server:
        yield server


async def test_failed_lookup_is_a_dns_error_naming_the_host(dns: TinyDNSServer) -> None:
    async_resolver = AsyncResolver(nameservers=[dns.nameserver], timeout=2, tries=1)
    try:
        with pytest.raises(ClientConnectorDNSError, match=r"nowhere\.test") as caught:
            await dial(HostResolver(async_resolver), 80, None, host="nowhere.test")
        assert caught.value.host == "nowhere.test"
        assert isinstance(caught.value, OSError)
    finally:
        await async_resolver.close()


async def test_name_from_a_custom_nameserver_is_dialled(
    dns: TinyDNSServer, plain_origin: OriginServer
) -> None:
    async_resolver = AsyncResolver(nameservers=[dns.nameserver], timeout=2, tries=1)
    try:
        transport, protocol = await dial(
            HostResolver(async_resolver), plain_origin.port, None, host="origin.test"
        )
        assert (await exchange(transport, protocol))["target"] == "/hello"
    finally:
        await async_resolver.close()


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses, in order."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("happy_eyeballs_delay", [0.25, None])
async def test_falls_back_to_the_next_address_when_one_refuses(
    plain_origin: OriginServer, happy_eyeballs_delay: float | None
) -> None:
    # 127.0.0.2 is loopback too, but nothing listens there on this port.
    resolver = HostResolver(FixedResolver(["127.0.0.2", "127.0.0.1"]))
    transport, protocol = await dial(
        resolver,
        plain_origin.port,
        None,
        host="multi.test",
        happy_eyeballs_delay=happy_eyeballs_delay,
    )
    assert transport.get_extra_info("peername")[0] == "127.0.0.1"
    assert (await exchange(transport, protocol))["target"] == "/hello"


async def test_ipv6_first_then_ipv4(plain_origin: OriginServer) -> None:
    # The origin listens on IPv4 only: the IPv6 attempt fails and IPv4 wins.
    resolver = HostResolver(FixedResolver(["::1", "127.0.0.1"]))
    transport, protocol = await dial(resolver, plain_origin.port, None, host="dual.test")
    assert transport.get_extra_info("peername")[0] == "127.0.0.1"
    await exchange(transport, protocol)


@pytest.fixture
def stalled_twin(plain_origin: OriginServer) -> Iterator[str]:
    """127.0.0.2 on the origin's port, where a connect neither succeeds nor fails: the listener's
    accept queue is full (one connection sits in it, never accepted), so SYNs go unanswered, as
    with a host that black-holes IPv6."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", plain_origin.port))
    listener.listen(0)
    filler = socket.create_connection(("127.0.0.2", plain_origin.port), timeout=2)
    try:
        yield "127.0.0.2"
    finally:
        filler.close()
        listener.close()


async def test_happy_eyeballs_starts_the_next_address_while_the_first_stalls(
    plain_origin: OriginServer, stalled_twin: str
) -> None:
    resolver = HostResolver(FixedResolver([stalled_twin, "127.0.0.1"]))
    key = key_for("stall.test", plain_origin.port, None)

    async def connect(delay: float | None, sock_connect: float) -> asyncio.Transport:
        transport, _ = await open_connection(
            CollectingProtocol,
            host="stall.test",
            port=plain_origin.port,
            resolver=resolver,
            ssl=None,
            key=key,
            happy_eyeballs_delay=delay,
            sock_connect=sock_connect,
        )
        return transport

    # RFC 8305: the second address is tried happy_eyeballs_delay after the first, which never
    # answers; the second wins long before sock_connect.
    transport = await connect(0.1, sock_connect=10)
    assert transport.get_extra_info("peername")[0] == "127.0.0.1"
    transport.close()
    # One address at a time instead: stuck on the first until sock_connect gives up.
    with pytest.raises(ConnectionTimeoutError):
        await connect(None, sock_connect=1.0)


async def test_every_address_failing_is_one_connector_error() -> None:
    port = free_port()
    resolver = HostResolver(FixedResolver(["127.0.0.2", "127.0.0.3"]))
    with pytest.raises(ClientConnectorError) as caught:
        await dial(resolver, port, None, host="down.test")
    assert caught.value.host == "down.test"


async def test_local_addr_binds_the_client_side(
    resolver: HostResolver, plain_origin: OriginServer
) -> None:
    transport, protocol = await dial(
        resolver, plain_origin.port, None, host="127.0.0.1", local_addr=("127.0.0.1", 0)
    )
    assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
    await exchange(transport, protocol)


# --- Unix sockets ----------------------------------------------------------------------------


async def test_unix_socket_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "origin.sock")
    origin = OriginServer()
    await origin.start_unix(path)
    try:
        key = ConnectionKeyInfo(host="any.host", port=80, is_ssl=False)
        transport, protocol = await open_unix_connection(
            CollectingProtocol, path=path, key=key, sock_connect=5
        )
        assert (await exchange(transport, protocol))["target"] == "/hello"
        assert origin.requests[0].header("Host") == "localhost"
    finally:
        await origin.close()


async def test_missing_unix_socket_names_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    key = ConnectionKeyInfo(host="any.host", port=80, is_ssl=False)
    with pytest.raises(UnixClientConnectorError) as caught:
        await open_unix_connection(CollectingProtocol, path=path, key=key)
    assert caught.value.path == path
    assert path in str(caught.value)


async def test_sock_connect_does_not_bound_the_dns_lookup(plain_origin: OriginServer) -> None:
    # DNS belongs to the caller's `connect` timeout; sock_connect is for TCP + TLS only.
    with TinyDNSServer({"slow.test": ["127.0.0.1"]}, delay=0.5) as slow_dns:
        async_resolver = AsyncResolver(nameservers=[slow_dns.nameserver], timeout=3, tries=1)
        try:
            transport, protocol = await open_connection(
                CollectingProtocol,
                host="slow.test",
                port=plain_origin.port,
                resolver=HostResolver(async_resolver),
                ssl=None,
                key=key_for("slow.test", plain_origin.port, None),
                sock_connect=0.2,
            )
            assert (await exchange(transport, protocol))["target"] == "/hello"
        finally:
            await async_resolver.close()
