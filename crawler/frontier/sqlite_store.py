"""The SQLite frontier's storage steps: plain synchronous SQL, one transaction per step.

`SqliteStore` is what `SqliteFrontier` runs, on the event loop's thread or on its own (see
sqlite_backend.py for which, and why). Every step that changes
state runs inside ``BEGIN IMMEDIATE`` (the write lock is taken first, so two processes never
deadlock upgrading a read lock) and reads the clock only once it holds the lock. WAL mode lets
`stats()` read while another process writes. `synchronous=NORMAL` with WAL keeps every
committed step across a killed process; only a power cut can lose the last few commits.

Task states: 0 queued, 1 leased (due = lease deadline), 2 waiting for a retry delay
(due = when), 3 done, 4 skipped, 5 failed, 6 dead. A host row is `ready` (its next start
time) exactly when it has queued tasks and is below the in-flight limit, and the partial
index on `ready` makes "hosts that may start now" one index range scan.

Task rows are stored in the order they were queued (`seq` is the rowid) and found by
fingerprint through a unique index. Leases and settles take tasks in about that order, so a
transaction's updates fall on a few neighbouring pages; keyed by the (random) fingerprint, each
update dirtied a page of its own, and every dirty page is a WAL write at COMMIT (two thirds of
them went, 5% of a crawl's CPU). Files made before keep that older layout (`fp` the primary key
of a WITHOUT ROWID table) and still work: every statement here reads the same on both.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from crawler.sqlite_lock import begin_immediate, is_busy, use_wal

from .admission import Admitted, body_depth, body_with_depth, unpack_body
from .base import CommitResult, Settle, SettleKind
from .settings import FrontierSettings
from .task import FinalRecord, FinalState, FrontierStats, HostBacklog, Task

__all__ = ["SqliteStore", "WriteLockBusy", "stored_job"]

QUEUED, LEASED, DELAYED, DONE, SKIPPED, FAILED, DEAD = range(7)
RECLAIM_PER_LEASE = 1000
BUSY_TIMEOUT_MS = 60_000
# UPDATE ... RETURNING (SQLite 3.35+) settles a DONE task in one statement instead of a
# SELECT and an UPDATE; older libraries take the two-statement path.
_UPDATE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
_SETTLE_DONE = (
    "UPDATE tasks SET state = 3, due = NULL, worker = NULL, body = NULL "
    "WHERE fp = ? AND state = 1 AND (? < 0 OR attempts = ?) RETURNING host"
)


# A known fingerprint is a duplicate; any other conflict (a reused seq) is an error, never a
# URL silently dropped. A duplicate of a task still waiting (queued, or delayed for a retry)
# that was found deeper than this link takes the link's depth, and nothing else of it: a page
# first reached by a long path and then by a short one is fetched at its shortest distance
# from a seed, so --max-depth counts what it says (wget's `-r -l` had the same bug). A leased
# or finished task keeps its depth: its page is being fetched, or was, and re-reading a done
# page's links at the smaller depth is out of reach here. The depth lives only in the packed
# body, so the exact test is a function that reads its few bytes (`crawl_deeper`), and two
# cheap tests come first: a finished task's row fails `state IN (0, 2)`, and `body > ?5`
# (memcmp) drops most of the rest: both bodies begin with the same URL, then the depth, and
# msgpack's integer encodings sort as their values, so a deeper stored body always sorts
# after the new one, and a shallower one (the usual case: a URL found again further from the
# seeds) always before. The UPSERT's update counts as a change, which `_enqueue` takes off the
# added rows (`_lower_depth` counts them).
_INSERT_TASK = (
    "INSERT INTO tasks (fp, host, state, priority, seq, attempts, body) "
    "VALUES (?1, ?2, 0, ?3, ?4, 0, ?5) ON CONFLICT (fp) DO UPDATE "
    "SET body = crawl_lower_depth(body, ?6) "
    "WHERE state IN (0, 2) AND body > ?5 AND crawl_deeper(body, ?6)"
)


def _deeper(body: bytes | None, depth: int) -> bool:
    """SQL function: whether the packed `body` is deeper than `depth`."""
    stored = body_depth(body)
    return stored is not None and stored > depth


class WriteLockBusy(Exception):
    """A step told not to wait (`SqliteStore.waits` False) found the write lock held by
    another connection. Raised before the step changed or read anything: it can be run again
    as it is."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seed_hosts (host TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    inflight INTEGER NOT NULL DEFAULT 0,
    next_start REAL NOT NULL DEFAULT 0,
    crawl_delay REAL NOT NULL DEFAULT 0,
    backoff REAL NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 0,
    ready REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hosts_ready ON hosts (ready) WHERE ready IS NOT NULL;
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    fp BLOB NOT NULL UNIQUE,
    host TEXT NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL,
    worker TEXT,
    body BLOB,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (host, priority DESC, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (due) WHERE state = 1;
CREATE INDEX IF NOT EXISTS tasks_delayed ON tasks (due) WHERE state = 2;
CREATE INDEX IF NOT EXISTS tasks_final ON tasks (state) WHERE state >= 4;
CREATE TABLE IF NOT EXISTS robots (origin TEXT PRIMARY KEY, entry BLOB NOT NULL,
    expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS robots_claims (origin TEXT PRIMARY KEY, holder TEXT NOT NULL,
    expires REAL NOT NULL) WITHOUT ROWID;
"""

_COUNTER_NAMES = {
    "queued": "queued", "leased": "leased", "done": "done", "skipped": "skipped",
    "failed": "failed", "dead": "dead", "added": "added", "dupes": "duplicates",
    "scope": "out_of_scope", "retried": "retried", "expired": "expired",
}  # fmt: skip
# What a URL's lease or end takes from the job's page budget (skipped URLs were never fetched).
_BUDGET_COUNTERS = ("leased", "done", "failed", "dead")
_FINAL_STATES = {SKIPPED: FinalState.SKIPPED, FAILED: FinalState.FAILED, DEAD: FinalState.DEAD}
_KIND_STATE = {SettleKind.DONE: DONE, SettleKind.SKIPPED: SKIPPED, SettleKind.FAILED: FAILED}


def stored_job(path: str) -> str | None:
    """The job a frontier file holds (None when it holds none), read without writing."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.OperationalError:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'job'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return None if row is None else str(row[0])


class SqliteStore:
    """One connection to one frontier file; one thread at a time may use it (any thread: the
    caller keeps the turns, as `SqliteFrontier` does).

    `waits`: whether a step waits for another connection's write lock (up to the busy
    timeout) or raises `WriteLockBusy` at once. `autocheckpoint=False` leaves the WAL's
    checkpoints (which sync the file) to explicit `checkpoint()` calls.
    """

    def __init__(self, path: str, settings: FrontierSettings, *, autocheckpoint: bool = True):
        self.path = path
        self.settings = settings
        self.waits = True
        self.db = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        use_wal(self.db, BUSY_TIMEOUT_MS / 1000)
        self.db.execute("PRAGMA synchronous = NORMAL")
        if not autocheckpoint:
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
        self._counts: dict[str, int] = defaultdict(int)
        # Tasks whose depth an add lowered (see `_enqueue`), counted by the function that
        # rewrites their body: an UPSERT's update is a change like an insert, and this tells
        # them apart without a statement per row.
        self._lowered = 0
        self.db.create_function("crawl_deeper", 2, _deeper, deterministic=True)
        self.db.create_function("crawl_lower_depth", 2, self._lower_depth)
        with self._write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the file (as far as readers allow), with its syncs."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @contextmanager
    def _write(self) -> Iterator[float]:
        """BEGIN IMMEDIATE ... COMMIT; yields the time read once the write lock is held."""
        busy_timeout_s = BUSY_TIMEOUT_MS / 1000
        try:
            begin_immediate(
                self.db, busy_timeout_s if self.waits else 0.0, busy_timeout_s=busy_timeout_s
            )
        except sqlite3.OperationalError as exc:
            if not self.waits and is_busy(exc):
                raise WriteLockBusy(str(exc)) from exc
            raise
        try:
            yield time.time()
        except BaseException:
            self._counts.clear()
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # ---- job -----------------------------------------------------------------------------

    def meta(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta_if_missing(self, key: str, value: bytes | str) -> bytes | str:
        with self._write():
            self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            return self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def swap_meta(self, key: str, value: bytes | str) -> bytes | str | None:
        """Set `key` to `value`; what it held before (None: nothing)."""
        with self._write():
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            return None if row is None else row[0]

    def set_meta(self, key: str, value: bytes | str) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add_seed_hosts(self, hosts: set[str]) -> None:
        with self._write():
            rows = [(host,) for host in hosts]
            self.db.executemany("INSERT OR IGNORE INTO seed_hosts VALUES (?)", rows)
            self._bump("scope_rev", 1)
            self._flush_counts()

    def load_scope(self, known_revision: int) -> tuple[int, set[str] | None]:
        revision = self._counter("scope_rev")
        if revision == known_revision:
            return revision, None
        return revision, {h for (h,) in self.db.execute("SELECT host FROM seed_hosts")}

    # ---- commit: enqueue links/seeds and settle leased tasks ------------------------------

    def commit(
        self, adds: list[Admitted], settles: list[Settle], out_of_scope: int
    ) -> CommitResult:
        result = CommitResult()
        with self._write() as now:
            touched: set[str] = set()
            self._bump("scope", out_of_scope)
            if adds:
                self._enqueue(adds, touched, result)
            # Hosts of DONE tasks get their in-flight counts in one statement per host; flushed
            # before any other kind of settle, so every statement sees what it did before.
            done_per_host: dict[str, int] = {}
            for item in settles:
                if item.kind is not SettleKind.DONE:
                    self._settle_done_hosts(done_per_host)
                result.settled.append(self._settle(item, now, touched, done_per_host))
            self._settle_done_hosts(done_per_host)
            self._refresh(touched)
            self._flush_counts()
        return result

    def _enqueue(self, adds: list[Admitted], touched: set[str], result: CommitResult) -> None:
        seq = self._counter("seq") + self._counts["seq"]  # any bump not flushed yet counts
        # One executemany per host (sequence numbers still in arrival order): how many rows
        # were new is what the connection's change count says.
        # (fp, host, priority, seq, body, depth): the depth for the duplicate's comparison
        rows_per_host: dict[str, list[tuple[bytes, str, int, int, bytes, int]]]
        rows_per_host = defaultdict(list)
        for row in adds:
            seq += 1
            rows_per_host[row.host].append(
                (row.fp, row.host, row.priority, seq, row.body, row.depth)
            )
        new_per_host: dict[str, int] = {}
        for host, rows in rows_per_host.items():
            before, lowered = self.db.total_changes, self._lowered
            self.db.executemany(_INSERT_TASK, rows)
            added = self.db.total_changes - before - (self._lowered - lowered)
            if added:
                new_per_host[host] = added
            result.added += added
            result.duplicates += len(rows) - added
        self.db.executemany(
            "INSERT INTO hosts (host, queued) VALUES (?, ?) "
            "ON CONFLICT (host) DO UPDATE SET queued = queued + excluded.queued",
            new_per_host.items(),
        )
        touched.update(new_per_host)
        self._bump("seq", len(adds))
        self._bump("queued", result.added)
        self._bump("added", result.added)
        self._bump("dupes", result.duplicates)

    def _lower_depth(self, body: bytes, depth: int) -> bytes:
        """SQL function: `body` with `depth`, counted (the UPSERT calls it only for the rows
        it updates)."""
        self._lowered += 1
        return body_with_depth(body, depth)

    def _settle(
        self, item: Settle, now: float, touched: set[str], done_per_host: dict[str, int]
    ) -> bool:
        kind = item.kind
        if kind is SettleKind.DONE and _UPDATE_RETURNING:
            return self._settle_done(item, touched, done_per_host)
        row = self.db.execute(
            "SELECT host, attempts FROM tasks WHERE fp = ? AND state = 1", (item.fp,)
        ).fetchone()
        if row is None or (item.attempts >= 0 and row[1] != item.attempts):
            return False  # not leased, or a late call for an older lease of this task
        host, attempts = row
        touched.add(host)
        self._bump("leased", -1)
        if kind is SettleKind.DONE:
            self.db.execute(
                "UPDATE tasks SET state = 3, due = NULL, worker = NULL, body = NULL WHERE fp = ?",
                (item.fp,),
            )
            # In flight - 1 and backoff reset: see `_settle_done_hosts`.
            done_per_host[host] = done_per_host.get(host, 0) + 1
            self._bump("done", 1)
            return True
        self.db.execute("UPDATE hosts SET inflight = inflight - 1 WHERE host = ?", (host,))
        if kind in _KIND_STATE:
            self._finish(item.fp, _KIND_STATE[kind], item.reason, attempts)
        elif kind is SettleKind.RELEASE:
            self._requeue(item.fp, host, attempts, 0.0, now)
        else:
            delay = item.delay
            if kind is SettleKind.BACKOFF:
                self._back_off_host(host, delay, now)
                delay = 0.0
            if self._failed_try(item.fp, host, attempts, item.reason, delay, now):
                self._bump("retried", 1)
        return True

    def _settle_done(self, item: Settle, touched: set[str], done_per_host: dict[str, int]) -> bool:
        # fetchall, not fetchone: it steps the statement to its end, so nothing is left
        # pending when the transaction commits.
        rows = self.db.execute(_SETTLE_DONE, (item.fp, item.attempts, item.attempts)).fetchall()
        if not rows:
            return False  # not leased, or a late call for an older lease of this task
        host = rows[0][0]
        touched.add(host)
        self._bump("leased", -1)
        done_per_host[host] = done_per_host.get(host, 0) + 1
        self._bump("done", 1)
        return True

    def _settle_done_hosts(self, done_per_host: dict[str, int]) -> None:
        """What DONE settles do to their hosts: in flight - n, and a success ends a backoff."""
        if done_per_host:
            self.db.executemany(
                "UPDATE hosts SET inflight = inflight - ?, backoff = 0 WHERE host = ?",
                [(count, host) for host, count in done_per_host.items()],
            )
            done_per_host.clear()

    def _finish(self, fp: bytes, state: int, reason: str, attempts: int) -> None:
        self.db.execute(
            "UPDATE tasks SET state = ?, reason = ?, attempts = ?, due = NULL WHERE fp = ?",
            (state, reason, attempts, fp),
        )
        self._bump({SKIPPED: "skipped", FAILED: "failed", DEAD: "dead"}[state], 1)

    def _failed_try(
        self, fp: bytes, host: str, attempts: int, reason: str, delay: float, now: float
    ) -> bool:
        """attempts + 1; dead at max_attempts, else back in the queue (after `delay`)."""
        attempts += 1
        if attempts >= self.settings.max_attempts:
            self._finish(fp, DEAD, reason, attempts)
            return False
        self._requeue(fp, host, attempts, delay, now)
        return True

    def _requeue(self, fp: bytes, host: str, attempts: int, delay: float, now: float) -> None:
        if delay > 0:
            self.db.execute(
                "UPDATE tasks SET state = 2, due = ?, attempts = ?, worker = NULL WHERE fp = ?",
                (now + delay, attempts, fp),
            )
        else:
            self.db.execute(
                "UPDATE tasks SET state = 0, due = NULL, attempts = ?, worker = NULL WHERE fp = ?",
                (attempts, fp),
            )
            self.db.execute("UPDATE hosts SET queued = queued + 1 WHERE host = ?", (host,))
        self._bump("queued", 1)

    def _back_off_host(self, host: str, delay: float, now: float) -> None:
        """429/503: the whole host waits `delay`, or its next exponential backoff step."""
        (backoff,) = self.db.execute(
            "SELECT backoff FROM hosts WHERE host = ?", (host,)
        ).fetchone()
        s = self.settings
        wait = delay if delay >= 0 else min(s.backoff_max, max(s.backoff_base, 2 * backoff))
        self.db.execute(
            "UPDATE hosts SET backoff = ?, next_start = max(next_start, ?) WHERE host = ?",
            (wait, now + wait, host),
        )

    # ---- lease / renew -------------------------------------------------------------------

    def lease(self, n: int, worker: str) -> list[Task]:
        s = self.settings
        tasks: list[Task] = []
        with self._write() as now:
            if self.meta("paused") == b"1":
                return tasks
            touched: set[str] = set()
            self._reclaim(now, now, RECLAIM_PER_LEASE, touched)
            self._wake(now, touched)
            self._refresh(touched)
            n = self._within_budget(n)
            deadline = now + s.lease_seconds
            while len(tasks) < n:
                hosts = self.db.execute(
                    "SELECT host, inflight, crawl_delay FROM hosts WHERE ready <= ? "
                    "ORDER BY ready LIMIT ?",
                    (now, n - len(tasks)),
                ).fetchall()
                if not hosts:
                    break
                for host, inflight, crawl_delay in hosts:
                    if len(tasks) >= n:
                        break
                    delay = max(s.per_host_delay, crawl_delay)
                    want = min(s.per_host_limit - inflight, n - len(tasks))
                    if delay > 0:
                        want = min(want, 1)
                    if want > 0:
                        self._lease_host(host, want, worker, now, now + delay, deadline, tasks)
                    self._refresh((host,))
            self._flush_counts()
        return tasks

    def _within_budget(self, n: int) -> int:
        """`n`, or fewer where the job's page budget (`max_pages`) has less room: it counts
        the URLs leased and finished (done, failed, dead), read inside this write
        transaction, so however many workers lease at once none goes past it."""
        budget = self.settings.max_pages
        if budget is None:
            return n
        used = sum(self._counter(name) + self._counts[name] for name in _BUDGET_COUNTERS)
        return max(0, min(n, budget - used))

    def _lease_host(
        self,
        host: str,
        want: int,
        worker: str,
        now: float,
        next_start: float,
        deadline: float,
        tasks: list[Task],
    ) -> None:
        rows = self.db.execute(
            "SELECT fp, attempts, body FROM tasks WHERE host = ? AND state = 0 "
            "ORDER BY priority DESC, seq LIMIT ?",
            (host, want),
        ).fetchall()
        if not rows:
            return
        self.db.executemany(
            "UPDATE tasks SET state = 1, due = ?, worker = ? WHERE fp = ?",
            [(deadline, worker, fp) for fp, _, _ in rows],
        )
        self.db.execute(
            "UPDATE hosts SET inflight = inflight + ?, queued = queued - ?, next_start = ? "
            "WHERE host = ?",
            (len(rows), len(rows), next_start, host),
        )
        for fp, attempts, body in rows:
            tasks.append(unpack_body(fp, body, host=host, attempts=attempts, deadline=deadline))
        self._bump("leased", len(rows))
        self._bump("queued", -len(rows))

    def _reclaim(self, now: float, cutoff: float, limit: int, touched: set[str]) -> int:
        """Expired leases back to their queues with attempts + 1 (dead at max_attempts)."""
        rows = self.db.execute(
            "SELECT fp, host, attempts FROM tasks WHERE state = 1 AND due <= ? "
            "ORDER BY due LIMIT ?",
            (cutoff, limit),
        ).fetchall()
        for fp, host, attempts in rows:
            self.db.execute("UPDATE hosts SET inflight = inflight - 1 WHERE host = ?", (host,))
            self._failed_try(fp, host, attempts, "lease expired", 0.0, now)
            touched.add(host)
        self._bump("leased", -len(rows))
        self._bump("expired", len(rows))
        return len(rows)

    def _wake(self, now: float, touched: set[str]) -> None:
        """Retries whose delay is over go back to their hosts' queues."""
        rows = self.db.execute(
            "SELECT fp, host FROM tasks WHERE state = 2 AND due <= ? LIMIT ?",
            (now, RECLAIM_PER_LEASE),
        ).fetchall()
        for fp, host in rows:
            self.db.execute("UPDATE tasks SET state = 0, due = NULL WHERE fp = ?", (fp,))
            self.db.execute("UPDATE hosts SET queued = queued + 1 WHERE host = ?", (host,))
            touched.add(host)

    def _refresh(self, hosts: set[str] | tuple[str, ...]) -> None:
        self.db.executemany(
            "UPDATE hosts SET ready = CASE WHEN queued > 0 AND inflight < ? THEN next_start "
            "ELSE NULL END WHERE host = ?",
            [(self.settings.per_host_limit, h) for h in hosts],
        )

    def renew(self, leases: list[tuple[bytes, int]]) -> tuple[set[str], float]:
        renewed: set[str] = set()
        with self._write() as now:
            deadline = now + self.settings.lease_seconds
            for fp, attempts in leases:
                if self.db.execute(
                    "UPDATE tasks SET due = ? WHERE fp = ? AND state = 1 "
                    "AND (? < 0 OR attempts = ?)",
                    (deadline, fp, attempts, attempts),
                ).rowcount:
                    renewed.add(fp.hex())
        return renewed, deadline

    def recover_leases(self) -> int:
        with self._write() as now:
            touched: set[str] = set()
            count = self._reclaim(now, float("inf"), -1, touched)
            self._refresh(touched)
            self._flush_counts()
        return count

    # ---- hosts, robots, listing ----------------------------------------------------------

    def set_host_delay(self, host: str, seconds: float) -> None:
        """robots.txt's Crawl-delay for `host`; its next start is put at least that long from
        now (the robots.txt was a request to it, and tasks leased before it was read may
        have started since), so the wait holds from the first request on."""
        with self._write() as now:
            self.db.execute(
                "INSERT INTO hosts (host, crawl_delay, next_start) VALUES (?, ?, ?) "
                "ON CONFLICT (host) DO UPDATE SET crawl_delay = excluded.crawl_delay, "
                "next_start = max(next_start, excluded.next_start)",
                (host, seconds, now + seconds),
            )
            self._refresh((host,))

    def robots_get(self, origin: str) -> bytes | None:
        row = self.db.execute(
            "SELECT entry FROM robots WHERE origin = ? AND expires > ?", (origin, time.time())
        ).fetchone()
        return None if row is None else row[0]

    def robots_put(self, origin: str, entry: bytes, ttl: float) -> None:
        with self._write() as now:
            self.db.execute(
                "INSERT OR REPLACE INTO robots VALUES (?, ?, ?)", (origin, entry, now + ttl)
            )
            # The claim did its job; left in place it would block the next fetch after expiry.
            self.db.execute("DELETE FROM robots_claims WHERE origin = ?", (origin,))

    def robots_claim(self, origin: str, holder: str, ttl: float) -> bool:
        with self._write() as now:
            row = self.db.execute(
                "SELECT expires FROM robots_claims WHERE origin = ?", (origin,)
            ).fetchone()
            if row is not None and row[0] > now:
                return False
            self.db.execute(
                "INSERT OR REPLACE INTO robots_claims VALUES (?, ?, ?)", (origin, holder, now + ttl)
            )
            return True

    def stats(self) -> FrontierStats:
        stats = FrontierStats()
        self.db.execute("BEGIN")  # one snapshot: counters that agree with each other
        try:
            for name, value in self.db.execute("SELECT name, value FROM counters"):
                if name in _COUNTER_NAMES:
                    setattr(stats, _COUNTER_NAMES[name], value)
            (stats.hosts_with_backlog,) = self.db.execute(
                "SELECT count(*) FROM hosts WHERE queued > 0"
            ).fetchone()
            stats.paused = self.meta("paused") == b"1"
        finally:
            self.db.execute("COMMIT")
        return stats

    def is_finished(self) -> bool:
        # One statement, one snapshot: read apart, an ack committing in between (its links
        # queued, its lease gone) could make "nothing queued" and "nothing leased" both true.
        (busy,) = self.db.execute(
            "SELECT count(*) FROM counters WHERE name IN ('queued', 'leased') AND value != 0"
        ).fetchone()
        return busy == 0

    def failures(self, limit: int) -> list[FinalRecord]:
        rows = self.db.execute(
            "SELECT fp, state, reason, attempts, host, body FROM tasks WHERE state >= 4 LIMIT ?",
            (limit,),
        )
        records = []
        for fp, state, reason, attempts, host, body in rows:
            task = unpack_body(fp, body, host=host, attempts=attempts)
            records.append(
                FinalRecord(
                    id=task.id,
                    url=task.url,
                    state=_FINAL_STATES[state],
                    reason=reason or "",
                    attempts=attempts,
                    host=host,
                    depth=task.depth,
                    parent=task.parent,
                )
            )
        return records

    def busiest_hosts(self, n: int) -> list[HostBacklog]:
        rows = self.db.execute(
            "SELECT host, queued FROM hosts WHERE queued > 0 ORDER BY queued DESC, host LIMIT ?",
            (n,),
        )
        return [HostBacklog(host, queued) for host, queued in rows]

    def clear(self) -> None:
        with self._write():
            for table in ("counters", "seed_hosts", "hosts", "tasks", "robots", "robots_claims"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE key NOT IN ('job', 'settings')")

    # ---- counters ------------------------------------------------------------------------

    def _counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def _bump(self, name: str, delta: int) -> None:
        if delta:
            self._counts[name] += delta

    def _flush_counts(self) -> None:
        self.db.executemany(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [(name, delta) for name, delta in self._counts.items() if delta],
        )
        self._counts.clear()
