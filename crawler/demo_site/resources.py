"""What a demo host can answer at a path: bodies (in memory, generated, on disk) and behaviours.

Every body offers the same two things the server needs: `size` and `chunks(start, end)`, so range
requests, HEAD and streaming work the same for a 4 KB page and a 2 GB generated file.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# All generated content claims this modification time, so a regenerated site is byte-identical.
FIXED_LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"
CHUNK_SIZE = 256 * 1024
_BLOCK = 64 * 1024
_INDEX_BYTES = 8


@dataclass(frozen=True, slots=True)
class Body:
    """Bytes held in memory (pages, robots.txt, small files)."""

    data: bytes
    content_type: str  # "": sent without a Content-Type
    etag: str = field(default="", compare=False)
    last_modified: str = FIXED_LAST_MODIFIED

    def __post_init__(self) -> None:
        if not self.etag:
            digest = hashlib.blake2b(self.data, digest_size=8).hexdigest()
            object.__setattr__(self, "etag", f'"{digest}"')

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) in pieces of at most CHUNK_SIZE."""
        view = memoryview(self.data)
        for offset in range(start, end, CHUNK_SIZE):
            yield bytes(view[offset : min(end, offset + CHUNK_SIZE)])


@lru_cache(maxsize=8)
def _pattern(seed: int) -> bytes:
    return random.Random(seed).randbytes(_BLOCK - _INDEX_BYTES)


@dataclass(frozen=True, slots=True)
class GeneratedBody:
    """Deterministic pseudo-random bytes of any size, computed as they are sent (never all in
    memory). Each 64 KiB block starts with its own index, so no two blocks are equal and a resume
    at a wrong offset cannot produce the right digest by accident."""

    size: int
    seed: int
    content_type: str = "application/octet-stream"
    last_modified: str = FIXED_LAST_MODIFIED

    @property
    def etag(self) -> str:
        return f'"gen-{self.seed:x}-{self.size:x}"'

    def _block(self, index: int) -> bytes:
        return index.to_bytes(_INDEX_BYTES, "big") + _pattern(self.seed)

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        pending: list[bytes] = []
        pending_size = 0
        position = start
        while position < end:
            index, skip = divmod(position, _BLOCK)
            piece = self._block(index)[skip : skip + end - position]
            position += len(piece)
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= CHUNK_SIZE:
                yield b"".join(pending)
                pending, pending_size = [], 0
        if pending:
            yield b"".join(pending)

    def read(self) -> bytes:
        """The whole body (tests and small files only)."""
        return b"".join(self.chunks(0, self.size))

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(0, self.size):
            digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class FileBody:
    """A file under a served directory, read piece by piece when sent."""

    path: Path
    size: int
    content_type: str
    etag: str
    last_modified: str

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        with self.path.open("rb") as file:
            file.seek(start)
            remaining = end - start
            while remaining > 0:
                piece = file.read(min(CHUNK_SIZE, remaining))
                if not piece:
                    # The file shrank under us: end the body short, the client sees truncation.
                    return
                remaining -= len(piece)
                yield piece


@dataclass(frozen=True, slots=True)
class Redirect:
    """A redirect to `location` (a path on the same host or an absolute URL)."""

    location: str
    status: int = 301


@dataclass(frozen=True, slots=True)
class Flaky:
    """Fails `failures` times with `status` (and `Retry-After` when set), then serves `then`.

    The count is per server, so it tests a crawler's retries, not its luck."""

    failures: int
    status: int
    then: Body
    retry_after: int | None = None


ByteSource = Body | GeneratedBody | FileBody
Resource = Body | GeneratedBody | FileBody | Redirect | Flaky


def media_type(path: str) -> str:
    """Content-Type by file extension, for files served from disk."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _TYPES.get(suffix, "application/octet-stream")


_TYPES = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "png": "image/png",
    "bin": "application/octet-stream",
}
