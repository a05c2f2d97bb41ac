"""HTTP Basic authentication credentials (RFC 7617): build, parse and take them from a URL."""

from __future__ import annotations

import base64
import binascii
from typing import NamedTuple

from yarl import URL

__all__ = ["BasicAuth"]


class _BasicAuthFields(NamedTuple):
    login: str
    password: str
    encoding: str


class BasicAuth(_BasicAuthFields):
    """Login and password for the `Authorization: Basic` header.

    A tuple, so it compares and hashes by value. `encoding` is the charset the credentials are
    encoded with before base64 (latin-1 by default, as browsers and aiohttp do).
    """

    __slots__ = ()

    def __new__(cls, login: str, password: str = "", encoding: str = "latin1") -> BasicAuth:
        if login is None:
            raise ValueError("None is not allowed as login value")
        if password is None:
            raise ValueError("None is not allowed as password value")
        if ":" in login:
            # The user-id ends at the first colon (RFC 7617 section 2), so it cannot hold one.
            raise ValueError('A ":" is not allowed in login (RFC 7617 section 2)')
        return super().__new__(cls, login, password, encoding)

    @classmethod
    def decode(cls, auth_header: str, encoding: str = "latin1") -> BasicAuth:
        """Parse an `Authorization` header value such as `Basic dXNlcjpwYXNz`.

        Raises ValueError when the scheme is not Basic, the base64 is invalid, or there is no ':'.
        """
        scheme, _, encoded = auth_header.strip().partition(" ")
        if not encoded:
            raise ValueError("Could not parse authorization header.")
        if scheme.lower() != "basic":
            raise ValueError(f"Unknown authorization method {scheme}")
        try:
            raw = base64.b64decode(encoded.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("Invalid base64 encoding.") from None
        try:
            decoded = raw.decode(encoding)
        except UnicodeDecodeError:
            raise ValueError(f"Credentials are not valid {encoding}.") from None
        login, colon, password = decoded.partition(":")
        if not colon:
            raise ValueError("Invalid credentials.")
        return cls(login, password, encoding=encoding)

    @classmethod
    def from_url(cls, url: URL, *, encoding: str = "latin1") -> BasicAuth | None:
        """Credentials embedded in `url` (`http://user:pass@host/`), or None when it has none."""
        if not isinstance(url, URL):
            raise TypeError(f"url should be yarl.URL instance, got {type(url).__name__}")
        if url.raw_user is None and url.raw_password is None:
            return None
        return cls(url.user or "", url.password or "", encoding=encoding)

    def encode(self) -> str:
        """The `Authorization` header value: `Basic <base64(login:password)>`."""
        credentials = f"{self.login}:{self.password}".encode(self.encoding)
        return "Basic " + base64.b64encode(credentials).decode("ascii")
