"""One output folder and everything a process writes into it.

    out/files/<host>[+port]/...   mirrored bodies (storage.paths)
    out/records/<writer>.<n>.rec  fetch records (storage.records)
    out/state/latest.sqlite       last stored version per URL (storage.latest)
    out/warc/*.warc.gz            WARC files when enabled (storage.warc)
    out/tmp/                      spool files for bodies that only go to the WARC

A worker process opens one `Store` with its own writer id and passes it to `storage.download`.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from storage.latest import LatestIndex
from storage.paths import MirrorTree, current_location
from storage.records import RecordLog
from storage.sink import FsyncPolicy
from storage.warc import DEFAULT_MAX_SIZE, WarcWriter

__all__ = ["Store", "default_writer_id"]

FILES_DIR = "files"
TMP_DIR = "tmp"


def default_writer_id() -> str:
    """`<host>-<pid>`: unique among live processes on one machine and across machines."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip("-.") or "host"
    return f"{host[:60]}-{os.getpid()}"


class Store:
    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        writer_id: str | None = None,
        fsync: FsyncPolicy | str = FsyncPolicy.ON_CLOSE,
        records_fsync: FsyncPolicy | str = FsyncPolicy.NEVER,
        warc: bool = False,
        warc_prefix: str = "crawl",
        warc_max_size: int = DEFAULT_MAX_SIZE,
        warc_gzip: bool = True,
    ) -> None:
        self.out_dir = Path(out_dir).absolute()
        self._out_prefix = os.path.join(str(self.out_dir), "")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer_id = writer_id or default_writer_id()
        self.fsync = FsyncPolicy(fsync)
        self.tree = MirrorTree(self.out_dir / FILES_DIR)
        self.tmp_dir = self.out_dir / TMP_DIR
        self.records = RecordLog(self.out_dir, self.writer_id, fsync=FsyncPolicy(records_fsync))
        # Derived from the records when read (storage.latest_logs), this process's held ones
        # written first. With fsync never, the index does not sync either.
        self.latest = LatestIndex(
            self.out_dir,
            durable=self.fsync is not FsyncPolicy.NEVER,
            records_dir=self.records.directory,
            before_reading_records=self.records.flush,
        )
        self.warc: WarcWriter | None = None
        if warc:
            self.warc = WarcWriter(
                self.out_dir,
                writer_id=self.writer_id,
                prefix=warc_prefix,
                max_size=warc_max_size,
                gzip=warc_gzip,
            )

    def relative(self, path: str | Path) -> str:
        """`path` relative to the output folder (POSIX form), or absolute when outside it."""
        text = os.fspath(path)
        if os.sep == "/" and text.startswith(self._out_prefix):
            return text[len(self._out_prefix) :]  # the common case, without pathlib's cost
        try:
            return Path(path).relative_to(self.out_dir).as_posix()
        except ValueError:
            return text

    def absolute(self, stored: str) -> Path:
        """The inverse of `relative`."""
        return self.out_dir / stored if not os.path.isabs(stored) else Path(stored)

    def locate(self, stored: str) -> Path:
        """The file a record's `path` names, where it is now (see `current_location`: a later
        URL may have displaced it)."""
        return current_location(self.absolute(stored))

    def close(self) -> None:
        try:
            self.records.close()
        finally:
            try:
                self.latest.close()
            finally:
                if self.warc is not None:
                    self.warc.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
