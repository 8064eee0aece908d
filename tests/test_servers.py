"""Every server invocation the docs show: two masters started together on a fresh database apply
each migration once, and every worker of both serves a page that reads a migrated table.

The invocations are the docs' own strings; a test fails when the docs show one that is not here.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import FreshDatabase
from tests.utils import REPO, child_env, free_port, manage_args, pids_serving, stop, wait_for

pytestmark = pytest.mark.servers

RUNSERVER = "python manage.py runserver"
DEVELOPMENT = {"AUTOMIGRATE_ENVIRONMENT": "development"}
PROGRAMS = ("gunicorn ", "uvicorn ", "daphne ", "hypercorn ", "granian ", "uwsgi ")


@dataclass(frozen=True)
class Entry:
    invocation: str  # exactly as the docs show it
    workers: int  # processes that serve (and each run the app)
    env: dict[str, str] = field(default_factory=dict)
    #: Backends besides PostgreSQL and SQLite.
    mysql: bool = False
    #: The server finds its port in ``$PORT`` (gunicorn does, as on Heroku).
    port_from_env: bool = False


MATRIX = {
    "gunicorn-sync": Entry("gunicorn config.wsgi --workers 2 --bind 0.0.0.0:8000", 2, mysql=True),
    "gunicorn-heroku": Entry("gunicorn config.wsgi --workers 2", 2, port_from_env=True),
    "gunicorn-gthread": Entry(
        "gunicorn config.wsgi --workers 2 --threads 4 --bind 0.0.0.0:8000", 2
    ),
    "gunicorn-uvicorn-worker": Entry(
        "gunicorn config.asgi:application -k uvicorn.workers.UvicornWorker --workers 2 "
        "--bind 0.0.0.0:8000",
        2,
    ),
    "gunicorn-preload": Entry("gunicorn config.wsgi --preload --workers 2 --bind 0.0.0.0:8000", 2),
    "gunicorn-preload-uvicorn-worker": Entry(
        "gunicorn config.asgi:application --preload -k uvicorn.workers.UvicornWorker "
        "--workers 2 --bind 0.0.0.0:8000",
        2,
    ),
    "uvicorn-workers": Entry(
        "uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --workers 2", 2, mysql=True
    ),
    "uvicorn": Entry("uvicorn config.asgi:application --host 0.0.0.0 --port 8000", 1),
    "daphne": Entry("daphne -b 0.0.0.0 -p 8000 config.asgi:application", 1),
    "hypercorn": Entry("hypercorn config.asgi:application --bind 0.0.0.0:8000 --workers 2", 2),
    "granian-asgi": Entry(
        "granian --interface asginl --host 0.0.0.0 --port 8000 --workers 2 config.asgi:application",
        2,
    ),
    "granian-wsgi": Entry(
        "granian --interface wsgi --host 0.0.0.0 --port 8000 --workers 2 config.wsgi:application",
        2,
    ),
    "uwsgi": Entry(
        "uwsgi --http 0.0.0.0:8000 --module config.wsgi:application --master --processes 2 "
        "--die-on-term",
        2,
    ),
    "uwsgi-lazy-apps": Entry(
        "uwsgi --http 0.0.0.0:8000 --module config.wsgi:application --master --processes 2 "
        "--die-on-term --lazy-apps",
        2,
    ),
    "runserver": Entry("python manage.py runserver 0.0.0.0:8000", 1),
    "runserver-daphne": Entry(
        "python manage.py runserver 0.0.0.0:8000", 1, {"AUTOMIGRATE_TEST_DAPHNE": "true"}
    ),
}

CASES = [
    pytest.param(name, vendor, id=f"{name}-{vendor}")
    for name, entry in MATRIX.items()
    for vendor in ("sqlite", "postgresql", *(("mysql",) if entry.mysql else ()))
]


def documented_invocations() -> set[str]:
    """Every server command line in README and docs/: shell lines, ``command:``/``CMD`` arrays,
    Procfile lines."""
    found: set[str] = set()
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        fenced = False
        for raw in page.read_text().splitlines():
            if raw.lstrip().startswith("```"):
                fenced = not fenced
                continue
            lines = [raw.strip()] if fenced else re.findall(r"`([^`]+)`", raw)
            for candidate in lines:
                line = candidate.removeprefix("$ ").removeprefix("web: ")
                array = re.search(r"(?:command:|CMD)\s*(\[.*\])", line)
                if array:
                    line = " ".join(json.loads(array.group(1)))
                if line == RUNSERVER:  # its default address; the tests need a free port
                    line += " 0.0.0.0:8000"
                if (line.startswith(PROGRAMS) or line.startswith(RUNSERVER)) and "…" not in line:
                    found.add(line.split("  #")[0].strip())
    return found


def test_every_documented_invocation_is_in_the_matrix() -> None:
    tested = {entry.invocation for entry in MATRIX.values()}
    untested = documented_invocations() - tested
    assert not untested, f"the docs show server invocations no test runs: {sorted(untested)}"
    # And the matrix is what the docs show: no tested invocation the docs dropped.
    assert tested <= documented_invocations()


def command_line(invocation: str, port: int, *, project: str = "tests") -> list[str]:
    """The docs' invocation, pointed at a free port and at ``project``'s WSGI/ASGI modules
    (the test project's ``tests.wsgi``, or the docs' own ``config.wsgi``)."""
    line = (
        invocation.replace("config.wsgi", f"{project}.wsgi")
        .replace("config.asgi", f"{project}.asgi")
        .replace("0.0.0.0:8000", f"127.0.0.1:{port}")
        .replace("--host 0.0.0.0", "--host 127.0.0.1")
        .replace("--port 8000", f"--port {port}")
        .replace("-b 0.0.0.0 -p 8000", f"-b 127.0.0.1 -p {port}")
    )
    if line.startswith("python manage.py "):
        return manage_args(*line.removeprefix("python manage.py ").split())
    program, *args = line.split()
    return [str(Path(sys.executable).parent / program), *args]


def start(invocation: str, port: int, database: FreshDatabase, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command_line(invocation, port),
        cwd=REPO,
        env=child_env(database.url, **DEVELOPMENT, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # uWSGI and granian log on stdout
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize(("name", "server"), CASES, indirect=["server"])
def test_two_masters_migrate_once_and_every_worker_serves(
    name: str, database: FreshDatabase
) -> None:
    entry = MATRIX[name]
    ports = [free_port(), free_port()]
    masters = [
        start(
            entry.invocation,
            port,
            database,
            **entry.env,
            **({"PORT": str(port)} if entry.port_from_env else {}),
        )
        for port in ports
    ]
    try:
        for port, master in zip(ports, masters, strict=True):
            status, body = wait_for(f"http://127.0.0.1:{port}/tags/", master, timeout=120)
            assert status == 200, body
        serving = {port: pids_serving(port, entry.workers) for port in ports}
    finally:
        logs = "".join((stop(master).out or "") for master in masters)
        rows = database.migration_rows()
        history = database.history_rows()

    assert all(len(pids) == entry.workers for pids in serving.values()), (serving, logs[-3000:])
    assert "Traceback" not in logs, logs[-5000:]
    assert [row for row, n in collections.Counter(rows).items() if n > 1] == []
    assert len(rows) > 20
    runs = [(h["status"], h["trigger"]) for h in history]
    assert runs == [("succeeded", "startup")], logs[-3000:]
