"""What a response object tells storage, read through the aiohttp-style client API.

Duck-typed on `status`, `reason`, `url`, `version`, `headers` (a CIMultiDict-like mapping),
`history`, `request_info` (`method`, `real_url`, `headers`): our `crawler.http` client and aiohttp
both fit, and storage imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from storage.records import FetchRecord, RedirectHop, clean_text
from storage.warc import HttpHead

__all__ = ["fill_record", "request_head", "response_head"]


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    if name not in headers:
        return []  # the usual answer, without building a list to throw away
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [clean_text(v) for v in getall(name, [])]
    value = headers.get(name)
    return [] if value is None else [clean_text(value)]


def header_pairs(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    items: Iterable[tuple[str, str]] = headers.items()
    pairs = []
    for name, value in items:
        name, value = str(name), str(value)
        if not (name.isascii() and value.isascii()):  # nearly every header is
            name, value = clean_text(name), clean_text(value)
        pairs.append((name, value))
    return pairs


def fill_record(record: FetchRecord, resp: Any) -> None:
    """Copy status, headers, cookies, redirect chain and request facts into `record`."""
    record.status = int(resp.status)
    record.reason = clean_text(resp.reason) if resp.reason else None
    record.final_url = clean_text(str(resp.url))
    record.headers = header_pairs(resp.headers)
    record.set_cookies = header_values(resp.headers, "Set-Cookie")
    content_type = resp.headers.get("Content-Type")
    record.content_type = clean_text(content_type) if content_type else None
    record.redirects = [
        RedirectHop(
            url=clean_text(str(hop.url)),
            status=int(hop.status),
            location=(clean_text(hop.headers["Location"]) if "Location" in hop.headers else None),
        )
        for hop in getattr(resp, "history", ())
    ]
    info = getattr(resp, "request_info", None)
    if info is not None:
        record.method = str(info.method)
        record.request_headers = header_pairs(info.headers)
        record.cookies_sent = header_values(info.headers, "Cookie")


def request_head(resp: Any, fallback_url: str) -> HttpHead:
    info = getattr(resp, "request_info", None)
    if info is None:
        return HttpHead(f"GET {_target(fallback_url)} HTTP/1.1", [])
    url = getattr(info, "real_url", None) or info.url
    return HttpHead(f"{info.method} {_target(str(url))} HTTP/1.1", header_pairs(info.headers))


def response_head(resp: Any) -> HttpHead:
    version = getattr(resp, "version", None)
    protocol = f"HTTP/{version[0]}.{version[1]}" if version else "HTTP/1.1"
    reason = resp.reason or ""
    return HttpHead(f"{resp.status} {reason}".rstrip(), header_pairs(resp.headers), protocol)


def _target(url: str) -> str:
    """The request-target of an absolute URL: path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
