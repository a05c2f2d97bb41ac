"""Link extraction speed: crawler.extract against Scrapy's LinkExtractor on the same pages.

    python scripts/bench/extract.py [--links 150] [--seconds 3]

Both sides get the same generated page as bytes with a Content-Type header, the same tags
(a, area, link, frame, iframe), no extension filter and duplicates removed, and must return
absolute URLs; the script prints pages/s for each and the ratio. Our cross-page resolution
cache is emptied before every page, so the one page parsed over and over costs what a page
of new links costs (in a crawl, navigation links repeat and resolve from the cache).

The counts differ by design: Scrapy keeps fragments ("/search?q=1#results" and
"/search?q=1" are two links to it, and "#anchor" links to the page itself are kept), we drop
fragments and the page's own URL, as a crawler fetches neither twice.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

from crawler import extract
from crawler.extract import extract_links_from_body

PAGE_URL = "http://127.0.0.1:8001/section3/page-1234.html"
CONTENT_TYPE = "text/html; charset=utf-8"


def generated_page(links: int, seed: int = 7) -> bytes:
    """A page shaped like a real article: head links, text, a list of mixed links, junk hrefs."""
    rng = random.Random(seed)
    forms = [
        lambda i: f"/section{i % 9}/page-{i}.html",
        lambda i: f"page-{i}.html",
        lambda i: f"../archive/{i}/",
        lambda i: f"http://127.0.0.1:{8001 + i % 3}/section{i % 9}/page-{i}.html",
        lambda i: f"//cdn.example.com/img/{i}.png",
        lambda i: f"?page={i}",
        lambda i: f"/search?q=term{i}&sort=asc#results",
        lambda i: "javascript:void(0)",
        lambda i: f"mailto:user{i}@example.com",
        lambda i: f"#anchor-{i}",
    ]
    items = []
    for _ in range(links):
        number = rng.randrange(100_000)
        href = forms[rng.randrange(len(forms))](number)
        items.append(
            f'<li class="item"><a href="{href}" title="Link {number}">Item {number}</a> '
            f"<span>{'words ' * rng.randrange(3, 12)}</span></li>"
        )
    sentence = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    paragraphs = "".join(f"<p>{sentence * rng.randrange(4, 10)}</p>" for _ in range(20))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Bench page</title>"
        '<link rel="stylesheet" href="/static/site.css"><link rel="icon" href="/favicon.ico">'
        f"</head><body><nav><a href='/'>Home</a> <a href='/about'>About</a></nav>{paragraphs}"
        f"<ul>{''.join(items)}</ul><iframe src='/embed/video.html'></iframe>"
        "<map><area href='/map/a' shape='rect' coords='0,0,1,1'></map></body></html>"
    ).encode()


def ours(body: bytes) -> Callable[[], list[str]]:
    def run() -> list[str]:
        extract._resolved.clear()  # no resolution carried over from the previous run
        return extract_links_from_body(body, PAGE_URL, CONTENT_TYPE)

    return run


def scrapys(body: bytes) -> Callable[[], list[str]]:
    from scrapy.http import HtmlResponse
    from scrapy.linkextractors import LinkExtractor

    extractor = LinkExtractor(
        tags=("a", "area", "link", "frame", "iframe"),
        attrs=("href", "src"),
        deny_extensions=[],
        unique=True,
    )

    def run() -> list[str]:
        # A fresh response each time, as a crawl sees every page once (Scrapy caches the parse).
        response = HtmlResponse(PAGE_URL, body=body, headers={"Content-Type": CONTENT_TYPE})
        return [link.url for link in extractor.extract_links(response)]

    return run


def pages_per_second(run: Callable[[], list[str]], seconds: float) -> float:
    run()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            run()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--links", type=int, default=150, help="links per generated page")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per contender")
    args = parser.parse_args()

    body = generated_page(args.links)
    contenders = {"crawler.extract": ours(body)}
    try:
        contenders["scrapy LinkExtractor"] = scrapys(body)
    except ImportError:
        print("scrapy is not installed (pip install -e '.[bench]'): skipped", file=sys.stderr)
    print(f"page: {len(body):,} bytes, {args.links} links")
    results = {}
    for name, run in contenders.items():
        found = len(run())
        results[name] = pages_per_second(run, args.seconds)
        print(f"{name:22} {results[name]:>10,.0f} pages/s  ({found} links)")
    if "scrapy LinkExtractor" in results:
        ratio = results["crawler.extract"] / results["scrapy LinkExtractor"]
        print(f"ratio crawler.extract / scrapy: {ratio:.1f}x")


if __name__ == "__main__":
    main()
