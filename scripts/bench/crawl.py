"""Whole-crawl speed: `crawl run` against Scrapy, wget2 and wget on one generated site.

    python scripts/bench/crawl.py [--pages 5000] [--rounds 3] [--concurrency 64]

Generates a site of --pages linked pages (crawler.demo_site), serves its files with nginx so the
server is not what is measured, and crawls it from its home page, interleaving the contenders
round by round:

    ours-1    crawl run --workers 1 --concurrency 64 --per-host 64 --no-robots --delay 0
    ours-2    crawl run --workers 2 --concurrency 32 (the same 64 fetches in all, 2 processes)
    scrapy    scripts/bench/_scrapy_crawl.py: CONCURRENT_REQUESTS(_PER_DOMAIN)=64, robots off,
              no delay, no retries, stores nothing (needs `pip install -e '.[bench]'`)
    wget2     wget2 -r --max-threads=16 --robots=off (when installed)
    wget      wget -r -e robots=off (when installed)

Each run is timed from process start to exit (start-up included, for everyone); pages is what
the tool fetched (our records, Scrapy's responses, the files wget wrote). Outputs go to a fresh
folder per run on tmpfs (/dev/shm) when there is one: this measures the crawlers, not the disk.
`crawl` writes no fsync (CRAWL_FSYNC=never), as neither wget writes one. Our source is
compiled to bytecode once before the rounds (into the scratch folder), as an installed
package's is: where PYTHONDONTWRITEBYTECODE is set, each of our processes would otherwise
compile every module anew at start-up, which the rivals, installed with their bytecode, never
do. Prints pages/s per tool (median and best of the rounds) and our ratios against each rival.
`--baseline DIR` adds `crawl run` from another source tree of this project, for before/after
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import compile_trees  # noqa: E402

from crawler.demo_site import NginxSite, SiteSpec, build_site, write_site  # noqa: E402
from crawler.demo_site.server import bind_sockets  # noqa: E402
from storage import read_records  # noqa: E402

SCRAPY_SCRIPT = Path(__file__).with_name("_scrapy_crawl.py")
RUN_TIMEOUT = 900


@dataclass
class Contender:
    name: str
    command: Callable[[str, Path], list[str]]
    count: Callable[[Path, str], int]
    ok_codes: tuple[int, ...] = (0,)
    env: dict[str, str] | None = None
    unset_env: tuple[str, ...] = ()
    times: list[float] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [p / t for p, t in zip(self.pages, self.times, strict=True)]


def ours(workers: int, concurrency: int) -> Callable[[str, Path], list[str]]:
    def command(seed: str, out: Path) -> list[str]:
        seeds = out.with_suffix(".seeds")
        seeds.write_text(seed + "\n")
        return [
            sys.executable, "-m", "crawler.cli", "run", str(seeds), "--out", str(out),
            "--workers", str(workers), "--concurrency", str(concurrency), "--per-host", "64",
            "--no-robots", "--delay", "0", "--no-progress",
        ]  # fmt: skip

    return command


def count_records(out: Path, _stdout: str) -> int:
    return sum(1 for record in read_records(out) if record.status is not None)


def scrapy_command(concurrency: int) -> Callable[[str, Path], list[str]]:
    return lambda seed, out: [
        sys.executable, str(SCRAPY_SCRIPT), "--concurrency", str(concurrency), seed,
    ]  # fmt: skip


def count_scrapy(_out: Path, stdout: str) -> int:
    return int(json.loads(stdout.strip().splitlines()[-1])["pages"])


def count_files(out: Path, _stdout: str) -> int:
    return sum(1 for path in out.rglob("*") if path.is_file())


def wget2_command(binary: str) -> Callable[[str, Path], list[str]]:
    return lambda seed, out: [
        binary, "-r", "--max-threads=16", "--robots=off", "-q", "-P", str(out), seed,
    ]  # fmt: skip


def wget_command(binary: str) -> Callable[[str, Path], list[str]]:
    return lambda seed, out: [binary, "-r", "-e", "robots=off", "-q", "-P", str(out), seed]


def scratch_root(requested: str | None) -> Path:
    if requested:
        return Path(tempfile.mkdtemp(prefix="crawl-bench-", dir=requested))
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="crawl-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="crawl-bench-"))


def generate(pages: int, folder: Path) -> None:
    """The site's files for nginx, on ports free right now."""
    sockets = bind_sockets(1)
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        sock.close()
    write_site(build_site(SiteSpec(pages=pages, hosts=1), [port]), folder)


def run_one(contender: Contender, seed: str, out: Path) -> None:
    command = contender.command(seed, out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env = dict(os.environ, **(contender.env or {}))
    for name in contender.unset_env:
        env.pop(name, None)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=out, env=env, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in contender.ok_codes:
        raise SystemExit(
            f"{contender.name} failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stderr[-2000:]}"
        )
    contender.times.append(elapsed)
    contender.pages.append(contender.count(out, done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scratch", help="folder for the site and outputs (default: /dev/shm)")
    parser.add_argument("--only", nargs="*", help="contenders to run (default: all available)")
    parser.add_argument(
        "--baseline", metavar="DIR", help="also run `crawl run` from this source tree (base-1)"
    )
    args = parser.parse_args()

    scratch = scratch_root(args.scratch)
    # No fsync: neither wget writes one, and on tmpfs it would measure nothing anyway. Bytecode
    # from the cache `compile_trees` fills, as an installed package has it.
    pycache = str(scratch / "pycache")
    no_fsync = {"CRAWL_FSYNC": "never", "PYTHONPYCACHEPREFIX": pycache}
    bytecode = ("PYTHONDONTWRITEBYTECODE",)
    contenders = [
        Contender(
            "ours-1", ours(1, args.concurrency), count_records, env=no_fsync, unset_env=bytecode
        ),
        Contender(
            "ours-2",
            ours(2, max(1, args.concurrency // 2)),
            count_records,
            env=no_fsync,
            unset_env=bytecode,
        ),
    ]
    trees = [ROOT]
    if args.baseline:
        # Another tree of this project (e.g. `git archive OLD | tar -x -C DIR`), run the same way.
        trees.append(Path(args.baseline).resolve())
        baseline = {**no_fsync, "PYTHONPATH": str(trees[-1])}
        contenders.insert(
            0,
            Contender(
                "base-1",
                ours(1, args.concurrency),
                count_records,
                env=baseline,
                unset_env=bytecode,
            ),
        )
    try:
        import scrapy  # noqa: F401

        contenders.append(Contender("scrapy", scrapy_command(args.concurrency), count_scrapy))
    except ImportError:
        print("scrapy is not installed (pip install -e '.[bench]'): skipped", file=sys.stderr)
    for name, make in (("wget2", wget2_command), ("wget", wget_command)):
        binary = shutil.which(name)
        if binary:
            # Exit 8 is wget's "the server answered an error" (the site's 404 link): expected.
            contenders.append(Contender(name, make(binary), count_files, ok_codes=(0, 8)))
        else:
            print(f"{name} is not installed: skipped", file=sys.stderr)
    if args.only:
        contenders = [c for c in contenders if c.name in args.only]

    try:
        compile_trees(trees, pycache)
        site_dir = scratch / "site"
        generate(args.pages, site_dir)
        with NginxSite(site_dir) as nginx:
            seed = nginx.seeds[0]
            print(
                f"site: {args.pages} pages served by nginx at {seed}; outputs under {scratch}; "
                f"{args.rounds} rounds, interleaved",
                file=sys.stderr,
            )
            for round_number in range(args.rounds):
                for contender in contenders:
                    out = scratch / f"{contender.name}-{round_number}"
                    run_one(contender, seed, out)
                    print(
                        f"  round {round_number + 1}: {contender.name:7} {contender.pages[-1]:6} "
                        f"pages in {contender.times[-1]:6.2f} s",
                        file=sys.stderr,
                    )
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(contenders)


def report(contenders: list[Contender]) -> None:
    print(f"{'tool':8} {'pages':>6} {'median s':>9} {'pages/s (median)':>17} {'best':>8}")
    medians: dict[str, float] = {}
    for contender in contenders:
        rates = contender.rates()
        medians[contender.name] = statistics.median(rates)
        print(
            f"{contender.name:8} {statistics.median(contender.pages):6.0f} "
            f"{statistics.median(contender.times):9.2f} {medians[contender.name]:17,.0f} "
            f"{max(rates):8,.0f}"
        )
    if "base-1" in medians and "ours-1" in medians:
        print(f"ours-1 / base-1: {medians['ours-1'] / medians['base-1']:.2f}x")
    for ours_name in ("ours-1", "ours-2"):
        if ours_name not in medians:
            continue
        for rival in ("scrapy", "wget2", "wget"):
            if rival in medians:
                ratio = medians[ours_name] / medians[rival]
                print(f"{ours_name} / {rival}: {ratio:.2f}x (median pages/s)")
    if "ours-1" in medians and "ours-2" in medians:
        print(f"ours-2 / ours-1: {medians['ours-2'] / medians['ours-1']:.2f}x")


if __name__ == "__main__":
    main()
