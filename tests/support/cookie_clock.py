"""A clock for the cookie jar's tests: cookies expire when a test moves `now`, not with time."""

from __future__ import annotations

import pytest

import crawler.http.cookies as cookies_module


class FakeClock:
    """Stands in for the `time` module the jar reads, so a test can let cookies expire."""

    def __init__(self) -> None:
        self.now = 1_000_000_000.0

    def time(self) -> float:
        return self.now


def install_fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A FakeClock the jar reads its time from, until the test ends."""
    fake = FakeClock()
    monkeypatch.setattr(cookies_module, "time", fake)
    return fake
