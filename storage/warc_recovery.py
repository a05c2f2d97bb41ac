"""Finishing the WARC files of writers that died (kill -9, OOM, power cut).

A writer holds an exclusive `flock` on its `.open` file while it writes it (`create_locked`),
so a dead writer's file is the one no one holds. The fetch records already name it without
`.open`; `recover_open_files`, run by each writer as it starts, cuts every such file back to
its last whole record (a kill can land mid-record) and renames it to that name, and leaves the
locked ones, which a live writer in another process is still writing, alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["OPEN_SUFFIX", "create_locked", "recover_open_files"]

log = logging.getLogger("crawl.storage")

OPEN_SUFFIX = ".open"
# Recovery reads a leftover file in pieces of this size (and inflates at most this much at once).
_SCAN_PIECE = 1 << 20
# A WARC record head is a few hundred bytes: a "head" without an end this far in is not one.
_MAX_RECORD_HEAD = 1 << 20
_HEAD_END = b"\r\n\r\n"


@contextlib.contextmanager
def _folder_lock(directory: Path, operation: int) -> Iterator[None]:
    """`flock` on the WARC folder itself (no lock file among the WARCs). Creating a file takes
    it shared and choosing leftovers takes it exclusive, so recovery never sees a new file in
    the moment between its creation and its writer's lock (it would look empty: removed)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # releases the lock


def create_locked(path: Path) -> BinaryIO:
    """A new file at `path`, holding its writer's exclusive lock from the start."""
    with _folder_lock(path.parent, fcntl.LOCK_SH):
        file = open(path, "xb")  # noqa: SIM115 (closed by `_finish_file`)
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            file.close()
            raise
    return file


def recover_open_files(directory: Path) -> list[Path]:
    """Finish every `.open` file in `directory` that no live writer holds: cut back to the end
    of its last whole record (a kill can land mid-record), renamed without `.open` (the name
    its records were reported under); one with no whole record is removed. Returns the
    finished files."""
    recovered: list[Path] = []
    for path, file in _claim_leftovers(directory):
        with file:
            try:
                final = _recover(path, file)
            except OSError as exc:  # one unreadable leftover must not stop the crawl
                log.error("WARC %s left as it is: cannot recover it: %s", path.name, exc)
                continue
        if final is not None:
            recovered.append(final)
    return recovered


def _claim_leftovers(directory: Path) -> list[tuple[Path, BinaryIO]]:
    """The `.open` files of dead writers, each opened and locked by us."""
    claimed: list[tuple[Path, BinaryIO]] = []
    with _folder_lock(directory, fcntl.LOCK_EX):
        for path in sorted(directory.glob("*" + OPEN_SUFFIX)):
            file = _claim(path)
            if file is not None:
                claimed.append((path, file))
    return claimed


def _claim(path: Path) -> BinaryIO | None:
    """`path` opened and locked, or None: a live writer holds it, or it is gone."""
    try:
        file = open(path, "r+b")  # noqa: SIM115 (the caller closes it)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("WARC %s left as it is: cannot open it: %s", path.name, exc)
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another starting writer may have finished this file between our open and our lock:
        # then the name leads elsewhere (or nowhere), and what we hold is not ours to change.
        if os.stat(path).st_ino == os.fstat(file.fileno()).st_ino:
            return file
    except (BlockingIOError, FileNotFoundError):
        pass
    file.close()
    return None


def _recover(path: Path, file: BinaryIO) -> Path | None:
    size = os.fstat(file.fileno()).st_size
    keep = _whole_length(file, gzipped=path.name.endswith(".gz" + OPEN_SUFFIX))
    if keep == 0:
        os.unlink(path)
        log.warning("WARC %s removed: its writer died before a whole record (%d bytes)",
                    path.name, size)
        return None
    final = path.with_name(path.name[: -len(OPEN_SUFFIX)])
    if final.exists():  # cannot happen with unique names; never overwrite a finished WARC
        log.error("WARC %s left as it is: %s exists", path.name, final.name)
        return None
    if keep < size:
        file.truncate(keep)
    os.fsync(file.fileno())
    os.replace(path, final)
    log.warning("WARC %s recovered after its writer died: kept %d of %d bytes (%d torn)",
                final.name, keep, size, size - keep)
    return final


def _whole_length(file: BinaryIO, *, gzipped: bool) -> int:
    """How many leading bytes of `file` are whole records (a torn one, and what follows it,
    is not kept: nothing after a tear was written by a live writer)."""
    file.seek(0)
    pieces = iter(functools.partial(file.read, _SCAN_PIECE), b"")
    if gzipped:
        return _whole_members(pieces)
    scanner = _RecordScanner()
    for piece in pieces:
        scanner.feed(piece)
        if scanner.broken:
            break
    return scanner.end


def _whole_members(pieces: Iterator[bytes]) -> int:
    """Bytes up to the end of the last of the leading gzip members that each inflate to one
    whole WARC record (as warcio writes them): a member cut by a kill never reaches its end."""
    whole = position = 0
    member, record = zlib.decompressobj(wbits=31), _RecordScanner()
    for piece in pieces:
        data = piece
        while True:
            try:
                out = member.decompress(data, _SCAN_PIECE)  # bounded: a record may be 1 GiB
            except zlib.error:
                return whole
            record.feed(out)
            if member.eof:
                position += len(data) - len(member.unused_data)
                if record.records != 1 or not record.between_records:
                    return whole
                whole, data = position, member.unused_data
                member, record = zlib.decompressobj(wbits=31), _RecordScanner()
                if not data:
                    break
            else:
                position += len(data) - len(member.unconsumed_tail)
                data = member.unconsumed_tail
                if not data and len(out) < _SCAN_PIECE:
                    break  # the piece is used up, and no output is pending
    return whole


class _RecordScanner:
    """Follows a stream of WARC records fed in pieces, to tell where the whole ones end: a head
    up to its blank line, then Content-Length bytes of block, then CRLF CRLF."""

    def __init__(self) -> None:
        self.end = 0  # bytes up to the end of the last whole record
        self.records = 0
        self.broken = False  # what follows `end` is not a WARC record
        self._position = 0
        self._head = bytearray()  # a head begun in an earlier piece
        self._left: int | None = None  # bytes of block and trailer to come; None: in a head
        self._tail = b""  # the last bytes of the block so far, to check the trailer

    @property
    def between_records(self) -> bool:
        return not self.broken and self._left is None and not self._head

    def feed(self, piece: bytes) -> None:
        at = 0  # indexes, not slices: a piece holds many small records, each copy would cost
        while at < len(piece) and not self.broken:
            at = self._feed_head(piece, at) if self._left is None else self._feed_block(piece, at)

    def _feed_head(self, piece: bytes, at: int) -> int:
        stop = -1
        if self._head:  # begun in the last piece (so `at` is 0): its blank line may straddle
            seam = bytes(self._head[-3:])
            hit = (seam + piece[:3]).find(_HEAD_END)
            stop = hit + len(_HEAD_END) - len(seam) if hit >= 0 else -1
        if stop < 0:
            hit = piece.find(_HEAD_END, at, at + _MAX_RECORD_HEAD)
            stop = hit + len(_HEAD_END) if hit >= 0 else -1
        if stop < 0:
            self._head += piece[at:]
            self._position += len(piece) - at
            self.broken = len(self._head) > _MAX_RECORD_HEAD
            return len(piece)
        head = (bytes(self._head) + piece[at:stop])[: -len(_HEAD_END)]
        self._head.clear()
        self._position += stop - at
        length = _block_length(head)
        if length is None:
            self.broken = True
        else:
            self._left, self._tail = length + len(_HEAD_END), b""
        return stop

    def _feed_block(self, piece: bytes, at: int) -> int:
        assert self._left is not None
        stop = min(len(piece), at + self._left)
        self._left -= stop - at
        self._position += stop - at
        self._tail = (self._tail + piece[max(at, stop - 4) : stop])[-4:]
        if self._left == 0:
            self._left = None
            if self._tail != _HEAD_END:  # the block must end in CRLF CRLF
                self.broken = True
            else:
                self.records += 1
                self.end = self._position
        return stop


def _block_length(head: bytes) -> int | None:
    """A WARC record head's Content-Length, or None when it is not a WARC record head."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"WARC/"):
        return None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
            return length if length >= 0 else None
    return None
