"""Errors raised by storage. Messages are one line and name the URL or path a user needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.records import FetchRecord


class StorageError(Exception):
    """Base of every error storage raises on its own account."""


class InvalidMirrorURL(StorageError, ValueError):
    """A URL that cannot name a file in the mirror tree (not http(s), no host, bad port)."""


class UnsafePathError(StorageError):
    """A computed path would leave the output folder; raised instead of writing anywhere."""


class PathBusyError(StorageError):
    """Another download (this process or another) is writing the same `.part` file right now."""


class SizeMismatchError(StorageError):
    """The body's length differs from what Content-Length or Content-Range announced."""

    def __init__(self, path: str, expected: int, got: int) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"{path}: expected {expected} bytes, got {got}")


class DigestMismatchError(StorageError):
    """The completed file's sha256 differs from the one the caller said to expect."""

    def __init__(self, path: str, expected: str, got: str) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"{path}: expected sha256 {expected}, got {got}")


class DownloadError(StorageError):
    """A download that did not complete. `record` was already written; `__cause__` is the reason.

    Callers classify the cause (connection reset, timeout, size or digest mismatch) to decide
    whether to retry. The `.part` file is kept whenever a later attempt can resume it.
    """

    def __init__(self, record: FetchRecord) -> None:
        self.record = record
        super().__init__(f"{record.url}: {record.error}")
