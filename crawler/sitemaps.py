"""Sitemaps (sitemaps.org): the URLs a site lists for crawlers, found in robots.txt.

Parsing only, no I/O: the worker hands in the bytes of a fetched robots.txt or sitemap.

- `robots_sitemaps(text, origin)`: the `Sitemap:` URLs of a robots.txt (any case, anywhere in
  the file, as RFC 9309 and sitemaps.org have them), else the conventional `/sitemap.xml`.
- `parse_sitemap(data)`: a `<urlset>` (pages), a `<sitemapindex>` (more sitemaps) or a plain
  text sitemap (one URL a line). gzip is undone when the bytes start with its magic: a
  `.xml.gz` is stored as it came (only a Content-Encoding is undone on the way in). The
  protocol's own limits bound the work: 50,000 URLs and 50 MB once uncompressed, so a
  decompression bomb stops there. The XML goes through defusedxml: no DTD, no entities, so
  neither a billion laughs nor an external entity can make it read or allocate more.

A page a sitemap lists is crawled as deep as the sitemap itself (`Link.keeps_depth`): a
sitemap lists pages the way seeds do, and `--max-depth` counts links followed from them.
"""

from __future__ import annotations

import enum
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

__all__ = [
    "MAX_SITEMAP_BYTES",
    "MAX_SITEMAP_URLS",
    "SITEMAP_META",
    "Sitemap",
    "SitemapKind",
    "parse_sitemap",
    "robots_sitemaps",
]

MAX_SITEMAP_URLS = 50_000
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
# The task meta key that marks a robots.txt or a sitemap fetched for its URLs.
SITEMAP_META = "sitemap"
_GZIP_MAGIC = b"\x1f\x8b"


class SitemapKind(enum.StrEnum):
    ROBOTS = "robots"  # a robots.txt, read for its Sitemap: lines
    SITEMAP = "sitemap"  # a sitemap file of any of the kinds below


@dataclass(slots=True)
class Sitemap:
    """What one sitemap file listed: pages, other sitemaps, and what went wrong (if any)."""

    pages: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    problem: str | None = None  # malformed, cut at a limit: what was read before is kept

    def __len__(self) -> int:
        return len(self.pages) + len(self.sitemaps)


def robots_sitemaps(text: str, origin: str) -> list[str]:
    """The sitemaps a robots.txt names (resolved against `origin`), or `origin/sitemap.xml`."""
    found: list[str] = []
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "sitemap":
            url = value.split("#", 1)[0].strip()
            resolved = urljoin(origin + "/", url) if url else ""
            if resolved and resolved not in found:
                found.append(resolved)
    return found or [origin + "/sitemap.xml"]


def parse_sitemap(data: bytes, base_url: str) -> Sitemap:
    """The URLs of a sitemap file's bytes (see the module docstring); relative ones, which the
    protocol does not allow but some sites write, are resolved against `base_url`."""
    result = Sitemap()
    try:
        text = _uncompressed(data)
    except _TooLarge as cut:
        text, result.problem = cut.head, f"larger than {MAX_SITEMAP_BYTES:,} bytes uncompressed"
    except (OSError, EOFError, zlib.error) as error:
        result.problem = f"not valid gzip: {error}"
        return result
    body = text.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body.startswith(b"<"):
        _parse_text(body, base_url, result)
    else:
        _parse_xml(body, base_url, result)
    return result


class _TooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = head


def _uncompressed(data: bytes) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        if len(data) > MAX_SITEMAP_BYTES:
            raise _TooLarge(data[:MAX_SITEMAP_BYTES])
        return data
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        head = stream.read(MAX_SITEMAP_BYTES + 1)
    if len(head) > MAX_SITEMAP_BYTES:
        raise _TooLarge(head[:MAX_SITEMAP_BYTES])
    return head


def _parse_text(body: bytes, base_url: str, result: Sitemap) -> None:
    for raw in body.splitlines():
        url = raw.decode("utf-8", "replace").strip()
        if not url:
            continue
        if len(result) >= MAX_SITEMAP_URLS:
            result.problem = f"more than {MAX_SITEMAP_URLS:,} URLs"
            return
        result.pages.append(urljoin(base_url, url))


def _parse_xml(body: bytes, base_url: str, result: Sitemap) -> None:
    kind: str | None = None
    namespace = ""  # the root's: <image:loc> and other extensions' elements are not ours
    try:
        for event, element in _events(body):
            space, _, name = element.tag.rpartition("}")
            if event == "start":
                if kind is None:
                    kind, namespace = name, space
                continue
            if name != "loc" or space != namespace:
                if name in ("url", "sitemap"):
                    element.clear()  # keeps memory flat on a 50,000-URL file
                continue
            url = (element.text or "").strip()
            if not url:
                continue
            if len(result) >= MAX_SITEMAP_URLS:
                result.problem = f"more than {MAX_SITEMAP_URLS:,} URLs"
                return
            target = result.sitemaps if kind == "sitemapindex" else result.pages
            target.append(urljoin(base_url, url))
    except DefusedXmlException as error:
        result.problem = f"refused: {type(error).__name__}"
    except SyntaxError as error:  # ElementTree.ParseError
        # A file cut at the size limit ends mid-element: the cut is what to report.
        result.problem = result.problem or f"malformed XML: {error}"
    if kind not in (None, "urlset", "sitemapindex") and result.problem is None:
        result.problem = f"not a sitemap: the root element is <{kind}>"
        result.pages.clear()
        result.sitemaps.clear()


def _events(body: bytes) -> Iterator[tuple[str, object]]:
    return iterparse(io.BytesIO(body), events=("start", "end"), forbid_dtd=True)  # type: ignore[no-any-return]
