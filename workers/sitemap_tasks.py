"""`--sitemaps` in a crawl: which tasks are robots.txt files and sitemaps fetched for what they
list, and the links they give (the parsing is `crawler.sitemaps`').

`crawl run --sitemaps` adds each seed origin's robots.txt as a task marked in its meta
(`SITEMAP_META`); its Sitemap: lines (else /sitemap.xml) become sitemap tasks, an index's
entries more of them, and the pages they list plain links as deep as the sitemap. The mark is
in the task, so any worker, whatever its own flags, reads such a task the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from crawler.frontier import Link, Task
from crawler.sitemaps import (
    MAX_SITEMAP_BYTES,
    SITEMAP_META,
    SitemapKind,
    parse_sitemap,
    robots_sitemaps,
)
from crawler.urls import InvalidURL, canonical_parts

__all__ = ["robots_tasks", "sitemap_kind", "sitemap_links", "sitemap_task_link"]

log = logging.getLogger("crawl.worker")

# Parsed on the event loop up to this size; larger (or gzipped) files in a thread.
INLINE_PARSE_BYTES = 256 << 10


def sitemap_kind(task: Task) -> SitemapKind | None:
    """Whether the task is a robots.txt or a sitemap fetched for what it lists."""
    meta = task.meta
    if not meta:
        return None
    kind = meta.get(SITEMAP_META)
    try:
        return None if kind is None else SitemapKind(kind)
    except ValueError:
        return None


def sitemap_task_link(url: str, kind: SitemapKind, **meta: object) -> Link:
    """The link (or seed) of a robots.txt or sitemap to fetch for what it lists: taken
    whatever the scope says (`--include '/blog/'` must not drop the /sitemap.xml that lists
    the blog, nor robots.txt a sitemap on another host); the pages it lists are scoped."""
    return Link(url, meta={**meta, SITEMAP_META: kind.value}, keeps_depth=True, scoped=False)


def robots_tasks(seeds: Iterable[str]) -> list[Link]:
    """The robots.txt of each seed's origin, marked to be read for its sitemaps."""
    origins: dict[str, None] = {}
    for seed in seeds:
        try:
            origins[canonical_parts(seed).origin] = None
        except InvalidURL:
            continue  # the seed itself is reported as not added
    return [sitemap_task_link(f"{origin}/robots.txt", SitemapKind.ROBOTS) for origin in origins]


async def sitemap_links(
    task: Task, base_url: str, body: bytes | None, path: Path, kind: SitemapKind
) -> list[str | Link]:
    """What a fetched robots.txt or sitemap (its bytes, else its stored file) lists."""
    if body is None:
        try:
            body = await asyncio.to_thread(_read_head, path, MAX_SITEMAP_BYTES + 1)
        except OSError as exc:  # removed or replaced since
            log.warning("%s: sitemap not read from %s: %s", task.url, path, exc)
            return []
    if kind is SitemapKind.ROBOTS:
        origin = canonical_parts(base_url).origin
        text = body.decode("utf-8", "replace")
        return [
            sitemap_task_link(url, SitemapKind.SITEMAP)
            for url in robots_sitemaps(text, origin)
        ]
    if len(body) <= INLINE_PARSE_BYTES and not body.startswith(b"\x1f\x8b"):
        listed = parse_sitemap(body, base_url)
    else:
        listed = await asyncio.to_thread(parse_sitemap, body, base_url)
    if listed.problem is not None:
        log.warning("%s: sitemap %s (%d URLs read)", task.url, listed.problem, len(listed))
    links: list[str | Link] = [
        sitemap_task_link(url, SitemapKind.SITEMAP) for url in listed.sitemaps
    ]
    links.extend(Link(url, task.priority, keeps_depth=True) for url in listed.pages)
    return links


def _read_head(path: Path, limit: int) -> bytes:
    with open(path, "rb") as file:
        return file.read(min(os.fstat(file.fileno()).st_size, limit))
