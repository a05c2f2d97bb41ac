"""Saving one large file to disk: our client + storage against curl, wget, aria2c and aiohttp.

    python scripts/bench/download.py [--size-mib 1024] [--rounds 3] [--fsync never|on-close]

One file (random bytes) is served by nginx (or a Python server, --server) over loopback and
saved, by each contender in its own fresh process, into one temporary folder on the same
filesystem; the output is deleted (and the disk synced) before every run so the page cache
treats all alike, and, as root with iproute2, the kernel's TCP metrics for loopback are
flushed, so no run starts from the congestion window, RTT and reordering estimates the
previous tool's connection left (Linux seeds a new connection from them). Contenders:
  ours     storage.download(session, url, store), what `crawl mirror` does per file
           (spliced from the socket into a .part inside the kernel, sha256 from the page
           cache while it arrives, verified and renamed)
  mirror   the `crawl mirror URL --out DIR` command itself, start-up and frontier included
  curl     curl -o FILE          wget     wget -O FILE
  aria2c   aria2c -x1 -s1 --file-allocation=none (one connection)
  aiohttp  aiohttp, iter_chunked(64 KiB) written to a file
MB/s counts the whole process (start-up included); for the Python contenders the transfer
alone (from the session's start to the file in place, interpreter start and imports left out)
is printed too, with its ratio to curl's whole run. Peak RSS: each contender runs under GNU
`time -f %M`, whose child's ru_maxrss starts from the small `time` process (ru_maxrss survives
exec, so a child forked from this script would count its size); Python children also report
their VmHWM at exit. Without /usr/bin/time, VmHWM is read from /proc/<pid>/status while the
child runs (that polling slows a busy child a little). Best and median of --rounds; ratios are
to curl's; "paired" is the median over rounds of curl's time over the contender's in the
same round (steadier on a noisy machine). Every contender runs --warmup times untimed first
(cold binaries and libraries would otherwise slow whoever starts first). Our code runs with
its bytecode compiled once beforehand, as an installed package has it (see _bytecode.py): the
rivals never compile at start-up either.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import bytecode_env, compile_trees
from _file_server import FileServer

MiB = 1 << 20
CONTENDERS = ("ours", "mirror", "curl", "wget", "aria2c", "aiohttp")
# Our contenders run from this source tree with its bytecode compiled once (see _bytecode).
OURS = ("ours", "mirror")
ROOT = Path(__file__).resolve().parents[2]
# The Python contenders run in this script's own minimal child (see its docstring).
CHILD = Path(__file__).with_name("_download_child.py")
TOOLS = {"curl": "curl", "wget": "wget", "aria2c": "aria2c"}


# --- running and measuring one contender -----------------------------------------------------


@dataclass
class Run:
    process_seconds: float
    transfer_seconds: float | None
    peak_rss: int


def _hwm_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def command_for(name: str, url: str, out: Path, args: argparse.Namespace) -> list[str]:
    if name in ("ours", "aiohttp"):
        return [sys.executable, str(CHILD), name, url, str(out), args.fsync]
    if name == "mirror":
        crawl = shutil.which("crawl") or "crawl"
        return [crawl, "mirror", url, "--out", str(out / "mirror"), "--no-progress"]
    if name == "curl":
        return ["curl", "-s", "-S", "-f", "-o", str(out / "curl.bin"), url]
    if name == "wget":
        return ["wget", "-q", "-O", str(out / "wget.bin"), url]
    if name == "aria2c":
        return [
            "aria2c", "-q", "-x1", "-s1", "--file-allocation=none", "--allow-overwrite=true",
            "--auto-file-renaming=false", "-d", str(out), "-o", "aria2c.bin", url,
        ]  # fmt: skip
    raise ValueError(name)


def output_of(name: str, out: Path) -> Path:
    if name in ("ours", "mirror"):
        found = [p for p in out.rglob("big.bin") if p.is_file()]
        if len(found) != 1:
            raise SystemExit(f"{name}: expected one big.bin under {out}, found {found}")
        return found[0]
    return out / f"{name}.bin"


def measure(name: str, url: str, out: Path, args: argparse.Namespace) -> Run:
    env = dict(os.environ, CRAWL_FSYNC=args.fsync)
    if name in OURS:
        env = bytecode_env(args.pycache, env)
    command = command_for(name, url, out, args)
    rss_file = out.parent / "peak-rss.txt"
    timer = shutil.which("time", path="/usr/bin:/bin")
    if timer:
        # GNU time forks the contender itself: its ru_maxrss starts from that small process,
        # not from this one, and nobody has to look into the child while it works.
        command = [timer, "-f", "%M", "-o", str(rss_file), *command]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=out
    )
    peak = 0
    if timer:
        stdout, stderr = child.communicate()
    else:
        while child.poll() is None:
            # VmHWM only grows: the last reading before exit is the peak (within a few ms).
            peak = max(peak, _hwm_of(child.pid))
            time.sleep(0.003)
        stdout, stderr = child.communicate()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{name} failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    if timer:
        peak = int(rss_file.read_text().split()[-1]) * 1024
        rss_file.unlink()
    transfer = None
    if name in ("ours", "aiohttp"):
        report = json.loads(stdout.decode().strip().splitlines()[-1])
        transfer = report["seconds"]
        peak = max(peak, report["hwm"])
        if report["sha256"] and report["sha256"] != args.expected_sha256:
            raise SystemExit(f"{name}: recorded sha256 {report['sha256']} is wrong")
    saved = output_of(name, out)
    if saved.stat().st_size != args.size_mib * MiB:
        raise SystemExit(f"{name}: saved {saved.stat().st_size} bytes")
    if args.verify and sha256_of(saved) != args.expected_sha256:
        raise SystemExit(f"{name}: the saved file differs from the served one")
    return Run(elapsed, transfer, peak)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def clear(out: Path) -> None:
    for entry in out.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    os.sync()
    forget_tcp_metrics()


def forget_tcp_metrics() -> None:
    """Drop what the kernel remembers of earlier loopback connections (see the module doc);
    without root or `ip`, runs go on without it, and vary more."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        return
    for prefix in ("127.0.0.0/8", "::1"):
        subprocess.run([ip, "tcp_metrics", "flush", prefix], capture_output=True, check=False)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            digest.update(block)
            file.write(block)
            left -= len(block)
    return digest.hexdigest()


# --- orchestration ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (1024 MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender (3)")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma list of {','.join(CONTENDERS)}"
    )
    parser.add_argument(
        "--fsync",
        choices=("never", "on-close", "always"),
        default="never",
        help="our storage's fsync policy (never: like curl and wget, which do not fsync)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs of each contender first (1)"
    )
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--dir", type=Path, help="temp folder for data and output (system temp)")
    parser.add_argument(
        "--verify", action="store_true", help="also check each saved file's sha256 (slower)"
    )
    args = parser.parse_args()

    names = [n for n in args.contenders.split(",") if n]
    for name in names:
        if name not in CONTENDERS:
            parser.error(f"unknown contender {name!r}")
        if name in TOOLS and shutil.which(TOOLS[name]) is None:
            raise SystemExit(f"{name} is not installed (leave it out with --contenders)")
    if "curl" not in names:
        parser.error("curl is the baseline: keep it in --contenders")
    with tempfile.TemporaryDirectory(prefix="download-bench-", dir=args.dir) as scratch:
        root = Path(scratch)
        data, out = root / "data", root / "out"
        data.mkdir()
        out.mkdir()
        args.expected_sha256 = make_file(data / "big.bin", args.size_mib * MiB)
        args.pycache = root / "pycache"
        compile_trees([ROOT], args.pycache)
        with FileServer(data, kind=args.server) as server:
            url = server.url("big.bin")
            print(
                f"server: {server.kind}; {args.size_mib} MiB to {out} "
                f"(fsync {args.fsync} for ours); best of {args.rounds}",
                flush=True,
            )
            for _ in range(args.warmup):
                for name in names:
                    # Untimed: the first start of each tool reads its binaries and libraries
                    # from disk; whoever went first would pay for everyone.
                    clear(out)
                    measure(name, url, out, args)
            runs: dict[str, list[Run]] = {n: [] for n in names}
            for round_number in range(args.rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    clear(out)
                    run = measure(name, url, out, args)
                    runs[name].append(run)
                    moved = run.transfer_seconds
                    detail = f" (transfer {moved:.2f} s)" if moved else ""
                    seconds = run.process_seconds
                    print(
                        f"  round {round_number + 1}: {name:8} {seconds:6.2f} s{detail}",
                        file=sys.stderr,
                        flush=True,
                    )
            clear(out)
        report(runs, args.size_mib * MiB)


def report(runs: dict[str, list[Run]], size: int) -> None:
    """Best and median of the rounds per contender; ratios are to curl's best and median.

    "paired" is the median, over rounds, of curl's time over the contender's in the same
    round: each round runs every contender one after another, so a pair shares the machine's
    state of that moment, and on a noisy machine this ratio moves less than best or median.
    """
    best_curl = size / min(r.process_seconds for r in runs["curl"]) / 1e6
    median_curl = size / statistics.median(r.process_seconds for r in runs["curl"]) / 1e6
    curl_times = [r.process_seconds for r in runs["curl"]]
    print(
        f"{'contender':10} {'MB/s':>8} {'vs curl':>8} {'median':>8} {'vs curl':>8} "
        f"{'paired':>7} {'transfer MB/s':>14} {'vs curl':>8} {'peak RSS MiB':>13}"
    )
    for name, figures in runs.items():
        rate = size / min(r.process_seconds for r in figures) / 1e6
        median = size / statistics.median(r.process_seconds for r in figures) / 1e6
        transfers = [r.transfer_seconds for r in figures if r.transfer_seconds]
        if transfers:
            moved = size / min(transfers) / 1e6
            transfer = f"{moved:14.0f} {moved / best_curl:7.2f}x"
        else:
            transfer = f"{'-':>14} {'-':>8}"
        peak = max(r.peak_rss for r in figures) / MiB
        paired = statistics.median(
            theirs / r.process_seconds for theirs, r in zip(curl_times, figures, strict=True)
        )
        print(
            f"{name:10} {rate:8.0f} {rate / best_curl:7.2f}x {median:8.0f} "
            f"{median / median_curl:7.2f}x {paired:6.2f}x {transfer} {peak:13.1f}"
        )


if __name__ == "__main__":
    main()
