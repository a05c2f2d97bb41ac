"""The benchmark scripts run end to end, at toy sizes, and print a row per contender.

What they measure is not checked here (no timing assertions in tests): only that a user who
runs one gets its table, so a change to the client, storage or CLI cannot silently break the
benchmarks that the figures in our notes come from. Scrapy, wget2 and aria2c are benchmark
extras, so only the contenders the test environment has are asked for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.binaries import require_binary

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench"
RUN_TIMEOUT_S = 240


def run_bench(script: str, *args: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=cwd,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout.splitlines()


def rows(lines: list[str], *names: str) -> dict[str, list[str]]:
    """The table rows whose first column is one of `names`, split into columns (the first
    such row per name: the ratio lines after a table start with the same names)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        columns = line.split()
        if columns and columns[0] in names:
            found.setdefault(columns[0], columns)
    return found


def test_download_bench_runs_ours_against_curl_and_aiohttp(tmp_path: Path) -> None:
    require_binary("curl")
    lines = run_bench(
        "download.py",
        "--size-mib", "2", "--rounds", "1", "--contenders", "ours,mirror,curl,aiohttp",
        "--dir", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    table = rows(lines, "ours", "mirror", "curl", "aiohttp")
    assert set(table) == {"ours", "mirror", "curl", "aiohttp"}
    assert table["curl"][2] == "1.00x"
    # The last column is the peak RSS in MiB: a figure, measured for everyone.
    assert all(float(columns[-1]) > 0 for columns in table.values())


def test_client_bench_runs_every_part(tmp_path: Path) -> None:
    lines = run_bench(
        "client.py",
        "--rounds", "1", "--requests", "200", "--big-mib", "2", "--loops", "asyncio",
        "--clients", "ours,aiohttp", "--data-dir", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    parts = {(c[0], c[2]) for c in (line.split() for line in lines) if len(c) > 2}
    for part in ("get", "stream", "upload"):
        assert (part, "ours") in parts and (part, "aiohttp") in parts, lines


def test_upload_bench_runs(tmp_path: Path) -> None:
    lines = run_bench(
        "upload.py", "--size-mib", "2", "--repeat", "1", "--loops", "asyncio",
        "--file", str(tmp_path / "upload.bin"),
        cwd=tmp_path,
    )  # fmt: skip
    clients = {c[1] for c in (line.split() for line in lines) if len(c) > 2 and c[0] == "asyncio"}
    assert clients == {"ours", "aiohttp"}


def test_frontier_bench_runs_both_backends(tmp_path: Path) -> None:
    require_binary("redis-server")
    lines = run_bench(
        "frontier.py", "--urls", "2000", "--hosts", "50", "--batches", "16", "--rounds", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert set(rows(lines, "redis", "sqlite", "floor")) == {"redis", "sqlite", "floor"}


def test_crawl_bench_runs_our_one_and_two_process_crawls(tmp_path: Path) -> None:
    require_binary("nginx")
    lines = run_bench(
        "crawl.py", "--pages", "60", "--rounds", "1", "--only", "ours-1", "ours-2",
        "--scratch", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    table = rows(lines, "ours-1", "ours-2")
    assert set(table) == {"ours-1", "ours-2"}
    # Both crawls fetched the whole site: the same page count, and more than the 60 pages
    # (the site has a few extra resources and error pages besides them).
    assert table["ours-1"][1] == table["ours-2"][1]
    assert int(table["ours-1"][1]) >= 60


def test_extract_bench_runs(tmp_path: Path) -> None:
    lines = run_bench("extract.py", "--links", "40", "--seconds", "0.2", cwd=tmp_path)
    assert any(line.startswith("crawler.extract") and "pages/s" in line for line in lines)


@pytest.mark.parametrize(
    "script", ["client.py", "crawl.py", "download.py", "extract.py", "frontier.py", "upload.py"]
)
def test_bench_help_explains_itself(script: str, tmp_path: Path) -> None:
    lines = run_bench(script, "--help", cwd=tmp_path)
    assert lines and lines[0].startswith("usage:")
