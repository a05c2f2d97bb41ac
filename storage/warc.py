"""WARC/1.1 output with warcio: request, response and revisit records, gzip per record.

Bodies are never held in memory: a response record's payload is read from a byte range of a
file on disk (the `.part` the sink just wrote, or a spool file for bodies that are not kept),
so the socket's bytes reach the WARC through the disk. Files are named
`<prefix>-<UTC timestamp>-<serial>-<writer id>.warc.gz`, carry `.open` while being written,
start with a warcinfo record, and rotate once they pass `max_size`.

A writer holds an exclusive `flock` on its `.open` file while it writes it. A writer that dies
(kill -9, OOM, power cut) leaves its `.open` file unlocked, and the fetch records already name it
without `.open`: so a writer, when it starts, recovers every unlocked `.open` file in its folder
(cut back to its last whole record, renamed to that name), and leaves the locked ones, which a
live writer in another process is still writing, alone.

Writes are blocking (warcio reads, digests and gzips the payload). A lock makes one writer safe
to share between threads. `storage.fetch` writes the records of a small body on the event loop's
thread (`without_waiting`: about 0.2 ms a page, where a thread hop per record, and the GIL traded
back and forth, made a crawl with --warc 1.9 times slower) unless another thread holds the lock;
large bodies, and small ones that would have to wait, go to a thread.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ParamSpec

from storage.records import clean_text
from storage.warc_recovery import OPEN_SUFFIX, create_locked, recover_open_files

if TYPE_CHECKING:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

# warcio is imported when a WARC is first written: a crawl without --warc never loads it.

__all__ = ["HttpHead", "WarcRef", "WarcWriter", "sha256_warc_digest"]

P = ParamSpec("P")

WARC_DIR = "warc"
DEFAULT_MAX_SIZE = 1 << 30
SERVER_NOT_MODIFIED = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
_SAFE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Framing the client undid for us: the payload we hold is de-chunked (and decoded if told so).
_HOP_BY_HOP_FRAMING = ("Transfer-Encoding",)


@dataclass(frozen=True, slots=True)
class HttpHead:
    """A request or response head as it went over the wire (header values as text)."""

    start_line: str  # "GET /a?b HTTP/1.1" or "200 OK"
    headers: list[tuple[str, str]] = field(default_factory=list)
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True, slots=True)
class WarcRef:
    """Where a response (or revisit) record went."""

    file: str
    offset: int
    record_id: str
    date: str


@functools.cache
def _sha256_writer() -> type[WARCWriter]:
    """warcio's writer with sha256 digests instead of its sha1: a revisit record (a 304) gives
    the stored payload's sha256, and deduplicating tools match a revisit to its response by
    the digest string, so both must use one algorithm."""
    from warcio.utils import Digester
    from warcio.warcwriter import WARCWriter

    class Sha256WARCWriter(WARCWriter):  # type: ignore[misc]
        @staticmethod
        def _create_digester() -> Digester:
            return Digester("sha256")

    return Sha256WARCWriter


def sha256_warc_digest(hex_digest: str) -> str:
    """A hex sha256 in WARC's labelled base32 form: `sha256:ABC...`."""
    return "sha256:" + base64.b32encode(binascii.unhexlify(hex_digest)).decode("ascii")


class _Window(io.RawIOBase):
    """Bytes [offset, offset + length) of a file, seekable within the window (for warcio)."""

    def __init__(self, path: str | Path, offset: int, length: int) -> None:
        super().__init__()
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed in close())
        self._offset = offset
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + position), self._length)
        return self._position

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        self._file.seek(self._offset + self._position)
        data = self._file.read(size)
        self._position += len(data)
        return data

    def close(self) -> None:
        self._file.close()
        super().close()


class WarcWriter:
    """Appends records to rotating WARC files under `out/warc/`."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        writer_id: str,
        prefix: str = "crawl",
        max_size: int = DEFAULT_MAX_SIZE,
        gzip: bool = True,
        software: str = "crawl",
    ) -> None:
        for label, value in (("prefix", prefix), ("writer id", writer_id)):
            if not _SAFE_PREFIX.match(value):
                raise ValueError(f"WARC {label} {value!r}: use letters, digits, '.', '_', '-'")
        self.directory = Path(out_dir) / WARC_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        # Files earlier writers left `.open` when they died, now finished under their names.
        self.recovered: list[Path] = recover_open_files(self.directory)
        self.writer_id = writer_id
        self.prefix = prefix
        self.max_size = max_size
        self.gzip = gzip
        self.software = software
        self._lock = threading.RLock()  # reentrant: `without_waiting` holds it around a write
        self._serial = 0
        self._file: BinaryIO | None = None
        self._name = ""
        self._writer: WARCWriter | None = None
        self.finished: list[Path] = []

    # --- public API (blocking; call from a thread when payloads are large) --------------------

    def write_exchange(
        self,
        target_uri: str,
        request: HttpHead,
        response: HttpHead,
        body: tuple[str | Path, int, int] | bytes | None,
        *,
        truncated: str | None = None,
        decoded_encoding: str | None = None,
    ) -> WarcRef:
        """A response record (payload = `body` as (file, offset, length), or bytes for a small
        one held in memory, such as a redirect's) and its request.

        `truncated` (e.g. "disconnect", "length") marks a payload cut short. When the client
        decoded the body (`decoded_encoding`), the stored headers say so instead of claiming an
        encoding the payload no longer has.
        """
        with self._lock:
            writer = self._current()
            if isinstance(body, tuple):
                stream: io.IOBase = _Window(*body)
                length = body[2]
            else:
                stream, length = io.BytesIO(body or b""), len(body or b"")
            http = _response_headers(response, length, decoded_encoding)
            extra = {"WARC-Truncated": truncated} if truncated else {}
            try:
                record = writer.create_warc_record(
                    target_uri,
                    "response",
                    payload=stream,
                    length=length,
                    http_headers=http,
                    warc_headers_dict=extra,
                )
                ref = self._write(record)
            finally:
                stream.close()
            self._write_request(target_uri, request, ref)
            return ref

    def write_resource(
        self,
        target_uri: str,
        content_type: str,
        body: tuple[str | Path, int, int],
        *,
        concurrent_to: str,
    ) -> WarcRef:
        """A resource record of a whole body put together from several responses (a download
        resumed with Range: the archive holds each response as it came, a 206 with only the
        rest among them, and this, the body whole, that revisits and replay can point at).
        `concurrent_to`: the record ID of the response that completed it."""
        with self._lock:
            writer = self._current()
            stream = _Window(*body)
            try:
                record = writer.create_warc_record(
                    target_uri,
                    "resource",
                    payload=stream,
                    length=body[2],
                    warc_content_type=content_type or "application/octet-stream",
                    warc_headers_dict={"WARC-Concurrent-To": concurrent_to},
                )
                return self._write(record)
            finally:
                stream.close()

    def write_revisit(
        self,
        target_uri: str,
        request: HttpHead,
        response: HttpHead,
        *,
        payload_sha256: str,
        refers_to_uri: str,
        refers_to_date: str | None,
        refers_to_record: str | None,
    ) -> WarcRef:
        """A server-not-modified revisit for a 304, pointing at the earlier response record.

        When the earlier version is in no WARC (it was stored by a crawl without --warc), the
        revisit still records that the URL was checked, and says only what is known: neither
        WARC-Refers-To nor WARC-Refers-To-Date (its date is unknown, never this record's).
        """
        with self._lock:
            writer = self._current()
            extra = {"WARC-Refers-To": refers_to_record} if refers_to_record else {}
            record = writer.create_revisit_record(
                target_uri,
                digest=sha256_warc_digest(payload_sha256),
                refers_to_uri=refers_to_uri,
                refers_to_date=refers_to_date,
                http_headers=_head(response, is_request=False),
                warc_headers_dict=extra,
            )
            if not refers_to_date:  # warcio always adds the field, here with no value
                record.rec_headers.remove_header("WARC-Refers-To-Date")
            record.rec_headers.replace_header("WARC-Profile", SERVER_NOT_MODIFIED)
            ref = self._write(record)
            self._write_request(target_uri, request, ref)
            return ref

    def without_waiting(
        self, write: Callable[P, WarcRef], *args: P.args, **kwargs: P.kwargs
    ) -> WarcRef | None:
        """`write(*args, **kwargs)` (`self.write_exchange` or `self.write_revisit`), unless
        another thread is writing right now: then None at once, nothing written.

        For an event loop's own thread, which may write a small record itself (a thread hop
        costs more than the record) but must never wait behind someone else's large one.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return write(*args, **kwargs)
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._finish_file()

    def __enter__(self) -> WarcWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    def _write_request(self, target_uri: str, request: HttpHead, response: WarcRef) -> None:
        writer = self._current()
        record = writer.create_warc_record(
            target_uri,
            "request",
            payload=io.BytesIO(b""),
            length=0,
            http_headers=_head(request, is_request=True),
            warc_headers_dict={
                "WARC-Concurrent-To": response.record_id,
                "WARC-Date": response.date,
            },
        )
        self._write(record, rotate=False)

    def _write(self, record: object, *, rotate: bool = True) -> WarcRef:
        assert self._file is not None and self._writer is not None
        if rotate and self._file.tell() >= self.max_size:
            self._finish_file()
            self._current()
        assert self._file is not None and self._writer is not None
        offset = self._file.tell()
        self._writer.write_record(record)
        # Out of our buffer at once: the fetch record that names this one may be on disk soon,
        # and a kill must not leave it naming a record that never left the process.
        self._file.flush()
        headers = record.rec_headers  # type: ignore[attr-defined]
        return WarcRef(
            file=self._name,
            offset=offset,
            record_id=headers.get_header("WARC-Record-ID"),
            date=headers.get_header("WARC-Date"),
        )

    def _current(self) -> WARCWriter:
        if self._writer is None:
            self._start_file()
        assert self._writer is not None
        return self._writer

    def _start_file(self) -> None:
        self._serial += 1
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:17]
        ext = ".warc.gz" if self.gzip else ".warc"
        self._name = f"{self.prefix}-{stamp}-{self._serial:05d}-{self.writer_id}{ext}"
        self._file = create_locked(self.directory / (self._name + OPEN_SUFFIX))
        self._writer = _sha256_writer()(self._file, gzip=self.gzip, warc_version="1.1")
        info = self._writer.create_warcinfo_record(
            self._name,
            {
                "software": self.software,
                "format": "WARC File Format 1.1",
                "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                "warc-format/warc-1.1/",
                "hostname": socket.gethostname(),
                "writer": self.writer_id,
            },
        )
        self._writer.write_record(info)

    def _finish_file(self) -> None:
        file, self._file, self._writer = self._file, None, None
        if file is None:
            return
        final = self.directory / self._name
        try:
            file.flush()
            os.fsync(file.fileno())
            # Renamed while still locked: unlocked under its `.open` name, a starting writer
            # could take it for a dead writer's file and finish it itself.
            os.replace(self.directory / (self._name + OPEN_SUFFIX), final)
        finally:
            file.close()  # and with it the lock
        self.finished.append(final)


def _head(head: HttpHead, *, is_request: bool) -> StatusAndHeaders:
    from warcio.statusandheaders import StatusAndHeaders

    headers = [(clean_text(k), clean_text(v)) for k, v in head.headers]
    return StatusAndHeaders(
        clean_text(head.start_line), headers, protocol=head.protocol, is_http_request=is_request
    )


def _response_headers(
    head: HttpHead, payload_length: int, decoded_encoding: str | None
) -> StatusAndHeaders:
    """The response head, adjusted so its framing matches the payload we actually store."""
    status = _head(head, is_request=False)
    rewritten = False
    for name in _HOP_BY_HOP_FRAMING:
        value = status.get_header(name)
        if value and value.lower() != "identity":
            status.remove_header(name)
            status.add_header(f"X-Crawl-Original-{name}", value)
            rewritten = True
    if decoded_encoding:
        value = status.get_header("Content-Encoding")
        if value:
            status.remove_header("Content-Encoding")
            status.add_header("X-Crawl-Decoded-Content-Encoding", value)
        rewritten = True
    if rewritten:
        status.replace_header("Content-Length", str(payload_length))
    return status
