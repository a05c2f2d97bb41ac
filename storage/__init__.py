"""Storage: bodies streamed to disk, resumable downloads, fetch records, WARC files.

Workers open one `Store` per process and call `download(session, url, store)` per fetch.
"""

from typing import TYPE_CHECKING

from storage.errors import (
    DigestMismatchError,
    DownloadError,
    InvalidMirrorURL,
    PathBusyError,
    SizeMismatchError,
    StorageError,
    UnsafePathError,
)
from storage.fetch import download, fetch_page
from storage.latest import LatestEntry, LatestIndex
from storage.paths import MirrorTree, mirror_relpath
from storage.rate import RateLimit
from storage.records import (
    FetchRecord,
    Outcome,
    ReadReport,
    RecordLog,
    RedirectHop,
    Timings,
    read_records,
)
from storage.sink import BodySink, FsyncPolicy, SinkResult
from storage.store import Store
from storage.warc import WarcWriter

if TYPE_CHECKING:
    from storage.export import export_csv, export_jsonl

__all__ = [
    "BodySink",
    "DigestMismatchError",
    "DownloadError",
    "FetchRecord",
    "FsyncPolicy",
    "InvalidMirrorURL",
    "LatestEntry",
    "LatestIndex",
    "MirrorTree",
    "Outcome",
    "PathBusyError",
    "RateLimit",
    "ReadReport",
    "RecordLog",
    "RedirectHop",
    "SinkResult",
    "SizeMismatchError",
    "StorageError",
    "Store",
    "Timings",
    "UnsafePathError",
    "WarcWriter",
    "download",
    "export_csv",
    "export_jsonl",
    "fetch_page",
    "mirror_relpath",
    "read_records",
]


def __getattr__(name: str) -> object:
    # The exporters (csv, json) load on first use: only `crawl export` needs them, and every
    # worker and download imports this package.
    if name in ("export_csv", "export_jsonl"):
        from storage import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
