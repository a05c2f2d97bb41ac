"""Length-safe framing for append-only logs: a torn or damaged frame is found, never trusted.

A frame is `MAGIC (4) | length (u32 BE) | crc32 of payload (u32 BE) | payload`. The writer emits
each frame with one write call. The reader checks magic, length and checksum; a frame cut short
at the end of a file is a torn tail (a crash mid-write) and is reported and skipped; a damaged
frame in the middle is reported and the reader resynchronises on the next valid frame.

No I/O policy here beyond reading a binary file object: the framing is testable with bytes.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_PAYLOAD",
    "FrameProblem",
    "ProblemKind",
    "encode_frame",
    "iter_frames",
]

MAGIC = b"CRW\x01"
_HEADER = struct.Struct(">4sII")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 64 << 20
_READ_SIZE = 1 << 20


class ProblemKind(enum.StrEnum):
    TORN_TAIL = "torn-tail"  # the file ends inside a frame: the last write did not finish
    CORRUPT = "corrupt"  # bad magic, impossible length or checksum mismatch; bytes skipped


@dataclass(frozen=True, slots=True)
class FrameProblem:
    kind: ProblemKind
    offset: int  # where the bad bytes start in the file
    skipped: int  # how many bytes were passed over
    detail: str


def encode_frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def iter_frames(source: BinaryIO) -> Iterator[bytes | FrameProblem]:
    """Payloads in order, with a `FrameProblem` in place of any bytes that are not a frame."""
    reader = _Buffer(source)
    while True:
        reader.fill(HEADER_SIZE)
        if not reader.data:
            return
        start = reader.offset
        if len(reader.data) < HEADER_SIZE:
            yield _tail_or_corrupt(reader, start, "file ends inside a frame header")
            continue
        magic, length, crc = _HEADER.unpack_from(reader.data)
        if magic != MAGIC or length > MAX_PAYLOAD:
            yield _resync(reader, start, "bad magic" if magic != MAGIC else f"length {length}")
            continue
        reader.fill(HEADER_SIZE + length)
        if len(reader.data) < HEADER_SIZE + length:
            yield _tail_or_corrupt(reader, start, f"file ends inside a {length}-byte frame")
            continue
        payload = bytes(reader.data[HEADER_SIZE : HEADER_SIZE + length])
        if zlib.crc32(payload) != crc:
            yield _resync(reader, start, "checksum mismatch")
            continue
        reader.consume(HEADER_SIZE + length)
        yield payload


class _Buffer:
    """A growing window over a file: `data` starts at file offset `offset`."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.data = bytearray()
        self.offset = 0
        self.eof = False

    def fill(self, size: int) -> None:
        while len(self.data) < size and not self.eof:
            block = self.source.read(max(_READ_SIZE, size - len(self.data)))
            if not block:
                self.eof = True
            self.data += block

    def consume(self, size: int) -> None:
        del self.data[:size]
        self.offset += size

    def find_magic(self, start: int) -> int:
        """Index of the next MAGIC at or after `start`, reading on as needed; -1 at EOF."""
        while True:
            found = self.data.find(MAGIC, start)
            if found >= 0 or self.eof:
                return found
            start = max(start, len(self.data) - len(MAGIC) + 1)
            self.fill(len(self.data) + _READ_SIZE)


def _resync(reader: _Buffer, start: int, detail: str) -> FrameProblem:
    found = reader.find_magic(1)
    skipped = found if found >= 0 else len(reader.data)
    reader.consume(skipped)
    return FrameProblem(ProblemKind.CORRUPT, start, skipped, detail)


def _tail_or_corrupt(reader: _Buffer, start: int, detail: str) -> FrameProblem:
    """An incomplete frame at EOF is a torn tail, unless a valid frame follows it."""
    found = reader.find_magic(1)
    if found < 0:
        skipped = len(reader.data)
        reader.consume(skipped)
        return FrameProblem(ProblemKind.TORN_TAIL, start, skipped, detail)
    reader.consume(found)
    return FrameProblem(ProblemKind.CORRUPT, start, found, detail)
