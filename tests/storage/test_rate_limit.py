"""--limit-rate: the token bucket (on a clock of our own), and downloads that obey it on every
way a body comes in (read whole, read into the sink's buffers, spliced in the kernel)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from crawler.demo_site import GeneratedBody, SiteSpec, site_in_thread
from crawler.http import ClientSession
from storage import Outcome, RateLimit, Store, download


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_a_burst_through_then_makes_debts_wait() -> None:
    clock = Clock()
    limit = RateLimit(1000, burst=500, clock=clock)
    assert limit.debit(500) == 0.0  # the burst
    assert limit.debit(250) == pytest.approx(0.25)  # in debt: a quarter second's bytes
    clock.now += 0.25
    assert limit.debit(0) == 0.0  # paid off
    clock.now += 10  # idle time refills up to the burst, no more
    assert limit.debit(500) == 0.0
    assert limit.debit(1) == pytest.approx(0.001)


def test_downloads_sharing_a_limit_share_its_rate() -> None:
    clock = Clock()
    limit = RateLimit(1000, burst=100, clock=clock)
    waits = [limit.debit(100) for _ in range(4)]  # four downloads, 100 bytes each, at once
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0"):
        RateLimit(0)


@pytest.mark.parametrize(
    "size",
    [200_000, 1_500_000, 6_000_000],
    ids=["read-whole", "read-into", "spliced"],
)
async def test_a_download_takes_at_least_its_size_over_the_rate(
    tmp_path: Path, size: int
) -> None:
    rate = size / 1.5  # 1.5 s at the limit; the burst (a tenth of a second) may go at once
    with site_in_thread(SiteSpec(pages=1, big_files=(size,))) as served:
        url = served.seeds[0] + "files/big-0.bin"
        body = served.site.hosts[0].routes["/files/big-0.bin"]
        assert isinstance(body, GeneratedBody)
        store = Store(tmp_path / "out")
        try:
            async with ClientSession() as session:
                started = time.monotonic()
                record = await download(session, url, store, rate_limit=RateLimit(rate))
                elapsed = time.monotonic() - started
        finally:
            store.close()
    assert record.outcome is Outcome.STORED and record.size == size
    assert record.sha256 == hashlib.sha256(body.read()).hexdigest()
    # A lower bound only: a slow machine makes it longer, never shorter.
    assert elapsed >= (size - RateLimit(rate).burst) / rate * 0.95
