"""The container files, checked without Docker: docker-compose.yml loaded with PyYAML, the
Dockerfile read instruction by instruction, .dockerignore against what the build needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawler.config import SETTING_NAMES, env_name

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://redis:6379/0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def option_value(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_compose_has_redis_seed_and_worker_and_declares_its_volumes(compose: dict) -> None:
    assert set(compose["services"]) == {"redis", "seed", "worker"}
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.startswith((".", "/")):
                assert volume.split(":", 1)[0] in declared


def test_redis_persists_with_aof_and_has_a_healthcheck(compose: dict) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert option_value(command, "--appendonly") == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    health = redis["healthcheck"]
    assert health["test"][-2:] == ["redis-cli", "ping"]
    assert health["retries"] >= 1


def test_worker_runs_crawl_worker_against_the_shared_job(compose: dict) -> None:
    worker = compose["services"]["worker"]
    command = worker["command"]
    assert command[0] == "worker"
    assert option_value(command, "--redis") == REDIS_URL
    assert option_value(command, "--job") == "${CRAWL_JOB:-demo}"
    assert option_value(command, "--out") == "/data"
    assert "data:/data" in worker["volumes"]


def test_worker_can_be_scaled(compose: dict) -> None:
    worker = compose["services"]["worker"]
    # Anything unique per container (a fixed name or a published host port) breaks --scale.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["environment"]["CRAWL_WORKERS"] == "1"


def test_worker_waits_for_healthy_redis_and_finished_seeding(compose: dict) -> None:
    depends = compose["services"]["worker"]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["seed"]["condition"] == "service_completed_successfully"


def test_worker_restarts_only_on_failure_and_stops_gracefully(compose: dict) -> None:
    worker = compose["services"]["worker"]
    assert worker["restart"] == "on-failure"  # a finished worker exits 0 and stays down
    assert worker["stop_signal"] == "SIGTERM"
    assert worker["stop_grace_period"]


def test_seed_is_one_shot_and_only_enqueues(compose: dict) -> None:
    seed = compose["services"]["seed"]
    command = seed["command"]
    assert command[0] == "run"
    assert option_value(command, "--redis") == REDIS_URL
    assert option_value(command, "--job") == "${CRAWL_JOB:-demo}"
    assert option_value(command, "--workers") == "0"
    assert seed["restart"] == "no"
    assert seed["depends_on"]["redis"]["condition"] == "service_healthy"
    seeds_mount = next(v for v in seed["volumes"] if isinstance(v, dict))
    assert seeds_mount["target"] == command[1]
    assert seeds_mount["read_only"] is True


def test_services_share_one_image_built_from_the_repository(compose: dict) -> None:
    images = {compose["services"][name]["image"] for name in ("seed", "worker")}
    assert len(images) == 1
    assert compose["services"]["worker"]["build"] == "."


def test_environment_names_are_real_settings(compose: dict) -> None:
    known = {env_name(name) for name in SETTING_NAMES}
    for name in ("seed", "worker"):
        for variable in compose["services"][name].get("environment", {}):
            assert variable in known, variable


def test_dockerfile_uses_a_slim_python_311_or_newer(dockerfile: list[tuple[str, str]]) -> None:
    # Both stages start from the PYTHON_IMAGE argument, whose default is the official image.
    defaults = dict(
        arguments.partition("=")[::2] for keyword, arguments in dockerfile if keyword == "ARG"
    )
    bases = [arguments.split()[0] for keyword, arguments in dockerfile if keyword == "FROM"]
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    for base in [defaults["PYTHON_IMAGE"]]:
        match = re.fullmatch(r"python:3\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", base)
        assert match is not None and int(match.group(1)) >= 11, base


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    final_stage = dockerfile[max(i for i, (k, _) in enumerate(dockerfile) if k == "FROM") :]
    users = [arguments for keyword, arguments in final_stage if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    last_user = max(i for i, (keyword, _) in enumerate(final_stage) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final_stage[last_user:])


def test_dockerfile_installs_the_project_and_enters_crawl(
    dockerfile: list[tuple[str, str]],
) -> None:
    copied = " ".join(arguments for keyword, arguments in dockerfile if keyword == "COPY")
    for needed in ("pyproject.toml", "README.md", "crawler", "workers", "storage"):
        assert needed in copied
    runs = " ".join(arguments for keyword, arguments in dockerfile if keyword == "RUN")
    assert "pip install" in runs and "crawl[" in runs
    entrypoints = [arguments for keyword, arguments in dockerfile if keyword == "ENTRYPOINT"]
    assert entrypoints == ['["crawl"]']
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "crawl" in project["project"]["scripts"]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests"} <= ignored
    for needed in ("pyproject.toml", "README.md", "crawler", "workers", "storage"):
        assert needed not in ignored
