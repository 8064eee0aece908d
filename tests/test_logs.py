"""The log lines of a run and their ``extra`` fields (what JSON log formatters pick up)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.test import override_settings

import django_automigrate
from tests.servers import Server
from tests.utils import run_command

pytestmark = pytest.mark.django_db(transaction=True)

LAST = "testapp.0023_final_checkpoint"


def _records(caplog: pytest.LogCaptureFixture, level: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "django_automigrate" and r.levelname == level]


def test_a_run_logs_each_migration_and_one_summary_with_its_fields(
    one_pending: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="django_automigrate")
    result = django_automigrate.migrate()

    lines = [r.getMessage() for r in _records(caplog, "INFO")]
    assert lines[0] == f"automigrate: default: applying {LAST}"
    assert lines[1].startswith(f"automigrate: default: applied {LAST} in ")
    assert lines[2].startswith("automigrate: default: applied 1 migration(s) in ")
    summary = _records(caplog, "INFO")[2]
    fields = {
        name: getattr(summary, name)
        for name in ("database", "status", "trigger", "planned_count", "applied_count", "run_id")
    }
    assert fields == {
        "database": "default",
        "status": "succeeded",
        "trigger": "command",
        "planned_count": 1,
        "applied_count": 1,
        "run_id": result.databases[0].run_id,
    }
    assert isinstance(summary.__dict__["duration"], float)
    assert isinstance(summary.__dict__["lock_wait"], float)
    assert summary.__dict__["lock"]


def test_no_per_migration_lines_without_log_details(
    one_pending: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="django_automigrate")
    with override_settings(AUTOMIGRATE={"LOG_DETAILS": False}):
        django_automigrate.migrate()

    lines = [r.getMessage() for r in _records(caplog, "INFO")]
    assert len(lines) == 1
    assert lines[0].startswith("automigrate: default: applied 1 migration(s)")


def test_a_failure_is_one_error_naming_the_migration(
    one_pending: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("AUTOMIGRATE_TEST_FAIL", "0023_final_checkpoint")
        django_automigrate.migrate()

    (error,) = _records(caplog, "ERROR")
    seconds = error.__dict__["duration"]
    assert error.getMessage().startswith(
        f"automigrate: default: rolled_back after {seconds:.1f}s (applied 0, failed at {LAST}): "
    )
    assert error.__dict__["failed_migration"] == LAST
    assert error.__dict__["status"] == "rolled_back"


def test_with_the_recommended_logging_the_command_says_each_thing_once(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    result = run_command(database.url, "automigrate", AUTOMIGRATE_TEST_LOG_LEVEL="INFO")
    output = result.out + result.err

    assert result.returncode == 0, result.err
    progress = [line for line in result.out.splitlines() if "Applying" in line]
    assert len(progress) > 20
    assert all(line.endswith("... OK") for line in progress), progress  # never broken up
    assert "automigrate:" not in result.out
    assert result.err == ""  # no decision lines, no duplicated progress or summary
    assert output.count("applied ") == 1
    assert "default: applied" in result.out


def test_a_failure_is_said_once_with_its_traceback(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()
    result = run_command(
        database.url,
        "automigrate",
        AUTOMIGRATE_TEST_LOG_LEVEL="INFO",
        AUTOMIGRATE_TEST_FAIL="0020_checkpoint",
    )

    assert result.returncode == 1
    assert result.err.count("injected failure in 0020_checkpoint.") == 1  # the summary line
    assert result.err.startswith("default: failed at testapp.0020_checkpoint")
    assert "CommandError" not in result.err
