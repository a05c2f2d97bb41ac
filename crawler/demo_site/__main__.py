"""Generate and/or serve a demo site.

    python -m crawler.demo_site --pages 2000 --hosts 3 --out site/    # write files (ports 8001..)
    python -m crawler.demo_site --pages 2000 --hosts 3 --serve        # serve from memory
    python -m crawler.demo_site --root site/ --serve                  # serve a written folder
    python -m crawler.demo_site --serve --big-file 200MB --rate 20MB  # a slow large download

Serving prints the seed URLs (one per line, or one JSON line with --json) once it listens, then
runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from crawler.config.values import byte_size
from crawler.demo_site.files import write_site
from crawler.demo_site.runner import ServedSite, start_site
from crawler.demo_site.server import bind_sockets
from crawler.demo_site.site import SiteError, SiteSpec, build_site


def _size(text: str) -> int:
    try:
        return int(byte_size(optional=False)(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.demo_site",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    site = parser.add_argument_group("the site")
    site.add_argument("--pages", type=int, default=100, help="HTML pages in total (default 100)")
    site.add_argument("--hosts", type=int, default=1, help="hosts, one port each (default 1)")
    site.add_argument("--seed", type=int, default=1, help="generation seed (default 1)")
    site.add_argument("--links", type=int, default=8, help="random links per page (default 8)")
    site.add_argument("--page-bytes", type=int, default=4096, help="page size (default 4096)")
    site.add_argument("--binary-bytes", type=_size, default=64 * 1024, help="/files/data.bin")
    site.add_argument(
        "--big-file", type=_size, action="append", default=[], help="add a large file (repeatable)"
    )
    site.add_argument("--faults", action="store_true", help="add 429/503/loop/hostile-link pages")
    where = parser.add_argument_group("writing and serving")
    where.add_argument("--out", type=Path, help="write the site's files and manifest here")
    where.add_argument("--root", type=Path, help="serve a folder written with --out")
    where.add_argument("--serve", action="store_true", help="serve the site until interrupted")
    where.add_argument("--address", default="127.0.0.1", help="address to listen on")
    where.add_argument(
        "--base-port",
        type=int,
        help="first port, the next hosts on the following ones (default: free ports when "
        "serving, 8001 when only writing)",
    )
    where.add_argument("--rate", type=_size, help="bytes/s per connection for large files")
    where.add_argument(
        "--latency", type=float, help="seconds every answer is held back (default: none)"
    )
    where.add_argument("--json", action="store_true", help="print one JSON line when ready")
    return parser


def _ready_message(served: ServedSite, as_json: bool) -> str:
    site = served.site
    if as_json:
        return json.dumps(
            {
                "seeds": site.seeds,
                "ports": [host.port for host in site.hosts],
                "pages": site.spec.pages,
                "reachable": len(site.reachable(robots=True)),
                "reachable_without_robots": len(site.reachable(robots=False)),
            }
        )
    lines = [f"serving {site.spec.pages} pages on {len(site.hosts)} hosts:"]
    lines += [f"  {seed}" for seed in site.seeds]
    return "\n".join(lines)


async def _serve(args: argparse.Namespace, spec: SiteSpec) -> None:
    ports = _ports(args, spec.hosts, default_base=None)
    served = await start_site(
        None if args.root else spec,
        root=args.root,
        address=args.address,
        ports=ports,
        rate=args.rate,
        latency=args.latency,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        print(_ready_message(served, args.json), flush=True)
        await stop.wait()
    finally:
        await served.close()


def _ports(args: argparse.Namespace, hosts: int, default_base: int | None) -> list[int]:
    base = args.base_port if args.base_port is not None else default_base
    if base is None or base == 0:
        return []
    return list(range(base, base + hosts))


def _write(args: argparse.Namespace, spec: SiteSpec) -> None:
    """Generate into --out. When serving too, hold the ports while generating so the files'
    links name ports that are really ours."""
    sockets = bind_sockets(spec.hosts, args.address, _ports(args, spec.hosts, None))
    try:
        ports = [sock.getsockname()[1] for sock in sockets]
        if not args.serve:
            for sock in sockets:
                sock.close()
            ports = _ports(args, spec.hosts, 8001)
        site = build_site(spec, ports, args.address)
        manifest = write_site(site, args.out)
    finally:
        for sock in sockets:
            sock.close()
    if not args.serve:
        print(f"wrote {spec.pages} pages on {spec.hosts} hosts to {args.out} ({manifest.name})")
        for seed in site.seeds:
            print(f"  {seed}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.root and args.out:
        print("error: --root serves an existing folder; it cannot be combined with --out")
        return 2
    if args.root:
        args.serve = True
    try:
        spec = SiteSpec(
            pages=args.pages,
            hosts=args.hosts,
            seed=args.seed,
            links_per_page=args.links,
            page_bytes=args.page_bytes,
            binary_bytes=args.binary_bytes,
            big_files=tuple(args.big_file),
            faults=args.faults,
        )
        if args.out:
            _write(args, spec)
            if args.serve:
                args.root, args.base_port = args.out, None
        if args.serve:
            with contextlib.suppress(ImportError):
                import uvloop

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            asyncio.run(_serve(args, spec))
    except (SiteError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
