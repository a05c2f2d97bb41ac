"""The proxy side of a CONNECT tunnel: reading the proxy's answer and handing the tunnel over.

The dialer (`dialer.open_tunnel`) opens the connection to the proxy and runs TLS inside the
tunnel; this module holds the steps in between, which do no connecting of their own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TypeVar

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from crawler.http._proxy_wire import (
    MAX_CONNECT_RESPONSE_HEAD,
    connect_authority,
    parse_connect_response,
)
from crawler.http.errors import (
    ClientHttpProxyError,
    ClientProxyConnectionError,
    ConnectionKeyInfo,
    RequestInfo,
)

__all__ = ["ConnectResponseReader", "await_connect_answer", "hand_over_plain_tunnel", "proxy_key"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
# The blank line that ends the answer head. Lines may end with a bare LF, as the response
# parser (and aiohttp) accept from servers: some proxies answer CONNECT that way, and waiting
# for a CRLF CRLF that never comes would stall the tunnel until a timeout.
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def proxy_key(proxy: URL) -> ConnectionKeyInfo:
    """The key that names a proxy (without its credentials) in errors about reaching it."""
    return ConnectionKeyInfo(
        host=proxy.host or "", port=proxy.port, is_ssl=proxy.scheme == "https", ssl=None
    )


class ConnectResponseReader(asyncio.Protocol):
    """Collects the proxy's answer head to CONNECT, then stops reading."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._head.done():
            return  # early tunnel bytes, handed on as the answer's leftover
        found = _HEAD_END.search(self._buffer)
        if found is None:
            if len(self._buffer) > MAX_CONNECT_RESPONSE_HEAD:
                self._head.set_exception(
                    OSError(None, f"CONNECT answer head over {MAX_CONNECT_RESPONSE_HEAD} bytes")
                )
            return
        end = found.end()
        head, self._buffer = bytes(self._buffer[:end]), self._buffer[end:]
        if self._transport is not None:
            # Whatever comes next belongs to the tunnel's own protocol (or to TLS).
            self._transport.pause_reading()
        self._head.set_result(head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._head.done():
            self._head.set_exception(
                ConnectionResetError("proxy closed the connection before answering CONNECT")
            )

    async def answer(self) -> tuple[bytes, bytes]:
        """The answer head and any tunnel bytes that arrived with it."""
        head = await self._head
        leftover, self._buffer = bytes(self._buffer), bytearray()
        return head, leftover


def _connect_request_info(proxy: URL, target: str, headers: Mapping[str, str]) -> RequestInfo:
    # The error a caller may log must not carry the proxy's credentials.
    visible = CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() != "proxy-authorization"
    )
    url = URL(f"//{target}")
    return RequestInfo(
        url=url,
        method="CONNECT",
        headers=CIMultiDictProxy(visible),
        real_url=proxy.with_user(None),
    )


async def await_connect_answer(
    reader: ConnectResponseReader,
    proxy: URL,
    target_host: str,
    target_port: int,
    proxy_headers: Mapping[str, str],
) -> bytes:
    """Wait for the proxy's 2xx; return tunnel bytes that came with it. Raises otherwise."""
    try:
        head, leftover = await reader.answer()
        answer = parse_connect_response(head)
    except (OSError, ValueError) as exc:
        os_error = exc if isinstance(exc, OSError) else OSError(None, str(exc))
        raise ClientProxyConnectionError(proxy_key(proxy), os_error) from exc
    if not 200 <= answer.status < 300:
        target = connect_authority(target_host, target_port)
        raise ClientHttpProxyError(
            _connect_request_info(proxy, target, proxy_headers),
            (),
            status=answer.status,
            message=answer.reason,
            headers=CIMultiDictProxy(CIMultiDict(answer.headers)),
        )
    return leftover


def hand_over_plain_tunnel(
    raw: asyncio.Transport, protocol: _P, leftover: bytes
) -> tuple[asyncio.Transport, _P]:
    """Hand the open tunnel to the caller's protocol as it is."""
    # All synchronous: no byte can arrive between these steps, and resuming first lets the
    # protocol pause reading in connection_made if it wants to.
    raw.set_protocol(protocol)
    raw.resume_reading()
    protocol.connection_made(raw)
    if leftover:
        protocol.data_received(leftover)  # type: ignore[attr-defined]
    return raw, protocol
