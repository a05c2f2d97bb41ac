"""The last stored version of each URL: what a conditional re-fetch and a WARC revisit need.

One small JSON file per URL under `out/state/latest/`, named by the URL's sha256 and replaced
atomically, so worker processes never coordinate and a crash leaves the old or the new entry.
The record logs stay the full history; this is only the "latest" view, looked up in O(1).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from storage.resume import header_safe

__all__ = ["LatestEntry", "LatestIndex", "conditional_headers"]

LATEST_DIR = Path("state") / "latest"


@dataclass(slots=True)
class LatestEntry:
    url: str
    path: str  # relative to the output folder
    size: int
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float = 0.0
    warc_record_id: str | None = None
    warc_date: str | None = None
    warc_target_uri: str | None = None


def conditional_headers(entry: LatestEntry) -> dict[str, str]:
    """If-None-Match / If-Modified-Since for a re-fetch of `entry` (empty: ask unconditionally)."""
    headers: dict[str, str] = {}
    if entry.etag and header_safe(entry.etag):
        headers["If-None-Match"] = entry.etag
    if entry.last_modified and header_safe(entry.last_modified):
        headers["If-Modified-Since"] = entry.last_modified
    return headers


class LatestIndex:
    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.directory = Path(out_dir) / LATEST_DIR

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json"

    def get(self, url: str) -> LatestEntry | None:
        """The entry for `url`, or None (missing, unreadable, or another URL's by collision)."""
        try:
            raw = json.loads(self._path(url).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        known = {f.name for f in fields(LatestEntry)}
        try:
            entry = LatestEntry(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return None
        return entry if entry.url == url else None

    def put(self, entry: LatestEntry) -> None:
        path = self._path(entry.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.write_text(json.dumps(asdict(entry)), "utf-8")
            os.replace(temp, path)
        finally:
            if temp.exists():
                temp.unlink()

    def forget(self, url: str) -> None:
        try:
            os.unlink(self._path(url))
        except FileNotFoundError:
            pass
