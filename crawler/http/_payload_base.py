"""The request-body contract (`Payload`) and the in-memory bodies: bytes and text.

A payload says how big it is (`size`, None when unknown so the session sends it chunked), which
Content-Type to send when the caller gave none, and whether it can be sent again (`replayable`)
for a 307/308 redirect or a retry. `chunks()` yields the body piece by piece.
"""

from __future__ import annotations

import codecs
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

__all__ = [
    "CHUNK_SIZE",
    "BytesPayload",
    "OneShotPayload",
    "Payload",
    "StringPayload",
    "charset_of",
    "reject_control_chars",
]

# Big enough that a thread hop or a transport write per chunk costs little next to the copy,
# small enough that a few chunks in flight keep memory flat.
CHUNK_SIZE = 256 * 1024


class Payload(ABC):
    """A request body. Subclasses set `size`, `content_type` and `replayable` in `__init__`."""

    size: int | None
    content_type: str | None
    replayable: bool

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The body as non-empty byte strings, in order. Never holds a stream whole in memory.

        A payload that is not `replayable` raises RuntimeError when iterated a second time.
        """

    def sendfile_source(self) -> tuple[Any, int, int] | None:
        """`(file, offset, count)` when the whole body is a byte range of a regular file.

        A writer on a plain TCP transport may then hand it to `loop.sendfile` (zero-copy) instead
        of iterating `chunks()`; it must check that `count` bytes were sent. None otherwise.
        """
        return None

    def check_sendable(self) -> None:  # noqa: B027 - in-memory bodies can always be sent
        """Raise (ValueError, RuntimeError) when this body cannot be sent now: a closed file, a
        one-shot stream already sent. Called before each request goes out, so that a body that
        would fail does so before its head is on the wire, not half way through the request.
        """

    async def close(self) -> None:  # noqa: B027 - most payloads hold nothing to release
        """Release what the payload holds (file objects handed in are closed, as aiohttp does).

        The session calls it once the request and any redirect that resent the body are done.
        A body made by a `FormData` the caller built does nothing here: the form owns its files.
        """

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} size={self.size} content_type={self.content_type!r} "
            f"replayable={self.replayable}>"
        )


class OneShotPayload(Payload):
    """A body read from a stream that can be consumed only once."""

    replayable = False

    def __init__(self, what: str) -> None:
        self._what = what
        self._consumed = False

    def check_sendable(self) -> None:
        if self._consumed:
            raise RuntimeError(
                f"{self._what} body was already sent once and cannot be replayed; "
                "pass bytes or a seekable file to resend it"
            )

    def _claim(self) -> None:
        self.check_sendable()
        self._consumed = True


class BytesPayload(Payload):
    """bytes, bytearray or memoryview, copied once so later changes by the caller do not leak in."""

    replayable = True

    def __init__(
        self,
        value: bytes | bytearray | memoryview,
        *,
        content_type: str | None = "application/octet-stream",
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"BytesPayload needs bytes, got {type(value).__name__}")
        self._value = value if isinstance(value, bytes) else bytes(value)
        self._chunk_size = chunk_size
        self.size = len(self._value)
        self.content_type = content_type

    @property
    def value(self) -> bytes:
        return self._value

    async def chunks(self) -> AsyncIterator[bytes]:
        value = self._value
        if len(value) <= self._chunk_size:
            if value:
                yield value
            return
        # Slices keep each transport write (and its buffer copy) bounded for large bodies.
        view = memoryview(value)
        for start in range(0, len(value), self._chunk_size):
            yield bytes(view[start : start + self._chunk_size])


class StringPayload(BytesPayload):
    """Text, encoded with the charset named by `content_type` (UTF-8 when it names none)."""

    def __init__(
        self, value: str, *, content_type: str | None = None, encoding: str | None = None
    ) -> None:
        if not isinstance(value, str):
            raise TypeError(f"StringPayload needs str, got {type(value).__name__}")
        if encoding is None:
            encoding = charset_of(content_type) or "utf-8"
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown charset {encoding!r} for a text body") from None
        if content_type is None:
            content_type = f"text/plain; charset={encoding}"
        super().__init__(value.encode(encoding), content_type=content_type)
        self.encoding = encoding


def charset_of(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type value, or None."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').strip() or None
    return None


def reject_control_chars(what: str, value: str) -> str:
    """Refuse CR, LF, NUL and the other control characters but tab in a value that goes into a
    header line."""
    if not value.isprintable() and _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters: {value!r}")
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
