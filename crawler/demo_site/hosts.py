"""Where a demo host's answers come from: a routes dict in memory, or a directory on disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote_to_bytes

from crawler.demo_site.resources import Body, FileBody, Resource, media_type

# Files up to this size are read once and kept in memory; larger ones are streamed from disk.
MEMORY_FILE_LIMIT = 1024 * 1024
_CACHE_ENTRIES = 200_000


class HostContent(Protocol):
    """What one host serves."""

    def lookup(self, path: str) -> Resource | None:
        """The resource at a raw request path (query already cut), or None for a 404."""


class MemoryHost:
    """Serves a routes dict as it is (the generated site, nothing touches the disk)."""

    __slots__ = ("routes",)

    def __init__(self, routes: Mapping[str, Resource]) -> None:
        self.routes = routes

    def lookup(self, path: str) -> Resource | None:
        return self.routes.get(path)


def safe_relative_path(raw_path: str) -> list[str] | None:
    """The segments of a request path to look up under a root, or None if it may not be served.

    Percent-escapes are decoded first, so `%2e%2e` and `..%2f` are caught like `..`; NUL,
    backslashes and undecodable bytes are refused rather than guessed at.
    """
    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    segments = [segment for segment in decoded.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        return None
    return segments


class DirectoryHost:
    """Serves files under `root` (a directory URL serves its `index.html`), after `specials`
    (redirects and faults, which files cannot express). Nothing outside `root` is ever served,
    symlinks included."""

    __slots__ = ("_cache", "real_root", "root", "specials")

    def __init__(self, root: str | Path, specials: Mapping[str, Resource] | None = None) -> None:
        self.root = Path(root)
        self.real_root = self.root.resolve(strict=True)
        self.specials = dict(specials or {})
        self._cache: dict[str, Resource] = {}

    def lookup(self, path: str) -> Resource | None:
        found = self.specials.get(path) or self._cache.get(path)
        if found is not None:
            return found
        segments = safe_relative_path(path)
        if segments is None:
            return None
        resource = self._load(self.real_root.joinpath(*segments))
        if resource is not None and len(self._cache) < _CACHE_ENTRIES:
            self._cache[path] = resource
        return resource

    def _load(self, target: Path) -> Resource | None:
        try:
            if target.is_dir():
                target = target / "index.html"
            real = target.resolve(strict=True)
            if not real.is_relative_to(self.real_root) or not real.is_file():
                return None
            stat = real.stat()
        except (OSError, RuntimeError, ValueError):
            return None
        content_type = media_type(real.name)
        last_modified = formatdate(stat.st_mtime, usegmt=True)
        if stat.st_size <= MEMORY_FILE_LIMIT:
            try:
                data = real.read_bytes()
            except OSError:
                return None
            return Body(data, content_type, last_modified=last_modified)
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        return FileBody(real, stat.st_size, content_type, etag, last_modified)


def file_name_for(path: str) -> str:
    """The file a generated route is written to, relative to its host folder."""
    relative = path.lstrip("/")
    if not relative or relative.endswith("/"):
        relative += "index.html"
    return relative.replace("/", os.sep)
