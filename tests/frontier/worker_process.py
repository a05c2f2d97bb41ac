"""A worker process for the multi-process tests: N asyncio workers on one frontier store.

    python -m tests.frontier.worker_process TARGET JOB LOG [--workers 8] [--batch 2]
        [--work-ms 2-12] [--hang-after K]

Each asyncio worker opens its own frontier on TARGET (a SQLite path or a redis:// URL) and
loops lease -> "fetch" (sleep) -> ack until the job is finished. Every step is appended to LOG
as one line, written with one os.write on an O_APPEND file so a SIGKILL never leaves half a
line and nothing sits in a buffer:

    L <id> <host> <worker> <attempts> <store_start> <got_at>     leased (store clock, wall clock)
    A <id> <host> <worker> <ack_at> <ok>                         acked (wall clock before ack)
    H <id> <host> <worker>                                       leased and now hanging
    R <worker>                                                   this worker holds its hung leases

With --hang-after K a worker acks K tasks, then leases one more batch, reports it (H lines,
then R) and sleeps forever holding those leases: the test kills the process at that point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

from crawler.frontier import open_frontier


class Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, *fields: object) -> None:
        os.write(self.fd, (" ".join(str(f) for f in fields) + "\n").encode())


async def worker(args: argparse.Namespace, name: str, log: Log) -> None:
    frontier = await open_frontier(args.target, args.job)
    low, _, high = args.work_ms.partition("-")
    work = (float(low) / 1000, float(high or low) / 1000)
    acked = 0
    try:
        while True:
            if args.hang_after is not None and acked >= args.hang_after:
                await hang(frontier, args, name, log)
            tasks = await frontier.lease(args.batch, name)
            got_at = time.time()
            if not tasks:
                if await frontier.is_finished():
                    return
                await asyncio.sleep(0.005)
                continue
            lease_seconds = frontier.settings.lease_seconds
            for task in tasks:
                start = task.deadline - lease_seconds
                log.write("L", task.id, task.host, name, task.attempts, repr(start), repr(got_at))
            for task in tasks:
                await asyncio.sleep(random.uniform(*work))
                ack_at = time.time()
                ok = await frontier.ack(task)
                log.write("A", task.id, task.host, name, repr(ack_at), int(ok))
                acked += 1
    finally:
        await frontier.close()


async def hang(frontier, args: argparse.Namespace, name: str, log: Log) -> None:  # type: ignore[no-untyped-def]
    """Lease a batch and hold it until the process is killed."""
    while not (tasks := await frontier.lease(args.batch, name)):
        await asyncio.sleep(0.005)
    lease_seconds = frontier.settings.lease_seconds
    for task in tasks:
        start = task.deadline - lease_seconds
        log.write("L", task.id, task.host, name, task.attempts, repr(start), repr(time.time()))
        log.write("H", task.id, task.host, name, repr(task.deadline))
    log.write("R", name)
    await asyncio.Event().wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("job")
    parser.add_argument("log")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--work-ms", default="2-12")
    parser.add_argument("--hang-after", type=int, default=None)
    args = parser.parse_args()
    log = Log(args.log)
    tag = f"p{os.getpid()}"
    await asyncio.gather(*(worker(args, f"{tag}-w{i}", log) for i in range(args.workers)))


if __name__ == "__main__":
    asyncio.run(main())
