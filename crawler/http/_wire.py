"""HTTP/1.1 on the wire, without any I/O: request heads out, response heads and bodies in.

`encode_request_head` turns a method, a request target and header pairs into the bytes to send,
refusing CR, LF and NUL anywhere (no header or request-line injection). `ResponseParser` takes
received bytes (`feed`, `feed_eof`) and calls a receiver back with the head, body pieces and the
end of the message; it enforces the size limits on the status line, on each header and on the
number of headers. Parsing is `httptools` (llhttp); this module only adds policy on top of it.

Identity bodies (Content-Length or read-until-close, no Transfer-Encoding) are counted here
rather than by llhttp once the head's own read is parsed: each later `feed` hands its body part
to the receiver as a slice of the caller's buffer, with no copy, and `direct_body` tells the
caller that whatever it reads next is body (so it may read it straight into the body's storage).

A chunked body's chunk ends (llhttp's `on_chunk_complete`, after each chunk's CRLF and after the
last chunk's trailers) go to the receiver's optional `on_chunk_complete()`; a receiver without
one costs llhttp nothing per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httptools

__all__ = [
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "BadHeader",
    "BadStatusLine",
    "BodyError",
    "HeadError",
    "LineTooLong",
    "ResponseHead",
    "ResponseParser",
    "ResponseReceiver",
    "TooManyHeaders",
    "WireError",
    "encode_request_head",
]

MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 256

# RFC 9110 token characters: what a method or a header name may be made of.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# Names already checked, so the common headers cost one set look-up per request.
_good_names: set[str] = set()
_good_methods: set[str] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}


class WireError(Exception):
    """The peer sent bytes that are not a usable HTTP/1.1 response."""


class HeadError(WireError):
    """The response head (status line or headers) is malformed or too large."""


class BadStatusLine(HeadError):
    """The first line is not an HTTP/1.x status line."""


class LineTooLong(HeadError):
    """A status line or header is longer than the limit."""


class BadHeader(HeadError):
    """A header line is malformed."""


class TooManyHeaders(HeadError):
    """More header lines than the limit."""


class BodyError(WireError):
    """The body framing is broken: bad chunk, truncated body, data after the end."""


# --- request side -----------------------------------------------------------------------------

# Control characters a request head may not carry: CR and LF outside its line ends, and the
# rest (C0 and DEL) anywhere, tab aside (allowed in values).
_CONTROLS = "".join(chr(c) for c in (*range(0x20), 0x7F) if c not in (0x09, 0x0A, 0x0D))
_CONTROL_BYTES = _CONTROLS.encode("ascii")
_FORBIDDEN = ("\r", "\n", *_CONTROLS)


def _check_token(kind: str, value: str) -> None:
    if not value or not _TOKEN_CHARS.issuperset(value):
        raise ValueError(f"invalid {kind} {value!r}: only RFC 9110 token characters are allowed")


def _find_injection(method: str, target: str, headers: list[tuple[str, str]]) -> str:
    """Say which part of a request head carries a forbidden character (slow path, for errors)."""
    for ch in _FORBIDDEN:
        if ch in target:
            return f"request target {target!r} contains {ch!r}"
        for name, value in headers:
            if ch in value:
                return f"value of header {name!r} contains {ch!r}"
            if ch in name:
                return f"header name {name!r} contains {ch!r}"
    for ch in (" ", "\t"):
        if ch in target:
            return f"request target {target!r} contains {ch!r}"
    return f"malformed request head for {method} {target!r}"


def encode_request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """The bytes of `METHOD target HTTP/1.1` plus header lines plus the blank line.

    Raises ValueError before anything is built for the wire when the method or a header name is
    not a token, when CR, LF or any other control character but tab appears anywhere (RFC 9110
    5.5: CR, LF and NUL could smuggle in a header or a request; the rest make it malformed),
    or a space or tab in the target.
    """
    if method not in _good_methods:
        _check_token("method", method)
        _good_methods.add(method)
    for name, _ in headers:
        if name not in _good_names:
            _check_token("header name", name)
            if len(_good_names) < 4096:
                _good_names.add(name)
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend([f"{name}: {value}\r\n" for name, value in headers])
    lines.append("\r\n")
    head = "".join(lines)
    # A few C-level scans of the whole head instead of checks per header: a CR or LF smuggled
    # into a target or value shows up as an extra line ending, any other control byte as a
    # byte that `translate` deletes.
    expected = len(headers) + 2
    data = head.encode("utf-8", "surrogateescape")
    if (
        head.count("\n") != expected
        or head.count("\r") != expected
        # Deleting the other control bytes changes the length only when there are some.
        or len(data.translate(None, _CONTROL_BYTES)) != len(data)
        or " " in target
        or "\t" in target
    ):
        raise ValueError(_find_injection(method, target, headers))
    return data


# --- response side ----------------------------------------------------------------------------


@dataclass(slots=True)
class ResponseHead:
    """A parsed status line and header block."""

    status: int
    reason: str
    version: tuple[int, int]
    raw_headers: list[tuple[bytes, bytes]]
    # Framing and policy facts picked out while parsing, so nobody re-scans the headers.
    content_length: int | None
    chunked: bool
    content_encoding: str
    has_set_cookie: bool
    keep_alive: bool
    upgrade: bool


class ResponseReceiver(Protocol):
    """What `ResponseParser` reports to: one head, body pieces, then the end."""

    def on_head(self, head: ResponseHead) -> None: ...

    def on_informational(self, head: ResponseHead) -> None: ...

    def on_body(self, data: bytes | memoryview) -> None:
        """A body piece: bytes from llhttp, or a slice of the fed buffer (valid during the call)."""

    def on_message_complete(self, keep_alive: bool) -> None: ...

    # Optional, so not declared here: `on_chunk_complete()`, called at the end of each HTTP
    # chunk of a chunked body (never for other framings), after that chunk's `on_body` calls.


class _StopParsing(Exception):
    """Raised inside a callback to stop llhttp (after the head of a HEAD response, say)."""


# Parser states: waiting for a head, inside a body, message finished.
_HEAD, _BODY, _DONE = 0, 1, 2

# Header names we act on, found by length first so most headers cost one len() call.
_WATCHED_LENGTHS = frozenset({10, 14, 16, 17})


class ResponseParser:
    """Parse one response at a time; call `expect()` before each one.

    The receiver is called from inside `feed`; it should only record and forward. After
    `on_message_complete` any further byte is an error (we never pipeline), reported by `feed`.
    """

    __slots__ = (
        "_body_seen",
        "_chunk_complete",
        "_chunked",
        "_content_encoding",
        "_content_length",
        "_has_set_cookie",
        "_has_transfer_encoding",
        "_head_consumed",
        "_head_fed",
        "_head_keep_alive",
        "_head_request",
        "_identity_left",
        "_max_field_size",
        "_max_headers",
        "_max_line_size",
        "_parser",
        "_raw_headers",
        "_reason",
        "_receiver",
        "_reset_needed",
        "_state",
        "_status",
        "_until_close",
    )

    def __init__(
        self,
        receiver: ResponseReceiver,
        *,
        max_line_size: int = MAX_LINE_SIZE,
        max_field_size: int = MAX_FIELD_SIZE,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self._receiver = receiver
        self._chunk_complete = getattr(receiver, "on_chunk_complete", None)
        self._max_line_size = max_line_size
        self._max_field_size = max_field_size
        self._max_headers = max_headers
        self._parser = _response_parser(self)
        self._reset_needed = False
        self._head_request = False
        self._state = _DONE
        self._new_message()

    def _new_message(self) -> None:
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._status = 0
        self._content_length: int | None = None
        self._chunked = False
        self._content_encoding = ""
        self._has_set_cookie = False
        self._has_transfer_encoding = False
        self._until_close = False
        self._head_fed = 0
        self._head_consumed = 0
        self._body_seen = 0
        self._head_keep_alive = False
        # Identity-body bytes still to come, counted here instead of by llhttp (-1: until the
        # peer closes); None while llhttp parses.
        self._identity_left: int | None = None

    @property
    def until_close(self) -> bool:
        """True when the current body ends only when the peer closes the connection."""
        return self._until_close

    @property
    def in_body(self) -> bool:
        return self._state == _BODY

    @property
    def direct_body(self) -> bool:
        """True when every byte the next `feed` gets up to the body's end is body, unframed."""
        return self._identity_left is not None

    @property
    def body_left(self) -> int:
        """Bytes of a counted body still to come; -1 when unknown (read until close)."""
        left = self._identity_left
        return -1 if left is None else left

    def expect(
        self,
        *,
        head_request: bool = False,
        max_line_size: int | None = None,
        max_field_size: int | None = None,
        max_headers: int | None = None,
    ) -> None:
        """Get ready for the next response (to a HEAD request when `head_request`).

        Limits given here replace the ones from the constructor.
        """
        if max_line_size is not None:
            self._max_line_size = max_line_size
        if max_field_size is not None:
            self._max_field_size = max_field_size
        if max_headers is not None:
            self._max_headers = max_headers
        if self._reset_needed:
            self._parser = _response_parser(self)
            self._reset_needed = False
        self._head_request = head_request
        self._state = _HEAD
        self._new_message()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse received bytes; raises a `WireError` subclass for a broken response."""
        if self._identity_left is not None:
            self._feed_identity(data)
            return
        if self._state == _DONE and self._reset_needed and len(data):
            # llhttp was stopped mid-message (a counted body, a HEAD answer): it cannot judge.
            raise BodyError("unexpected data after the response")
        if self._state == _HEAD:
            self._head_fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._reset_needed = True
            if isinstance(cause, _StopParsing):
                return
            if isinstance(cause, Exception):
                # Our own error (or the receiver's) raised inside a callback: surface it as is.
                raise cause from None
            raise
        except httptools.HttpParserUpgrade:
            # We never ask for an upgrade on a pooled request (WebSockets take a detached
            # transport), so a 101 here is a broken or hostile server.
            self._reset_needed = True
            raise HeadError("unexpected protocol upgrade (101) in an HTTP/1.1 exchange") from None
        except httptools.HttpParserInvalidStatusError as exc:
            self._reset_needed = True
            raise BadStatusLine(f"invalid HTTP status line: {exc}") from None
        except httptools.HttpParserError as exc:
            self._reset_needed = True
            if self._state == _BODY:
                raise BodyError(f"malformed response body: {exc}") from None
            if self._state == _DONE:
                raise BodyError(f"unexpected data after the response: {exc}") from None
            if not self._parser.get_status_code():
                raise BadStatusLine(f"invalid HTTP status line: {exc}") from None
            raise HeadError(f"malformed response head: {exc}") from None
        if self._state == _BODY:
            self._maybe_count_body()
        elif self._state == _HEAD and self._head_fed - self._head_consumed > (
            self._max_line_size + 2 * self._max_field_size + 4
        ):
            # A header line that never ends: refuse it before llhttp buffers any more of it.
            self._reset_needed = True
            raise LineTooLong(
                f"response head line longer than {self._max_field_size} bytes "
                f"(or status line longer than {self._max_line_size})"
            )

    def _maybe_count_body(self) -> None:
        """After llhttp parsed a head and the start of its body: count the rest of it ourselves.

        llhttp would copy every body piece into a new bytes object; counting lets the caller
        keep the bytes where they landed. Only plain framing qualifies: a Content-Length or
        read-until-close body without Transfer-Encoding.
        """
        if self._chunked or self._has_transfer_encoding:
            return
        if self._until_close:
            self._identity_left = -1
        elif self._content_length is not None and self._content_length > self._body_seen:
            self._identity_left = self._content_length - self._body_seen
        else:
            return
        self._reset_needed = True  # llhttp stopped mid-body: the next response needs a new one

    def _feed_identity(self, data: bytes | bytearray | memoryview) -> None:
        left = self._identity_left
        assert left is not None
        size = len(data)
        if left < 0 or size < left:
            if left >= 0:
                self._identity_left = left - size
            if size:
                self._receiver.on_body(data)
            return
        body = data if size == left else memoryview(data)[:left]
        self._identity_left = None
        if left:
            self._receiver.on_body(body)
        self._state = _DONE
        self._receiver.on_message_complete(self._head_keep_alive)
        if size > left:
            raise BodyError("unexpected data after the response")

    def consume_body(self, count: int) -> None:
        """`count` bytes of a counted identity body were taken off the socket by the caller
        without passing through `feed` (spliced from the socket into a file). Ends the message
        when they were the last; more than `body_left` is the caller's bug."""
        left = self._identity_left
        if left is None or left < 0 or not 0 <= count <= left:
            raise ValueError(f"consume_body({count}) with {self.body_left} body bytes left")
        if count < left:
            self._identity_left = left - count
            return
        self._identity_left = None
        self._state = _DONE
        self._receiver.on_message_complete(self._head_keep_alive)

    def feed_eof(self) -> None:
        """The peer closed. Ends a read-until-close body; anything else unfinished is an error."""
        if self._state == _BODY and self._until_close:
            self._state = _DONE
            self._identity_left = None
            self._reset_needed = True
            self._receiver.on_message_complete(False)
            return
        if self._state == _BODY:
            raise BodyError("connection closed before the response body was complete")
        if self._state == _HEAD and self._head_fed:
            raise HeadError("connection closed in the middle of the response head")

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        if self._state == _DONE:
            raise BodyError("unexpected data after the response")

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        self._head_consumed += len(reason) + 15  # "HTTP/1.1 200 " and CRLF around the reason
        if len(self._reason) + 13 > self._max_line_size:
            raise LineTooLong(f"status line longer than {self._max_line_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        limit = self._max_field_size
        if len(name) > limit:
            raise LineTooLong(f"header name longer than {limit} bytes: {name[:40]!r}...")
        if len(value) > limit:
            raise LineTooLong(f"value of header {name[:100]!r} longer than {limit} bytes")
        if self._state != _HEAD:
            return  # a chunked body's trailer: framing is over, nothing here we act on
        raw = self._raw_headers
        raw.append((name, value))
        if len(raw) > self._max_headers:
            raise TooManyHeaders(f"more than {self._max_headers} response headers")
        self._head_consumed += len(name) + len(value) + 4
        if len(name) in _WATCHED_LENGTHS:
            self._watch_header(name.lower(), value)

    def _watch_header(self, lname: bytes, value: bytes) -> None:
        if lname == b"content-length":
            try:
                self._content_length = int(value)
            except ValueError:
                raise BadHeader(f"invalid Content-Length {value[:40]!r}") from None
        elif lname == b"transfer-encoding":
            self._has_transfer_encoding = True
            self._chunked = value.rstrip().lower().endswith(b"chunked")
        elif lname == b"content-encoding":
            self._content_encoding = value.strip().lower().decode("latin-1")
        elif lname == b"set-cookie":
            self._has_set_cookie = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        self._status = status
        version = (1, 1) if parser.get_http_version() == "1.1" else (1, 0)
        head = ResponseHead(
            status,
            self._reason.decode("utf-8", "surrogateescape"),
            version,
            self._raw_headers,
            self._content_length,
            self._chunked,
            self._content_encoding,
            self._has_set_cookie,
            parser.should_keep_alive(),
            parser.should_upgrade(),
        )
        if status < 200:
            # 1xx: llhttp ends this message by itself and goes on with the final response.
            self._receiver.on_informational(head)
            self._new_message()
            return
        self._state = _BODY
        bodyless = status in (204, 304) or self._head_request
        self._until_close = not bodyless and not self._chunked and self._content_length is None
        self._head_keep_alive = head.keep_alive
        self._receiver.on_head(head)
        if self._head_request:
            # llhttp does not know the request was HEAD and would read a Content-Length body:
            # end the message here and start a fresh parser for the next response.
            self._state = _DONE
            self._receiver.on_message_complete(head.keep_alive)
            raise _StopParsing

    def on_body(self, data: bytes) -> None:
        self._body_seen += len(data)
        self._receiver.on_body(data)

    @property
    def on_chunk_complete(self) -> Callable[[], None] | None:
        """The receiver's own `on_chunk_complete`, handed to httptools as our callback.

        httptools looks its callbacks up once, when the parser is made: giving it the
        receiver's bound method saves a Python call per chunk (this module adds no policy to
        chunk ends), and giving it None (a receiver without one) makes llhttp skip them.
        """
        return self._chunk_complete

    def on_message_complete(self) -> None:
        if self._status < 200:
            return
        self._state = _DONE
        self._receiver.on_message_complete(self._parser.should_keep_alive())


def _response_parser(callbacks: object) -> httptools.HttpResponseParser:
    """llhttp for responses, as lenient as browsers (and aiohttp) are with real servers: lines
    ended by a bare LF, and header values folded onto the next line (obs-fold, joined with a
    space as RFC 9112 5.2 asks) or holding other control bytes. A CR not followed by LF is still
    refused, and so is everything else malformed (status line, lengths, chunk framing).
    Leniency costs nothing on requests we send: only what a server answers is parsed here."""
    parser = httptools.HttpResponseParser(callbacks)
    parser.set_dangerous_leniencies(lenient_headers=True, lenient_optional_cr_before_lf=True)
    return parser
