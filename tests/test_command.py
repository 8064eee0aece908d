"""``manage.py automigrate`` as users run it: options, output, exit codes, history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import FreshDatabase, Server
from tests.utils import run_command

FAIL_AT = "0020_checkpoint"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> FreshDatabase:
    return Server("sqlite", folder=tmp_path).create_database()


def test_a_failed_migration_exits_1_names_it_and_is_recorded(database: FreshDatabase) -> None:
    # Without rollback, so that the row can be checked against what stays applied.
    result = run_command(
        database.url,
        "automigrate",
        AUTOMIGRATE_TEST_FAIL=FAIL_AT,
        AUTOMIGRATE_ROLLBACK_ON_FAILURE="false",
    )

    assert result.returncode == 1
    assert f"failed at testapp.{FAIL_AT}" in result.err
    assert f"injected failure in {FAIL_AT}" in result.err
    (row,) = database.history_rows()
    assert row["status"] == "failed"
    assert row["failed_migration"] == f"testapp.{FAIL_AT}"
    assert f"injected failure in {FAIL_AT}" in row["error_summary"]
    applied = row["applied"] if isinstance(row["applied"], list) else json.loads(row["applied"])
    assert "testapp.0019_book_unique_title_author" in applied
    assert f"testapp.{FAIL_AT}" not in applied
    # What the row says was applied is exactly what django_migrations holds for testapp.
    recorded = {f"testapp.{name}" for app, name in database.migration_rows() if app == "testapp"}
    assert recorded == {label for label in applied if label.startswith("testapp.")}


def test_a_later_run_finishes_what_a_failed_one_left(sqlite_db: FreshDatabase) -> None:
    run_command(
        sqlite_db.url,
        "automigrate",
        AUTOMIGRATE_TEST_FAIL=FAIL_AT,
        AUTOMIGRATE_ROLLBACK_ON_FAILURE="false",
    )

    result = run_command(sqlite_db.url, "automigrate", "--format", "json")

    assert result.returncode == 0
    assert result.json()["databases"][0]["applied"][0] == f"testapp.{FAIL_AT}"
    assert [row["status"] for row in sqlite_db.history_rows()] == ["failed", "succeeded"]


def test_text_output_shows_django_progress_and_a_summary(sqlite_db: FreshDatabase) -> None:
    first = run_command(sqlite_db.url, "automigrate")
    second = run_command(sqlite_db.url, "automigrate")

    assert first.returncode == 0
    assert "Applying testapp.0001_initial... OK" in first.out
    assert "default: applied" in first.out
    assert "(run #1)" in first.out
    assert second.out.strip() == "default: nothing to do, up to date."


def test_history_lists_recorded_runs_newest_first(sqlite_db: FreshDatabase) -> None:
    run_command(
        sqlite_db.url,
        "automigrate",
        AUTOMIGRATE_TEST_FAIL=FAIL_AT,
        AUTOMIGRATE_ROLLBACK_ON_FAILURE="false",
    )
    run_command(sqlite_db.url, "automigrate", AUTOMIGRATE_RELEASE="v1.2.3")

    text = run_command(sqlite_db.url, "automigrate", "--history")
    document = run_command(sqlite_db.url, "automigrate", "--history", "1", "--format", "json")

    assert text.returncode == 0
    lines = text.out.splitlines()
    assert lines[0].split()[:2] == ["#", "started"]
    assert lines[1].split()[0] == "2"
    assert "succeeded" in lines[1]
    assert lines[2].split()[0] == "1"
    assert "failed" in lines[2]
    assert any(line.startswith("#1 failed: ") for line in lines)
    (run,) = document.json()["runs"]
    assert run["id"] == 2
    assert run["status"] == "succeeded"
    assert run["trigger"] == "command"
    assert run["release"] == "v1.2.3"
    assert run["pid"] > 0
    assert run["applied"] == run["planned"]


def test_history_before_any_run_says_so(sqlite_db: FreshDatabase) -> None:
    result = run_command(sqlite_db.url, "automigrate", "--history")

    assert result.returncode == 0
    assert "no history yet" in result.out


def test_an_unknown_alias_exits_2(sqlite_db: FreshDatabase) -> None:
    result = run_command(sqlite_db.url, "automigrate", "--database", "replica")

    assert result.returncode == 2
    assert "Unknown database alias 'replica'" in result.err
    assert sqlite_db.tables() == set()


def test_an_invalid_setting_exits_2_naming_it(sqlite_db: FreshDatabase) -> None:
    text = run_command(sqlite_db.url, "automigrate", AUTOMIGRATE_MODE="eventually")
    document = run_command(
        sqlite_db.url, "automigrate", "--format", "json", AUTOMIGRATE_MODE="eventually"
    )

    assert text.returncode == 2
    assert "AUTOMIGRATE_MODE='eventually'" in text.err
    assert document.returncode == 2
    assert document.json()["exit_code"] == 2
    assert "AUTOMIGRATE_MODE" in document.json()["error"]
    assert sqlite_db.tables() == set()


@pytest.mark.parametrize(
    "arguments",
    [
        ("--lock-timeout", "soon"),
        ("--lock-timeout", "-1"),
        ("--history", "0"),
        ("--check", "--history"),
        ("--format", "yaml"),
    ],
)
def test_bad_usage_exits_2(sqlite_db: FreshDatabase, arguments: tuple[str, ...]) -> None:
    result = run_command(sqlite_db.url, "automigrate", *arguments)

    assert result.returncode == 2
    assert "error:" in result.err
    assert sqlite_db.tables() == set()


def test_no_lock_runs_and_says_so(sqlite_db: FreshDatabase) -> None:
    result = run_command(sqlite_db.url, "automigrate", "--no-lock")

    assert result.returncode == 0
    assert "without the migration lock" in result.err
    assert sqlite_db.history_rows()[0]["status"] == "succeeded"
    assert not Path(f"{sqlite_db.path}.automigrate.lock").exists()


def test_databases_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    server = Server("sqlite", folder=tmp_path)
    first, second = server.create_database(), server.create_database()

    result = run_command(
        first.url,
        "automigrate",
        "--database",
        "default",
        "--database",
        "other",
        "--format",
        "json",
        AUTOMIGRATE_TEST_OTHER_DATABASE_URL=second.url,
        AUTOMIGRATE_TEST_FAIL=FAIL_AT,
    )

    assert result.returncode == 1
    reports = result.json()["databases"]
    assert [(r["alias"], r["status"]) for r in reports] == [
        ("default", "rolled_back"),  # the failure was undone; the next database left alone
        ("other", "not_run"),
    ]
    assert second.tables() == set()


def test_the_databases_setting_picks_and_orders_aliases(tmp_path: Path) -> None:
    server = Server("sqlite", folder=tmp_path)
    first, second = server.create_database(), server.create_database()

    result = run_command(
        first.url,
        "automigrate",
        "--format",
        "json",
        AUTOMIGRATE_TEST_OTHER_DATABASE_URL=second.url,
        AUTOMIGRATE_DATABASES="other,default",
    )

    assert result.returncode == 0, result.err
    assert [r["alias"] for r in result.json()["databases"]] == ["other", "default"]
    assert second.history_rows()[0]["database"] == "other"
    assert first.history_rows()[0]["database"] == "default"


def test_check_on_a_missing_database_reports_everything_pending_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "not" / "yet" / "db.sqlite3"

    text = run_command(f"sqlite:///{path}", "automigrate", "--check")
    document = run_command(f"sqlite:///{path}", "automigrate", "--check", "--format", "json")

    assert text.returncode == 1
    assert "default: no database yet, so all" in text.out
    assert document.json()["missing_databases"] == ["default"]
    assert "testapp.0022_seed_tags" in document.json()["pending"]["default"]
    assert not (tmp_path / "not").exists()


def test_a_failed_migrations_traceback_is_on_stderr_and_in_every_json_output(
    sqlite_db: FreshDatabase,
) -> None:
    text = run_command(
        sqlite_db.url,
        "automigrate",
        AUTOMIGRATE_TEST_FAIL=FAIL_AT,
        AUTOMIGRATE_TEST_LOG_LEVEL="INFO",
    )
    document = run_command(
        sqlite_db.url, "automigrate", "--format", "json", AUTOMIGRATE_TEST_FAIL=FAIL_AT
    )
    history = run_command(sqlite_db.url, "automigrate", "--history", "--format", "json")

    assert text.returncode == 1
    summary, _, trace = text.err.partition(f"Traceback of testapp.{FAIL_AT}:")
    assert f"failed at testapp.{FAIL_AT}" in summary
    # Python's traceback, ending where the migration's code raised (its RunPython function).
    assert 'testapp/checkpoints.py", line' in trace
    assert trace.rstrip().endswith(f"RuntimeError: injected failure in {FAIL_AT}")
    assert text.err.count(f"injected failure in {FAIL_AT}") == 2  # the summary, the traceback
    (database,) = document.json()["databases"]
    assert database["traceback"].rstrip().endswith(f"injected failure in {FAIL_AT}")
    runs = history.json()["runs"]
    assert len(runs) == 2
    assert all('testapp/checkpoints.py", line' in run["traceback"] for run in runs)


def test_a_successful_run_prints_no_traceback(sqlite_db: FreshDatabase) -> None:
    result = run_command(sqlite_db.url, "automigrate", "--format", "json")

    assert result.json()["databases"][0]["traceback"] == ""
    assert "Traceback" not in result.err
