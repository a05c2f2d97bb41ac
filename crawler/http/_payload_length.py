"""A body of unknown size sent under the caller's own Content-Length header.

The header is the framing the server trusts: a body that runs past it would be read as the
start of another request on the same connection (request smuggling), and one that ends short
leaves the server waiting. So the declared length is the payload's size (sent as
Content-Length, never with chunked framing beside it), and the stream is held to it: a chunk
that would pass it is not sent, and an early end is an error, either way before the request
can be taken as complete.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from crawler.http._payload_base import Payload
from crawler.http.errors import ClientPayloadError

__all__ = ["DeclaredLengthPayload", "declared_length"]

_DIGITS = re.compile(r"[0-9]+")


def declared_length(value: str) -> int:
    """A Content-Length header's value as a number; ValueError unless it is one (RFC 9110 8.6:
    digits only, so no sign, no list, no space inside)."""
    text = value.strip(" \t")
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"Content-Length header must be a whole number of bytes, not {value!r}")
    return int(text)


class DeclaredLengthPayload(Payload):
    """`inner` (of unknown size) held to exactly `length` bytes."""

    def __init__(self, inner: Payload, length: int) -> None:
        self.inner = inner
        self.size = length
        self.content_type = inner.content_type
        self.replayable = inner.replayable

    async def chunks(self) -> AsyncIterator[bytes]:
        left = self.size or 0
        async for chunk in self.inner.chunks():
            if len(chunk) > left:
                raise ClientPayloadError(
                    f"request body is longer than its Content-Length header ({self.size} bytes)"
                )
            left -= len(chunk)
            yield chunk
        if left:
            raise ClientPayloadError(
                f"request body ended {left} bytes short of its Content-Length header "
                f"({self.size} bytes)"
            )

    def check_sendable(self) -> None:
        self.inner.check_sendable()

    async def close(self) -> None:
        await self.inner.close()
