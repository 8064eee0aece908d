"""The explicit entry points, as the deployment page shows them: ``run_at_startup()`` in
``wsgi.py``/``asgi.py`` and in gunicorn's ``on_starting`` hook. Each takes the same lock and
records the same history as the automatic startup run."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import FreshDatabase
from tests.test_servers import DEVELOPMENT, command_line
from tests.utils import REPO, child_env, free_port, pids_serving, stop, wait_for

pytestmark = pytest.mark.servers

SERVER = "gunicorn config.wsgi --workers 2 --bind 0.0.0.0:8000"
ASGI_SERVER = "uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --workers 2"
EXPLICIT = "automigrate: runs at startup: run_at_startup()"


def documented_recipes() -> list[str]:
    """The Python blocks of 'Calling the run yourself', pointed at the test settings."""
    page = (REPO / "docs" / "deployment.md").read_text()
    section = re.split(r"\n##+ ", page.split("### Calling the run yourself", 1)[1])[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the section shows the wsgi.py and the gunicorn.conf.py recipes"
    return [block.replace("config.settings", "tests.settings") for block in blocks]


def project(tmp_path: Path, *, wsgi: bool = True, asgi: bool = False, conf: bool = False) -> Path:
    """A folder with the docs' files: ``config/wsgi.py``, ``config/asgi.py``,
    ``gunicorn.conf.py`` (the test project itself comes from ``tests``)."""
    wsgi_py, conf_py = documented_recipes()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "__init__.py").write_text("")
    if wsgi:
        (tmp_path / "config" / "wsgi.py").write_text(wsgi_py)
    if asgi:
        asgi_py = wsgi_py.replace("wsgi", "asgi")
        (tmp_path / "config" / "asgi.py").write_text(asgi_py)
    if conf:
        (tmp_path / "gunicorn.conf.py").write_text(conf_py)
        # The recipe alone: the app module is the plain one, without the explicit call.
        (tmp_path / "config" / "wsgi.py").write_text(
            "from tests.wsgi import application  # noqa: F401\n"
        )
    return tmp_path


def two_masters(
    invocation: str, folder: Path, database: FreshDatabase, **env: str
) -> tuple[dict[int, set[int]], str]:
    ports = [free_port(), free_port()]
    masters = [
        subprocess.Popen(
            command_line(invocation, port, project="config"),
            cwd=folder,
            env=child_env(database.url, PYTHONPATH=f"{folder}:{REPO}", **DEVELOPMENT, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for port in ports
    ]
    serving: dict[int, set[int]] = {}
    failure = ""
    try:
        for port, master in zip(ports, masters, strict=True):
            status, body = wait_for(f"http://127.0.0.1:{port}/tags/", master, timeout=120)
            assert status == 200, body
        serving = {port: pids_serving(port, 2) for port in ports}
    except AssertionError as exc:
        failure = str(exc)
    finally:
        logs = "".join(stop(master).out for master in masters)
    assert not failure, f"{failure}\n{logs[-5000:]}"
    return serving, logs


def assert_one_run(database: FreshDatabase, logs: str) -> None:
    rows = database.migration_rows()
    assert [row for row, n in collections.Counter(rows).items() if n > 1] == []
    assert ("testapp", "0022_seed_tags") in rows
    runs = [(h["status"], h["trigger"]) for h in database.history_rows()]
    assert runs == [("succeeded", "startup")], logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_the_wsgi_line_migrates_once_in_every_worker_without_the_automatic_hook(
    database: FreshDatabase, tmp_path: Path
) -> None:
    serving, logs = two_masters(SERVER, project(tmp_path), database, AUTOMIGRATE_ON_STARTUP="false")
    assert all(len(pids) == 2 for pids in serving.values()), serving
    assert logs.count(EXPLICIT) == 4, logs[-3000:]
    assert "skipped at startup: ON_STARTUP is off" in logs
    assert_one_run(database, logs)


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_the_asgi_line_works_inside_uvicorns_event_loop(
    database: FreshDatabase, tmp_path: Path
) -> None:
    folder = project(tmp_path, wsgi=False, asgi=True)
    serving, logs = two_masters(ASGI_SERVER, folder, database, AUTOMIGRATE_ON_STARTUP="false")
    assert all(len(pids) == 2 for pids in serving.values()), serving
    assert logs.count(EXPLICIT) == 4, logs[-3000:]
    assert_one_run(database, logs)


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_the_gunicorn_hook_migrates_once_per_master_before_any_worker(
    database: FreshDatabase, tmp_path: Path
) -> None:
    folder = project(tmp_path, conf=True)
    serving, logs = two_masters(SERVER, folder, database, AUTOMIGRATE_ON_STARTUP="false")
    assert all(len(pids) == 2 for pids in serving.values()), serving
    assert logs.count(EXPLICIT) == 2, logs[-3000:]  # the masters; the workers run nothing
    # Django was set up once per master: the forked workers never decide again.
    assert logs.count("automigrate: skipped at startup: ON_STARTUP is off") == 2
    assert_one_run(database, logs)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_the_explicit_call_honours_enabled(database: FreshDatabase, tmp_path: Path) -> None:
    folder = project(tmp_path)
    loaded = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=folder,
        env=child_env(
            database.url, PYTHONPATH=f"{folder}:{REPO}", AUTOMIGRATE_ENABLED="false", **DEVELOPMENT
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr.count("automigrate: skipped at startup: ENABLED is off") == 2
    assert database.migration_rows() == []
