"""A failed run leaves the database as it was, or says exactly what state it is in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import FreshDatabase, Server
from tests.utils import (
    Result,
    finish,
    run_command,
    serve_once,
    start_command,
)


def migrate_to(database: FreshDatabase, app: str, target: str, **env: str) -> None:
    for args in (("django_automigrate",), (app, target)):
        result = finish(start_command(database.url, "migrate", *args, **env))
        assert result.returncode == 0, result.err


def state(database: FreshDatabase) -> tuple[object, ...]:
    return (database.schema_dump(), database.migration_rows())


def failing_run(database: FreshDatabase, fail_at: str, **env: str) -> Result:
    command = start_command(
        database.url, "automigrate", "--format", "json", AUTOMIGRATE_TEST_FAIL=fail_at, **env
    )
    return finish(command)


@pytest.mark.parametrize(
    ("base", "fail_at", "position"),
    [
        ("0019_book_unique_title_author", "0020_checkpoint", "first"),
        ("0005_book_published", "0010_checkpoint", "middle"),
        ("0019_book_unique_title_author", "0023_final_checkpoint", "last"),
    ],
)
def test_a_failure_anywhere_in_the_plan_leaves_the_database_as_it_was(
    database: FreshDatabase, base: str, fail_at: str, position: str
) -> None:
    migrate_to(database, "testapp", base)
    before = state(database)

    result = failing_run(database, fail_at)

    assert result.returncode == 1
    report = result.json()["databases"][0]
    assert report["status"] == "rolled_back", report["error"]
    assert report["applied"] == []
    assert state(database) == before
    expected_mode = "reverse" if database.vendor == "mysql" else "transaction"
    assert report["rollback"] == expected_mode
    row = database.history_rows()[-1]
    assert row["status"] == "rolled_back"
    assert row["id"] == report["run_id"]
    if position != "first" or database.vendor != "mysql":
        assert f"injected failure in {fail_at}" in row["error_summary"]


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_without_rollback_on_failure_earlier_migrations_stay_applied(
    database: FreshDatabase,
) -> None:
    migrate_to(database, "testapp", "0005_book_published")

    result = failing_run(database, "0010_checkpoint", AUTOMIGRATE_ROLLBACK_ON_FAILURE="false")

    report = result.json()["databases"][0]
    assert result.returncode == 1
    assert report["status"] == "failed"
    assert report["rollback"] == ""
    assert "testapp.0009_book_title_index" in report["applied"]
    assert ("testapp", "0009_book_title_index") in database.migration_rows()


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_an_irreversible_migration_stops_the_rollback_and_the_row_says_where(
    database: FreshDatabase,
) -> None:
    # On PostgreSQL a non-atomic migration in the plan rules out the one-transaction run.
    apps = "tests.dangerapp" + (",tests.pgapp" if database.vendor == "postgresql" else "")

    result = failing_run(database, "0020_checkpoint", AUTOMIGRATE_TEST_EXTRA_APPS=apps)

    report = result.json()["databases"][0]
    assert result.returncode == 1
    assert report["status"] == "failed"
    assert report["rollback"] == "reverse"
    assert "dangerapp.0002_dangerous is irreversible" in report["error"]
    assert "dangerapp.0003_safe" in report["rolled_back"]
    assert "dangerapp.0002_dangerous" in report["applied"]
    rows = {f"{app}.{name}" for app, name in database.migration_rows()}
    assert set(report["applied"]) <= rows
    assert not set(report["rolled_back"]) & rows
    row = database.history_rows()[-1]
    assert row["status"] == "failed"


@pytest.mark.parametrize("server", ["mysql"], indirect=True)
def test_a_half_applied_migration_blocks_runs_until_marked_fixed(database: FreshDatabase) -> None:
    apps = "tests.halfapp"

    failed = failing_run(database, "halfapp_0002", AUTOMIGRATE_TEST_EXTRA_APPS=apps)
    refused = run_command(database.url, "automigrate", AUTOMIGRATE_TEST_EXTRA_APPS=apps)
    database.execute("ALTER TABLE halfapp_widget DROP COLUMN colour")  # the person's repair
    run_id = failed.json()["databases"][0]["run_id"]
    fixed = run_command(
        database.url, "automigrate", "--mark-fixed", str(run_id), AUTOMIGRATE_TEST_EXTRA_APPS=apps
    )
    resumed = run_command(database.url, "automigrate", AUTOMIGRATE_TEST_EXTRA_APPS=apps)

    report = failed.json()["databases"][0]
    assert failed.returncode == 1
    assert report["half_applied"] is True
    assert "halfapp.0002_widget_colour is half-applied" in report["error"]
    assert "operations that had run: Add field colour to widget" in report["error"]
    assert f"--mark-fixed {run_id}" in report["error"]
    assert refused.returncode == 1
    assert f"run #{run_id} left halfapp.0002_widget_colour half-applied" in refused.err
    assert fixed.returncode == 0, fixed.err
    assert "marked fixed by hand" in fixed.out
    assert resumed.returncode == 0, resumed.err
    assert ("halfapp", "0002_widget_colour") in database.migration_rows()


def test_a_startup_run_refuses_a_half_applied_database(tmp_path: Path) -> None:
    # SQLite has transactional DDL, so a half-applied state is planted as MySQL would leave it.
    database = Server("sqlite", folder=tmp_path).create_database()
    env = {"AUTOMIGRATE_TEST_EXTRA_APPS": "tests.halfapp", "AUTOMIGRATE_ENVIRONMENT": "development"}
    run_command(database.url, "migrate", "django_automigrate")
    database.execute(
        'INSERT INTO django_automigrate_migrationrun (database, "trigger", status, started_at, '
        "planned, applied, failed_migration, error_summary, traceback, host, django_version, "
        "automigrate_version, release, lock, rollback, rolled_back, half_applied) VALUES "
        "('default', 'startup', 'failed', '2026-01-01 00:00:00', '[]', '[]', "
        "'halfapp.0002_widget_colour', '', '', '', '', '', '', '', '', '[]', 1)"
    )

    status, body, log = serve_once(
        database.url, "runserver", "/startup-state/", "--noreload",
        AUTOMIGRATE_ON_FAILURE="continue", **env,
    )  # fmt: skip

    assert status == 200
    assert '"status": "failed"' in body
    assert "Refusing to migrate 'default': run #1 left halfapp.0002_widget_colour" in log
    assert ("halfapp", "0001_initial") not in database.migration_rows()


def test_mark_fixed_refuses_a_run_that_left_nothing_half_applied(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    assert run_command(database.url, "automigrate").returncode == 0

    result = run_command(database.url, "automigrate", "--mark-fixed", "1")
    missing = run_command(database.url, "automigrate", "--mark-fixed", "99")

    assert result.returncode == 2
    assert "left nothing half-applied" in result.err
    assert missing.returncode == 2
    assert "No run #99" in missing.err


@pytest.mark.parametrize("server", ["mysql"], indirect=True)
def test_a_failure_after_reads_only_is_not_half_applied(database: FreshDatabase) -> None:
    apps = "tests.halfapp"
    for args in ((), ("halfapp", "0002_widget_colour")):
        done = finish(
            start_command(database.url, "migrate", *args, AUTOMIGRATE_TEST_EXTRA_APPS=apps)
        )
        assert done.returncode == 0, done.err
    before = state(database)

    result = failing_run(database, "halfapp_0003", AUTOMIGRATE_TEST_EXTRA_APPS=apps)

    report = result.json()["databases"][0]
    assert result.returncode == 1
    assert report["half_applied"] is False
    assert report["status"] == "rolled_back"
    assert "Nothing had been applied yet" in report["error"]
    assert state(database) == before


@pytest.mark.parametrize("server", ["mysql"], indirect=True)
def test_an_undo_that_stops_halfway_leaves_the_migration_marked_half_applied(
    database: FreshDatabase,
) -> None:
    """undoapp.0003 fails; undoing 0002 drops its column (no transaction on MySQL/MariaDB to
    take that back), then its reverse SQL fails. 0002 is still recorded as applied with half
    of it gone: the run says so, and the next run refuses until it is repaired."""
    apps = {"AUTOMIGRATE_TEST_EXTRA_APPS": "tests.undoapp"}
    migrate_to(database, "undoapp", "0001_initial", **apps)

    failed = failing_run(database, "undoapp_0003", **apps)

    assert failed.returncode == 1, failed.err
    report = failed.json()["databases"][0]
    assert report["half_applied"] is True
    assert report["failed_migration"] == "undoapp.0002_crate_size"
    assert (
        "After undoapp.0003_checkpoint failed, reversing undoapp.0002_crate_size failed"
        in (report["error"])
    )
    assert "undoapp.0002_crate_size is half-applied" in report["error"]
    refused = finish(start_command(database.url, "automigrate", **apps))
    assert refused.returncode == 1
    assert "left undoapp.0002_crate_size half-applied" in refused.err
