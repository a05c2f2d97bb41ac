"""A body sink: chunks in, a verified file out, never the whole body in memory.

Bytes are written to `<final>.part` as they arrive, in batches of about 1 MiB. A batch goes to
two serial lanes on a shared thread pool, one writing it (`os.writev`) and one feeding it to
sha256 (both release the GIL), so the event loop keeps reading the socket while the disk and
the digest work; a lane runs its batches in order, and after a failed write it runs no more.
Up to `MAX_IN_FLIGHT` batches are on their way at once, which bounds memory at a few MiB.

Four ways in: `write(chunk)` takes bytes objects (kept, not copied, until written),
`room()` + `wrote(n)` lend the sink's own reusable batch buffers, so a reader can put the
bytes straight there (`StreamReader.readinto`): one copy from the socket, none after it; and
`put(data)` writes and hashes a small body held whole at once, without batches or threads;
`splice_target()` + `spliced(n)` let a caller put bytes in the file itself (spliced from the
socket, never in user space), which the sink's hash lane then reads back from the page cache
and hashes.

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
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.errors import DigestMismatchError, PathBusyError, SizeMismatchError, StorageError
from storage.paths import AnyPath, displaced_path
from storage.room import claim_room

__all__ = ["PART_SUFFIX", "BodySink", "FsyncPolicy", "SinkResult", "part_path_for"]

PART_SUFFIX = ".part"
BATCH_BYTES = 1 << 20
INLINE_BYTES = 256 << 10
# writev takes at most IOV_MAX (1024 on Linux) buffers; tiny chunks flush a batch early.
BATCH_BUFFERS = 512
# Batches written or hashed at once per sink; with lent buffers also how many a sink owns.
MAX_IN_FLIGHT = 4
# A lent buffer with less room than this goes to disk rather than take a sliver of a read.
MIN_ROOM = 64 << 10
_READ_BACK_BYTES = 256 << 10  # read back in pieces that stay in the CPU cache for hashing

# Shared by every sink; a sink's lanes keep its own batches in order.
_IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="storage-io")


class FsyncPolicy(enum.StrEnum):
    """When a sink forces its bytes to stable storage."""

    ALWAYS = "always"  # after every batch (about 1 MiB), and before the rename
    ON_CLOSE = "on-close"  # once, before the rename (and the directory after it)
    NEVER = "never"  # leave it to the OS


@dataclass(frozen=True, slots=True)
class SinkResult:
    """A committed body: where it is now (`path`, or `path_text` without making a Path), how
    big, and its sha256 (hex)."""

    path_text: str
    size: int
    sha256: str
    # st_mtime_ns once written in full (a rename keeps it): what a revalidation later checks
    # to tell the stored version from a local edit of the same size.
    mtime_ns: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.path_text)


def part_path_for(final_path: AnyPath) -> AnyPath:
    """The `.part` beside `final_path` (a str for a str, a Path for a Path)."""
    if isinstance(final_path, str):
        return final_path + PART_SUFFIX
    return Path(f"{final_path}{PART_SUFFIX}")  # `with_name` costs twice as much


class _Lane:
    """Jobs run one at a time on the shared pool, in the order given; no thread of its own.

    After a job fails, the jobs after it fail with the same error without running: a file
    must never get later bytes after a write that did not complete.
    """

    __slots__ = ("_failed", "_jobs", "_lock", "_running")

    def __init__(self) -> None:
        self._jobs: deque[tuple[Future[None], Callable[..., None], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._failed: BaseException | None = None

    def submit(self, func: Callable[..., None], *args: Any) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self._jobs.append((future, func, args))
            if self._running:
                return future
            self._running = True
        _IO_POOL.submit(self._run)
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                future, func, args = self._jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued (the sink was abandoned)
            if self._failed is not None:
                future.set_exception(self._failed)
                continue
            try:
                func(*args)
            except BaseException as exc:
                self._failed = exc
                future.set_exception(exc)
            else:
                future.set_result(None)


@dataclass(slots=True)
class _Batch:
    """One batch on its way: its write and hash jobs, and the lent buffer it came from."""

    written: Future[None]
    hashed: Future[None]
    buffer: bytearray | None


class BodySink:
    """Streams one body into `<final_path>.part`; `commit()` makes it `final_path`.

    Use: `await sink.open(offset)`, then per chunk `await sink.write(chunk)` (or fill
    `await sink.room()` and call `await sink.wrote(n)`), then `await sink.commit(...)` on success
    or `await sink.close()` to stop and keep the `.part`. `open(offset)` keeps the first
    `offset` bytes of an existing `.part` (a resume) and drops anything after them. The `.part`
    is locked (flock) while open: a second sink on the same path, in this process or another,
    gets `PathBusyError`.
    """

    _write_lane: _Lane  # set with the open file (`_take`)
    _hash_lane: _Lane

    def __init__(
        self,
        final_path: str | Path,
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
        self._pending: list[bytes] = []  # chunks given to write(), not yet in a batch
        self._pending_bytes = 0
        self._lent: bytearray | None = None  # the buffer room() hands out, and its fill
        self._lent_fill = 0
        self._spare: list[bytearray] = []
        self._buffers = 0
        self._in_flight: deque[_Batch] = deque()
        # The lanes (`_write_lane`, `_hash_lane`) come with the open file (`_take`).
        self._read_back: bytearray | None = None  # what the hash lane reads the file into

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

    def open_new(self) -> bool:
        """Create the `.part`, empty and locked, when there is none: True (the sink is open, as
        after `open(0)`). False when one exists already: read its state, then `open(offset)`."""
        try:
            fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        self._take(fd)
        self._hasher = hashlib.sha256()
        self._size = self._start = 0
        return True

    async def open(self, offset: int = 0) -> None:
        """Open (create) the `.part`, keep its first `offset` bytes, and hash them."""
        fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._take(fd)
        try:
            self._hasher = hashlib.sha256()
            if offset:
                have = os.fstat(fd).st_size
                if offset > have:
                    raise StorageError(
                        f"{self.part_path}: cannot resume at {offset}, it has {have}"
                    )
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
                await self._run(
                    _hash_range, fd, self._hasher, 0, offset, self._read_back_buffer()
                )
            else:
                # A fresh descriptor is at offset 0 already; a stale `.part` is emptied.
                os.ftruncate(fd, 0)
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
        if self._lent_fill:
            await self._submit_lent()  # bytes put in the lent buffer come first
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self._size += len(chunk)
        if self._pending_bytes >= self._batch_bytes or len(self._pending) >= BATCH_BUFFERS:
            await self._submit()

    def put(self, data: bytes | memoryview) -> None:
        """Write and hash `data` now, on the calling thread: for a small body held whole, where
        a batch and its thread hops would cost more than the write itself. Nothing else may be
        waiting to be written (`write`/`wrote` bytes not yet flushed)."""
        fd = self._require_fd()
        if self._pending or self._lent_fill or self._in_flight:
            raise StorageError(f"{self.part_path}: put() while other bytes are on their way")
        if not data:
            return
        _write_all(fd, (data,))
        self._hasher.update(data)
        self._size += len(data)

    async def room(self) -> memoryview:
        """Free space of a buffer the sink owns: put the next bytes at its start, then call
        `wrote(n)`. Valid until the next call on the sink; never empty."""
        self._require_fd()
        if self._pending:
            await self._submit()  # chunks given to write() come first
        lent = self._lent
        if lent is None:
            lent = self._lent = await self._take_buffer()
            self._lent_fill = 0
        return memoryview(lent)[self._lent_fill :]

    async def wrote(self, count: int) -> None:
        """Accept the `count` bytes just put at the start of the last `room()`."""
        lent = self._lent
        if lent is None or count < 0 or self._lent_fill + count > len(lent):
            raise StorageError(f"{self.part_path}: wrote({count}) does not match room()")
        self._lent_fill += count
        self._size += count
        if len(lent) - self._lent_fill < MIN_ROOM:
            await self._submit_lent()

    async def splice_target(self, upcoming: int = 0) -> int:
        """The `.part`'s descriptor, positioned after every byte accepted so far, for a caller
        that puts the next bytes (at most `upcoming`) in the file itself (a splice from the
        socket); then it calls `spliced(n)`. Waits until earlier batches are written (not
        hashed). Raises OSError(ENOSPC) when those bytes would eat into the disk's reserve
        (`storage.room`)."""
        self._require_fd()
        if self._pending:
            await self._submit()
        if self._lent_fill:
            await self._submit_lent()
        for batch in list(self._in_flight):
            await asyncio.wrap_future(batch.written)
        fd = self._require_fd()
        claim_room(fd, upcoming)
        return fd

    async def spliced(self, count: int) -> None:
        """Accept the `count` bytes just put in the file through `splice_target()`: the hash
        lane reads them back (from the page cache, where they still are) and hashes them."""
        fd = self._require_fd()
        if count <= 0:
            return
        start = self._size
        self._size += count
        if not self._threaded:
            _hash_range(fd, self._hasher, start, count, self._read_back_buffer())
            if self.fsync is FsyncPolicy.ALWAYS:
                os.fsync(fd)
            return
        while len(self._in_flight) >= MAX_IN_FLIGHT:
            await self._wait_oldest()
        window = _Window(os.dup(fd), start, count)  # closing the sink cannot pull it away
        if self.fsync is FsyncPolicy.ALWAYS:
            written = self._write_lane.submit(os.fsync, fd)
        else:
            written = Future()
            written.set_result(None)
        hashed = self._hash_lane.submit(
            _hash_window, self._hasher, window, self._read_back_buffer()
        )
        hashed.add_done_callback(window.close)  # also when cancelled before it ran
        self._in_flight.append(_Batch(written, hashed, None))

    def _read_back_buffer(self) -> bytearray:
        # One per sink: its hash lane runs one job at a time.
        if self._read_back is None:
            self._read_back = bytearray(_READ_BACK_BYTES)
        return self._read_back

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
        mtime_ns = os.fstat(fd).st_mtime_ns  # every byte is written: the file's last change
        # Rename while we still hold the lock, so nobody can reopen the `.part` in between.
        final = self._rename_into_place()
        self._close_fd()
        if self.fsync is not FsyncPolicy.NEVER:
            _fsync_directory(os.path.dirname(final))
        return SinkResult(
            path_text=os.fspath(final), size=self._size, sha256=digest, mtime_ns=mtime_ns
        )

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
            self._forget_unwritten()
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
        self._forget_unwritten()
        self._close_fd()

    # --- internals ---------------------------------------------------------------------------

    def _take(self, fd: int) -> None:
        """Lock the `.part` just opened as `fd` and make it this sink's (closed on failure)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PathBusyError(f"{self.part_path} is being written by another download") from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._write_lane = _Lane()
        self._hash_lane = _Lane()

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StorageError(f"{self.part_path}: sink is not open")
        return self._fd

    def _forget_unwritten(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._lent_fill = 0

    async def _submit(self) -> None:
        """Send the chunks given to write() on their way as one batch."""
        batch, size = self._pending, self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        await self._send(batch, size, None)

    async def _submit_lent(self) -> None:
        """Send the filled part of the lent buffer on its way; the next room() takes another."""
        lent, fill = self._lent, self._lent_fill
        self._lent, self._lent_fill = None, 0
        if lent is None:
            return
        if not fill:
            self._spare.append(lent)
            return
        await self._send([memoryview(lent)[:fill]], fill, lent)

    async def _send(
        self, batch: Sequence[bytes | memoryview], size: int, buffer: bytearray | None
    ) -> None:
        """Write and hash one batch: inline when small and nothing is on its way (most web
        pages), else on the lanes, waiting only while MAX_IN_FLIGHT batches are out."""
        fd = self._require_fd()
        sync = self.fsync is FsyncPolicy.ALWAYS
        if not self._in_flight and (not self._threaded or size < INLINE_BYTES):
            try:
                _write_batch(fd, batch, sync)
                _hash_batch(self._hasher, batch)
            finally:
                if buffer is not None:
                    self._spare.append(buffer)
            return
        while len(self._in_flight) >= MAX_IN_FLIGHT:
            await self._wait_oldest()
        self._in_flight.append(
            _Batch(
                self._write_lane.submit(_write_batch, fd, batch, sync),
                self._hash_lane.submit(_hash_batch, self._hasher, batch),
                buffer,
            )
        )

    async def _take_buffer(self) -> bytearray:
        """A batch buffer nobody uses: a spare one, a new one, or the oldest once it is done."""
        while True:
            if self._spare:
                return self._spare.pop()
            if self._buffers < MAX_IN_FLIGHT + 1:
                self._buffers += 1
                return bytearray(self._batch_bytes)
            await self._wait_oldest()

    async def _wait_oldest(self) -> None:
        batch = self._in_flight[0]
        try:
            await asyncio.wrap_future(batch.written)
            await asyncio.wrap_future(batch.hashed)
        finally:
            # Dropped only once done, so a cancelled caller still leaves it for _close_fd.
            if batch.written.done() and batch.hashed.done():
                if self._in_flight and self._in_flight[0] is batch:
                    self._in_flight.popleft()
                if batch.buffer is not None:
                    self._spare.append(batch.buffer)

    async def _drain(self) -> None:
        if self._pending:
            await self._submit()
        if self._lent_fill:
            await self._submit_lent()
        while self._in_flight:
            await self._wait_oldest()

    async def _run(self, func: Callable[..., object], *args: object) -> None:
        if self._threaded:
            await asyncio.wrap_future(_IO_POOL.submit(func, *args))
        else:
            func(*args)

    def _rename_into_place(self) -> str | Path:
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
        in_flight, self._in_flight = self._in_flight, deque()
        if fd is None:
            return
        # Batches not started yet never will be; one may be being written right now, and
        # closing the fd under it could let the number be reused by another file.
        running: Future[None] | None = None
        for batch in in_flight:
            batch.hashed.cancel()
            if not batch.written.cancel() and not batch.written.done():
                running = batch.written
        if running is not None:
            running.add_done_callback(lambda _future: os.close(fd))
            return
        os.close(fd)


def _write_batch(fd: int, chunks: Sequence[bytes | memoryview], sync: bool) -> None:
    _write_all(fd, chunks)
    if sync:
        os.fsync(fd)


def _hash_batch(hasher: hashlib._Hash, chunks: Sequence[bytes | memoryview]) -> None:
    for chunk in chunks:
        hasher.update(chunk)


@dataclass(slots=True)
class _Window:
    """Bytes of the file to hash, read through a descriptor of its own (closed once used)."""

    fd: int
    start: int
    length: int

    def close(self, _future: object = None) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _hash_window(hasher: hashlib._Hash, window: _Window, buffer: bytearray) -> None:
    try:
        _hash_range(window.fd, hasher, window.start, window.length, buffer)
    finally:
        window.close()


def _write_all(fd: int, chunks: Sequence[bytes | memoryview]) -> None:
    buffers: list[bytes | memoryview] = list(chunks)
    left = sum(len(b) for b in buffers)
    claim_room(fd, left)
    while buffers:
        written = os.writev(fd, buffers)
        if written == left:
            return
        left -= written
        # A short write (disk nearly full, signal): skip what went out, retry the rest.
        while buffers and written >= len(buffers[0]):
            written -= len(buffers[0])
            buffers.pop(0)
        if buffers and written:
            buffers[0] = memoryview(buffers[0])[written:]


def _hash_range(
    fd: int, hasher: hashlib._Hash, start: int, length: int, buffer: bytearray
) -> None:
    """Feed bytes [start, start + length) of the file to `hasher`, read into `buffer`.

    Read back rather than mapped: measured as fast (the bytes are still in the page cache),
    and a file truncated under a mapping would kill the process with SIGBUS.
    """
    view = memoryview(buffer)
    position, end = start, start + length
    while position < end:
        count = os.preadv(fd, [view[: min(len(view), end - position)]], position)
        if count <= 0:
            raise StorageError(f"fd {fd}: file shorter than {end} bytes while hashing")
        hasher.update(view[:count])
        position += count


def _fsync_directory(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
