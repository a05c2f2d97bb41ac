"""crawl: a distributed web crawler and bulk download engine."""

__version__ = "0.1.0"
