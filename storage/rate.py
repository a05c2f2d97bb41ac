"""A byte rate limit shared by every download of a process (`--limit-rate`): a token bucket.

Downloads take tokens for the bytes they received and sleep while the bucket is in debt, so the
process receives at most `rate` bytes a second on average, however many downloads share it;
a burst of at most `burst` bytes goes through at once. Not reading is what slows the server:
TCP's flow control makes it wait while we sleep. Reads are kept to `read_bytes` at a time, so
a slow limit sleeps often and briefly instead of seldom and long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["RateLimit"]

_MIN_BURST = 16 << 10


class RateLimit:
    def __init__(
        self,
        bytes_per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError(f"a rate limit must be > 0 bytes/s, not {bytes_per_second}")
        self.rate = float(bytes_per_second)
        # A tenth of a second's worth: smooth enough, and few wake-ups.
        self.burst = burst if burst is not None else max(_MIN_BURST, int(self.rate / 10))
        self.read_bytes = max(_MIN_BURST, min(self.burst, 1 << 20))
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()

    def debit(self, count: int) -> float:
        """Take `count` bytes' tokens; the seconds to wait before receiving more."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate) - count
        self._at = now
        return -self._tokens / self.rate if self._tokens < 0 else 0.0

    async def took(self, count: int) -> None:
        """`count` bytes were received: wait as long as the limit asks."""
        wait = self.debit(count)
        if wait > 0:
            await asyncio.sleep(wait)

    def __repr__(self) -> str:
        return f"<RateLimit {self.rate:,.0f} B/s burst {self.burst:,}>"
