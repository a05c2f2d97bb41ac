"""The `Settings` object: every option of a crawl, typed, checked, immutable."""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from crawler.config.values import (
    Parser,
    auto_boolean,
    boolean,
    byte_size,
    ca_file,
    choice,
    cookie_file,
    directory,
    domain_names,
    header_line_value,
    header_pairs,
    integer,
    job_name,
    media_types,
    number,
    proxy_setting,
    redis_url,
    regexes,
)
from crawler.scope import DEFAULT_MAX_PATH_REPEATS, DEFAULT_MAX_URL_LENGTH


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming the setting and its source."""


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class FsyncPolicy(enum.StrEnum):
    ALWAYS = "always"
    ON_CLOSE = "on-close"
    NEVER = "never"


def default_user_agent() -> str:
    # The package's own constant: importlib.metadata would cost every process ~15 ms to import.
    from crawler import __version__

    return f"crawl/{__version__}"


# Sanity bounds: a typo (99999) would otherwise fork until the machine runs out of processes,
# or open more sockets than any file-descriptor limit allows.
MAX_WORKERS = 256
MAX_CONCURRENCY = 16384


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# How a list setting is written in one environment variable: regexes and header lines may
# hold commas themselves, so they take one a line.
_COMMAS = "comma-separated"
_LINES = "one a line"


def _meta(parse: Parser, help: str, env_list: str | None = None) -> dict[str, Any]:
    return {"parse": parse, "help": help, "env_list": env_list}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every option of a crawl. Immutable; picklable, so it can be handed to worker processes."""

    out: Path = field(default=Path("crawl-out"), metadata=_meta(directory, "output directory"))
    redis: str | None = field(
        default=None,
        metadata=_meta(redis_url, "Redis URL of a shared frontier (default: SQLite in OUT)"),
    )
    job: str = field(default="default", metadata=_meta(job_name, "job name (Redis key prefix)"))
    workers: int = field(
        default_factory=_default_workers,
        metadata=_meta(
            integer(0, MAX_WORKERS),
            "worker processes on this machine (0: only enqueue seeds; default: cores)",
        ),
    )
    partitions: int = field(
        default=1,
        metadata=_meta(
            integer(1, 16384),
            "Redis key partitions of a new job, spread over a Redis Cluster's nodes "
            "(fixed when the job is created)",
        ),
    )
    concurrency: int = field(
        default=64,
        metadata=_meta(integer(1, MAX_CONCURRENCY), "concurrent fetches per worker process"),
    )
    per_host: int = field(default=8, metadata=_meta(integer(1), "concurrent fetches per host"))
    delay: float = field(
        default=0.0, metadata=_meta(number(0), "seconds between request starts per host")
    )
    max_depth: int | None = field(
        default=None,
        metadata=_meta(integer(0, optional=True), "links followed from a seed (none: no limit)"),
    )
    max_pages: int | None = field(
        default=None,
        metadata=_meta(
            integer(1, optional=True),
            "end the crawl once this many URLs are fetched or being fetched (none: no limit); "
            "the rest stays queued for a later run with a higher limit",
        ),
    )
    max_url_length: int | None = field(
        default=DEFAULT_MAX_URL_LENGTH,
        metadata=_meta(
            integer(1, optional=True), "longest link followed, in characters (none: no limit)"
        ),
    )
    max_path_repeats: int | None = field(
        default=DEFAULT_MAX_PATH_REPEATS,
        metadata=_meta(
            integer(1, optional=True),
            "times a run of path segments may repeat in a row in a followed link, as in "
            "/a/a/a/ (a spider trap past that; none: no limit)",
        ),
    )
    allow_domains: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            domain_names,
            "domain in scope with its subdomains (repeatable; default: the seeds' hosts)",
            _COMMAS,
        ),
    )
    include: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            regexes,
            "regex (re.search) a link's URL must match to be followed; with several, any one "
            "(repeatable; seeds need not match)",
            _LINES,
        ),
    )
    exclude: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            regexes,
            "regex (re.search) that puts a link's URL out of scope (repeatable; seeds are "
            "crawled all the same)",
            _LINES,
        ),
    )
    robots: bool = field(default=True, metadata=_meta(boolean, "obey robots.txt"))
    sitemaps: bool = field(
        default=False,
        metadata=_meta(
            boolean,
            "also crawl what the seed hosts' sitemaps list (robots.txt Sitemap: lines, else "
            "/sitemap.xml), as deep as seeds",
        ),
    )
    honor_nofollow: bool = field(
        default=False,
        metadata=_meta(
            boolean,
            'skip rel="nofollow" links, and all links of a page whose <meta name="robots"> or '
            "X-Robots-Tag header says nofollow",
        ),
    )
    warc: bool = field(default=False, metadata=_meta(boolean, "also write WARC files"))
    warc_max_size: int = field(
        default=1_000_000_000,
        metadata=_meta(byte_size(optional=False), "WARC file size before rotation"),
    )
    user_agent: str = field(
        default_factory=default_user_agent,
        metadata=_meta(header_line_value, "User-Agent header (default: crawl/VERSION)"),
    )
    headers: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_meta(header_pairs, "extra request header 'Name: value' (repeatable)", _LINES),
    )
    cookies: bool = field(
        default=False,
        metadata=_meta(
            boolean, "keep the cookies servers set and send them back (each worker process its own)"
        ),
    )
    load_cookies: Path | None = field(
        default=None,
        metadata=_meta(
            cookie_file,
            "Netscape cookies.txt (curl -c, wget --save-cookies, browser add-ons), or a JSON "
            "file of CookieJar.save (ours or aiohttp's), whose cookies are sent; keeps server "
            "cookies too",
        ),
    )
    max_size: int | None = field(
        default=None,
        metadata=_meta(
            byte_size(optional=True),
            "largest body stored, e.g. 50MB (k, M, G: powers of 1000; KiB, MiB, GiB: of 1024); "
            "a larger one is recorded as too-large, not stored (none: no limit)",
        ),
    )
    accept_types: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            media_types,
            "keep only bodies of these types, e.g. application/pdf or image/* (repeatable; "
            "HTML is always kept, for its links; default: all)",
            _COMMAS,
        ),
    )
    limit_rate: int | None = field(
        default=None,
        metadata=_meta(
            byte_size(optional=True),
            "most bytes a second this machine's downloads receive, e.g. 10MB or 500k (powers of "
            "1000; MiB: of 1024; shared by its worker processes; none: no limit)",
        ),
    )
    timeout: float = field(
        default=60.0,
        metadata=_meta(
            number(0, above=True),
            "seconds to connect, and to wait for each piece of an answer (a large file that "
            "keeps arriving is not cut)",
        ),
    )
    retries: int = field(default=3, metadata=_meta(integer(0), "retries of a failed fetch"))
    max_redirects: int = field(
        default=10, metadata=_meta(integer(0), "redirects followed per fetch")
    )
    proxy: str = field(
        default="env",
        metadata=_meta(
            proxy_setting,
            "proxy for every fetch: a URL (https:// sites through CONNECT), 'none', or 'env' "
            "(HTTP_PROXY, HTTPS_PROXY, NO_PROXY, as curl reads them)",
        ),
    )
    ca_file: Path | None = field(
        default=None,
        metadata=_meta(ca_file, "PEM file of CA certificates trusted besides the system's"),
    )
    verify_tls: bool = field(
        default=True,
        metadata=_meta(boolean, "verify TLS certificates and host names (off: trust any)"),
    )
    fsync: FsyncPolicy = field(
        default=FsyncPolicy.ON_CLOSE,
        metadata=_meta(
            choice(FsyncPolicy), "always, on-close or never (never: no fsync, index included)"
        ),
    )
    progress: bool | None = field(
        default=None,
        metadata=_meta(auto_boolean, "live progress (auto: when stdout is a terminal)"),
    )
    progress_interval: float = field(
        default=5.0, metadata=_meta(number(0, above=True), "seconds between progress log lines")
    )
    log_format: LogFormat = field(
        default=LogFormat.TEXT, metadata=_meta(choice(LogFormat), "text or json")
    )
    metrics_port: int | None = field(
        default=None,
        metadata=_meta(
            integer(0, 65535, optional=True),
            "serve Prometheus metrics at http://HOST:PORT/metrics, on every interface "
            "(worker i: PORT + i; 0: a free port each; each worker says its address on stderr)",
        ),
    )
    lease_seconds: float = field(
        default=60.0,
        metadata=_meta(number(1), "how long a leased URL stays with its worker unrenewed"),
    )
    renew_seconds: float | None = field(
        default=None,
        metadata=_meta(
            number(0, above=True, optional=True),
            "how often long downloads renew their lease (default: a third of lease_seconds)",
        ),
    )
    lease_batch: int = field(default=64, metadata=_meta(integer(1), "URLs taken per lease call"))
    grace_seconds: float = field(
        default=10.0,
        metadata=_meta(number(0), "time in-flight fetches get to finish after SIGINT/SIGTERM"),
    )

    def __post_init__(self) -> None:
        # Every value goes through its parser, so `Settings(...)` and `dataclasses.replace` are
        # checked and normalised like loaded values (parsers accept their own output).
        for item in _FIELDS_IN_ORDER:
            value = getattr(self, item.name)
            object.__setattr__(self, item.name, parse_setting(item.name, value, "Settings(...)"))
        if self.renew_seconds is None:
            object.__setattr__(self, "renew_seconds", self.lease_seconds / 3)
        elif self.renew_seconds >= self.lease_seconds:
            raise SettingsError(
                f"bad setting renew_seconds={self.renew_seconds:g}: must be below "
                f"lease_seconds={self.lease_seconds:g}, or leases expire during downloads"
            )

    @property
    def max_attempts(self) -> int:
        """Fetch attempts per URL before it is dead: the first one plus `retries`."""
        return self.retries + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths and enums as text, tuples as lists), e.g. for `crawl status`."""
        result: dict[str, Any] = {}
        for name in SETTING_NAMES:
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = [list(item) if isinstance(item, tuple) else item for item in value]
            result[name] = value
        return result


_FIELDS_IN_ORDER = dataclasses.fields(Settings)
_FIELDS = {item.name: item for item in _FIELDS_IN_ORDER}
SETTING_NAMES: tuple[str, ...] = tuple(_FIELDS)


def _one_line(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_setting(name: str, value: Any, source: str) -> Any:
    """`value` parsed for setting `name`; SettingsError naming the setting, value and `source`."""
    try:
        return _FIELDS[name].metadata["parse"](value)
    except ValueError as error:
        raise SettingsError(
            f"bad setting {name}={_one_line(value)} from {source}: {error}"
        ) from None


def is_setting(name: str) -> bool:
    return name in _FIELDS


ENV_PREFIX = "CRAWL_"


def env_name(setting: str) -> str:
    """The environment variable of a setting: per_host -> CRAWL_PER_HOST."""
    return ENV_PREFIX + setting.upper()


def setting_help(setting: str) -> str:
    """A setting's help text for the CLI: what it is, its default when that is a plain value,
    and the environment variable that sets it too."""
    item = _FIELDS[setting]
    text = str(item.metadata["help"])
    default = item.default
    if isinstance(default, enum.Enum):
        default = default.value
    shown = default not in (None, (), MISSING)
    if isinstance(default, bool):
        default = "on" if default else "off"
    elif isinstance(default, float):
        default = f"{default:g}"
    suffix = f"default: {default}; " if shown else ""
    env_list = item.metadata["env_list"]
    form = f", {env_list}" if env_list else ""
    return f"{text} [{suffix}env {env_name(setting)}{form}]"
