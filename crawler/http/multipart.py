"""multipart bodies (RFC 2046 framing, RFC 7578 form-data) as a streamed Payload.

Field names and filenames are written the way browsers do (WHATWG HTML "multipart/form-data
encoding algorithm"): UTF-8 inside double quotes, with `"`, CR and LF percent-encoded, and no
RFC 2231 `filename*=`. Part bodies stream from their own payloads, never joined in memory.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from crawler.http._payload_base import CHUNK_SIZE, Payload, reject_control_chars

__all__ = [
    "Base64Payload",
    "MultipartPayload",
    "MultipartWriter",  # noqa: F822 - loaded on first use by __getattr__ below
    "Part",
    "QuotedPrintablePayload",
    "content_disposition",
    "form_data_disposition",
    "make_boundary",
    "transfer_encoded",
]

_BOUNDARY_CHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What browsers escape in a quoted name or filename (a quote, CR, LF), and the other control
# characters too, which no header may carry (tab aside).
_BROWSER_ESCAPES = str.maketrans(
    {'"': "%22"} | {chr(c): f"%{c:02X}" for c in (*range(0x20), 0x7F) if c != 0x09}
)
_CRLF = b"\r\n"
# Pieces up to this size are copied together into one write; bigger ones go out as they are.
_GATHER_LIMIT = 16 * 1024


def make_boundary() -> str:
    """A fresh random boundary, long enough never to occur in a body by chance."""
    return "crawlFormBoundary" + secrets.token_hex(16)


def check_boundary(boundary: str) -> str:
    if not isinstance(boundary, str) or not _BOUNDARY_CHARS.fullmatch(boundary):
        raise ValueError(
            f"invalid multipart boundary {boundary!r}: 1-70 characters of letters, digits and "
            "'()+_,-./:=? (not ending in a space)"
        )
    return boundary


def form_data_disposition(name: str, filename: str | None = None, *, quote: bool = True) -> str:
    """`form-data; name="..."; filename="..."` as a browser writes it.

    With `quote=False` names go in as given, and a name that would break the header (a quote,
    CR, LF or another control character) raises ValueError instead of being escaped.
    """
    params = [("name", name)] if filename is None else [("name", name), ("filename", filename)]
    return content_disposition("form-data", params, quote=quote)


def content_disposition(
    disptype: str, params: Sequence[tuple[str, str]], *, quote: bool = True
) -> str:
    """`<disptype>; key="value"; ...` with values written as `form_data_disposition` does."""
    if not _TOKEN.fullmatch(disptype):
        raise ValueError(f"bad content disposition type {disptype!r}")
    rendered = [disptype]
    for key, value in params:
        if not _TOKEN.fullmatch(key):
            raise ValueError(f"bad content disposition parameter {key!r}={value!r}")
        if not isinstance(value, str):
            raise TypeError(f"content disposition {key} must be str, got {type(value).__name__}")
        if quote:
            value = value.translate(_BROWSER_ESCAPES)
        else:
            reject_control_chars(f"{disptype} {key}", value)
            if '"' in value:
                raise ValueError(f"{disptype} {key} must not contain '\"' when quote_fields=False")
        rendered.append(f'{key}="{value}"')
    return "; ".join(rendered)


@dataclass(slots=True)
class Part:
    """One body part: its header lines and its body."""

    body: Payload
    headers: list[tuple[str, str]] = field(default_factory=list)

    def head(self, charset: str) -> bytes:
        lines = []
        for name, value in self.headers:
            reject_control_chars("multipart header name", name)
            reject_control_chars(f"multipart header {name}", value)
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode(charset)


class MultipartPayload(Payload):
    """`multipart/<subtype>` made of parts. Sized (Content-Length) when every part is sized.

    `close()` closes the parts' bodies, unless `owner` is given: then the parts belong to it
    (a `FormData` the caller holds and may send again) and the body keeps it alive until sent.
    """

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        subtype: str = "form-data",
        boundary: str | None = None,
        charset: str = "utf-8",
        owner: object = None,
        close_boundary: bool = True,
    ) -> None:
        if not _TOKEN.fullmatch(subtype):
            raise ValueError(f"invalid multipart subtype {subtype!r}")
        self.owner = owner
        # Without the closing delimiter the body can be followed by more parts sent elsewhere.
        self._close_boundary = close_boundary
        self.boundary = check_boundary(boundary) if boundary is not None else make_boundary()
        self.parts = list(parts)
        self._charset = charset
        self._heads = [part.head(charset) for part in self.parts]
        shown = self.boundary if _TOKEN.fullmatch(self.boundary) else f'"{self.boundary}"'
        self.content_type = f"multipart/{subtype}; boundary={shown}"
        self.replayable = all(part.body.replayable for part in self.parts)
        self.size = self._total_size()

    def _delimiter(self) -> bytes:
        return b"--" + self.boundary.encode("ascii") + _CRLF

    def _closing(self) -> bytes:
        return b"--" + self.boundary.encode("ascii") + b"--" + _CRLF

    def _total_size(self) -> int | None:
        total = len(self._closing()) if self._close_boundary else 0
        for part, head in zip(self.parts, self._heads, strict=True):
            if part.body.size is None:
                return None
            total += len(self._delimiter()) + len(head) + part.body.size + len(_CRLF)
        return total

    async def chunks(self) -> AsyncIterator[bytes]:
        # Small pieces (delimiters, heads, short fields) are gathered into one write.
        pending = bytearray()
        for part, head in zip(self.parts, self._heads, strict=True):
            pending += self._delimiter()
            pending += head
            async for chunk in part.body.chunks():
                if len(chunk) <= _GATHER_LIMIT and len(pending) + len(chunk) <= CHUNK_SIZE:
                    pending += chunk
                    continue
                if pending:
                    yield bytes(pending)
                    pending.clear()
                yield chunk
            pending += _CRLF
        if self._close_boundary:
            pending += self._closing()
        if pending:
            yield bytes(pending)

    def check_sendable(self) -> None:
        for part in self.parts:
            part.body.check_sendable()

    async def close(self) -> None:
        if self.owner is not None:
            return
        for part in self.parts:
            await part.body.close()


class Base64Payload(Payload):
    """`inner` base64-encoded (Content-Transfer-Encoding: base64), streamed in 3-byte groups."""

    def __init__(self, inner: Payload) -> None:
        self.inner = inner
        self.content_type = inner.content_type
        self.replayable = inner.replayable
        self.size = None if inner.size is None else 4 * ((inner.size + 2) // 3)

    async def chunks(self) -> AsyncIterator[bytes]:
        carry = b""
        async for chunk in self.inner.chunks():
            data = carry + chunk
            whole = len(data) - len(data) % 3
            carry = data[whole:]
            if whole:
                yield base64.b64encode(data[:whole])
        if carry:
            yield base64.b64encode(carry)

    def check_sendable(self) -> None:
        self.inner.check_sendable()

    async def close(self) -> None:
        await self.inner.close()


class QuotedPrintablePayload(Payload):
    """`inner` quoted-printable encoded (binary-safe: line breaks are encoded too)."""

    size = None

    def __init__(self, inner: Payload) -> None:
        self.inner = inner
        self.content_type = inner.content_type
        self.replayable = inner.replayable

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner.chunks():
            # Each chunk is encoded alone; a soft line break between chunks decodes to nothing.
            encoded = binascii.b2a_qp(chunk, quotetabs=True, istext=False)
            if encoded:
                yield encoded + b"=\r\n"

    def check_sendable(self) -> None:
        self.inner.check_sendable()

    async def close(self) -> None:
        await self.inner.close()


_IDENTITY_ENCODINGS = ("binary", "8bit", "7bit")


def transfer_encoded(body: Payload, encoding: str | None) -> Payload:
    """`body` wrapped for a Content-Transfer-Encoding (RFC 2045), or as is for identity ones."""
    if encoding is None:
        return body
    token = encoding.strip().lower()
    if token == "base64":
        return Base64Payload(body)
    if token == "quoted-printable":
        return QuotedPrintablePayload(body)
    if token in _IDENTITY_ENCODINGS:
        return body
    raise ValueError(
        f"unsupported content_transfer_encoding {encoding!r}; use base64, quoted-printable, "
        f"or one of {', '.join(_IDENTITY_ENCODINGS)}"
    )


def __getattr__(name: str) -> object:
    # MultipartWriter lives in its own module, which builds on this one: load it on first use.
    if name == "MultipartWriter":
        from crawler.http.multipart_writer import MultipartWriter

        return MultipartWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
