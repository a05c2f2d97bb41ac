"""One exception hierarchy for the client, with aiohttp's names.

Connection errors also subclass the matching built-ins (`OSError`, `ConnectionResetError`,
`asyncio.TimeoutError`, `ssl.SSLError`, `ValueError`) so callers may catch the standard ones.
Messages are one line and name what a user needs to act on: URL, host, status, the limit hit.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL

__all__ = [
    "ClientConnectionError",
    "ClientConnectionResetError",
    "ClientConnectorCertificateError",
    "ClientConnectorDNSError",
    "ClientConnectorError",
    "ClientConnectorSSLError",
    "ClientError",
    "ClientHttpProxyError",
    "ClientOSError",
    "ClientPayloadError",
    "ClientProxyConnectionError",
    "ClientResponseError",
    "ClientSSLError",
    "ConnectionKeyInfo",
    "ConnectionTimeoutError",
    "ContentTypeError",
    "FingerprintMismatch",
    "InvalidURL",
    "InvalidUrlClientError",
    "InvalidUrlRedirectClientError",
    "NonHttpUrlClientError",
    "NonHttpUrlRedirectClientError",
    "RedirectClientError",
    "RequestBodyNotReplayableError",
    "RequestInfo",
    "ServerConnectionError",
    "ServerDisconnectedError",
    "ServerFingerprintMismatch",
    "ServerTimeoutError",
    "SocketTimeoutError",
    "TooManyRedirects",
    "UnixClientConnectorError",
    "WSMessageTypeError",
    "WSServerHandshakeError",
]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What was asked: carried by response errors so a handler can say which request failed."""

    url: URL
    method: str
    headers: CIMultiDictProxy[str]
    real_url: URL


@dataclass(frozen=True, slots=True)
class ConnectionKeyInfo:
    """Where a connection was going: host, port and whether TLS was asked for."""

    host: str
    port: int | None
    is_ssl: bool
    ssl: Any = None
    proxy: URL | None = None


class ClientError(Exception):
    """Base of every error the client raises."""


# --- response errors -------------------------------------------------------------------------


class ClientResponseError(ClientError):
    """A response (or its head) that cannot be used: bad status, bad head, limits exceeded."""

    def __init__(
        self,
        request_info: RequestInfo | None,
        history: tuple[Any, ...] = (),
        *,
        status: int | None = None,
        message: str = "",
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        self.request_info = request_info
        self.history = history
        self.status = status if status is not None else 0
        self.message = message
        self.headers = headers
        super().__init__(request_info)

    def __str__(self) -> str:
        url = self.request_info.real_url if self.request_info is not None else "?"
        return f"{self.status}, message={self.message!r}, url={str(url)!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class ContentTypeError(ClientResponseError):
    """`json()` was called on a response whose Content-Type is not the expected one."""


class WSServerHandshakeError(ClientResponseError):
    """The server did not accept the WebSocket upgrade."""


class WSMessageTypeError(TypeError):
    """`receive_str`/`receive_bytes`/`receive_json` got a message of another type (a CLOSE, a
    binary message where text was wanted); a TypeError, as before aiohttp named it."""


class ClientHttpProxyError(ClientResponseError):
    """The proxy answered CONNECT with a non-2xx status."""


class TooManyRedirects(ClientResponseError):
    """More redirects than `max_redirects`; `history` holds every hop."""


# --- connection errors -----------------------------------------------------------------------


class ClientConnectionError(ClientError):
    """Base of errors that happen on the way to, or on, a connection."""


class ClientConnectionResetError(ClientConnectionError, ConnectionResetError):
    """The connection was reset or closed while we were writing to it."""


class ClientOSError(ClientConnectionError, OSError):
    """An OS-level error on a connection."""


class ClientConnectorError(ClientOSError):
    """Could not open a connection to host:port."""

    def __init__(self, connection_key: ConnectionKeyInfo, os_error: OSError) -> None:
        self._conn_key = connection_key
        self._os_error = os_error
        super().__init__(os_error.errno, os_error.strerror)
        self.args = (connection_key, os_error)

    @property
    def os_error(self) -> OSError:
        return self._os_error

    @property
    def host(self) -> str:
        return self._conn_key.host

    @property
    def port(self) -> int | None:
        return self._conn_key.port

    @property
    def ssl(self) -> Any:
        return self._conn_key.ssl

    def __str__(self) -> str:
        reason = self._os_error.strerror or str(self._os_error) or type(self._os_error).__name__
        return f"Cannot connect to host {self.host}:{self.port} ssl:{self._ssl_label()} [{reason}]"

    def _ssl_label(self) -> str:
        value = self._conn_key.ssl
        if value is None or value is True:
            return "default" if self._conn_key.is_ssl else "False"
        return repr(value) if not isinstance(value, bool) else str(value)

    __reduce__ = BaseException.__reduce__


class ClientConnectorDNSError(ClientConnectorError):
    """The host name could not be resolved."""

    def __str__(self) -> str:
        reason = self._os_error.strerror or str(self._os_error)
        return f"Cannot resolve host {self.host!r} [{reason}]"


class ClientProxyConnectionError(ClientConnectorError):
    """Could not open a connection to the proxy."""


class UnixClientConnectorError(ClientConnectorError):
    """Could not connect to the Unix socket."""

    def __init__(self, path: str, connection_key: ConnectionKeyInfo, os_error: OSError) -> None:
        self._path = path
        super().__init__(connection_key, os_error)

    @property
    def path(self) -> str:
        return self._path

    def __str__(self) -> str:
        reason = self._os_error.strerror or str(self._os_error)
        return f"Cannot connect to unix socket {self._path} ssl:{self._ssl_label()} [{reason}]"


class ClientSSLError(ClientConnectorError):
    """TLS failed while opening the connection."""


class ClientConnectorSSLError(ClientSSLError, ssl.SSLError):
    """The TLS handshake failed for a reason other than the certificate."""


class ClientConnectorCertificateError(ClientSSLError, ssl.CertificateError):
    """The server's certificate did not verify (unknown issuer, wrong host name, expired...).

    Also an `ssl.CertificateError` (so an `ssl.SSLError` and a `ValueError`), as in aiohttp:
    code written to catch the standard TLS errors must catch a certificate refusal too.
    """

    def __init__(self, connection_key: ConnectionKeyInfo, certificate_error: Exception) -> None:
        self._certificate_error = certificate_error
        os_error = certificate_error if isinstance(certificate_error, OSError) else OSError()
        super().__init__(connection_key, os_error)
        self.args = (connection_key, certificate_error)

    @property
    def certificate_error(self) -> Exception:
        return self._certificate_error

    def __str__(self) -> str:
        return (
            f"Cannot connect to host {self.host}:{self.port} ssl:{self._ssl_label()} "
            f"[{type(self._certificate_error).__name__}: {self._certificate_error}]"
        )


class ServerConnectionError(ClientConnectionError):
    """The server misbehaved on an open connection."""


class ServerDisconnectedError(ServerConnectionError):
    """The server closed the connection before the response was complete."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or "Server disconnected"
        super().__init__(self.message)


class ServerTimeoutError(ServerConnectionError, asyncio.TimeoutError):
    """A timeout while talking to the server."""


class ConnectionTimeoutError(ServerTimeoutError):
    """Opening the connection (or waiting for a pool slot) took longer than allowed."""


class SocketTimeoutError(ServerTimeoutError):
    """No bytes arrived on the socket within `sock_read`."""


class ServerFingerprintMismatch(ServerConnectionError):
    """The server's certificate does not have the pinned SHA-256 fingerprint."""

    def __init__(self, expected: bytes, got: bytes, host: str, port: int) -> None:
        self.expected = expected
        self.got = got
        self.host = host
        self.port = port
        super().__init__(expected, got, host, port)

    def __str__(self) -> str:
        return (
            f"certificate fingerprint mismatch for {self.host}:{self.port}: "
            f"expected {self.expected.hex()}, got {self.got.hex()}"
        )


# The seed guide's spelling.
FingerprintMismatch = ServerFingerprintMismatch


class ClientPayloadError(ClientError):
    """The response body could not be read whole: truncated, malformed framing or encoding."""


# --- URL errors ------------------------------------------------------------------------------


class InvalidURL(ClientError, ValueError):
    """A URL that cannot be requested: no host, bad characters, unsupported scheme."""

    def __init__(self, url: Any, description: str | None = None) -> None:
        self._url = url
        self._description = description
        if description:
            super().__init__(url, description)
        else:
            super().__init__(url)

    @property
    def url(self) -> Any:
        return self._url

    @property
    def description(self) -> str | None:
        return self._description

    def __str__(self) -> str:
        if self._description:
            return f"{self._url} - {self._description}"
        return str(self._url)


class InvalidUrlClientError(InvalidURL):
    """The URL given to a request is invalid."""


class RedirectClientError(ClientError):
    """A redirect could not be followed."""


class NonHttpUrlClientError(ClientError):
    """The URL given to a request is not http(s)."""


class InvalidUrlRedirectClientError(InvalidUrlClientError, RedirectClientError):
    """A redirect's Location is not a valid URL."""


class NonHttpUrlRedirectClientError(NonHttpUrlClientError, RedirectClientError):
    """A redirect points to a scheme other than http(s)."""


class RequestBodyNotReplayableError(RedirectClientError, ClientPayloadError):
    """A 307/308 redirect needs the body again, but it was a one-shot stream already sent.

    A `ClientPayloadError` too: that is what aiohttp raises here, so handlers written for it
    still catch this.
    """
