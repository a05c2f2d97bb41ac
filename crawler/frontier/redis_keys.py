"""Every Redis key of a job, in one place (the scrapy-redis lesson).

Layout (see docs/frontier.md for the Redis Cluster story):

    crawl:{JOB}:config              HASH  settings (msgpack), scope revision
    crawl:{JOB}:seed-hosts          SET   the seeds' hosts (default scope)
    crawl:{JOB/P}:ready             ZSET  host -> earliest next lease start (ms)
    crawl:{JOB/P}:leases            ZSET  fingerprint -> lease deadline (ms)
    crawl:{JOB/P}:delayed           ZSET  fingerprint -> when a retry may run (ms)
    crawl:{JOB/P}:tasks             HASH  fingerprint -> "attempts|score|host|" + msgpack body
    crawl:{JOB/P}:seen              SET of fingerprints, or a BF.* filter (dedupe)
    crawl:{JOB/P}:bloom:N           STRING bitset block N (Bloom dedupe without BF.*)
    crawl:{JOB/P}:stats             HASH  counters
    crawl:{JOB/P}:final             HASH  fingerprint -> skipped/failed/dead record
    crawl:{JOB/P}:meta              HASH  paused flag, job (the job's incarnation token)
    crawl:{JOB/P}:call:ID           STRING what LEASE/COMMIT call ID did (kept 20 s, for resends)
    crawl:{JOB/P}:backlog           HASH  host -> queued tasks
    crawl:{JOB/P}:workers           HASH  worker -> last lease time (ms)
    crawl:{JOB/P}:q:HOST            ZSET  fingerprint -> (priority, arrival) score
    crawl:{JOB/P}:h:HOST            HASH  i in-flight, n next start (ms), d crawl delay, b backoff
    crawl:{JOB/P}:robots:ORIGIN     STRING cached robots.txt entry, expires with PX
    crawl:{JOB/P}:robots-claim:ORIGIN STRING who fetches it now, expires with PX

P is the host's partition (`admission.partition_of`). Everything about one host lives in one
partition, and each partition's keys share the hash tag {JOB/P}, so a Lua script that touches
one partition touches one Redis Cluster slot. The Lua scripts build the per-host keys from the
partition prefix and the suffixes below, which redis_scripts.py interpolates from here.
"""

from __future__ import annotations

from .settings import check_job_name

__all__ = ["JobKeys", "PartitionKeys"]

ROOT = "crawl"

# Suffixes of per-host and per-origin keys (used by Python and, interpolated, by Lua).
QUEUE = "q:"
HOST = "h:"
BLOOM = "bloom:"
ROBOTS = "robots:"
ROBOTS_CLAIM = "robots-claim:"

# The fixed KEYS every partition script receives, in this order.
SCRIPT_KEY_NAMES = (
    "ready",
    "leases",
    "delayed",
    "tasks",
    "seen",
    "stats",
    "final",
    "meta",
    "backlog",
    "workers",
)


class JobKeys:
    """Job-wide keys (one slot: tag {JOB})."""

    __slots__ = ("config", "prefix", "seed_hosts")

    def __init__(self, job: str) -> None:
        self.prefix = f"{ROOT}:{{{check_job_name(job)}}}:"
        self.config = self.prefix + "config"
        self.seed_hosts = self.prefix + "seed-hosts"

    @staticmethod
    def scan_patterns(job: str) -> tuple[str, str]:
        """Glob patterns matching every key of the job (for `clear`)."""
        return f"{ROOT}:{{{job}}}:*", f"{ROOT}:{{{job}/*}}:*"


class PartitionKeys:
    """Keys of partition `index` of a job (one slot: tag {JOB/index})."""

    __slots__ = ("index", "prefix", "script_keys", *SCRIPT_KEY_NAMES)

    ready: str
    leases: str
    delayed: str
    tasks: str
    seen: str
    stats: str
    final: str
    meta: str
    backlog: str
    workers: str

    def __init__(self, job: str, index: int) -> None:
        self.index = index
        self.prefix = f"{ROOT}:{{{check_job_name(job)}/{index}}}:"
        for name in SCRIPT_KEY_NAMES:
            setattr(self, name, self.prefix + name)
        self.script_keys = [self.prefix + name for name in SCRIPT_KEY_NAMES]

    def queue(self, host: str) -> str:
        return self.prefix + QUEUE + host

    def host(self, host: str) -> str:
        return self.prefix + HOST + host

    def bloom_block(self, block: int) -> str:
        return f"{self.prefix}{BLOOM}{block}"

    def robots(self, origin: str) -> str:
        return self.prefix + ROBOTS + origin

    def robots_claim(self, origin: str) -> str:
        return self.prefix + ROBOTS_CLAIM + origin
