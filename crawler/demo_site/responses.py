"""Deciding and framing the demo server's responses, without I/O.

`plan(resource, method, range_header, if_range, failures_so_far)` turns a request into a
`Plan` (status, headers, which bytes of which body); `head_bytes` frames a status line and headers.
Range requests follow RFC 9110 section 14: one `bytes=` range (first-last, first-, -suffix); a
range list, bad syntax or a failed `If-Range` gets the whole body with 200; a first byte past the
end gets 416 with `Content-Range: bytes */size`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from crawler.demo_site.resources import ByteSource, Flaky, Redirect, Resource

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
NOT_FOUND_BODY = b"<!DOCTYPE html><title>404</title><h1>Not Found</h1>\n"


class Unsatisfiable:
    """A range that starts past the end of the body (416)."""

    __slots__ = ()


UNSATISFIABLE = Unsatisfiable()


def parse_range(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """The [start, end) bytes of a `Range` header for a body of `size` bytes.

    None means "send the whole body" (no header, unsupported unit, several ranges, bad syntax).
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return UNSATISFIABLE
        return (max(0, size - suffix), size)
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return (start, min(end, size))


def none_match_hits(if_none_match: str, etag: str) -> bool:
    """Whether `If-None-Match` lists `etag` (weak comparison, as the header asks) or is `*`."""
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


def if_range_allows(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Whether a `Range` may be honoured given `If-Range` (strong ETag or exact date match)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(("W/", '"')):
        return value == etag
    return value == last_modified


@dataclass(frozen=True, slots=True)
class Plan:
    """What to send: status, headers (without Date/Connection) and bytes [start, end) of body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: ByteSource | bytes | None = None
    start: int = 0
    end: int = 0


def _not_found() -> Plan:
    return Plan(
        404,
        (
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(NOT_FOUND_BODY))),
        ),
        NOT_FOUND_BODY,
        0,
        len(NOT_FOUND_BODY),
    )


def _empty(status: int, *headers: tuple[str, str]) -> Plan:
    return Plan(status, (*headers, ("Content-Length", "0")))


def plan(
    resource: Resource | None,
    method: str,
    range_header: str | None = None,
    if_range: str | None = None,
    failures_so_far: int = 0,
    *,
    if_none_match: str | None = None,
) -> Plan:
    """The response to a GET or HEAD of `resource` (None: nothing there). An `If-None-Match`
    naming its ETag (or `*`) gets a 304, as a re-crawl expects (RFC 9110, 13.1.2)."""
    if method not in ("GET", "HEAD"):
        return _empty(405, ("Allow", "GET, HEAD"))
    if resource is None:
        return _not_found()
    if isinstance(resource, Redirect):
        return _empty(resource.status, ("Location", resource.location))
    if isinstance(resource, Flaky):
        if failures_so_far < resource.failures:
            extra = (
                ()
                if resource.retry_after is None
                else (("Retry-After", str(resource.retry_after)),)
            )
            return _empty(resource.status, *extra)
        resource = resource.then
    size = resource.size
    validators = (
        ("ETag", resource.etag),
        ("Last-Modified", resource.last_modified),
        ("Accept-Ranges", "bytes"),
    )
    if if_none_match is not None and none_match_hits(if_none_match, resource.etag):
        # No body and no Content-Length: a 304 describes the stored version, not a new one.
        return Plan(304, validators[:2])
    wanted = None
    if if_range_allows(if_range, resource.etag, resource.last_modified):
        wanted = parse_range(range_header, size)
    if isinstance(wanted, Unsatisfiable):
        return _empty(416, ("Content-Range", f"bytes */{size}"), *validators)
    # An empty type sends none: some servers do, and clients must sniff.
    typed = (("Content-Type", resource.content_type),) if resource.content_type else ()
    if wanted is None:
        headers = (*typed, ("Content-Length", str(size)), *validators)
        return Plan(200, headers, resource, 0, size)
    start, end = wanted
    headers = (
        *typed,
        ("Content-Length", str(end - start)),
        ("Content-Range", f"bytes {start}-{end - 1}/{size}"),
        *validators,
    )
    return Plan(206, headers, resource, start, end)


def head_bytes(status: int, headers: tuple[tuple[str, str], ...], *extra: tuple[str, str]) -> bytes:
    """A status line and header block, ending with the blank line."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in (*headers, *extra))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
