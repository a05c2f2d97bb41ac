"""Running the real `crawl` command against demo sites, and reading what it left in OUT."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crawler.demo_site import ServedSite, Site
from crawler.urls import canonical_parts
from storage import FetchRecord, ReadReport, read_records

ROOT = Path(__file__).resolve().parents[2]
# Generous: these run on a loaded 2-core machine next to other test suites.
RUN_TIMEOUT = 240.0


# A crawl honours these as curl does (`--proxy env`, the default): a proxy of the machine that
# runs the tests must not stand between the crawler and the local test sites.
PROXY_VARIABLES = frozenset(
    f"{name}_proxy" for name in ("http", "https", "all", "no")
) | frozenset(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO"))


def crawl_env(**extra: str) -> dict[str, str]:
    """The environment for a `crawl` child: ours without CRAWL_* settings or proxy variables,
    plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRAWL_") and k not in PROXY_VARIABLES
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def crawl_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "crawler.cli", *map(str, args)]


def crawl(
    *args: str | os.PathLike[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `crawl ARGS` to its end; returns the finished process (stdout, stderr as text)."""
    return subprocess.run(
        crawl_command(*args),
        cwd=cwd,
        env=env if env is not None else crawl_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_crawl(
    *args: str | os.PathLike[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `crawl ARGS` in the background, its output going to `log` (or nowhere)."""
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            crawl_command(*args),
            cwd=cwd,
            env=env if env is not None else crawl_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    finally:
        if log is not None:
            output.close()  # type: ignore[union-attr]


def wait_all(
    processes: Sequence[subprocess.Popen[bytes]], timeout: float = RUN_TIMEOUT
) -> list[int]:
    """Exit codes of `processes`; kills them all and fails if any outlives `timeout`."""
    deadline = time.monotonic() + timeout
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        raise AssertionError(f"crawl processes still running after {timeout:.0f}s") from None
    return codes


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill a process if it still runs (cleanup after a failed test)."""
    if process.poll() is None:
        process.kill()
        process.wait()


def wait_for(
    condition: Callable[[], object], what: str, timeout: float = RUN_TIMEOUT, every: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def interrupt(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGINT to the process, or to its whole process group as a terminal's Ctrl-C does."""
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)


def records(out: Path) -> list[FetchRecord]:
    report = ReadReport()
    found = list(read_records(out, report))
    assert not report.problems, report.problems
    return found


def record_count(out: Path) -> int:
    """Records so far (torn last frames of running writers are not counted)."""
    return sum(1 for _ in read_records(out, ReadReport()))


def by_url(found: Iterable[FetchRecord]) -> dict[str, list[FetchRecord]]:
    grouped: dict[str, list[FetchRecord]] = collections.defaultdict(list)
    for record in found:
        grouped[record.url].append(record)
    return dict(grouped)


def duplicates(found: Iterable[FetchRecord]) -> dict[str, int]:
    counts = collections.Counter(record.url for record in found)
    return {url: n for url, n in counts.items() if n > 1}


@dataclass(frozen=True, slots=True)
class Expected:
    """What a correct crawl of a demo site records: each URL and its final HTTP status, or
    "skipped" for a URL robots.txt disallows."""

    outcomes: dict[str, int | str]

    @property
    def urls(self) -> set[str]:
        return set(self.outcomes)


def expected_crawl(site: Site, *, robots: bool = True) -> Expected:
    """Every URL a crawl from the seeds records. Redirects are tasks of their own (their
    targets are fetched as links); with robots obeyed, links into /private/ are recorded as
    skipped and not fetched, so nothing behind them is found."""
    outcomes: dict[str, int | str] = {}
    reachable = site.reachable(robots=robots)
    for url in reachable:
        outcomes[canonical(url)] = site.status_of(url)
    if robots:
        for url in reachable:
            for link in site.links.get(url, ()):
                if site.disallowed(link):
                    outcomes[canonical(link)] = "skipped"
    return Expected(outcomes)


def canonical(url: str) -> str:
    """The URL as the frontier keeps it (and records name it): hostile spellings such as
    `%2e%2e` segments come out resolved."""
    return canonical_parts(url).url


def get_counts(served: ServedSite) -> collections.Counter[tuple[int, str]]:
    """How often each (host, path) was asked for with GET, from the server's own log."""
    assert served.server.log is not None
    return collections.Counter(
        (entry.host, entry.path) for entry in served.server.log if entry.method == "GET"
    )


def files_outside(out: Path, allowed: Iterable[str]) -> list[Path]:
    """Entries at the top of OUT other than the expected ones."""
    names = set(allowed)
    return [path for path in out.iterdir() if path.name not in names]
