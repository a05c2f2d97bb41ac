"""The guide's "Unix domain sockets": every request over the socket, Host from the URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.http import ClientConnectorError, ClientSession, UnixConnector
from tests.support.origin_server import OriginServer


@pytest.fixture
async def unix_origin(tmp_path: Path) -> AsyncIterator[OriginServer]:
    server = OriginServer()
    await server.start_unix(str(tmp_path / "origin.sock"))
    try:
        yield server
    finally:
        await server.close()


async def test_requests_go_over_the_socket_whatever_the_host(unix_origin: OriginServer) -> None:
    assert unix_origin.unix_path is not None
    connector = UnixConnector(path=unix_origin.unix_path)
    async with ClientSession(connector=connector) as session:
        for url in ("http://service.internal/one", "http://other.name:8080/two"):
            async with session.get(url) as response:
                assert response.status == 200
                await response.read()
    assert [r.target for r in unix_origin.requests] == ["/one", "/two"]
    assert [r.header("Host") for r in unix_origin.requests] == [
        "service.internal",
        "other.name:8080",
    ]


async def test_missing_socket_is_a_connector_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody-listens.sock")
    async with ClientSession(connector=UnixConnector(path=path)) as session:
        with pytest.raises(ClientConnectorError) as caught:
            await session.get("http://service.internal/")
    assert path in str(caught.value)
