"""Finding the external programs that tests talk to.

A missing program skips its tests on a developer's machine, but fails them when CI=true:
in CI a skipped real-peer test would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil

import pytest

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _SBIN_DIRS:
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binary(name: str) -> str:
    """Path of `name`, or skip (fail under CI=true) when it is not installed."""
    path = find_binary(name)
    if path is None:
        message = f"{name} is not installed (scripts/test installs it with apt-get as root)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_feature(available: bool, message: str) -> None:
    """Skip (fail under CI=true, which runs on Linux) when a platform feature is missing."""
    if available:
        return
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


REDIS_62 = "6.2.14"
_REDIS_62_BUILD = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    ".cache",
    f"redis-{REDIS_62}",
)


def require_redis_62() -> str:
    """redis-server 6.2, the oldest Redis the frontier supports: built by scripts/redis-6.2
    (which scripts/test runs) into .cache, or found in $CRAWL_REDIS_62_DIR."""
    folder = os.environ.get("CRAWL_REDIS_62_DIR") or _REDIS_62_BUILD
    binary = os.path.join(folder, "redis-server")
    if not os.access(binary, os.X_OK):
        message = f"redis-server {REDIS_62} is not built in {folder} (run scripts/redis-6.2)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return binary
