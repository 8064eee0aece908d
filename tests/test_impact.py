"""MAX_LOCK_IMPACT and --max-lock-impact: the dry run as a CI gate, and a production run that
refuses a plan worse than the limit, applying nothing, until the override it names is given."""

from __future__ import annotations

import jsonschema
import pytest

from django_automigrate.run import impact
from django_automigrate.run.forecast import BRIEF_LOCK, REWRITES, UNKNOWN, MigrationForecast
from tests.servers import FreshDatabase
from tests.test_forecast import APP, dry_run_schema
from tests.utils import Result, finish, start_command

REWRITING = "forecastapp.0002_django_forms"  # rewrites a table 0001 creates, on every backend
PRODUCTION = {"AUTOMIGRATE_ENVIRONMENT": "production", "AUTOMIGRATE_TEST_EXTRA_APPS": APP}


def applied(database: FreshDatabase) -> list[str]:
    rows = database.query("SELECT name FROM django_migrations WHERE app = 'forecastapp'")
    return sorted(str(name) for (name,) in rows)


def command(database: FreshDatabase, *args: str, **env: str) -> Result:
    return finish(start_command(database.url, "automigrate", *args, **{**PRODUCTION, **env}))


def first_step(database: FreshDatabase) -> None:
    result = finish(start_command(database.url, "migrate", "forecastapp", "0001", **PRODUCTION))
    assert result.returncode == 0, result.err


def test_unknown_never_exceeds_a_limit_and_the_message_names_the_worst_level() -> None:
    forecasts: list[tuple[str, MigrationForecast | None]] = [
        ("a.0001", MigrationForecast(UNKNOWN, "runs Python")),
        ("a.0002", MigrationForecast(BRIEF_LOCK, "blocks writes for an instant")),
        ("a.0003", MigrationForecast(REWRITES, "rewrites 1.0 GB")),
        ("a.0004", None),  # no database yet
    ]

    over = impact.over_limit(forecasts, "safe")

    assert [item.migration for item in over] == ["a.0002", "a.0003"]
    message = impact.refusal(over, "safe")
    assert "a.0003 (rewrites 1.0 GB)" in message
    assert "--max-lock-impact rewrites" in message
    assert "AUTOMIGRATE_MAX_LOCK_IMPACT=rewrites" in message


def test_the_dry_run_gate_exits_5_names_the_migrations_and_the_override(
    database: FreshDatabase,
) -> None:
    first_step(database)

    gated = command(database, "--dry-run", "--max-lock-impact", "blocks_writes", "--format", "json")
    text = command(database, "--dry-run", "--max-lock-impact", "blocks_writes")
    allowed = command(database, "--dry-run", "--max-lock-impact", "rewrites", "--format", "json")

    assert gated.returncode == 5, gated.err
    document = gated.json()
    jsonschema.validate(document, dry_run_schema())
    assert document["max_lock_impact"] == "blocks_writes"
    assert REWRITING in document["databases"][0]["over_max_lock_impact"]
    assert text.returncode == 5
    assert f"a run would apply nothing: the lock forecast of {REWRITING} (rewrites " in text.err
    assert "manage.py automigrate --max-lock-impact rewrites" in text.err
    assert allowed.returncode == 0, allowed.err
    assert allowed.json()["databases"][0]["over_max_lock_impact"] == []
    assert applied(database) == ["0001_initial"]  # a dry run applies nothing


def test_a_production_run_over_the_limit_applies_nothing_until_the_override(
    database: FreshDatabase,
) -> None:
    first_step(database)

    refused = command(database, "--format", "json", AUTOMIGRATE_MAX_LOCK_IMPACT="blocks_writes")

    assert refused.returncode == 5, refused.err
    report = refused.json()["databases"][0]
    assert report["status"] == "too_disruptive"
    # The history's own tables came first (the database had none): of the plan, nothing.
    assert f"none of the plan was applied: the lock forecast of {REWRITING}" in report["error"]
    assert "AUTOMIGRATE_MAX_LOCK_IMPACT=rewrites" in report["error"]
    assert report["applied"]
    assert all(label.startswith("django_automigrate.") for label in report["applied"])
    assert applied(database) == ["0001_initial"]
    # Recorded, so that the history and the health check say why the plan is still pending.
    (newest, *_) = command(database, "--history", "--format", "json").json()["runs"]
    assert newest["status"] == "failed"
    assert newest["failed_migration"] == REWRITING
    assert newest["error_summary"] == report["error"]
    assert report["run_id"] == newest["id"]

    # The flag the message names lets this one run through; the setting stays as it is.
    through = command(
        database, "--max-lock-impact", "rewrites", AUTOMIGRATE_MAX_LOCK_IMPACT="blocks_writes"
    )

    assert through.returncode == 0, through.err
    assert "0002_django_forms" in applied(database)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_in_development_the_setting_stops_nothing(database: FreshDatabase) -> None:
    first_step(database)

    result = command(
        database, AUTOMIGRATE_ENVIRONMENT="development", AUTOMIGRATE_MAX_LOCK_IMPACT="safe"
    )

    assert result.returncode == 0, result.err
    assert "0002_django_forms" in applied(database)
