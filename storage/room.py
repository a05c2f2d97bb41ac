"""Room left on the output folder's disk: a body write that would leave less than
`RESERVE_BYTES` free fails as a full disk does (ENOSPC), while there is still room for the
crawl's own state (the SQLite frontier, fetch records, resume state), so that a crawl stopped
by a full disk can still hand its URLs back and save where each download stopped.

Checked with one `fstatvfs` per `CHECK_EVERY_BYTES` of body bytes written by the process (and
on its first write): about a thousand calls a second at 1 GB/s, invisible beside the writes.
Body writes of up to that much between checks, in each of up to RESERVE / CHECK_EVERY
processes, still fit in the reserve.
"""

from __future__ import annotations

import errno
import os
import threading

__all__ = ["CHECK_EVERY_BYTES", "RESERVE_BYTES", "claim_room"]

RESERVE_BYTES = 16 << 20
CHECK_EVERY_BYTES = 1 << 20

_lock = threading.Lock()  # writes come from the event loop and from the sinks' lanes
_unchecked = CHECK_EVERY_BYTES  # so the first write checks


def claim_room(fd: int, size: int) -> None:
    """Before writing `size` body bytes to `fd`: raise OSError(ENOSPC) when its file system
    would be left with less than `RESERVE_BYTES` free (as far as an unprivileged user sees)."""
    global _unchecked
    with _lock:
        _unchecked += size
        if _unchecked < CHECK_EVERY_BYTES:
            return
        _unchecked = 0
    disk = os.fstatvfs(fd)
    free = disk.f_bavail * disk.f_frsize
    if free - size < RESERVE_BYTES and disk.f_blocks:  # f_blocks 0: no real size (procfs...)
        with _lock:
            _unchecked = CHECK_EVERY_BYTES  # look again on the next write
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)} (the last {RESERVE_BYTES >> 20} MiB are kept for "
            "the crawl's own state)",
        )
