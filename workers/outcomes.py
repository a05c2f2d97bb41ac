"""What a fetch's result means for its task: done, try again later, or give up.

Retryable: connection errors, resets, timeouts, truncated bodies, 408, 429 and 5xx (with the
server's Retry-After when it sent one). Final: other 4xx, redirect loops, invalid URLs, bodies
over the size limit, and certificates that do not verify (trying again later gets the same
certificate; curl and wget give up at once too). Both kinds are recorded by storage; only the
frontier call differs.

A third kind is no URL's fault: the output folder cannot be written (disk full, over quota,
read-only). Every other fetch would fail the same way, so the worker stops (`Action.HALT`)
and hands its URLs back untried, instead of wearing each one's attempts down to "dead".
"""

from __future__ import annotations

import asyncio
import enum
import errno
import time
from dataclasses import dataclass

from crawler.http import (
    ClientConnectionError,
    ClientConnectorCertificateError,
    ClientPayloadError,
    InvalidURL,
    NonHttpUrlClientError,
    ServerFingerprintMismatch,
    TooManyRedirects,
)
from storage import (
    DigestMismatchError,
    FetchRecord,
    InvalidMirrorURL,
    Outcome,
    PathBusyError,
    SizeMismatchError,
    UnsafePathError,
)

__all__ = ["Verdict", "classify_error", "classify_record", "disk_failure", "retry_after_seconds"]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 524})
# 429 and 503 slow the whole host down (the frontier's host backoff), not only this URL.
HOST_BACKOFF_STATUSES = frozenset({429, 503})
UNTRUSTED_HINT = "trust its CA with --ca-file, or skip verification with --insecure"
# A busy `.part` means another fetch of the same URL is running right now: look again soon.
BUSY_RETRY_S = 5.0
# Errors of the output folder itself, not of the URL being fetched.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# SQLITE_FULL, SQLITE_READONLY (sqlite3's constants, without importing it for Redis jobs).
SQLITE_DISK_CODES = frozenset({13, 8})
DISK_ADVICE = "free space (or fix the output folder) and run the same command again"


class Action(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    FAIL = "fail"
    SKIP = "skip"  # not stored on purpose (a type --accept-type does not take)
    HALT = "halt"  # the output folder cannot be written: stop, hand the URL back untried


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str = ""
    delay: float | None = None  # seconds before a retry; None: the frontier's backoff
    status: int | None = None  # passed to the frontier so 429/503 back off the host
    unexpected: bool = False  # an error no fetch should raise: worth a traceback in the log
    advice: str = ""  # what the user can do about it: logged once per host

    @property
    def extract_links(self) -> bool:
        return self.action is Action.DONE


def classify_record(record: FetchRecord) -> Verdict:
    """The verdict for a fetch that got an answer from the server."""
    status = record.status
    if record.outcome is Outcome.SKIPPED:
        return Verdict(Action.SKIP, record.error or "skipped", status=status)
    if record.outcome is Outcome.TOO_LARGE:
        return Verdict(
            Action.FAIL, f"body over max size (kept {record.received} bytes)", status=status
        )
    if status is None:
        return Verdict(Action.RETRY, record.error or "no response")
    if status in RETRYABLE_STATUSES:
        delay = retry_after_seconds(record.header("retry-after"))
        return Verdict(Action.RETRY, f"HTTP {status}", delay=delay, status=status)
    if status >= 400:
        return Verdict(Action.FAIL, f"HTTP {status} {record.reason or ''}".strip(), status=status)
    return Verdict(Action.DONE, status=status)


def classify_error(error: BaseException) -> Verdict:
    """The verdict for a fetch that ended in an exception (the cause of a DownloadError)."""
    name = type(error).__name__
    detail = str(error) or name
    disk = disk_failure(error)
    if disk is not None:
        return Verdict(Action.HALT, f"{name}: {disk}", advice=DISK_ADVICE)
    if isinstance(error, TooManyRedirects):
        return Verdict(Action.FAIL, f"too many redirects: {detail}")
    if isinstance(error, InvalidURL | NonHttpUrlClientError | InvalidMirrorURL | UnsafePathError):
        return Verdict(Action.FAIL, f"{name}: {detail}")
    if isinstance(error, ClientConnectorCertificateError | ServerFingerprintMismatch):
        return Verdict(Action.FAIL, f"{name}: {detail}", advice=UNTRUSTED_HINT)
    if isinstance(error, PathBusyError):
        return Verdict(Action.RETRY, f"{name}: {detail}", delay=BUSY_RETRY_S)
    if isinstance(
        error,
        ClientConnectionError
        | ClientPayloadError
        | asyncio.TimeoutError
        | TimeoutError
        | OSError
        | SizeMismatchError
        | DigestMismatchError,
    ):
        return Verdict(Action.RETRY, f"{name}: {detail}")
    # Anything else is a bug or a response we cannot handle: retrying would repeat it.
    return Verdict(Action.FAIL, f"{name}: {detail}", unexpected=True)


def disk_failure(error: BaseException | None) -> BaseException | None:
    """The disk error that `error` is or was caused by, if any: an OSError of `DISK_ERRNOS`,
    or SQLite's "database or disk is full" (the SQLite frontier lives in the output folder)."""
    seen = 0
    while error is not None and seen < 10:  # a chain, bounded: causes can loop
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return error
        if getattr(error, "sqlite_errorcode", None) in SQLITE_DISK_CODES:
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    # Loaded only now: an HTTP-date here is rare (servers send seconds), and slow to import.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
