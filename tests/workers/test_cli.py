"""The `crawl` command as a user runs it: help, usage errors, exit codes, status, export,
mirror, progress and metrics."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from crawler.demo_site import GeneratedBody, SiteSpec, site_in_thread
from crawler.frontier import open_frontier
from storage import Outcome
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.workers.support import (
    by_url,
    crawl,
    crawl_env,
    record_count,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- help -----------------------------------------------------------------------------------


def test_the_main_help_lists_every_command(workdir: Path) -> None:
    done = crawl("--help", cwd=workdir)
    assert done.returncode == 0
    for command in ("run", "worker", "status", "export", "mirror", "demo"):
        assert f"  {command} " in done.stdout
    assert "crawl run seeds.txt --out out/" in done.stdout


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        ("run", ["SEEDS", "--out", "--redis", "--per-host", "concurrent fetches per host",
                 "--workers", "--robots / --no-robots", "--metrics-port", "--max-depth", "--fsync",
                 "Exit codes: 0 finished", "75 OUT cannot be written", "130 interrupted"]),
        ("worker", ["--redis", "--job", "Join a crawl", "--concurrency"]),
        ("status", ["OUT", "--redis", "--json", "queued, leased, done"]),
        ("export", ["--format", "jsonl", "csv", "--failed", "-o"]),
        ("mirror", ["-i, --input-file", "Range request", "--out", "--verify-tls / --insecure"]),
        ("demo", ["--pages", "--hosts", "offline"]),
    ],
)  # fmt: skip
def test_each_command_explains_its_options(workdir: Path, command: str, phrases: list[str]) -> None:
    done = crawl(command, "--help", cwd=workdir)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for phrase in phrases:
        assert phrase in text, phrase


# --- usage errors: exit 2 with one line naming the setting ----------------------------------


@pytest.fixture
def seeds(workdir: Path) -> Path:
    path = workdir / "seeds.txt"
    path.write_text("# a comment\nhttp://127.0.0.1:9/\n")
    return path


def test_a_bad_flag_value_is_exit_2_naming_the_setting_and_the_flag(
    workdir: Path, seeds: Path
) -> None:
    done = crawl("run", seeds, "--per-host", "0", "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert last_line(done.stderr) == ("Error: bad setting per_host=0 from --per-host: must be >= 1")
    assert not (workdir / "out").exists()


def test_a_bad_environment_value_names_the_variable(workdir: Path, seeds: Path) -> None:
    env = crawl_env(CRAWL_CONCURRENCY="lots")
    done = crawl("run", seeds, "--out", workdir / "out", cwd=workdir, env=env)
    assert done.returncode == 2
    assert last_line(done.stderr) == (
        "Error: bad setting concurrency='lots' from CRAWL_CONCURRENCY: expected a whole number"
    )


def test_an_unknown_key_in_crawl_toml_suggests_the_right_one(workdir: Path, seeds: Path) -> None:
    (workdir / "crawl.toml").write_text("per-hots = 3\n")
    done = crawl("run", seeds, cwd=workdir)
    assert done.returncode == 2
    line = last_line(done.stderr)
    assert line.startswith("Error: unknown setting 'per-hots' in ")
    assert line.endswith("crawl.toml (did you mean per_host?)")


def test_flags_beat_the_environment_which_beats_crawl_toml(workdir: Path, seeds: Path) -> None:
    (workdir / "crawl.toml").write_text('per_host = 5\ndelay = 0.5\njob = "from-toml"\n')
    out = workdir / "out"
    env = crawl_env(CRAWL_PER_HOST="6", CRAWL_DELAY="0.25")
    done = crawl(
        "run", seeds, "--out", out, "--workers", "0", "--per-host", "7", cwd=workdir, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "job 'from-toml'" in done.stderr

    async def stored() -> tuple[int, float]:
        frontier = await open_frontier(out / "frontier.sqlite", "from-toml")
        try:
            return frontier.settings.per_host_limit, frontier.settings.per_host_delay
        finally:
            await frontier.close()

    assert asyncio.run(stored()) == (7, 0.25)


@pytest.mark.parametrize("frontier", ["sqlite", "redis"])
def test_a_resumed_crawl_follows_the_flags_of_the_run_that_resumes_it(
    workdir: Path, frontier: str, request: pytest.FixtureRequest
) -> None:
    # The first run stored its settings with the job (here: depth 0, 1 per host, seeds only);
    # the workers of a later run followed those, not the later run's own flags.
    with site_in_thread(SiteSpec(pages=40, hosts=1)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\n")
        out = workdir / "out"
        common = ["--out", out, "--no-robots", "--no-progress"]
        if frontier == "redis":
            redis_url = request.getfixturevalue("clean_redis").url
            common += ["--redis", redis_url, "--job", "resumed"]
        first = crawl(
            "run", seeds, *common, "--workers", "0", "--max-depth", "0", "--per-host", "1",
            cwd=workdir,
        )
        assert first.returncode == 0, first.stderr
        assert "settings changed" not in first.stderr
        if frontier == "redis":
            # Another machine's plain `crawl worker`, started after the change, follows the
            # job's settings, whatever its own (default) flags say.
            second = crawl("run", seeds, *common, "--workers", "0", "--per-host", "4", cwd=workdir)
            worker = crawl("worker", *common, cwd=workdir)
            assert worker.returncode == 0, worker.stderr
        else:
            second = crawl("run", seeds, *common, "--workers", "1", "--per-host", "4", cwd=workdir)
        assert second.returncode == 0, second.stderr
        assert (
            "settings changed since its last run: per_host_limit 1 -> 4; scope.max_depth 0 -> none"
            in second.stderr
        )
        found = records(workdir / "out")
        assert {record.url for record in found} == set(served.site.reachable(robots=False))
        assert max(served.server.max_active) <= 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "empty.txt"], "Error: no seed URLs in 'empty.txt' (one URL a line)"),
        (["mirror"], "Error: give URLs or -i FILE"),
        (["status"], "Error: give OUT (a SQLite crawl) or --redis URL --job NAME"),
        (["run", "missing.txt"], "Error: Invalid value for 'SEEDS': 'missing.txt': No such file"),
        (["run", "empty.txt", "--redis", "http://x"], "Error: bad setting redis='http://x'"),
    ],
)
def test_usage_errors_exit_2(workdir: Path, args: list[str], message: str) -> None:
    (workdir / "empty.txt").write_text("# nothing here\n\n")
    done = crawl(*args, cwd=workdir)
    assert done.returncode == 2, done.stderr
    assert last_line(done.stderr).startswith(message)


# --- status and export ----------------------------------------------------------------------


def test_status_of_a_sqlite_out_finds_its_job_by_itself(workdir: Path) -> None:
    out = workdir / "out"
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b\nhttp://127.0.0.2:9/\n")
    done = crawl("run", seeds, "--out", out, "--job", "nightly", "--workers", "0", cwd=workdir)
    assert done.returncode == 0, done.stderr
    shown = crawl("status", out, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "job: nightly" in lines
    assert "queued: 3" in lines
    assert "finished: False" in lines
    assert "busiest hosts:" in lines
    assert "127.0.0.1:9 2" in lines
    report = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
    assert (report["job"], report["queued"], report["done"]) == ("nightly", 3, 0)


def test_status_names_the_job_a_sqlite_out_holds_when_asked_for_another(workdir: Path) -> None:
    out = workdir / "out"
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    assert (
        crawl("run", seeds, "--out", out, "--job", "a", "--workers", "0", cwd=workdir).returncode
        == 0
    )
    shown = crawl("status", out, "--job", "b", cwd=workdir)
    assert shown.returncode == 1
    assert "holds job 'a', not 'b'" in last_line(shown.stderr)


def test_status_of_a_folder_without_a_crawl_is_an_error_not_a_new_crawl(workdir: Path) -> None:
    (workdir / "empty").mkdir()
    shown = crawl("status", workdir / "empty", cwd=workdir)
    assert shown.returncode == 1
    assert "no crawl in" in last_line(shown.stderr)
    assert list((workdir / "empty").iterdir()) == []


def test_export_writes_jsonl_and_csv_and_failed_keeps_only_what_stored_nothing(
    workdir: Path,
) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=30, hosts=2)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        done = crawl("run", seeds, "--out", out, "--workers", "1", "--no-progress", cwd=workdir)
        assert done.returncode == 0, done.stderr
    found = records(out)
    lines = crawl("export", out, cwd=workdir).stdout.splitlines()
    assert len(lines) == len(found)
    assert {json.loads(line)["url"] for line in lines} == {r.url for r in found}
    table = crawl("export", out, "--format", "csv", "--failed", cwd=workdir)
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    not_stored = [r for r in found if r.outcome is not Outcome.STORED]
    assert len(rows) == len(not_stored) > 0
    assert {row["url"] for row in rows} == {r.url for r in not_stored}
    assert {row["outcome"] for row in rows} == {"http-error", "not-stored", "skipped"}
    assert "404" in {row["status"] for row in rows}
    written = workdir / "all.csv"
    assert crawl("export", out, "--format", "csv", "-o", written, cwd=workdir).returncode == 0
    assert len(list(csv.DictReader(written.open()))) == len(found)
    # `crawl status` says why the rest was not done: the site's 404s and its robots.txt.
    report = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
    reasons = {(state, reason): count for state, reason, count in report["top_reasons"]}
    missing = sum(1 for r in found if r.status == 404)
    assert reasons[("failed", "HTTP 404 Not Found")] == missing > 0
    skipped = [r for r in found if r.outcome is Outcome.SKIPPED]
    robots = f"disallowed by {served.site.hosts[0].origin}/robots.txt"
    assert reasons[("skipped", robots)] == sum(r.url.startswith(served.seeds[0]) for r in skipped)
    text = crawl("status", out, cwd=workdir).stdout
    assert "not done, by reason:" in text
    assert f"failed   {missing:>8,}  HTTP 404 Not Found" in text


# --- signals and exit codes -----------------------------------------------------------------


@pytest.mark.timeout(300)
def test_sigint_stops_a_worker_with_130_and_hands_its_leases_back(workdir: Path) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=1000, hosts=2), latency=0.05) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        assert crawl("run", seeds, "--out", out, "--workers", "0", cwd=workdir).returncode == 0
        worker = start_crawl(
            "worker", "--out", out, "--no-progress", cwd=workdir, log=workdir / "worker.log"
        )
        try:
            wait_for(lambda: record_count(out) >= 50, "50 records")
            worker.send_signal(signal.SIGINT)
            (code,) = wait_all([worker])
        finally:
            stop(worker)
        assert code == 130, (workdir / "worker.log").read_text()
    report = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
    assert report["leased"] == 0
    assert report["queued"] > 0
    assert report["finished"] is False
    assert report["done"] + report["failed"] + report["skipped"] == len(records(out))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_second_sigint_stops_at_once_without_waiting_for_the_grace(
    workdir: Path, command: str
) -> None:
    out = workdir / "out"
    # A long grace and a slow download: only the second signal can end this soon.
    env = crawl_env(CRAWL_GRACE_SECONDS="3600")
    with site_in_thread(SiteSpec(pages=5, big_files=(50_000_000,)), rate=1e6) as served:
        listed = workdir / "files.txt"
        listed.write_text(served.seeds[0] + "files/big-0.bin\n")
        part = out / "files" / f"127.0.0.1+{served.site.hosts[0].port}" / "files" / "big-0.bin.part"
        assert crawl("run", listed, "--out", out, "--workers", "0", cwd=workdir).returncode == 0
        args = ["worker", "--out", out] if command == "worker" else ["run", listed, "--out", out]
        process = start_crawl(
            *args, "--workers", "1", "--max-depth", "0", "--no-progress",
            cwd=workdir, env=env, log=workdir / "log",
        )  # fmt: skip
        try:
            wait_for(lambda: part.exists() and part.stat().st_size > 100_000, "the download")
            process.send_signal(signal.SIGINT)
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=2)  # the first signal waits for the download
            process.send_signal(signal.SIGINT)
            (code,) = wait_all([process], timeout=60)
        finally:
            stop(process)
    assert code == 130, (workdir / "log").read_text()
    assert 0 < part.stat().st_size < 50_000_000


@pytest.mark.timeout(300)
def test_limit_rate_is_the_machine_s_shared_by_its_worker_processes(workdir: Path) -> None:
    size = 3_000_000
    with site_in_thread(SiteSpec(pages=1, big_files=(size, size))) as served:
        urls = [served.seeds[0] + f"files/big-{i}.bin" for i in range(2)]
        started = time.monotonic()
        done = crawl(
            "mirror", *urls, "--out", workdir / "out", "--workers", "2", "--limit-rate", "2MB",
            "--no-progress", cwd=workdir,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    found = records(workdir / "out")
    assert sorted(r.url for r in found) == urls
    assert all(r.outcome is Outcome.STORED and r.size == size for r in found)
    # Two processes, a file each, at their half of the 2 MB/s: 6 MB in about 3 s (each at
    # the whole 2 MB/s would take 1.5 s). A lower bound only: a slow machine makes it longer.
    assert elapsed >= (2 * size - 200_000) / 2_000_000 * 0.95


def test_mirror_starts_no_more_processes_than_it_has_files(workdir: Path) -> None:
    # Nothing but the listed files is ever fetched: a third process would have nothing to do.
    with site_in_thread(SiteSpec(pages=3)) as served:
        urls = [served.seeds[0] + name for name in ("", "files/data.bin")]
        done = crawl(
            "mirror", *urls, "--out", workdir / "out", "--workers", "3", "--no-progress",
            cwd=workdir,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(records(workdir / "out")) == 2
    # Each worker process leaves its counters in OUT/.progress, one file each.
    assert len(list((workdir / "out" / ".progress").glob("*.json"))) == 2


def test_mirror_from_a_list_resumes_a_partial_file_with_range(workdir: Path) -> None:
    out = workdir / "out"
    size = 20_000_000
    env = crawl_env(CRAWL_GRACE_SECONDS="0")
    with site_in_thread(
        SiteSpec(pages=5, big_files=(size,)), rate=4e6, log_requests=True
    ) as served:
        big = served.site.hosts[0].routes["/files/big-0.bin"]
        assert isinstance(big, GeneratedBody)
        listed = workdir / "files.txt"
        big_url = served.seeds[0] + "files/big-0.bin"
        listed.write_text(f"{big_url}\n{served.seeds[0]}files/data.bin\n")
        part = out / "files" / f"127.0.0.1+{served.site.hosts[0].port}" / "files" / "big-0.bin.part"
        args = ["mirror", "-i", listed, "--out", out, "--no-progress"]
        first = start_crawl(*args, cwd=workdir, env=env, log=workdir / "first.log")
        try:
            wait_for(lambda: part.exists() and part.stat().st_size >= 4_000_000, "4 MB")
            first.send_signal(signal.SIGINT)
            (code,) = wait_all([first])
        finally:
            stop(first)
        assert code == 130, (workdir / "first.log").read_text()
        kept = part.stat().st_size
        assert 0 < kept < size
        again = crawl(*args, cwd=workdir, env=env)
        assert again.returncode == 0, again.stderr
        ranges = [e.range for e in served.server.log or [] if e.path == "/files/big-0.bin"]
    history = by_url(records(out))[big_url]
    assert [r.outcome for r in history] == [Outcome.FAILED, Outcome.STORED]
    assert history[0].error == "cancelled"
    done = history[1]
    assert done.resumed_from is not None and 0 < done.resumed_from <= kept
    assert ranges == [None, f"bytes={done.resumed_from}-"]
    assert done.sha256 == big.sha256()
    assert done.path is not None
    assert hashlib.sha256((out / done.path).read_bytes()).hexdigest() == big.sha256()
    assert not part.exists()


# --- progress and metrics -------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_progress_is_logged_every_interval_when_not_on_a_terminal(
    workdir: Path, log_format: str, command: str
) -> None:
    # `crawl run` reports for its workers; `crawl worker` (a container's, another machine's)
    # for itself. Both show the frontier's backlog as "queued" while the crawl goes on.
    out = workdir / "out"
    env = crawl_env(CRAWL_PROGRESS_INTERVAL="0.2")
    with site_in_thread(SiteSpec(pages=600, hosts=2), latency=0.02) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        options = ["--out", out, "--per-host", "2", "--log-format", log_format]
        if command == "run":
            done = crawl("run", seeds, *options, "--workers", "1", cwd=workdir, env=env)
        else:
            seeded = crawl("run", seeds, *options, "--workers", "0", cwd=workdir, env=env)
            assert seeded.returncode == 0, seeded.stderr
            done = crawl("worker", *options, cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    if log_format == "text":
        progress = [line for line in lines if line.startswith("progress: ")]
        assert progress, done.stderr
        assert "pages/s" in progress[-1]
        queued = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) queued", done.stderr)]
        assert max(queued) > 0, done.stderr
        assert last_line(done.stderr).startswith("crawl finished in ")
    else:
        events = [json.loads(line) for line in lines if line.startswith("{")]
        kinds = [event["event"] for event in events]
        assert "progress" in kinds
        assert max(event["queued"] for event in events if event["event"] == "progress") > 0
        assert kinds[-1] == "summary"
        assert events[-1]["done"] + events[-1]["failed"] == len(
            [r for r in records(out) if r.outcome is not Outcome.SKIPPED]
        )


@pytest.mark.timeout(300)
def test_a_long_download_s_bytes_show_in_progress_while_it_arrives(workdir: Path) -> None:
    # Spliced in steps of SPLICE_STEP_BYTES (8 MiB), each reported: at 6 MB/s, about one
    # report a second and a half, over four seconds.
    size = 24_000_000
    env = crawl_env(CRAWL_PROGRESS_INTERVAL="0.2")
    with site_in_thread(SiteSpec(pages=1, big_files=(size,)), rate=6e6) as served:
        url = served.seeds[0] + "files/big-0.bin"
        done = crawl(
            "mirror", url, "--out", workdir / "out", "--log-format", "json", cwd=workdir, env=env
        )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    during = [e["bytes"] for e in events if e["event"] == "progress" and e["done"] == 0]
    assert any(0 < count < size for count in during), events
    assert events[-1]["event"] == "summary" and events[-1]["bytes"] == size


@pytest.mark.timeout(300)
def test_a_worker_serves_prometheus_metrics_while_it_crawls(workdir: Path) -> None:
    out = workdir / "out"
    port = free_port()
    with site_in_thread(SiteSpec(pages=400, hosts=2), latency=0.05) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        assert crawl("run", seeds, "--out", out, "--workers", "0", cwd=workdir).returncode == 0
        worker = start_crawl(
            "worker", "--out", out, "--metrics-port", str(port), "--no-progress",
            cwd=workdir, log=workdir / "worker.log",
        )  # fmt: skip
        scraped: list[str] = []

        def done_fetches() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            scraped.append(text)
            for line in text.splitlines():
                if line.startswith('crawl_fetch_results_total{result="done"}'):
                    return float(line.split()[-1]) > 0
            return False

        try:
            wait_for(done_fetches, "metrics with done fetches", every=0.2)
            (code,) = wait_all([worker])
        finally:
            stop(worker)
        assert code == 0, (workdir / "worker.log").read_text()
    text = scraped[-1]
    assert 'crawl_fetches_total{status_class="2xx"}' in text
    assert "crawl_fetch_duration_seconds_bucket" in text
    assert 'crawl_worker{job="default",worker="0"} 1.0' in text


def test_a_download_cut_at_the_end_of_the_grace_is_handed_back_not_failed(
    workdir: Path, clean_redis: RedisServer
) -> None:
    """With Redis its lease would otherwise hold the URL from every worker for a lease's time
    (a rerun sat idle a minute), and the summary called an interrupted download failed."""
    out = workdir / "out"
    size = 20_000_000
    env = crawl_env(CRAWL_GRACE_SECONDS="0")
    with site_in_thread(SiteSpec(pages=2, big_files=(size,)), rate=4e6) as served:
        big_url = served.seeds[0] + "files/big-0.bin"
        part = out / "files" / f"127.0.0.1+{served.site.hosts[0].port}" / "files" / "big-0.bin.part"
        common = ["--redis", clean_redis.url, "--job", "cut", "--out", out, "--no-progress"]
        first = start_crawl("mirror", big_url, *common, cwd=workdir, env=env,
                            log=workdir / "first.log")  # fmt: skip
        try:
            wait_for(lambda: part.exists() and part.stat().st_size >= 2_000_000, "2 MB")
            first.send_signal(signal.SIGINT)
            (code,) = wait_all([first])
        finally:
            stop(first)
        said = (workdir / "first.log").read_text()
        assert code == 130, said
        assert " 0 failed," in said, said
        shown = crawl("status", "--redis", clean_redis.url, "--job", "cut", "--json", cwd=workdir)
        report = json.loads(shown.stdout)
        assert (report["leased"], report["queued"], report["failed"]) == (0, 1, 0), report
        (cut,) = records(out)
        assert cut.error == "cancelled" and 0 < cut.received <= part.stat().st_size


def test_status_during_a_crawl_gives_its_rates(workdir: Path) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=400), latency=0.02) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\n")
        run = start_crawl("run", seeds, "--out", out, "--workers", "1", "--concurrency", "8",
                          "--no-robots", "--no-progress", cwd=workdir)  # fmt: skip
        try:
            wait_for(lambda: (out / "records").is_dir() and len(records(out)) >= 20, "20 pages")
            during = crawl("status", out, cwd=workdir)
            as_json = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
            (code,) = wait_all([run])
        finally:
            stop(run)
        assert code == 0
    assert during.returncode == 0, during.stderr
    assert re.search(r"rates: [0-9,.]+ pages/s done, [0-9,.]+/s settled", during.stdout)
    assert as_json["done_per_s"] > 0 and as_json["settled_per_s"] >= as_json["done_per_s"]
    after = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
    assert after["finished"] and after["done_per_s"] is None  # nothing left to measure
