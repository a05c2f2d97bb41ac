"""`ClientResponse`: status, headers and a streamed body.

Headers are kept as the raw byte pairs the parser produced; the `CIMultiDictProxy` view,
`cookies` and `request_info` are built the first time someone asks, so a caller who only reads
the status and the body pays for none of them.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

from crawler.http.cookies import parse_set_cookie
from crawler.http.errors import ClientResponseError, ContentTypeError, RequestInfo
from crawler.http.header_params import ContentDisposition, parse_content_disposition, parse_links
from crawler.http.streams import StreamReader

if TYPE_CHECKING:
    from crawler.http._wire import ResponseHead
    from crawler.http.connection import Connection
    from crawler.http.timeouts import Deadline
    from crawler.http.tracing import Trace

__all__ = ["ClientResponse", "HttpVersion"]

_JSON_SUFFIX = "+json"
# fallback_charset_resolver(response, body) -> the codec for a body whose charset is not said.
CharsetResolver = Callable[["ClientResponse", bytes], str]


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class HttpVersion(tuple[int, int]):
    """(major, minor) with names, as aiohttp's `resp.version`."""

    __slots__ = ()

    def __new__(cls, major: int, minor: int) -> HttpVersion:
        return super().__new__(cls, (major, minor))

    @property
    def major(self) -> int:
        return self[0]

    @property
    def minor(self) -> int:
        return self[1]


def _is_expected_type(mimetype: str, expected: str) -> bool:
    if expected == "application/json":
        # application/json and any application/<something>+json
        return mimetype == expected or (
            mimetype.startswith("application/") and mimetype.endswith(_JSON_SUFFIX)
        )
    return mimetype == expected


class ClientResponse:
    """One response. Use it as `async with`, or call `release()`/`read()` when done.

    `content` is the body as a `StreamReader`; `read()`, `text()` and `json()` read it whole
    (once; later calls return the same bytes).
    """

    __slots__ = (
        "_body",
        "_closed",
        "_connection",
        "_content_type",
        "_cookies",
        "_deadline",
        "_headers",
        "_raw",
        "_request_headers",
        "_request_info",
        "_resolve_charset",
        "_traces",
        "content",
        "history",
        "method",
        "real_url",
        "reason",
        "status",
        "url",
        "version",
    )

    def __init__(
        self,
        method: str,
        url: URL,
        head: ResponseHead,
        content: StreamReader,
        connection: Connection | None,
        *,
        request_headers: list[tuple[str, str]] | CIMultiDict[str],
        history: tuple[ClientResponse, ...] = (),
        deadline: Deadline | None = None,
        resolve_charset: CharsetResolver | None = None,
    ) -> None:
        self.method = method
        self._resolve_charset = resolve_charset
        self.real_url = url
        self.url = url.with_fragment(None) if url.raw_fragment else url
        self.status = head.status
        self.reason = head.reason
        self.version = HttpVersion(*head.version)
        self._raw = head.raw_headers
        self.content = content
        self.history = history
        self._connection = connection
        self._request_headers = request_headers
        self._deadline = deadline
        self._headers: CIMultiDictProxy[str] | None = None
        self._cookies: SimpleCookie | None = None
        self._request_info: RequestInfo | None = None
        self._content_type: tuple[str, dict[str, str]] | None = None
        self._body: bytes | None = None
        self._closed = False
        # Set by the session on the response it hands out, when the request is traced.
        self._traces: list[Trace] | tuple[()] = ()

    def __repr__(self) -> str:
        return f"<ClientResponse({self.url}) [{self.status} {self.reason}]>"

    # --- head ---

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        headers = self._headers
        if headers is None:
            decoded = CIMultiDict(
                [(_decode(name), _decode(value)) for name, value in self._raw]
            )
            headers = self._headers = CIMultiDictProxy(decoded)
        return headers

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self._raw)

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def cookies(self) -> SimpleCookie:
        """The cookies this response set (its Set-Cookie headers only)."""
        cookies = self._cookies
        if cookies is None:
            cookies = self._cookies = parse_set_cookie(self.headers.getall("Set-Cookie", ()))
        return cookies

    @property
    def links(self) -> MultiDictProxy[MultiDictProxy[str | URL]]:
        """The `Link` header's links by relation type, each with its parameters and "url"
        (resolved against this response's URL), as aiohttp's; see `header_params`."""
        return parse_links(self.headers.getall("Link", ()), self.url)

    @property
    def content_disposition(self) -> ContentDisposition | None:
        """The parsed Content-Disposition, or None. Its filename is the server's word: never a
        path to write to unchecked."""
        return parse_content_disposition(self.headers.get("Content-Disposition"))

    @property
    def host(self) -> str:
        """The host of the URL this response came from."""
        host = self.url.host
        assert host is not None, "a response always has a host"
        return host

    @property
    def request_info(self) -> RequestInfo:
        info = self._request_info
        if info is None:
            headers = self._request_headers
            if not isinstance(headers, CIMultiDict):
                headers = CIMultiDict(headers)
            info = self._request_info = RequestInfo(
                self.url, self.method, CIMultiDictProxy(headers), self.real_url
            )
        return info

    @property
    def connection(self) -> Connection | None:
        return self._connection

    @property
    def closed(self) -> bool:
        return self._closed

    def _parse_content_type(self) -> tuple[str, dict[str, str]]:
        parsed = self._content_type
        if parsed is None:
            raw = self.headers.get("Content-Type", "")
            mimetype, *params = raw.split(";")
            values: dict[str, str] = {}
            for param in params:
                key, _, value = param.partition("=")
                if key.strip():
                    values[key.strip().lower()] = value.strip().strip('"')
            parsed = self._content_type = (mimetype.strip().lower(), values)
        return parsed

    @property
    def content_type(self) -> str:
        """The media type of Content-Type, lower-cased (application/octet-stream when absent)."""
        return self._parse_content_type()[0] or "application/octet-stream"

    @property
    def charset(self) -> str | None:
        return self._parse_content_type()[1].get("charset")

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    # --- body ---

    async def read(self) -> bytes:
        """The whole body (decoded per Content-Encoding unless auto_decompress=False)."""
        body = self._body
        if body is None:
            try:
                body = self._body = await self.content.read()
                if self._traces:
                    # aiohttp reports the whole body once, from read() only (not from streaming).
                    for trace in self._traces:
                        await trace.send_response_chunk_received(self.method, self.url, body)
            except BaseException:
                self.close()
                raise
            self._finish()
        return body

    def get_encoding(self) -> str:
        """The charset to decode `text()` with: Content-Type's; UTF-8 for JSON; else what the
        session's `fallback_charset_resolver` says (UTF-8 unless given one, as in aiohttp: a
        guess from a short body can decode "successfully" into nonsense, where UTF-8 fails
        loudly and `errors="replace"` keeps what is readable)."""
        charset = self.charset
        if charset:
            try:
                codecs.lookup(charset)
            except LookupError:
                charset = None
            else:
                return charset
        mimetype = self.content_type
        if mimetype == "application/json" or mimetype.endswith(_JSON_SUFFIX):
            return "utf-8"  # RFC 8259: JSON is UTF-8
        if self._resolve_charset is None:
            return "utf-8"
        return self._resolve_charset(self, self._body or b"")

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        body = await self.read()
        return body.decode(encoding or self.get_encoding(), errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        """The body parsed as JSON; `ContentTypeError` when Content-Type is not the expected one.

        `content_type=None` skips the check. An empty body gives None.
        """
        body = await self.read()
        if content_type is not None and not _is_expected_type(self.content_type, content_type):
            raise ContentTypeError(
                self.request_info,
                self.history,
                status=self.status,
                message=(
                    f"Attempt to decode JSON with unexpected mimetype: "
                    f"{self.headers.get('Content-Type', '')}"
                ),
                headers=self.headers,
            )
        if not body.strip():
            return None
        return loads(body.decode(encoding or self.get_encoding()))

    # --- ending ---

    def release(self) -> _Done:
        """Done with the response. An unread body closes the connection instead of reusing it.

        Returns an awaitable, so both `resp.release()` and `await resp.release()` work.
        """
        self._finish()
        return _DONE

    def close(self) -> None:
        """Close the connection now (unless it already went back to the pool whole)."""
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = self._deadline
        if deadline is not None:
            self._deadline = None
            deadline.cancel()
        conn = self._connection
        if conn is not None:
            self._connection = None
            if conn.owns(self.content):
                conn.close()

    async def wait_for_close(self) -> None:
        self.release()

    def raise_for_status(self) -> None:
        """Raise `ClientResponseError` for a 4xx or 5xx status (after releasing the response)."""
        if self.status >= 400:
            self.release()
            raise ClientResponseError(
                self.request_info,
                self.history,
                status=self.status,
                message=self.reason,
                headers=self.headers,
            )

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        # Dropped without release: do not leave the connection held (and the pool slot taken).
        if not self._closed and self._connection is not None:
            try:
                self._finish()
            except Exception:
                pass


class _Done:
    """An already-finished awaitable."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()

