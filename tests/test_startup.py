"""Migrating at process start, with real servers and real processes against real databases."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import pytest

from tests.servers import FreshDatabase, Server
from tests.utils import (
    REPO,
    SERVED_TAGS,
    free_port,
    get,
    pids_serving,
    run_command,
    serve_once,
    start_server,
    stop,
    wait_for,
)

DEVELOPMENT = {"AUTOMIGRATE_ENVIRONMENT": "development"}


def runs_at_startup(log: str) -> int:
    return log.count("automigrate: runs at startup:")


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_gunicorn_masters_create_the_database_once_and_migrate_once(server: Server) -> None:
    database = FreshDatabase(server, f"automigrate_t_new_{free_port()}", "")
    database.url = server.url_for(database.name)
    ports = [free_port(), free_port()]
    masters = [
        start_server(
            database.url,
            "gunicorn",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            AUTOMIGRATE_CREATE_DATABASE="true",
            **DEVELOPMENT,
        )
        for port in ports
    ]
    try:
        for port, master in zip(ports, masters, strict=True):
            status, body = wait_for(f"http://127.0.0.1:{port}/tags/", master, timeout=90)
            assert status == 200, body
        workers = {port: pids_serving(port, 4) for port in ports}
    finally:
        logs = "".join(stop(master).err for master in masters)
        rows = database.migration_rows()
        history = database.history_rows()
        database.drop()

    assert all(len(pids) == 4 for pids in workers.values()), workers
    assert logs.count("created database") == 1, logs
    assert runs_at_startup(logs) == 8
    assert logs.count("nothing to do") == 7
    assert [row for row, n in collections.Counter(rows).items() if n > 1] == []
    assert len(history) == 1
    assert history[0]["status"] == "succeeded"
    assert history[0]["trigger"] == "startup"
    assert "Traceback" not in logs


def _two_gunicorn_workers(
    database_url: str, timeout: float, **env: str
) -> tuple[int, set[int], str]:
    """gunicorn with 2 workers, each migrating at startup: (status of the first answer within
    ``timeout`` seconds, the worker pids that serve, the server's log)."""
    port = free_port()
    process = start_server(
        database_url, "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", **env
    )
    try:
        status, _ = wait_for(f"http://127.0.0.1:{port}/tags/", process, timeout=timeout)
        served_by = pids_serving(port, 2)
    finally:
        log = stop(process).err
    return status, served_by, log


def test_runserver_migrates_in_its_serving_child_only(database: FreshDatabase) -> None:
    status, body, log = serve_once(database.url, "runserver", "/tags/", **DEVELOPMENT)

    assert status == 200, body
    assert json.loads(body)["tags"] == SERVED_TAGS
    assert "skipped at startup: runserver's autoreloader parent" in log
    assert runs_at_startup(log) == 1
    assert [row["status"] for row in database.history_rows()] == ["succeeded"]


@pytest.mark.parametrize("app_first", ["true", "false"])
def test_a_startup_run_warns_nothing_and_creates_content_types_and_permissions(
    tmp_path: Path, app_first: str
) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    port = free_port()
    process = start_server(
        database.url,
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        AUTOMIGRATE_TEST_APP_FIRST=app_first,
        PYTHONWARNINGS="error::RuntimeWarning",
        **DEVELOPMENT,
    )
    try:
        status, _ = wait_for(f"http://127.0.0.1:{port}/tags/", process, timeout=60)
    finally:
        log = stop(process).err

    assert status == 200
    assert "RuntimeWarning" not in log
    assert "Accessing the database during app initialization" not in log
    assert "unapplied migration" not in log
    content_types = database.query("SELECT app_label, model FROM django_content_type")
    assert ("testapp", "book") in content_types
    assert ("django_automigrate", "migrationrun") in content_types
    permissions = database.query("SELECT codename FROM auth_permission")
    assert ("view_migrationrun",) in permissions
    assert ("add_book",) in permissions


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_run_longer_than_gunicorns_timeouts_ends_in_one_run_and_serving_workers(
    database: FreshDatabase,
) -> None:
    # gunicorn's defaults: 1 sync worker... we ask for 2, so that one migrates for a minute and
    # the other waits a minute for the lock; --timeout stays at its default of 30 s.
    status, served_by, log = _two_gunicorn_workers(
        database.url, 240, AUTOMIGRATE_TEST_SLOW="0010_checkpoint:60", **DEVELOPMENT
    )

    assert status == 200
    assert len(served_by) == 2
    assert "WORKER TIMEOUT" not in log
    assert runs_at_startup(log) == 2
    assert [row["status"] for row in database.history_rows()] == ["succeeded"]
    assert database.migration_rows().count(("testapp", "0010_checkpoint")) == 1


def test_background_mode_serves_while_the_run_is_in_progress(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    port = free_port()
    process = start_server(
        database.url,
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        AUTOMIGRATE_MODE="background",
        AUTOMIGRATE_ON_FAILURE="continue",
        AUTOMIGRATE_TEST_SLOW="0010_checkpoint:4",
        **DEVELOPMENT,
    )
    seen = []
    try:
        state_url = f"http://127.0.0.1:{port}/startup-state/"
        status, body = wait_for(state_url, process, timeout=60)
        seen.append(json.loads(body)["status"])
        deadline = time.monotonic() + 60
        while seen[-1] == "in_progress" and time.monotonic() < deadline:
            time.sleep(0.2)
            seen.append(json.loads(get(state_url)[1])["status"])
        tags_status, tags_body = get(f"http://127.0.0.1:{port}/tags/")
    finally:
        stop(process)

    assert status == 200
    assert seen[0] == "in_progress"
    assert seen[-1] == "succeeded"
    assert tags_status == 200
    assert json.loads(tags_body)["tags"] == SERVED_TAGS


def test_a_failed_blocking_run_stops_the_process_with_a_clear_error(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()

    process = start_server(
        database.url,
        "runserver",
        "--noreload",
        f"127.0.0.1:{free_port()}",
        AUTOMIGRATE_TEST_FAIL="0020_checkpoint",
        **DEVELOPMENT,
    )
    process.wait(timeout=90)
    result = stop(process)

    assert result.returncode != 0
    assert "the startup run failed, so this process stops (ON_FAILURE='raise')" in result.err
    assert "injected failure in 0020_checkpoint" in result.err
    # The failure was rolled back (one transaction), and the run recorded as such.
    assert [row["status"] for row in database.history_rows()] == ["rolled_back"]


def test_a_failed_run_with_on_failure_continue_serves_and_says_so(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    status, body, log = serve_once(
        database.url, "runserver", "/startup-state/", "--noreload",
        AUTOMIGRATE_TEST_FAIL="0020_checkpoint", AUTOMIGRATE_ON_FAILURE="continue",
        **DEVELOPMENT,
    )  # fmt: skip

    assert status == 200
    assert json.loads(body)["status"] == "failed"
    assert "the startup run failed; serving anyway" in log


def _gunicorn_once(database_url: str, **env: str) -> tuple[dict[str, str], str]:
    """Start gunicorn (1 worker), read the startup state, stop it; (state, log)."""
    status, body, log = serve_once(database_url, "gunicorn", "/startup-state/", **env)
    assert status == 200, body
    state: dict[str, str] = json.loads(body)
    return state, log


@pytest.mark.parametrize(
    ("env", "runs", "logged"),
    [
        ({}, False, "skipped at startup: environment is production and IN_PRODUCTION is off"),
        ({"AUTOMIGRATE_IN_PRODUCTION": "true"}, True, "runs at startup: gunicorn"),
        (DEVELOPMENT, True, "runs at startup: gunicorn, environment development"),
        ({"AUTOMIGRATE_TEST_DEBUG": "true"}, True, "environment development"),
        ({"AUTOMIGRATE_ENABLED": "false", **DEVELOPMENT}, False, "skipped at startup: ENABLED"),
        ({"AUTOMIGRATE_ON_STARTUP": "false", **DEVELOPMENT}, False, "ON_STARTUP is off"),
    ],
)
def test_gating_in_a_real_server(
    tmp_path: Path, env: dict[str, str], runs: bool, logged: str
) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()

    state, log = _gunicorn_once(database.url, **env)

    assert logged in log
    assert state["status"] == ("succeeded" if runs else "skipped")
    assert bool(database.history_rows()) is runs


def test_disabled_opens_no_database_connection_at_startup() -> None:
    # Nothing listens on port 9: any connection attempt would fail and be logged.
    unreachable = "postgres://nobody@127.0.0.1:9/nothing"

    state, log = _gunicorn_once(unreachable, AUTOMIGRATE_ENABLED="false", **DEVELOPMENT)

    assert state["status"] == "skipped"
    assert "ENABLED is off" in log
    assert "connection" not in log.lower()


@pytest.mark.parametrize(
    ("command", "on_startup", "runs"),
    [
        (("check",), "auto", False),
        (("shell", "-c", "pass"), "auto", False),
        (("showmigrations",), "auto", False),
        (("showmigrations",), "true", False),
        (("makemigrations", "--check", "--dry-run"), "true", False),
        (("migrate", "--plan"), "true", False),
        (("sqlmigrate", "testapp", "0001"), "true", False),
        (("automigrate", "--check"), "true", False),
        (("test", "tests.squashapp"), "true", False),
        (("shell", "-c", "pass"), "true", True),
    ],
)
def test_management_commands(
    tmp_path: Path, command: tuple[str, ...], on_startup: str, runs: bool
) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()

    result = run_command(
        database.url,
        *command,
        AUTOMIGRATE_ON_STARTUP=on_startup,
        AUTOMIGRATE_ENVIRONMENT="development",
    )

    assert ("automigrate: runs at startup" in result.err) is runs, result.err
    assert ("automigrate: skipped at startup: " in result.err) is not runs
    assert bool(database.history_rows()) is runs


def test_a_pytest_run_never_migrates_the_real_database(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    test_file = tmp_path / "test_nothing.py"
    test_file.write_text("def test_nothing():\n    assert True\n")

    import subprocess
    import sys

    from tests.utils import child_env

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pytest_django", "-q", str(test_file),
         "-o", "addopts=", "-s", "--rootdir", str(tmp_path)],
        cwd=REPO,
        env=child_env(database.url, AUTOMIGRATE_ON_STARTUP="true", **DEVELOPMENT),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped at startup: running under pytest" in result.stderr + result.stdout
    assert database.tables() == set()


def test_the_command_refuses_a_missing_database_unless_allowed(server: Server) -> None:
    name = f"automigrate_t_missing_{free_port()}"
    if server.vendor == "sqlite":
        assert server.folder is not None
        url = f"sqlite:///{server.folder / 'sub' / 'dir' / (name + '.sqlite3')}"
    else:
        url = server.url_for(name)
    database = FreshDatabase(server, name, url)

    refused = run_command(url, "automigrate")
    try:
        created = run_command(
            url, "automigrate", "--format", "json", AUTOMIGRATE_CREATE_DATABASE="true"
        )
        rows = database.migration_rows()
    finally:
        database.drop()

    assert refused.returncode == 2
    assert f"Database {name!r}" in refused.err or name in refused.err
    assert "does not exist" in refused.err
    assert "CREATE_DATABASE" in refused.err
    assert created.returncode == 0, created.err
    report = created.json()["databases"][0]
    assert report["created_database"] is True
    assert report["status"] == "succeeded"
    assert ("testapp", "0022_seed_tags") in rows


def test_a_manage_script_of_any_name_is_recognised(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    script = tmp_path / "manage"
    script.write_text(
        "import sys\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )

    import subprocess
    import sys

    from tests.utils import child_env

    result = subprocess.run(
        [sys.executable, str(script), "migrate", "--plan"],
        cwd=REPO,
        env=child_env(database.url, AUTOMIGRATE_ON_STARTUP="true", **DEVELOPMENT),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "skipped at startup: management command 'migrate'" in result.stderr
    assert database.history_rows() == []


@pytest.mark.drivers
@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_workers_that_outwait_the_lock_timeout_keep_waiting_instead_of_stopping(
    database: FreshDatabase,
) -> None:
    # Stopping would not help, and in gunicorn a worker that fails to boot stops the master,
    # and with it the worker that is migrating.
    status, served_by, log = _two_gunicorn_workers(
        database.url, 120,
        AUTOMIGRATE_LOCK_TIMEOUT="2", AUTOMIGRATE_TEST_SLOW="0010_checkpoint:8", **DEVELOPMENT,
    )  # fmt: skip

    assert status == 200
    assert len(served_by) == 2
    assert "still waiting at startup: Could not get the migration lock" in log
    assert "Worker failed to boot" not in log
    assert [row["status"] for row in database.history_rows()] == ["succeeded"]
