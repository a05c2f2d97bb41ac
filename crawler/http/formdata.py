"""FormData: HTML form fields and files, sent urlencoded or as multipart/form-data by content.

Plain text fields give `application/x-www-form-urlencoded`; a file, a stream, a filename, a
content type or a transfer encoding on any field switches the whole form to multipart.

Who closes the files: the one who made the form. A `FormData` the caller built owns its files,
so it can be posted again; a dict or list passed as `data=` is made into a form by the request,
which closes its files when done (see `FormData` and `request_form_body`).
"""

from __future__ import annotations

import codecs
import contextlib
import mimetypes
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from crawler.http._payload_base import (
    BytesPayload,
    Payload,
    charset_of,
    reject_control_chars,
)
from crawler.http._payload_streams import (
    AsyncIterablePayload,
    FilePayload,
    StreamReaderPayload,
    guess_filename,
    is_file_like,
    is_stream_reader,
)
from crawler.http.multipart import MultipartPayload, Part, form_data_disposition, transfer_encoded

__all__ = ["FormData", "request_form_body"]

URLENCODED = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class _Field:
    name: str
    value: str | bytes | Payload
    filename: str | None = None
    content_type: str | None = None
    transfer_encoding: str | None = None


class FormData:
    """Form fields in order, repeated names kept. Calling it gives the body `Payload`.

    `fields` may be a dict or MultiDict, a list of (name, value) pairs, or files. `charset`
    encodes text (UTF-8 by default). `quote_fields=False` writes multipart names unescaped.
    The body is replayable unless a field is a one-shot stream (async iterable, pipe, reader).

    The form owns the files, streams and payloads added to it. A request sends them and leaves
    them open: each send (the same form posted again, a 307/308 resend) starts every seekable
    file again from the position it had when it was added. They are closed by
    `await form.close()`, on leaving `async with form:`, or, as a last resort, when the form
    and every body made from it are garbage collected (files only). aiohttp instead closes
    them after the first request, so a second post of the same form fails there.
    A one-shot field (async iterable, pipe, StreamReader) can be sent once; a second post of
    the form raises RuntimeError before anything is sent.
    """

    def __init__(
        self,
        fields: Any = (),
        quote_fields: bool = True,
        charset: str | None = None,
        boundary: str | None = None,
        *,
        default_to_multipart: bool = False,
    ) -> None:
        if charset is not None:
            try:
                codecs.lookup(charset)
            except LookupError:
                raise ValueError(f"unknown form charset {charset!r}") from None
        self._fields: list[_Field] = []
        self._quote_fields = quote_fields
        self._charset = charset
        self._boundary = boundary
        self._is_multipart = default_to_multipart
        self._owns_parts = True
        self._closed = False
        # Only plain file objects can be closed from a finalizer (no event loop needed there).
        self._files: list[Any] = []
        self._finalizer = weakref.finalize(self, _close_files, self._files)
        if isinstance(fields, Mapping):
            self.add_fields(fields)
        elif isinstance(fields, list | tuple):
            self.add_fields(*fields)
        else:
            self.add_fields(fields)

    @property
    def is_multipart(self) -> bool:
        return self._is_multipart

    def __len__(self) -> int:
        return len(self._fields)

    def add_field(
        self,
        name: str,
        value: Any,
        *,
        content_type: str | None = None,
        filename: str | None = None,
        content_transfer_encoding: str | None = None,
    ) -> None:
        """Add one field. A list or tuple value adds one field per item under the same name."""
        if not isinstance(name, str):
            raise TypeError(f"form field name must be str, got {type(name).__name__}")
        if filename is not None and not isinstance(filename, str):
            raise TypeError(f"filename must be str, got {type(filename).__name__}")
        if content_type is not None:
            if not isinstance(content_type, str):
                raise TypeError(f"content_type must be str, got {type(content_type).__name__}")
            reject_control_chars("content_type", content_type)
        if content_transfer_encoding is not None:
            transfer_encoded(BytesPayload(b""), content_transfer_encoding)  # validates the name
        if isinstance(value, list | tuple):
            for item in value:
                self.add_field(
                    name,
                    item,
                    content_type=content_type,
                    filename=filename,
                    content_transfer_encoding=content_transfer_encoding,
                )
            return
        if self._closed:
            raise RuntimeError("cannot add a field to a closed FormData")
        field = _Field(name, self._field_value(name, value, content_type, filename))
        if is_file_like(value) and not is_stream_reader(value):
            self._files.append(value)
        if isinstance(value, Payload):
            field.filename = filename
        elif is_file_like(value) and filename is None:
            # Browsers always name an uploaded file; fall back to the field name as aiohttp does.
            field.filename = guess_filename(value, name)
        else:
            field.filename = filename
        field.content_type = content_type
        field.transfer_encoding = content_transfer_encoding
        if not isinstance(field.value, str | bytes) or field.filename is not None:
            self._is_multipart = True
        if content_type is not None or content_transfer_encoding is not None:
            self._is_multipart = True
        self._fields.append(field)

    def add_fields(self, *fields: Any) -> None:
        """Add dicts/MultiDicts of fields, (name, value) pairs, or files (named after the file)."""
        for item in fields:
            if isinstance(item, Mapping):
                for name, value in item.items():
                    self.add_field(name, value)
            elif isinstance(item, list | tuple) and len(item) == 2:
                name, value = item
                self.add_field(name, value)
            elif is_file_like(item):
                self.add_field(guess_filename(item, "unknown") or "unknown", item)
            else:
                raise TypeError(
                    "form fields must be a dict, (name, value) pairs or files; "
                    f"use add_field() for more options, got {item!r}"
                )

    def __call__(self) -> Payload:
        """The body: urlencoded bytes, or a streamed multipart payload."""
        if self._closed:
            raise RuntimeError("this FormData was closed; its files cannot be sent any more")
        if self._is_multipart:
            return self._multipart()
        return self._urlencoded()

    async def close(self) -> None:
        """Close every file and stream added to the form. The form cannot be sent afterwards."""
        self._closed = True
        self._finalizer.detach()
        for field in self._fields:
            if isinstance(field.value, Payload):
                await field.value.close()

    async def __aenter__(self) -> FormData:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- building --------------------------------------------------------------------------

    @staticmethod
    def _field_value(
        name: str, value: Any, content_type: str | None, filename: str | None
    ) -> str | bytes | Payload:
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, Payload):
            return value
        if is_stream_reader(value):
            return StreamReaderPayload(value, content_type=content_type)
        if is_file_like(value):
            return FilePayload(value, content_type=content_type, filename=filename)
        if hasattr(value, "__aiter__"):
            return AsyncIterablePayload(value, content_type=content_type)
        raise TypeError(
            f"form field {name!r} cannot be {type(value).__name__}; pass str, bytes, a number, "
            "a binary file, an async iterable of bytes or a StreamReader"
        )

    def _urlencoded(self) -> Payload:
        charset = self._charset or "utf-8"
        pairs = [(field.name, field.value) for field in self._fields]
        body = urlencode(pairs, doseq=False, encoding=charset)
        content_type = URLENCODED if charset == "utf-8" else f"{URLENCODED}; charset={charset}"
        return BytesPayload(body.encode("ascii"), content_type=content_type)

    def _multipart(self) -> Payload:
        charset = self._charset or "utf-8"
        parts = [self._part(field, charset) for field in self._fields]
        # An owner keeps the form (and so its finalizer) alive while the body is being sent.
        owner = self if self._owns_parts else None
        return MultipartPayload(parts, boundary=self._boundary, charset=charset, owner=owner)

    def _part(self, field: _Field, charset: str) -> Part:
        disposition = form_data_disposition(field.name, field.filename, quote=self._quote_fields)
        headers = [("Content-Disposition", disposition)]
        content_type = field.content_type
        value = field.value
        if isinstance(value, str):
            text_charset = charset_of(content_type) or charset
            body: Payload = BytesPayload(value.encode(text_charset), content_type=None)
            if content_type is None and text_charset != "utf-8":
                content_type = f"text/plain; charset={text_charset}"
        elif isinstance(value, bytes):
            body = BytesPayload(value, content_type=None)
        else:
            body = value
            if content_type is None:
                content_type = body.content_type
        if content_type is None and field.filename is not None:
            guessed = mimetypes.guess_type(field.filename, strict=False)[0]
            content_type = guessed or "application/octet-stream"
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if field.transfer_encoding is not None:
            headers.append(("Content-Transfer-Encoding", field.transfer_encoding))
            body = transfer_encoded(body, field.transfer_encoding)
        return Part(body, headers)

    def __repr__(self) -> str:
        kind = "multipart" if self._is_multipart else "urlencoded"
        names = ", ".join(repr(field.name) for field in self._fields)
        return f"<FormData {kind} [{names}]>"


def request_form_body(fields: Any) -> Payload:
    """The body for `data=` given as a dict or list of pairs: a form nobody else holds, so the
    request owns its files and closes them once it is done, as aiohttp does."""
    form = FormData(fields)
    form._owns_parts = False
    form._finalizer.detach()  # the request's close() is what closes the files now
    return form()


def _close_files(files: list[Any]) -> None:
    for file in files:
        with contextlib.suppress(Exception):
            file.close()
