"""What a crawl's settings mean for its frontier: where it lives and what it enforces.

Kept apart from `workers.process` so that `crawl run`, `crawl status` and the supervisor can
use it without importing the HTTP client and storage that only worker processes need.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crawler.config import Settings

if TYPE_CHECKING:
    from crawler.frontier import FrontierSettings

__all__ = ["PROGRESS_DIR", "SETTINGS_ENV", "SQLITE_NAME", "frontier_settings", "frontier_target"]

# `crawl run` hands its settings to the worker processes it starts through this variable.
SETTINGS_ENV = "CRAWL_WORKER_SETTINGS"
SQLITE_NAME = "frontier.sqlite"
# Each worker process's counters, as OUT/.progress/<worker>.json, for `crawl run`'s view.
PROGRESS_DIR = ".progress"


def frontier_target(settings: Settings) -> str:
    """The Redis URL, or the SQLite file inside OUT."""
    return settings.redis or str(Path(settings.out) / SQLITE_NAME)


def frontier_settings(settings: Settings) -> FrontierSettings:
    """The job's frontier settings from the crawl settings (stored with the job)."""
    # Imported here: `crawl run` starts its workers before it needs the frontier.
    from crawler.frontier import FrontierSettings
    from crawler.scope import ScopeRules

    return FrontierSettings(
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        per_host_limit=settings.per_host,
        per_host_delay=settings.delay,
        max_pages=settings.max_pages,
        partitions=settings.partitions,
        scope=ScopeRules(
            allowed_domains=settings.allow_domains,
            include=settings.include,
            exclude=settings.exclude,
            max_depth=settings.max_depth,
            max_url_length=settings.max_url_length,
            max_path_repeats=settings.max_path_repeats,
        ),
    )
