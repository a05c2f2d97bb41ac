"""MultipartWriter: aiohttp's hand-built multipart bodies (mixed, related, form-data, nested).

Each part is a payload with its own part headers (`PartPayload`, or a nested writer, which
carries its headers itself). The writer is a `Payload`, so `session.post(url, data=writer)`
sends it: Content-Type with the boundary, Content-Length when every part's size is known.
Framing and streaming are `MultipartPayload`'s, built afresh for each send, so part bodies
stream from their own payloads and are never joined in memory.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlencode

from multidict import CIMultiDict

from crawler.http._payload_base import BytesPayload, Payload
from crawler.http._payload_compress import compressed
from crawler.http._payload_streams import FilePayload
from crawler.http.formdata import URLENCODED, FormData
from crawler.http.multipart import (
    _TOKEN,
    MultipartPayload,
    Part,
    check_boundary,
    content_disposition,
    make_boundary,
    transfer_encoded,
)
from crawler.http.payload import json_payload, make_payload

__all__ = ["MultipartWriter", "PartPayload", "WriterPart"]

_CONTENT_TYPE = "Content-Type"
_CONTENT_DISPOSITION = "Content-Disposition"
_CONTENT_LENGTH = "Content-Length"
_CONTENT_ENCODING = "Content-Encoding"
_TRANSFER_ENCODING = "Content-Transfer-Encoding"
# RFC 7578 4.7/4.8: form-data parts carry none of these.
_NOT_IN_FORM_DATA = (_CONTENT_ENCODING, _CONTENT_LENGTH, _TRANSFER_ENCODING)
_TRANSFER_ENCODINGS = ("base64", "quoted-printable", "binary", "8bit", "7bit")
_IDENTITY_TRANSFER = ("binary", "8bit", "7bit")
# Part compression as aiohttp writes (and its multipart reader reads) it: "deflate" is a raw
# deflate stream there, not the zlib format HTTP's Content-Encoding names.
_PART_COMPRESSIONS = {"deflate": -zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}


class _HasPartHeaders:
    """`headers` and `set_content_disposition`, shared by a part and a nested writer."""

    _headers: CIMultiDict[str]

    @property
    def headers(self) -> CIMultiDict[str]:
        """The part's headers, written in this order above its body."""
        return self._headers

    def set_content_disposition(
        self, disptype: str, quote_fields: bool = True, _charset: str = "utf-8", **params: str
    ) -> None:
        """Set `Content-Disposition: <disptype>; key="value"; ...` (keyword order kept).

        Values are written as browsers write form-data names: UTF-8, with `"`, CR and LF
        percent-encoded (`quote_fields=False`: unescaped, and refused if they would break the
        header). Part headers are UTF-8, so `_charset` can only be UTF-8.
        """
        if _charset.replace("_", "-").lower() not in ("utf-8", "utf8"):
            raise ValueError(f"part headers are written in UTF-8; _charset={_charset!r} is not")
        self._headers[_CONTENT_DISPOSITION] = content_disposition(
            disptype, list(params.items()), quote=quote_fields
        )


class PartPayload(_HasPartHeaders, Payload):
    """A body and its part headers: what `MultipartWriter.append` returns."""

    def __init__(self, body: Payload, headers: Mapping[str, str] | None = None) -> None:
        self.body = body
        self._headers = CIMultiDict()
        if body.content_type is not None:
            self._headers[_CONTENT_TYPE] = body.content_type
        if headers:
            self._headers.update(headers)

    @property  # type: ignore[override]
    def content_type(self) -> str | None:
        return self._headers.get(_CONTENT_TYPE)

    @property  # type: ignore[override]
    def size(self) -> int | None:
        return self.body.size

    @property  # type: ignore[override]
    def replayable(self) -> bool:
        return self.body.replayable

    @property
    def filename(self) -> str | None:
        return getattr(self.body, "filename", None)

    def chunks(self) -> AsyncIterator[bytes]:
        return self.body.chunks()

    def check_sendable(self) -> None:
        self.body.check_sendable()

    async def close(self) -> None:
        await self.body.close()


class WriterPart(NamedTuple):
    """One entry of a writer, as aiohttp's iteration gives it: payload, compression, transfer
    encoding (None for identity)."""

    payload: PartPayload | MultipartWriter
    encoding: str | None
    te_encoding: str | None


class _Compressed(Payload):
    """A part body compressed as it is sent (Content-Encoding on a part)."""

    size = None

    def __init__(self, inner: Payload, encoding: str) -> None:
        self.inner = inner
        self._wbits = _PART_COMPRESSIONS[encoding]
        self.content_type = inner.content_type
        self.replayable = inner.replayable

    def chunks(self) -> AsyncIterator[bytes]:
        return compressed(self.inner.chunks(), zlib.compressobj(wbits=self._wbits))

    def check_sendable(self) -> None:
        self.inner.check_sendable()


class MultipartWriter(_HasPartHeaders, Payload):
    """A `multipart/<subtype>` body built part by part; send it as `data=`.

    `close_boundary=False` leaves out the closing delimiter (and its bytes from `size`).
    The session closes the parts' bodies (files included) once the request is done.
    """

    def __init__(
        self, subtype: str = "mixed", boundary: str | None = None, close_boundary: bool = True
    ) -> None:
        if not isinstance(subtype, str) or not _TOKEN.fullmatch(subtype):
            raise ValueError(f"invalid multipart subtype {subtype!r}")
        self._subtype = subtype
        self._boundary = check_boundary(boundary) if boundary is not None else make_boundary()
        self._close_boundary = close_boundary
        self._parts: list[WriterPart] = []
        # Set when append() wrote Content-Length, so a send can bring it up to date.
        self._auto_length: set[int] = set()
        shown = self._boundary if _TOKEN.fullmatch(self._boundary) else f'"{self._boundary}"'
        self._headers = CIMultiDict({_CONTENT_TYPE: f"multipart/{subtype}; boundary={shown}"})
        self.content_type = self._headers[_CONTENT_TYPE]

    @property
    def boundary(self) -> str:
        return self._boundary

    def __enter__(self) -> MultipartWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pass  # as in aiohttp: nothing to release; the request closes the parts

    def __iter__(self) -> Iterator[WriterPart]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __bool__(self) -> bool:
        return True  # an empty writer is still a body (just the closing delimiter)

    # --- adding parts ----------------------------------------------------------------------

    def append(self, obj: Any, headers: Mapping[str, str] | None = None) -> PartPayload | Payload:
        """Add `obj` (str, bytes, a binary file, an async iterable, a Payload, a writer)."""
        if isinstance(obj, PartPayload | MultipartWriter):
            if headers:
                obj.headers.update(headers)
            return self.append_payload(obj)
        if isinstance(obj, Payload):
            return self.append_payload(PartPayload(obj, headers))
        if isinstance(obj, Mapping | list | tuple | FormData):
            raise TypeError(
                f"cannot make a part from {type(obj).__name__}; use append_form() or "
                "append_json(), or FormData for a whole form"
            )
        given = CIMultiDict(headers or {})
        body = make_payload(obj, content_type=given.get(_CONTENT_TYPE))
        return self.append_payload(PartPayload(body, given))

    def append_payload(self, payload: Payload) -> PartPayload | Payload:
        """Add a payload as the next part; returns the part (whose headers can still change)."""
        part = payload
        if not isinstance(payload, PartPayload | MultipartWriter):
            part = PartPayload(payload)
        if part is self:
            raise ValueError("a MultipartWriter cannot be a part of itself")
        if self._subtype == "form-data":
            self._add_form_data_headers(part)
            entry = WriterPart(part, None, None)
        else:
            entry = self._entry_with_encodings(part)
        self._parts.append(entry)
        return part

    def append_json(self, obj: Any, headers: Mapping[str, str] | None = None) -> PartPayload:
        """Add `obj` as an application/json part (json.dumps, UTF-8)."""
        part = PartPayload(json_payload(obj, json.dumps), headers)
        self.append_payload(part)
        return part

    def append_form(
        self,
        obj: Sequence[tuple[str, str]] | Mapping[str, str],
        headers: Mapping[str, str] | None = None,
    ) -> PartPayload:
        """Add fields as an application/x-www-form-urlencoded part."""
        if not isinstance(obj, Sequence | Mapping) or isinstance(obj, str | bytes):
            raise TypeError(f"append_form needs a mapping or (name, value) pairs, not {obj!r}")
        pairs = list(obj.items()) if isinstance(obj, Mapping) else list(obj)
        body = BytesPayload(urlencode(pairs, doseq=True).encode("ascii"), content_type=URLENCODED)
        part = PartPayload(body, headers)
        self.append_payload(part)
        return part

    def _add_form_data_headers(self, part: PartPayload | MultipartWriter) -> None:
        refused = [name for name in _NOT_IN_FORM_DATA if name in part.headers]
        if refused:
            raise ValueError(f"a multipart/form-data part must not have {', '.join(refused)}")
        if _CONTENT_DISPOSITION not in part.headers:
            # aiohttp's default name; a file keeps its name as the filename, as browsers send it.
            params = {"name": f"section-{len(self._parts)}"}
            if filename := _file_name(part):
                params["filename"] = filename
            part.set_content_disposition("form-data", **params)

    def _entry_with_encodings(self, part: PartPayload | MultipartWriter) -> WriterPart:
        encoding: str | None = part.headers.get(_CONTENT_ENCODING, "").strip().lower()
        if encoding and encoding not in (*_PART_COMPRESSIONS, "identity"):
            raise ValueError(f"unknown part Content-Encoding {encoding!r}; use gzip or deflate")
        te_encoding: str | None = part.headers.get(_TRANSFER_ENCODING, "").strip().lower()
        if te_encoding and te_encoding not in _TRANSFER_ENCODINGS:
            raise ValueError(
                f"unknown Content-Transfer-Encoding {te_encoding!r}; use base64 or "
                "quoted-printable"
            )
        encoding = None if encoding in ("", "identity") else encoding
        te_encoding = None if te_encoding in ("", *_IDENTITY_TRANSFER) else te_encoding
        if _CONTENT_DISPOSITION not in part.headers and (filename := _file_name(part)):
            part.set_content_disposition("attachment", filename=filename)
        if not (encoding or te_encoding) and part.size is not None:
            part.headers[_CONTENT_LENGTH] = str(part.size)
            self._auto_length.add(len(self._parts))
        return WriterPart(part, encoding, te_encoding)

    # --- sending ---------------------------------------------------------------------------

    @property  # type: ignore[override]
    def size(self) -> int | None:
        """Bytes on the wire, or None when a part's size is unknown or it is encoded."""
        if any(entry.encoding or entry.te_encoding for entry in self._parts):
            return None
        return self._framed().size

    @property  # type: ignore[override]
    def replayable(self) -> bool:
        return all(entry.payload.replayable for entry in self._parts)

    def _framed(self) -> MultipartPayload:
        """This send's framing over the parts as they are now."""
        self._refresh_lengths()
        parts = [Part(_wire_body(entry), list(entry.payload.headers.items())) for entry in self]
        return MultipartPayload(
            parts,
            subtype=self._subtype,
            boundary=self._boundary,
            owner=self,
            close_boundary=self._close_boundary,
        )

    def _refresh_lengths(self) -> None:
        # A nested writer may have grown since it was appended; its Content-Length follows.
        for index in self._auto_length:
            part = self._parts[index].payload
            if part.size is None:
                part.headers.popall(_CONTENT_LENGTH, None)
            else:
                part.headers[_CONTENT_LENGTH] = str(part.size)

    async def chunks(self) -> AsyncIterator[bytes]:
        self._check_form_data()
        async for chunk in self._framed().chunks():
            yield chunk

    def _check_form_data(self) -> None:
        if self._subtype != "form-data":
            return
        for index, entry in enumerate(self._parts):
            disposition = entry.payload.headers.get(_CONTENT_DISPOSITION, "")
            if "name=" not in disposition:
                raise ValueError(
                    f"multipart/form-data part {index} needs a name in its Content-Disposition "
                    f"(RFC 7578 4.2), got {disposition!r}"
                )

    def check_sendable(self) -> None:
        self._check_form_data()
        for entry in self._parts:
            entry.payload.check_sendable()

    async def close(self) -> None:
        for entry in self._parts:
            await entry.payload.close()

    def __repr__(self) -> str:
        return (
            f"<MultipartWriter {self.content_type!r} parts={len(self._parts)} size={self.size}>"
        )


def _file_name(part: PartPayload | MultipartWriter) -> str | None:
    body = part.body if isinstance(part, PartPayload) else None
    return body.filename if isinstance(body, FilePayload) else None


def _wire_body(entry: WriterPart) -> Payload:
    """The part body as it goes out: compressed, then transfer-encoded (aiohttp's order)."""
    body: Payload = entry.payload
    if entry.encoding:
        body = _Compressed(body, entry.encoding)
    if entry.te_encoding:
        body = transfer_encoded(body, entry.te_encoding)
    return body
