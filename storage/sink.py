"""A body sink: chunks in, a verified file out, never the whole body in memory.

Chunks are written to `<final>.part` as they arrive. They are gathered into batches of about
1 MiB and handed to a thread that writes them with one `os.writev` and feeds them to sha256
(both release the GIL), so the event loop keeps reading the socket while the disk works. At most
one batch is in flight and one is filling, which bounds memory at about two batches.

`commit()` checks the size (Content-Length or Content-Range), the sha256 when one is expected,
fsyncs according to the policy, and renames the `.part` into place atomically while it still
holds the file's lock. Anything that goes wrong before the rename leaves the `.part` behind and
nothing under the final name: a file without `.part` is always complete.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import fcntl
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from storage.errors import DigestMismatchError, PathBusyError, SizeMismatchError, StorageError
from storage.paths import displaced_path

__all__ = ["PART_SUFFIX", "BodySink", "FsyncPolicy", "SinkResult", "part_path_for"]

PART_SUFFIX = ".part"
BATCH_BYTES = 1 << 20
INLINE_BYTES = 256 << 10
# writev takes at most IOV_MAX (1024 on Linux) buffers; tiny chunks flush a batch early.
BATCH_BUFFERS = 512
_READ_BACK_BYTES = 1 << 20

# Shared by every sink: each sink keeps at most one batch in flight, so order per file holds.
_IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="storage-io")


class FsyncPolicy(enum.StrEnum):
    """When a sink forces its bytes to stable storage."""

    ALWAYS = "always"  # after every batch (about 1 MiB), and before the rename
    ON_CLOSE = "on-close"  # once, before the rename (and the directory after it)
    NEVER = "never"  # leave it to the OS


@dataclass(frozen=True, slots=True)
class SinkResult:
    """A committed body: where it is now, how big, and its sha256 (hex)."""

    path: Path
    size: int
    sha256: str


def part_path_for(final_path: Path) -> Path:
    return final_path.with_name(final_path.name + PART_SUFFIX)


class BodySink:
    """Streams one body into `<final_path>.part`; `commit()` makes it `final_path`.

    Use: `await sink.open(offset)`, then `await sink.write(chunk)` per chunk, then
    `await sink.commit(...)` on success or `await sink.close()` to stop and keep the `.part`.
    `open(offset)` keeps the first `offset` bytes of an existing `.part` (a resume) and drops
    anything after them. The `.part` is locked (flock) while open: a second sink on the same
    path, in this process or another, gets `PathBusyError`.
    """

    def __init__(
        self,
        final_path: Path,
        *,
        fsync: FsyncPolicy = FsyncPolicy.ON_CLOSE,
        threaded: bool = True,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.final_path = final_path
        self.part_path = part_path_for(final_path)
        self.fsync = FsyncPolicy(fsync)
        self._threaded = threaded
        self._batch_bytes = batch_bytes
        self._fd: int | None = None
        self._hasher = hashlib.sha256()
        self._size = 0
        self._start = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._writing: Future[None] | None = None
        self._hashing: Future[None] | None = None

    @property
    def size(self) -> int:
        """Bytes of the body accepted so far, including a resumed prefix."""
        return self._size

    @property
    def start_offset(self) -> int:
        """Where the bytes of this attempt start in the file (the resumed prefix's length)."""
        return self._start

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    async def open(self, offset: int = 0) -> None:
        """Open (create) the `.part`, keep its first `offset` bytes, and hash them."""
        fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PathBusyError(f"{self.part_path} is being written by another download") from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        try:
            have = os.fstat(fd).st_size
            if offset > have:
                raise StorageError(f"{self.part_path}: cannot resume at {offset}, it has {have}")
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            self._hasher = hashlib.sha256()
            if offset:
                await self._run(_hash_prefix, fd, self._hasher, offset)
            self._size = self._start = offset
        except BaseException:
            self._close_fd()
            raise

    async def restart(self) -> None:
        """Drop every byte written so far (the server sent the whole body again)."""
        await self._drain()
        fd = self._require_fd()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self._hasher = hashlib.sha256()
        self._size = self._start = 0

    async def write(self, chunk: bytes) -> None:
        """Accept one chunk. Cheap: it is queued, and written once a batch is full."""
        if not chunk:
            return
        self._require_fd()
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self._size += len(chunk)
        if self._pending_bytes >= self._batch_bytes or len(self._pending) >= BATCH_BUFFERS:
            await self._submit()

    async def flush(self) -> None:
        """Write every accepted chunk to the `.part` (the sink stays open)."""
        self._require_fd()
        await self._drain()

    async def commit(
        self,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> SinkResult:
        """Verify, fsync, and rename into place. On any error the `.part` stays, the sink open.

        Raises `SizeMismatchError` or `DigestMismatchError`; a file under the final name
        exists only after they passed.
        """
        await self._drain()
        fd = self._require_fd()
        if expected_size is not None and expected_size != self._size:
            raise SizeMismatchError(str(self.part_path), expected_size, self._size)
        digest = self._hasher.hexdigest()
        if expected_sha256 is not None and expected_sha256.lower() != digest:
            raise DigestMismatchError(str(self.part_path), expected_sha256.lower(), digest)
        if self.fsync is not FsyncPolicy.NEVER:
            await self._run(os.fsync, fd)
        # Rename while we still hold the lock, so nobody can reopen the `.part` in between.
        final = self._rename_into_place()
        self._close_fd()
        if self.fsync is not FsyncPolicy.NEVER:
            _fsync_directory(final.parent)
        return SinkResult(path=final, size=self._size, sha256=digest)

    async def close(self) -> None:
        """Stop: write what was accepted, keep the `.part` for a later resume. Idempotent.

        The file is closed even when writing the rest fails (the error is raised after).
        """
        if self._fd is None:
            return
        try:
            await self._drain()
            if self.fsync is FsyncPolicy.ALWAYS:
                await self._run(os.fsync, self._fd)
        finally:
            self._pending.clear()
            self._pending_bytes = 0
            self._close_fd()

    async def discard(self) -> None:
        """Stop and delete the `.part` (a body nobody wants to resume)."""
        try:
            await self.close()
        finally:
            try:
                os.unlink(self.part_path)
            except FileNotFoundError:
                pass

    def close_now(self) -> None:
        """Synchronous last resort (cancellation): close the file, keep the `.part`."""
        self._pending.clear()
        self._pending_bytes = 0
        self._close_fd()

    # --- internals ---------------------------------------------------------------------------

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StorageError(f"{self.part_path}: sink is not open")
        return self._fd

    async def _submit(self) -> None:
        """Hand the filling batch to the threads, once the previous batch is done.

        Writing and hashing run in two threads at once; both finish before the next batch
        goes, which keeps the file and the digest in order. Small batches (the whole body of
        most web pages) are cheaper to handle inline than to hand over.
        """
        await self._wait_in_flight()
        batch, size = self._pending, self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        fd = self._require_fd()
        sync = self.fsync is FsyncPolicy.ALWAYS
        if self._threaded and size >= INLINE_BYTES:
            self._writing = _IO_POOL.submit(_write_batch, fd, batch, sync)
            self._hashing = _IO_POOL.submit(_hash_batch, self._hasher, batch)
        else:
            _write_batch(fd, batch, sync)
            _hash_batch(self._hasher, batch)

    async def _wait_in_flight(self) -> None:
        for name in ("_writing", "_hashing"):
            future: Future[None] | None = getattr(self, name)
            if future is None:
                continue
            try:
                await asyncio.wrap_future(future)
            finally:
                # Cleared only once done, so a cancelled caller still leaves it for _close_fd.
                if future.done():
                    setattr(self, name, None)

    async def _drain(self) -> None:
        if self._pending:
            await self._submit()
        await self._wait_in_flight()

    async def _run(self, func: Callable[..., object], *args: object) -> None:
        if self._threaded:
            await asyncio.wrap_future(_IO_POOL.submit(func, *args))
        else:
            func(*args)

    def _rename_into_place(self) -> Path:
        target = self.final_path
        try:
            os.replace(self.part_path, target)
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another URL needed this name as a directory: the file goes beside it.
            target = displaced_path(self.final_path)
            os.replace(self.part_path, target)
        return target

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        in_flight, self._writing, self._hashing = self._writing, None, None
        if fd is None:
            return
        if in_flight is not None and not in_flight.cancel() and not in_flight.done():
            # Cancelled mid-batch: the writer thread still uses the fd. Closing it now could
            # let the number be reused by another file under the thread's feet.
            in_flight.add_done_callback(lambda _future: os.close(fd))
            return
        os.close(fd)


def _write_batch(fd: int, chunks: Sequence[bytes], sync: bool) -> None:
    _write_all(fd, chunks)
    if sync:
        os.fsync(fd)


def _hash_batch(hasher: hashlib._Hash, chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)


def _write_all(fd: int, chunks: Sequence[bytes]) -> None:
    buffers: list[bytes | memoryview] = list(chunks)
    while buffers:
        written = os.writev(fd, buffers)
        if written == sum(len(b) for b in buffers):
            return
        # A short write (disk nearly full, signal): skip what went out, retry the rest.
        while buffers and written >= len(buffers[0]):
            written -= len(buffers[0])
            buffers.pop(0)
        if buffers and written:
            buffers[0] = memoryview(buffers[0])[written:]


def _hash_prefix(fd: int, hasher: hashlib._Hash, length: int) -> None:
    position = 0
    while position < length:
        block = os.pread(fd, min(_READ_BACK_BYTES, length - position), position)
        if not block:
            raise StorageError(f"fd {fd}: file shorter than {length} bytes while hashing")
        hasher.update(block)
        position += len(block)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
