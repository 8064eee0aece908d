"""The Python API, in process (the real-process behaviour is in test_replicas and test_parity)."""

from __future__ import annotations

import pytest

import django_automigrate
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.models import MigrationRun
from django_automigrate.run.runner import DatabaseResult, RunResult


@pytest.mark.django_db
def test_an_up_to_date_database_is_nothing_to_do_and_writes_no_row() -> None:
    result = django_automigrate.migrate()

    assert result.ok
    assert result.exit_code == 0
    assert [(r.alias, r.status) for r in result.databases] == [("default", "nothing_to_do")]
    assert result.applied == []
    assert MigrationRun.objects.count() == 0


def test_an_unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Unknown database alias 'replica'"):
        django_automigrate.migrate(["replica"])


def test_a_negative_lock_timeout_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="0 or more seconds"):
        django_automigrate.migrate(lock_timeout=-1)


def test_the_first_database_that_did_not_succeed_decides_the_exit_code() -> None:
    result = RunResult(
        [
            DatabaseResult("default", "succeeded", applied=["app.0001_initial"]),
            DatabaseResult("other", "lock_timeout", error="Could not get the migration lock"),
            DatabaseResult("third", "not_run"),
        ]
    )

    assert result.exit_code == 3
    assert not result.ok
    assert result.applied == ["app.0001_initial"]
    with pytest.raises(AutomigrateError, match="Could not get the migration lock") as error:
        result.raise_for_status()
    assert error.value.exit_code == 3


def test_results_serialise_to_plain_json_types() -> None:
    result = RunResult([DatabaseResult("default", "failed", duration=1.23456, error="boom")])

    assert result.to_dict() == {
        "ok": False,
        "exit_code": 1,
        "databases": [
            {
                "alias": "default",
                "status": "failed",
                "planned": [],
                "applied": [],
                "duration": 1.235,
                "lock_wait": 0.0,
                "lock": "",
                "run_id": None,
                "failed_migration": "",
                "error": "boom",
                "applied_by_another_process": False,
                "created_database": False,
                "rollback": "",
                "rolled_back": [],
                "half_applied": False,
                "applied_without_file": [],
                "traceback": "",
                "deferred": [],
            }
        ],
    }
