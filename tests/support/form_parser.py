"""Parsing a multipart/form-data or urlencoded body the way a werkzeug server (httpbin's stack)
does, for tests that check what a server makes of our bodies.

Uploaded files come back read and closed (werkzeug spools them to temporary files that would
otherwise be left for the garbage collector to close, with a ResourceWarning).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from werkzeug.datastructures import Headers, MultiDict
from werkzeug.formparser import parse_form_data

__all__ = ["ParsedFile", "parse_form"]


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One uploaded file as the server saw it."""

    filename: str | None
    content_type: str | None
    headers: Headers
    data: bytes

    def read(self) -> bytes:
        return self.data


def parse_form(body: bytes, content_type: str) -> tuple[MultiDict, MultiDict]:
    """(fields, files) from a request body with this Content-Type."""
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, fields, uploads = parse_form_data(environ)
    files: MultiDict = MultiDict()
    for name, storage in uploads.items(multi=True):
        try:
            data = storage.read()
        finally:
            storage.close()
        files.add(name, ParsedFile(storage.filename, storage.content_type, storage.headers, data))
    return fields, files
