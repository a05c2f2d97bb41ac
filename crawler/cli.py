"""The `crawl` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crawl")
def main() -> None:
    """crawl: a distributed web crawler and bulk download engine."""
