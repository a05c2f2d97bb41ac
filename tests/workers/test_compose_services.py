"""docker-compose.yml's `seed` and `worker` services run as written, without Docker: their
commands and environment, taken from the file, with only what a container has of its own
mapped onto this machine (the `redis` host, the `/data` volume, the bind-mounted seeds file,
one metrics port per worker). The seed service runs once, then three workers at once, as
`docker compose up --scale worker=3` would start them; the image build itself needs a Docker
engine and is checked statically in tests/test_docker.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from crawler.demo_site import SiteSpec, site_in_thread
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.workers.support import (
    crawl_command,
    crawl_env,
    duplicates,
    expected_crawl,
    records,
    wait_all,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_REDIS = "redis://redis:6379/0"
# ${NAME} or ${NAME:-default}, as compose interpolates them from the shell's environment.
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: Any, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in variables:
            return variables[name]
        assert default is not None, f"${{{name}}} has no default in docker-compose.yml"
        return default

    return VARIABLE.sub(one, str(value))


def service(name: str) -> dict[str, Any]:
    # yaml.safe_load resolves the file's `<<: *crawl` merge keys, as compose does.
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return document["services"][name]


def mapped(command: list[Any], variables: dict[str, str], places: dict[str, str]) -> list[str]:
    """The service's command with its container paths and hosts replaced by ours."""
    args = [interpolate(arg, variables) for arg in command]
    return [places.get(arg, arg) for arg in args]


def environment(definition: dict[str, Any], variables: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(v, variables) for k, v in definition.get("environment", {}).items()}


def test_seed_then_three_workers_crawl_the_job_as_compose_runs_them(
    workdir: Path, clean_redis: RedisServer
) -> None:
    out = workdir / "data"
    seeds = workdir / "seeds.txt"
    variables = {"CRAWL_JOB": "compose"}
    seed, worker = service("seed"), service("worker")
    (seeds_mount,) = [v for v in seed["volumes"] if isinstance(v, dict)]
    places = {
        COMPOSE_REDIS: clean_redis.url,
        "/data": str(out),
        seeds_mount["target"]: str(seeds),
    }
    with site_in_thread(SiteSpec(pages=300, hosts=2)) as served:
        seeds.write_text("\n".join(served.seeds) + "\n")
        seeding = subprocess.run(
            crawl_command(*mapped(seed["command"], variables, places)),
            cwd=workdir,
            env=crawl_env(**environment(seed, variables)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert seeding.returncode == 0, seeding.stderr
        assert records(out) == [], "the seed service fetches nothing (--workers 0)"
        logs = [workdir / f"worker-{i}.log" for i in range(3)]
        processes = []
        for log in logs:
            env = environment(worker, variables)
            assert env["CRAWL_WORKERS"] == "1" and env["CRAWL_LOG_FORMAT"] == "json"
            # Each container has a network of its own; here the three share one.
            env["CRAWL_METRICS_PORT"] = str(free_port())
            with open(log, "wb") as output:
                processes.append(
                    subprocess.Popen(
                        crawl_command(*mapped(worker["command"], variables, places)),
                        cwd=workdir,
                        env=crawl_env(**env),
                        stdout=output,
                        stderr=output,
                    )
                )
        codes = wait_all(processes, timeout=300)
        text = [log.read_text() for log in logs]
        assert codes == [0, 0, 0], text
        found = records(out)
        expected = expected_crawl(served.site)
    assert duplicates(found) == {}
    assert {record.url for record in found} == expected.urls
    # CRAWL_LOG_FORMAT=json from the file reached the workers: every log line is one object.
    lines = [line for log in text for line in log.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
