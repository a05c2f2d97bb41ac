"""What a user's mistakes get: a one-line error and a non-zero exit, never a traceback, a fork
bomb, or a job created by a command that only reads or joins one."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from contextlib import chdir
from pathlib import Path
from unittest import mock

import pytest
import redis
from click.testing import CliRunner

from crawler import commands
from crawler.config import Settings
from crawler.frontier import open_frontier
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.small_disk import small_disk
from tests.workers.support import crawl, crawl_env


def test_a_huge_worker_count_is_refused_before_anything_starts(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    (workdir / "crawl.toml").write_text("workers = 99999\n")
    done = crawl("run", seeds, "--out", workdir / "out", cwd=workdir, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "bad setting workers=99999 from " in done.stderr
    assert "crawl.toml: must be between 0 and 256" in done.stderr
    assert not (workdir / "out").exists()


def test_a_config_file_that_is_not_utf8_is_a_usage_error(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    (workdir / "bad.toml").write_bytes(b"\xff\xfe")
    done = crawl("run", seeds, "--config", workdir / "bad.toml", cwd=workdir, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is not valid TOML: not UTF-8 text" in done.stderr


def test_max_depth_none_on_the_command_line_lifts_the_config_s_limit(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    (workdir / "crawl.toml").write_text("max_depth = 2\n")
    out = workdir / "out"
    done = crawl("run", seeds, "--out", out, "--workers", "0", "--max-depth", "none", cwd=workdir)
    assert done.returncode == 0, done.stderr

    async def stored_depth() -> int | None:
        frontier = await open_frontier(out / "frontier.sqlite", "default")
        try:
            return frontier.settings.scope.max_depth
        finally:
            await frontier.close()

    assert asyncio.run(stored_depth()) is None


def test_seed_lines_lose_a_bom_and_whatever_follows_the_url(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text(
        "\ufeffhttp://127.0.0.1:1/a\n  http://127.0.0.1:1/b   # the second one\n# none\n\n",
        encoding="utf-8",
    )
    done = crawl("run", seeds, "--out", workdir / "out", "--workers", "0", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "2 new seed(s)" in done.stderr and "not added" not in done.stderr


def test_a_worker_for_a_crawl_that_does_not_exist_says_so(workdir: Path) -> None:
    done = crawl("worker", "--out", workdir / "nothere", cwd=workdir, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no job 'default' in" in done.stderr and "crawl run SEEDS --out" in done.stderr
    assert not (workdir / "nothere" / "frontier.sqlite").exists()


def test_a_worker_and_status_for_a_redis_job_that_does_not_exist_create_nothing(
    workdir: Path, clean_redis: RedisServer
) -> None:
    for command in (
        ["worker", "--redis", clean_redis.url, "--job", "typo", "--out", workdir / "out"],
        ["status", "--redis", clean_redis.url, "--job", "typo"],
    ):
        done = crawl(*command, cwd=workdir, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "no job 'typo' at " in done.stderr
    client = redis.Redis.from_url(clean_redis.url)
    try:
        assert client.keys("*") == []
    finally:
        client.close()


def test_a_worker_whose_redis_is_unreachable_gets_one_line(workdir: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = crawl("worker", "--redis", url, "--job", "j", "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "unreachable" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_rerun_of_a_finished_mirror_says_what_failed_and_recrawl_fetches_it(
    workdir: Path,
) -> None:
    from crawler.demo_site import SiteSpec, site_in_thread

    port = free_port()
    url = f"http://127.0.0.1:{port}/files/data.bin"
    out = workdir / "out"
    args = ["mirror", url, "--out", out, "--no-progress", "--retries", "0"]
    first = crawl(*args, cwd=workdir, timeout=120)  # nothing listens there yet
    assert first.returncode == 0, first.stderr
    again = crawl(*args, cwd=workdir, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "1 URL(s) failed in an earlier run" in again.stderr
    assert "run again with --recrawl to try them again" in again.stderr
    with site_in_thread(SiteSpec(pages=3), ports=[port]):
        fixed = crawl(*args, "--recrawl", cwd=workdir, timeout=120)
    assert fixed.returncode == 0, fixed.stderr
    assert "failed in an earlier run" not in fixed.stderr
    assert (out / "files" / f"127.0.0.1+{port}" / "files" / "data.bin").is_file()


def test_seeds_that_are_all_unusable_are_a_usage_error(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("garbage\nftp://example.com/x\n")
    done = crawl("run", seeds, "--out", workdir / "out", "--no-progress", cwd=workdir)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "seed not added: 'garbage'" in done.stderr
    assert "none of the 2 seed URL(s) can be crawled" in done.stderr


def test_export_of_a_folder_that_holds_no_crawl_says_so(workdir: Path) -> None:
    """A mistyped OUT gets the error `crawl status` gives, not an empty export and exit 0."""
    (workdir / "empty").mkdir()
    for out in (workdir / "missing", workdir / "empty"):
        for command in (("export", out), ("status", out)):
            done = crawl(*command, cwd=workdir, timeout=60)
            assert done.returncode == 1, (command, done.stderr)
            assert f"Error: no crawl in {out} (" in done.stderr
    assert not (workdir / "missing").exists()
    # A crawl seeded but not yet run has no records, and an empty export is its true answer.
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    seeded = workdir / "seeded"
    assert crawl("run", seeds, "--out", seeded, "--workers", "0", cwd=workdir).returncode == 0
    done = crawl("export", seeded, cwd=workdir, timeout=60)
    assert (done.returncode, done.stdout) == (0, "")


def test_an_out_that_cannot_be_written_is_one_line_before_anything_starts(workdir: Path) -> None:
    """A read-only OUT (or one inside it), or one under a file: exit 75, as when OUT fills up
    mid-crawl, with the reason, and no traceback; `demo` says so before serving its site."""
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    (workdir / "a-file").write_text("")
    with small_disk(workdir / "ro", 1 << 20) as disk:
        disk.read_only()
        read_only = "Read-only file system"
        cases = [
            (("run", seeds, "--out", workdir / "ro"), workdir / "ro", read_only),
            (("run", seeds, "--out", workdir / "ro" / "o"), workdir / "ro" / "o", read_only),
            (("mirror", "http://127.0.0.1:1/x", "--out", workdir / "ro" / "m"), None, "Read-only"),
            (("demo", "--out", workdir / "ro" / "d"), None, "Read-only file system"),
            (("run", seeds, "--out", workdir / "a-file" / "o"), None, "Not a directory"),
        ]
        for args, out, why in cases:
            done = crawl(*args, "--no-progress", cwd=workdir, timeout=60)
            assert done.returncode == 75, (args, done.stderr)
            assert "Traceback" not in done.stderr and "demo site:" not in done.stdout
            line = done.stderr.strip().splitlines()[-1]
            assert line.startswith("Error: cannot write under ") and why in line, line
            if out is not None:
                assert line == f"Error: cannot write under {out}: {why}"


def test_a_variable_spelt_as_its_flag_stops_the_crawl_before_it_starts(workdir: Path) -> None:
    """CRAWL_ACCEPT_TYPE (from --accept-type) used to be ignored, and every body stored."""
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    env = crawl_env(CRAWL_ACCEPT_TYPE="application/pdf")
    done = crawl("run", seeds, "--out", workdir / "out", cwd=workdir, env=env, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: CRAWL_ACCEPT_TYPE is not read: the variable of setting accept_types is "
        "CRAWL_ACCEPT_TYPES"
    )
    assert not (workdir / "out").exists()


def test_a_seeds_file_that_is_not_utf8_requests_its_bytes_as_typed(workdir: Path) -> None:
    """A Latin-1 editor's "é" is byte E9: requested as %E9, not a UnicodeDecodeError."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        seeds = workdir / "seeds.txt"
        seeds.write_bytes(f"http://127.0.0.1:{server.server_port}/caf\xe9\n".encode("latin-1"))
        done = crawl("run", seeds, "--out", workdir / "out", "--workers", "1", "--no-robots",
                     "--no-progress", cwd=workdir)  # fmt: skip
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert asked == ["/caf%E9"]


def test_an_empty_input_file_of_mirror_is_named(workdir: Path) -> None:
    (workdir / "urls.txt").write_text("# none yet\n")
    done = crawl("mirror", "-i", "urls.txt", "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert "Error: no URLs in 'urls.txt' (one URL a line)" in done.stderr


def _settings_of_run(args: list[str], workdir: Path, env: dict[str, str]) -> Settings:
    """The settings `crawl run ARGS` would crawl with (the crawl itself is not started)."""
    seen: list[Settings] = []

    def capture(settings: Settings, seeds: list[str], *, recrawl: bool = False) -> int:
        seen.append(settings)
        return 0

    (workdir / "seeds.txt").write_text("http://127.0.0.1:1/\n")
    runner = CliRunner()
    with mock.patch.object(commands, "_run_crawl", capture), chdir(workdir):
        result = runner.invoke(commands.main, ["run", "seeds.txt", *args], env=env)
    assert result.exit_code == 0, result.output
    return seen[0]


@pytest.mark.parametrize(
    ("args", "toml", "env", "robots", "verify_tls"),
    [
        ([], "", {}, True, True),
        (["--no-robots", "--insecure"], "", {}, False, False),
        (["--robots"], "robots = false\n", {}, True, True),
        (["--verify-tls"], "verify_tls = false\n", {}, True, True),
        (["--robots", "--verify-tls"], "", {"CRAWL_ROBOTS": "0", "CRAWL_VERIFY_TLS": "false"},
         True, True),
        ([], "robots = false\nverify_tls = false\n", {}, False, False),
    ],
)  # fmt: skip
def test_robots_and_tls_flags_override_the_config_both_ways(
    workdir: Path,
    args: list[str],
    toml: str,
    env: dict[str, str],
    robots: bool,
    verify_tls: bool,
) -> None:
    (workdir / "crawl.toml").write_text(toml)
    settings = _settings_of_run(args, workdir, env)
    assert (settings.robots, settings.verify_tls) == (robots, verify_tls)


def test_each_worker_says_where_its_metrics_are(workdir: Path) -> None:
    """With --metrics-port 0 the chosen port is known nowhere else."""
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    done = crawl("run", seeds, "--out", workdir / "out", "--workers", "2", "--no-robots",
                 "--retries", "0", "--no-progress", "--metrics-port", "0", "--log-format",
                 "json", cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    served = [entry for entry in said if entry["event"] == "metrics"]
    assert sorted(entry["worker"] for entry in served) == [0, 1]
    assert all(entry["port"] > 0 for entry in served)
    assert all(entry["message"].endswith(f":{entry['port']}/metrics") for entry in served)


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("example.com/f.iso", "(give the scheme: 'https://example.com/f.iso' or 'http://"),
        ("localhost:8000/a", "(give the scheme: 'https://localhost:8000/a' or 'http://"),
        ("mailto:a@b.test", None),
        ("/tmp/file", None),
    ],
)
def test_a_url_without_its_scheme_gets_a_hint(workdir: Path, given: str, hint: str | None) -> None:
    done = crawl("mirror", given, "--out", workdir / "out", "--no-progress", cwd=workdir)
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"seed not added: {given!r}: ")
    if hint is None:
        assert "give the scheme" not in first
    else:
        assert first.endswith(hint + given + "')")
