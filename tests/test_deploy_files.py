"""The deployment files of example_project/deploy/, which docs/deployment.md includes: what they
run, which probes they give, and that every server command in them is one the matrix tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_servers import MATRIX

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "example_project" / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
MIGRATE = ["python", "manage.py", "automigrate"]
TESTED = {entry.invocation for entry in MATRIX.values()}


def url_of(name: str) -> str:
    """The path the example project serves under the URL pattern ``name``."""
    urls = (REPO / "example_project" / "config" / "urls.py").read_text()
    found = re.search(rf'path\(\s*"([^"]+)",(?:(?!path\().)*?name="{name}"', urls, re.S)
    assert found, name
    return "/" + found.group(1)


def manifest(name: str) -> dict[str, Any]:
    document = yaml.safe_load((KUBERNETES / name).read_text())
    assert isinstance(document, dict)
    return document


def pod(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


def env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def web(document: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod(document)["containers"] if c["name"] == "web"]
    assert isinstance(container, dict)
    return container


def probe_path(container: dict[str, Any], probe: str) -> str:
    path: str = container[probe]["httpGet"]["path"]
    return path


def assert_tested(command: list[str]) -> None:
    line = " ".join(command)
    assert line in TESTED, f"{line!r} is not one of the tested invocations (tests/test_servers.py)"


def test_the_health_urls_are_the_example_projects() -> None:
    assert url_of("health-ready") == "/health/ready/"
    assert url_of("health-live") == "/health/live/"


def test_the_job_runs_automigrate_once() -> None:
    job = manifest("migrate-job.yaml")

    assert job["kind"] == "Job"
    (container,) = pod(job)["containers"]
    assert container["command"] == MIGRATE
    assert pod(job)["restartPolicy"] == "Never"
    assert "AUTOMIGRATE_RELEASE" in env(container)


@pytest.mark.parametrize("name", ["deployment.yaml", "deployment-init-container.yaml"])
def test_web_pods_never_migrate_where_a_job_or_init_container_does(name: str) -> None:
    container = web(manifest(name))

    assert env(container)["AUTOMIGRATE_ENABLED"] == "false"
    assert_tested(container["command"])


def test_the_init_container_runs_automigrate() -> None:
    (init,) = pod(manifest("deployment-init-container.yaml"))["initContainers"]

    assert init["command"] == MIGRATE


@pytest.mark.parametrize(
    "name", ["deployment.yaml", "deployment-init-container.yaml", "deployment-startup-runs.yaml"]
)
def test_readiness_asks_the_migrations_check_and_liveness_does_not(name: str) -> None:
    container = web(manifest(name))

    assert probe_path(container, "readinessProbe") == url_of("health-ready")
    assert probe_path(container, "livenessProbe") == url_of("health-live")


def test_startup_runs_wait_long_enough_to_migrate() -> None:
    deployment = manifest("deployment-startup-runs.yaml")
    container = web(deployment)
    startup = container["startupProbe"]

    assert env(container)["AUTOMIGRATE_IN_PRODUCTION"] == "true"
    assert "AUTOMIGRATE_ENABLED" not in env(container)
    assert "initContainers" not in pod(deployment)
    assert probe_path(container, "startupProbe") == url_of("health-ready")
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 600
    assert deployment["spec"]["progressDeadlineSeconds"] > budget
    assert_tested(container["command"])


def test_the_docker_image_migrates_then_serves_a_tested_command() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    entrypoint = (DEPLOY / "docker-entrypoint.sh").read_text().splitlines()

    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert_tested(json.loads(cmd))
    assert re.search(r'^ENTRYPOINT \["docker-entrypoint.sh"\]$', dockerfile, re.M)
    assert entrypoint[0] == "#!/bin/sh"
    assert "set -e" in entrypoint
    assert entrypoint.index("python manage.py automigrate") < entrypoint.index('exec "$@"')


def test_compose_migrates_before_the_web_service_starts() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    migrate, server = compose["services"]["migrate"], compose["services"]["web"]

    assert migrate["command"] == MIGRATE
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["environment"]["AUTOMIGRATE_ENABLED"] == "false"
    assert server["entrypoint"] == []  # the image's entrypoint would migrate too
    assert_tested(server["command"])


def test_the_procfile_migrates_in_the_release_phase() -> None:
    lines = dict(
        line.split(": ", 1) for line in (DEPLOY / "Procfile").read_text().splitlines() if line
    )

    assert lines["release"] == "python manage.py automigrate"
    assert_tested(lines["web"].split())


def test_the_docs_include_every_deployment_file_and_copy_none() -> None:
    pages = {page.name: page.read_text() for page in (REPO / "docs").glob("*.md")}
    included = {
        path for text in pages.values() for path in re.findall(r'^\s*--8<-- "([^"]+)"$', text, re.M)
    }
    files = {str(path.relative_to(REPO)) for path in DEPLOY.rglob("*") if path.is_file()}

    assert files <= included, sorted(files - included)
    for path in included:
        assert (REPO / path).is_file(), path
    for name, text in pages.items():
        assert "kind: Job" not in text, name
        assert "initContainers:" not in text, name
