"""Scrapy's side of the crawl benchmark: follow every link of a local site, store nothing.

Run as its own process by scripts/bench/crawl.py:
    python scripts/bench/_scrapy_crawl.py --concurrency 64 URL [URL ...]
Prints one JSON line: {"pages": N, "seconds": S}.
"""

from __future__ import annotations

import argparse
import json
import time
from urllib.parse import urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, start: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_urls = start
        # Same scope as `crawl run`: the seeds' hosts (host:port) only.
        self.allowed_netlocs = {urlsplit(url).netloc for url in start}
        self.links = LinkExtractor()
        self.pages = 0

    def parse(self, response: scrapy.http.Response):  # type: ignore[override]
        self.pages += 1
        if not isinstance(response, scrapy.http.HtmlResponse):
            return
        for link in self.links.extract_links(response):
            if urlsplit(link.url).netloc in self.allowed_netlocs:
                yield scrapy.Request(link.url, callback=self.parse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "ROBOTSTXT_OBEY": False,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "COOKIES_ENABLED": False,
            "RETRY_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "ERROR",
            "DEPTH_LIMIT": 0,
            "REACTOR_THREADPOOL_MAXSIZE": 4,
        }
    )
    crawler = process.create_crawler(SiteSpider)
    started = time.perf_counter()
    process.crawl(crawler, start=args.urls)
    process.start()
    elapsed = time.perf_counter() - started
    pages = crawler.spider.pages if crawler.spider is not None else 0
    print(json.dumps({"pages": pages, "seconds": round(elapsed, 3)}))


if __name__ == "__main__":
    main()
