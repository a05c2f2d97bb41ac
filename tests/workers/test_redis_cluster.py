"""`crawl run --redis redis+cluster://NODE --partitions N`: a crawl whose frontier is spread
over a real three-node Redis Cluster, every page fetched once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from crawler.demo_site import SiteSpec, site_in_thread
from tests.support.binaries import require_binary
from tests.support.redis_cluster import RedisClusterServers
from tests.workers.support import crawl, duplicates, expected_crawl, records


def keys_per_node(cluster: RedisClusterServers, job: str) -> list[int]:
    cli = require_binary("redis-cli")
    counts = []
    for node in cluster.nodes:
        done = subprocess.run(
            [cli, "-p", str(node.port), "--scan", "--pattern", f"crawl:{{{job}*"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        counts.append(len(done.stdout.split()))
    return counts


def test_a_crawl_on_a_redis_cluster_fetches_every_page_once(
    workdir: Path, redis_cluster: RedisClusterServers
) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_cluster.port}"
    job = "cluster-e2e"
    with site_in_thread(SiteSpec(pages=120, hosts=3)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", url, "--job", job, "--out", workdir / "out", "--no-progress"]
        done = crawl("run", seeds, *common, "--partitions", "6", "--workers", "2", cwd=workdir)
        assert done.returncode == 0, done.stderr
        expected = expected_crawl(served.site)
        found = records(workdir / "out")
        assert duplicates(found) == {}
        assert {record.url for record in found} == expected.urls
        # The job's keys are on more than one node: its partitions were spread.
        assert sum(1 for count in keys_per_node(redis_cluster, job) if count) >= 2
        status = crawl("status", "--redis", url, "--job", job, "--json", cwd=workdir)
        report = json.loads(status.stdout)
        assert report["finished"] and report["done"] + report["failed"] + report["skipped"] == len(
            expected.urls
        )
        again = crawl("run", seeds, *common, "--partitions", "2", "--workers", "1", cwd=workdir)
        assert again.returncode == 0, again.stderr
        assert "partitions stays 6 (not 2): fixed when the job was created" in again.stderr
        assert len(records(workdir / "out")) == len(found)  # a finished crawl: nothing again
