"""`crawl run`: seed the job, run N worker processes under a supervisor, show progress.

The worker processes are started as `python -m workers.process` with the settings in an
environment variable, so a machine running `crawl run --workers 4` behaves like four machines
running `crawl worker`: the frontier is all they share.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crawler.config import Settings
from workers.job import (
    PROGRESS_DIR,
    SETTINGS_ENV,
    frontier_settings,
    frontier_target,
)
from workers.messages import configure_logging, say
from workers.progress import CounterSnapshot, ProgressReporter
from workers.spare import take_spare
from workers.supervisor import (
    EXIT_DISK_FAILED,
    EXIT_FRONTIER_FAILED,
    EXIT_INTERRUPTED,
    Supervisor,
)

if TYPE_CHECKING:
    from crawler.frontier import FrontierSettings

__all__ = ["Seeded", "run_crawl", "seed_job", "settings_changes"]


@dataclass(frozen=True, slots=True)
class Seeded:
    added: int
    duplicates: int
    rejected: list[tuple[str, str]]  # (url, reason)
    changed: list[str]  # the job's settings this run changed, as "name old -> new"
    kept: list[str] = dataclasses.field(default_factory=list)  # job-defining ones it could not
    # URLs an earlier run gave up on (failed, dead), when the job is finished: a plain rerun
    # leaves them so; --recrawl tries them (and revalidates the rest).
    gave_up: int = 0


async def seed_job(settings: Settings, seeds: list[str], *, recrawl: bool = False) -> Seeded:
    """Make this run's settings the job's and add the seeds (again: duplicates are ignored,
    so re-running resumes).

    The job's settings are what every worker process follows, here and on other machines
    (those started from now on): so `crawl run` with, say, another --per-host or --max-depth
    applies them to a stopped crawl it resumes, instead of the first run's.

    `recrawl`: the job must be finished; it is cleared first (which URLs were fetched is
    forgotten, files and records stay), so every URL is fetched again: conditionally, from
    the validators its record kept.
    """
    from crawler.frontier import JOB_DEFINING, open_frontier

    target = frontier_target(settings)
    wanted = frontier_settings(settings)
    frontier = await open_frontier(target, settings.job, wanted)
    try:
        if recrawl:
            if not await frontier.is_finished():
                raise click.UsageError(
                    f"--recrawl: the crawl of job {settings.job!r} ({target}) is not finished; "
                    "run without --recrawl to resume it"
                )
            await frontier.clear()
            # Opened again: a cleared Redis job has lost its stored settings too, and the
            # workers would otherwise run it with the defaults (2 per host, say).
            await frontier.close()
            frontier = await open_frontier(target, settings.job, wanted)
        before = await frontier.save_settings()
        result = await frontier.add(seeds)
        if settings.sitemaps:
            from workers.sitemap_tasks import robots_tasks

            # Each seed origin's robots.txt, fetched for its Sitemap: lines.
            await frontier.add(robots_tasks(seeds))
        if settings.redis is None:
            # The SQLite frontier lives inside OUT and only this command's workers use it:
            # leases left by a killed earlier run can come back at once instead of timing out.
            await frontier.recover_leases()
        changed = settings_changes(before, frontier.settings)
        kept = [
            f"{name} stays {getattr(frontier.settings, name)} (not {getattr(wanted, name)}): "
            "fixed when the job was created"
            for name in JOB_DEFINING
            if getattr(wanted, name) != getattr(frontier.settings, name)
        ]
        gave_up = 0
        if not recrawl and not result.added and await frontier.is_finished():
            stats = await frontier.stats()
            gave_up = stats.failed + stats.dead
        return Seeded(
            result.added, result.duplicates, list(result.rejected), changed, kept, gave_up
        )
    finally:
        await frontier.close()


def settings_changes(before: FrontierSettings, after: FrontierSettings) -> list[str]:
    """What differs, one "name old -> new" each (scope rules as "scope.name")."""

    def flat(settings: FrontierSettings) -> dict[str, object]:
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
        scope = values.pop("scope")
        values.update({f"scope.{k}": v for k, v in scope.to_dict().items()})  # type: ignore[attr-defined]
        return values

    old, new = flat(before), flat(after)
    return [
        f"{name} {_shown(old[name])} -> {_shown(new[name])}"
        for name in new
        if old.get(name) != new[name]
    ]


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_crawl(settings: Settings, seeds: list[str], *, recrawl: bool = False) -> int:
    """Seed, run the workers until the job is finished, print a summary; the exit code.

    The worker processes start while the seeds go in (they wait at the supervisor's gate), so
    their start-up does not add to the crawl's.
    """
    configure_logging(settings.log_format)  # the supervisor's warnings, in the chosen format
    if settings.workers == 0:
        _seed(settings, seeds, recrawl)
        return 0
    progress_dir = Path(settings.out) / PROGRESS_DIR
    shutil.rmtree(progress_dir, ignore_errors=True)
    started = time.monotonic()
    reporter = ProgressReporter(
        lambda: _combined_snapshot(progress_dir, started),
        progress=settings.progress,
        log_format=settings.log_format,
        interval=settings.progress_interval,
        stream=sys.stderr if not sys.stdout.isatty() else sys.stdout,
    )
    supervisor = Supervisor(
        [sys.executable, "-m", "workers.process"],
        settings.workers,
        env={SETTINGS_ENV: json.dumps(worker_settings(settings).to_dict())},
        on_tick=reporter.tick,
        spare=take_spare(),  # worker 0, forked as `crawl` started (see workers.spare)
    )
    code = supervisor.run(before=lambda: _seed(settings, seeds, recrawl))
    interrupted = code == EXIT_INTERRUPTED
    reporter.finish(interrupted=interrupted)
    if interrupted:
        say(
            "interrupted: state saved; run the same command again to resume",
            settings.log_format,
            "interrupted",
        )
    elif code == EXIT_DISK_FAILED:
        say(
            f"stopped: {settings.out} could not be written (see above); the URLs in progress "
            "went back to the queue: free space and run the same command again",
            settings.log_format,
            "disk-failed",
        )
    elif code == EXIT_FRONTIER_FAILED:
        say(
            f"stopped: the frontier of job {settings.job!r} ({frontier_target(settings)}) "
            "failed in a way waiting does not fix (see above); the crawl is not finished",
            settings.log_format,
            "frontier-failed",
        )
    elif code == 0 and settings.max_pages is not None:
        _say_if_budget_ended_it(settings)
    return code


def _say_if_budget_ended_it(settings: Settings) -> None:
    import asyncio

    from crawler.frontier import open_frontier

    async def queued() -> int:
        frontier = await open_frontier(frontier_target(settings), settings.job)
        try:
            return (await frontier.stats()).queued
        finally:
            await frontier.close()

    left = asyncio.run(queued())
    if left:
        say(
            f"stopped at --max-pages {settings.max_pages}: {left:,} URL(s) still queued; "
            "run again with a higher --max-pages to go on",
            settings.log_format,
            "max-pages",
            queued=left,
        )


def worker_settings(settings: Settings) -> Settings:
    """What each of this machine's worker processes runs with: the machine's --limit-rate
    is shared out between them."""
    if settings.limit_rate is None or settings.workers <= 1:
        return settings
    share = max(1, settings.limit_rate // settings.workers)
    return dataclasses.replace(settings, limit_rate=share)


def _scheme_hint(url: str, reason: str) -> str:
    """wget and curl take `example.com/file` as http://: we do not guess a scheme (https or
    http would each be wrong for some sites), but say what to write. `localhost:8000/x` parses
    as scheme `localhost`, so a host:port head counts too."""
    head = url.split("/", 1)[0]
    if "://" in url or not head or head.startswith(("#", "?")) or " " in head:
        return ""
    host_port = head.rpartition(":")[2].isdigit()
    if not (reason.startswith("not an absolute URL") or host_port):
        return ""
    return f" (give the scheme: 'https://{url}' or 'http://{url}')"


def _seed(settings: Settings, seeds: list[str], recrawl: bool) -> None:
    # Imported only now, while the worker processes already start behind the gate.
    import asyncio

    seeded = asyncio.run(seed_job(settings, seeds, recrawl=recrawl))
    for url, reason in seeded.rejected:
        say(
            f"seed not added: {url!r}: {reason}{_scheme_hint(url, reason)}",
            settings.log_format,
            "seed-rejected",
            url=url,
        )
    if seeded.rejected and not seeded.added and not seeded.duplicates:
        # Nothing to crawl at all: a usage error, not a crawl that "finished" having done none.
        raise click.UsageError(f"none of the {len(seeded.rejected)} seed URL(s) can be crawled")
    for line in seeded.kept:
        say(f"job {settings.job!r}: {line}", settings.log_format, "job")
    if seeded.changed:
        say(
            f"job {settings.job!r}: settings changed since its last run: "
            + "; ".join(seeded.changed),
            settings.log_format,
            "settings-changed",
        )
    say(
        f"job {settings.job!r}: {seeded.added} new seed(s), {seeded.duplicates} already known; "
        f"frontier {frontier_target(settings)}",
        settings.log_format,
        "seeded",
        job=settings.job,
        added=seeded.added,
        known=seeded.duplicates,
    )
    if seeded.gave_up:
        say(
            f"job {settings.job!r} is finished; {seeded.gave_up:,} URL(s) failed in an earlier "
            "run (`crawl status` says why): run again with --recrawl to try them again "
            "(partial files resume; stored ones are only revalidated)",
            settings.log_format,
            "already-finished",
            failed=seeded.gave_up,
        )


def _combined_snapshot(folder: Path, started: float) -> CounterSnapshot:
    snapshots = []
    for path in folder.glob("*.json"):
        try:
            snapshots.append(CounterSnapshot.from_dict(json.loads(path.read_text())))
        except (OSError, ValueError):
            continue  # a worker is replacing it right now
    if not snapshots:
        return CounterSnapshot(at=time.monotonic(), started_at=started)
    return CounterSnapshot.combine(snapshots)
