"""The `crawl` commands (click): run, worker, status, export, mirror, demo; `crawler.cli` is
the program that starts them.

Settings come from flags > `CRAWL_*` environment > `crawl.toml` > defaults (`crawler.config`).
Exit codes: 0 finished (failed URLs are recorded, not fatal), 2 bad usage, 130 interrupted with
state saved (run the same command again to resume), 75 stopped because OUT could not be written
(disk full, read-only; state saved: free space and run again), 69 the frontier failed for good.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from crawler.config import Settings, SettingsError, load_settings, setting_help

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CANNOT_WRITE = 75  # the code a worker stops with when OUT cannot be written (EX_TEMPFAIL)


# A file of URLs is read as UTF-8 whatever the locale says, and a byte that is not UTF-8 (a
# Latin-1 "é" in a path) is kept as a surrogate, which URL canonicalization escapes as that
# very byte (%E9): what the file's author typed is what is requested, not a traceback.
_URL_FILE = click.File("r", encoding="utf-8", errors="surrogateescape")


class OutNotWritable(click.ClickException):
    exit_code = EXIT_CANNOT_WRITE


def _check_out_writable(out: Path) -> None:
    """Create OUT and write a file in it now, so that a folder the crawl cannot write (owned
    by another user, as a container's root-owned volume is; read-only) is one line at the
    start, not a traceback from whichever part writes first."""
    import errno
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".crawl-write-check-"):
            pass
    except OSError as error:
        why = error.strerror or type(error).__name__
        hint = ""
        if error.errno in (errno.EACCES, errno.EPERM) and hasattr(os, "getuid"):
            uid = os.getuid()
            hint = f"; this runs as uid {uid}: give it the folder (chown -R {uid} {out})"
        raise OutNotWritable(f"cannot write under {out}: {why}{hint}") from None


def _settings(options: dict[str, Any], **forced: Any) -> Settings:
    try:
        return load_settings({**options, **forced})
    except SettingsError as error:
        raise click.UsageError(str(error)) from None


def _crawl_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options `run`, `worker` and `mirror` share (help texts come from the settings)."""
    options = [
        click.option("--out", type=click.Path(file_okay=False), help=setting_help("out")),
        click.option("--redis", metavar="URL", help=setting_help("redis")),
        click.option("--job", metavar="NAME", help=setting_help("job")),
        click.option("--partitions", type=int, metavar="N", help=setting_help("partitions")),
        click.option("--concurrency", type=int, metavar="N", help=setting_help("concurrency")),
        click.option("--per-host", type=int, metavar="N", help=setting_help("per_host")),
        click.option("--delay", type=float, metavar="S", help=setting_help("delay")),
        click.option("--user-agent", metavar="UA", help=setting_help("user_agent")),
        click.option(
            "--header", multiple=True, metavar="'NAME: VALUE'", help=setting_help("headers")
        ),
        click.option("--cookies/--no-cookies", default=None, help=setting_help("cookies")),
        click.option(
            "--load-cookies",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help=setting_help("load_cookies"),
        ),
        click.option("--max-size", metavar="BYTES", help=setting_help("max_size")),
        click.option("--limit-rate", metavar="RATE", help=setting_help("limit_rate")),
        click.option(
            "--accept-type", "accept_types", multiple=True, metavar="TYPE",
            help=setting_help("accept_types"),
        ),
        click.option("--timeout", type=float, metavar="S", help=setting_help("timeout")),
        click.option("--retries", type=int, metavar="N", help=setting_help("retries")),
        click.option("--proxy", metavar="URL|env|none", help=setting_help("proxy")),
        click.option("--ca-file", type=click.Path(dir_okay=False), help=setting_help("ca_file")),
        # A pair, not a lone --insecure, so that a flag can turn back on what crawl.toml or
        # CRAWL_VERIFY_TLS=false turned off.
        click.option(
            "--verify-tls/--insecure",
            "verify_tls",
            default=None,
            help="--insecure: do not verify TLS certificates (like curl -k); "
            + setting_help("verify_tls"),
        ),
        click.option("--warc/--no-warc", default=None, help=setting_help("warc")),
        click.option(
            "--fsync",
            type=click.Choice(["always", "on-close", "never"]),
            help=setting_help("fsync"),
        ),
        click.option("--progress/--no-progress", default=None, help=setting_help("progress")),
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), help=setting_help("log_format")
        ),
        click.option("--metrics-port", type=int, metavar="PORT", help=setting_help("metrics_port")),
        click.option(
            "--config", type=click.Path(dir_okay=False), help="TOML settings file (crawl.toml)"
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--workers", type=int, metavar="N", help=setting_help("workers")),
        # Parsed by the settings, not click, so `none` (no limit) works here as in crawl.toml.
        click.option("--max-depth", metavar="N", help=setting_help("max_depth")),
        click.option("--max-pages", metavar="N", help=setting_help("max_pages")),
        click.option("--max-url-length", metavar="N", help=setting_help("max_url_length")),
        click.option("--max-path-repeats", metavar="N", help=setting_help("max_path_repeats")),
        click.option(
            "--allow-domain", multiple=True, metavar="D", help=setting_help("allow_domains")
        ),
        click.option("--include", multiple=True, metavar="RE", help=setting_help("include")),
        click.option("--exclude", multiple=True, metavar="RE", help=setting_help("exclude")),
        click.option(
            "--robots/--no-robots", "robots", default=None, help=setting_help("robots")
        ),
        click.option("--sitemaps/--no-sitemaps", default=None, help=setting_help("sitemaps")),
        click.option(
            "--nofollow/--follow-all",
            "honor_nofollow",
            default=None,
            help=setting_help("honor_nofollow"),
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crawl")
def main() -> None:
    """crawl: a distributed web crawler and bulk download engine.

    \b
    One machine:   crawl run seeds.txt --out out/
    Many machines: crawl run seeds.txt --redis redis://host:6379/0 --job site --out out/
                   crawl worker --redis redis://host:6379/0 --job site --out out/   (each other)
    Files only:    crawl mirror https://example.com/big.iso --out downloads/
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def _recrawl_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--recrawl",
        is_flag=True,
        help=f"start a new pass over a finished {what}: every URL is fetched again, with "
        "If-None-Match/If-Modified-Since from its record; a 304 keeps the stored file",
    )


@main.command()
@click.argument("seeds", type=_URL_FILE)
@_crawl_options
@_scope_options
@_recrawl_option("crawl")
def run(seeds: Any, recrawl: bool, **options: Any) -> None:
    """Crawl from the URLs in SEEDS (a file, one URL a line, '#' comments; '-' for stdin).

    Without --redis the frontier is a SQLite file inside OUT: running the same command again
    resumes a stopped crawl, and once it is finished does nothing; --recrawl then refreshes
    it (links of unchanged pages are followed from the stored files). With --redis the seeds
    join the shared job and this machine runs --workers worker processes; other machines join
    with `crawl worker`.

    Every fetch gets a record (`crawl export`). A redirect is recorded as it came and its target
    is crawled as a link of its own: fetched once, only when in scope, within its host's limits.

    \b
    Exit codes:
      0    finished, or stopped at --max-pages (failed URLs are recorded, not
           fatal: crawl status, crawl export --failed)
      1    an error while running (Redis unreachable, no such job or crawl)
      2    bad usage: an unknown flag or setting, a bad value, no seeds
      75   OUT cannot be written (disk full, read-only); state saved: free
           space and run the same command again
      69   the frontier failed for good (the job vanished from a Redis
           restarted without persistence): seed it again
      130  interrupted (Ctrl-C, SIGTERM); state saved: run it again to resume
    """
    settings = _settings(options)
    urls = list(_read_seeds(seeds))
    if not urls:
        raise click.UsageError(f"no seed URLs in {_file_name(seeds)} (one URL a line)")
    _check_out_writable(settings.out)
    sys.exit(_run_crawl(settings, urls, recrawl=recrawl))


@main.command()
@_crawl_options
@_scope_options
def worker(**options: Any) -> None:
    """Join a crawl as one worker process: fetch until the job is finished.

    Use with --redis and --job to work on a job started by `crawl run` on any machine.
    """
    settings = _settings(options)
    import asyncio

    from crawler.frontier import FrontierError, job_exists
    from workers.job import frontier_target
    from workers.process import run_worker_process

    try:
        if not asyncio.run(job_exists(frontier_target(settings), settings.job)):
            # Joining would create an empty job and "finish" it: a typo would look like success.
            where = f"at {settings.redis}" if settings.redis else f"in {settings.out}"
            start = f"--redis {settings.redis} --job {settings.job}" if settings.redis else (
                f"--out {settings.out}"
            )
            raise click.ClickException(
                f"no job {settings.job!r} {where}; start it with `crawl run SEEDS {start}`"
            )
        _check_out_writable(settings.out)
        from workers.messages import configure_logging

        configure_logging(settings.log_format)
        index = int(os.environ.get("CRAWL_WORKER_INDEX", "0"))
        code = run_worker_process(settings, index=index, report=True)
    except FrontierError as error:
        raise click.ClickException(str(error)) from None
    sys.exit(code)


@main.command()
@click.argument("urls", nargs=-1)
@click.option("-i", "--input-file", type=_URL_FILE, help="file of URLs, one a line")
@_crawl_options
@click.option("--workers", type=int, metavar="N", help=setting_help("workers"))
@_recrawl_option("mirror")
def mirror(urls: tuple[str, ...], input_file: Any, recrawl: bool, **options: Any) -> None:
    """Download the listed files (no link following), resumable: run again to continue.

    Files go to OUT/files/<host>/<path>; a partial file resumes with a Range request. Once
    the job is finished, --recrawl checks each file for a newer version (like `wget -N`) and
    tries again those that failed (resuming their partial files). Runs at most one worker
    process per listed file.
    """
    listed = list(urls) + (list(_read_seeds(input_file)) if input_file else [])
    if not listed:
        if input_file is not None:
            raise click.UsageError(f"no URLs in {_file_name(input_file)} (one URL a line)")
        raise click.UsageError("give URLs or -i FILE")
    # Explicitly listed files are fetched like `wget URL`: no robots.txt, no links followed.
    settings = _settings(options, max_depth=0, robots=False)
    if settings.redis is None and len(listed) < settings.workers:
        # The job is these files and no more (no links followed): a process beyond one per
        # file would only start, find nothing to lease and take CPU from the transfers.
        settings = dataclasses.replace(settings, workers=len(listed))
    _check_out_writable(settings.out)
    sys.exit(_run_crawl(settings, listed, recrawl=recrawl))


@main.command()
@click.argument("out", required=False, type=click.Path(file_okay=False))
@click.option("--redis", metavar="URL", help="Redis URL of a shared frontier")
@click.option("--job", metavar="NAME", help="job name")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def status(out: str | None, redis: str | None, job: str | None, as_json: bool) -> None:
    """Show a crawl's state: queued, leased, done, failed, dead, busiest hosts."""
    if out is None and redis is None:
        raise click.UsageError("give OUT (a SQLite crawl) or --redis URL --job NAME")
    import asyncio

    from crawler.frontier import FrontierError
    from workers.status import crawl_status

    if redis is None and job is None:
        # A SQLite frontier holds one job: show that one rather than ask for its name.
        from crawler.frontier.sqlite_store import stored_job
        from workers.job import frontier_target

        job = stored_job(frontier_target(_settings({"out": out})))
    settings = _settings({"out": out, "redis": redis, "job": job})

    try:
        report = asyncio.run(crawl_status(settings))
    except (FrontierError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        if key in ("max_pages_reached", "settled_per_s"):
            continue  # said with max_pages, and with done_per_s
        if key == "done_per_s":
            if value is not None:
                shown = f"{value:,.1f} pages/s done, {report['settled_per_s']:,.1f}/s settled"
                click.echo(f"{'rates':>14}: {shown}")
            continue
        if key == "max_pages":
            shown = "none" if value is None else f"{value:,}"
            value = shown + (" (reached)" if report["max_pages_reached"] else "")
        if key == "top_reasons":
            click.echo("not done, by reason:" if value else "not done: none")
            for state, reason, count in value:
                click.echo(f"  {state:8} {count:>8,}  {reason}")
            continue
        if key == "busiest_hosts":
            click.echo("busiest hosts:" if value else "busiest hosts: none queued")
            for host, queued in value:
                click.echo(f"  {host:40} {queued:>10,}")
        else:
            click.echo(f"{key:>14}: {value}")


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="output format",
)
@click.option("--failed", is_flag=True, help="only fetches that did not store a file")
@click.option(
    "-o", "--output", type=click.File("w"), default="-", help="write here (default: stdout)"
)
def export(out: str, fmt: str, failed: bool, output: Any) -> None:
    """Print the fetch records of OUT as JSON lines or CSV.

    In CSV, a text cell that a spreadsheet would run as a formula (one starting with = + - @)
    gets a leading ' so it shows as text; JSON lines keep every value as it was recorded.
    """
    from storage import export_csv, export_jsonl
    from storage.records import RECORDS_DIR
    from workers.job import SQLITE_NAME

    folder = Path(out)
    if not (folder / RECORDS_DIR).is_dir() and not (folder / SQLITE_NAME).exists():
        # As `crawl status` says: a mistyped OUT must not pass for a crawl with no records.
        raise click.ClickException(f"no crawl in {out} (no {RECORDS_DIR}/ nor {SQLITE_NAME})")
    writer = export_jsonl if fmt == "jsonl" else export_csv
    report = writer(Path(out), output, failed_only=failed)
    for problem in report.problems:
        click.echo(
            f"warning: {problem.path}: {problem.kind} at byte {problem.offset}: {problem.detail}",
            err=True,
        )


@main.command()
@click.option("--pages", type=int, default=300, show_default=True, help="pages on the demo site")
@click.option("--hosts", type=int, default=3, show_default=True, help="local hosts (ports)")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="worker processes")
@click.option("--progress/--no-progress", default=None, help="live progress (auto: on a terminal)")
def demo(pages: int, hosts: int, out: str, workers: int, progress: bool | None) -> None:
    """Serve a generated local site and crawl it (works offline)."""
    from crawler.demo_site import DemoSiteProcess, SiteError, SiteSpec

    settings = _settings({"out": out, "workers": workers, "progress": progress}, job="demo")
    try:
        SiteSpec(pages=pages, hosts=hosts)  # a bad size is a usage error, said before serving
    except SiteError as error:
        raise click.UsageError(str(error)) from None
    _check_out_writable(settings.out)
    # The site is served by a process of its own, so it is not what limits the crawl.
    with DemoSiteProcess(["--pages", str(pages), "--hosts", str(hosts)]) as served:
        click.echo(f"demo site: {len(served.seeds)} hosts, seeds {', '.join(served.seeds)}")
        code = _run_crawl(settings, served.seeds)
    click.echo(f"records: crawl export {out} | head ; files under {out}/files/")
    sys.exit(code)


def _file_name(file: Any) -> str:
    name = getattr(file, "name", "-")
    return "standard input" if name in ("-", "<stdin>") else repr(name)


def _read_seeds(lines: Iterable[str]) -> Iterable[str]:
    """URLs, one a line: blank lines and `#` lines skipped, and anything after the URL (a
    space, then a comment) dropped, since a URL has no spaces; a BOM (Windows editors write
    one) is not part of the first URL."""
    for number, line in enumerate(lines):
        if number == 0:
            line = line.removeprefix("\ufeff")
        words = line.split(None, 1)
        if words and not words[0].startswith("#"):
            yield words[0]


def _run_crawl(settings: Settings, seeds: list[str], *, recrawl: bool = False) -> int:
    from workers.run import run_crawl

    try:
        return run_crawl(settings, seeds, recrawl=recrawl)
    except Exception as error:
        # The frontier (and asyncio under it) is imported only after the workers started.
        from crawler.frontier import FrontierError

        if isinstance(error, FrontierError):
            raise click.ClickException(str(error)) from None
        raise
