"""``automigrate --rollback [RUN_ID]``: undo a recorded run, under the lock, on every backend."""

from __future__ import annotations

import json

import pytest

from tests.servers import FreshDatabase
from tests.utils import REPO, Result, child_env, finish, manage_args, run_command, start_command


def migrate(database: FreshDatabase, *args: str, **env: str) -> None:
    result = finish(start_command(database.url, "migrate", *args, **env))
    assert result.returncode == 0, result.err


def test_a_rollback_round_trip(database: FreshDatabase) -> None:
    migrate(database, "django_automigrate")
    migrate(database, "testapp", "0010_checkpoint")
    before = (database.schema_dump(), database.migration_rows())
    run = run_command(database.url, "automigrate", "--format", "json")
    run_id = run.json()["databases"][0]["run_id"]

    preview = run_command(database.url, "automigrate", "--rollback", "--dry-run")
    after_preview = (database.schema_dump(), database.migration_rows())
    undone = run_command(
        database.url, "automigrate", "--rollback", "--no-input", "--format", "json"
    )
    after_rollback = (database.schema_dump(), database.migration_rows())
    again = run_command(database.url, "automigrate", "--format", "json")

    assert run.returncode == 0, run.err
    assert preview.returncode == 0, preview.err
    assert f"rolling back run #{run_id} would unapply" in preview.out
    assert "testapp.0023_final_checkpoint" in preview.out
    assert after_preview != before  # the preview changed nothing: run N's schema is still there
    assert undone.returncode == 0, undone.err
    document = undone.json()
    assert document["status"] == "succeeded"
    applied = run.json()["databases"][0]["applied"]
    assert set(document["rolled_back"]) == {a for a in applied if "automigrate" not in a}
    assert after_rollback == before
    rows = database.history_rows()
    assert [(row["trigger"], row["status"]) for row in rows] == [
        ("command", "succeeded"),
        ("rollback", "succeeded"),
        ("command", "succeeded"),  # applied again
    ]
    assert again.returncode == 0
    assert again.json()["databases"][0]["applied"] == run.json()["databases"][0]["applied"]


def test_a_rollback_is_refused_when_a_later_run_depends_on_it(database: FreshDatabase) -> None:
    migrate(database, "django_automigrate")
    migrate(database, "testapp", "0010_checkpoint")
    early = run_command(database.url, "automigrate", "--format", "json")
    migrate(database, "testapp", "0012_book_tags")  # unapplied by hand, then applied again
    later = run_command(database.url, "automigrate", "--format", "json")
    before = (database.schema_dump(), database.migration_rows())

    refused = run_command(
        database.url, "automigrate", "--rollback", str(early.json()["databases"][0]["run_id"])
    )

    assert "testapp.0013_review" in later.json()["databases"][0]["applied"]
    assert refused.returncode == 1
    assert "later runs applied migrations that depend on it" in refused.err
    assert "testapp.0013_review" in refused.err
    assert (database.schema_dump(), database.migration_rows()) == before


def test_a_rollback_through_an_irreversible_migration_is_refused(
    database: FreshDatabase,
) -> None:
    apps = "tests.dangerapp"
    run = finish(start_command(database.url, "automigrate", AUTOMIGRATE_TEST_EXTRA_APPS=apps))
    assert run.returncode == 0, run.err
    before = (database.schema_dump(), database.migration_rows())

    refused = finish(
        start_command(database.url, "automigrate", "--rollback", AUTOMIGRATE_TEST_EXTRA_APPS=apps)
    )

    assert refused.returncode == 1
    assert "Refusing to roll back run #1" in refused.err
    assert "is irreversible" in refused.err
    assert (database.schema_dump(), database.migration_rows()) == before


def test_nothing_to_roll_back_is_said_plainly(database: FreshDatabase) -> None:
    result = run_command(database.url, "automigrate", "--rollback")

    assert result.returncode == 2
    assert "No run that applied migrations in the history of 'default'" in result.err


def test_a_rollback_of_a_run_a_newer_release_applied_is_refused_without_a_traceback(
    database: FreshDatabase,
) -> None:
    run = run_command(database.url, "automigrate", "--format", "json")
    run_id = run.json()["databases"][0]["run_id"]
    # What a newer release leaves: a migration applied and recorded, whose file this code lacks.
    database.execute(
        "INSERT INTO django_migrations (app, name, applied) "
        "VALUES ('testapp', '0099_from_the_future', CURRENT_TIMESTAMP)"
    )
    applied = [*run.json()["databases"][0]["applied"], "testapp.0099_from_the_future"]
    quoted = "'" + json.dumps(applied).replace("'", "''") + "'"
    database.execute(
        f"UPDATE django_automigrate_migrationrun SET applied = {quoted} WHERE id = {int(run_id)}"
    )
    before = database.migration_rows()

    refused = run_command(database.url, "automigrate", "--rollback", str(run_id))

    assert refused.returncode == 1
    assert "Traceback" not in refused.err
    assert "this code has no migration file for testapp.0099_from_the_future" in refused.err
    assert database.migration_rows() == before


def _applied_run(database: FreshDatabase) -> int:
    migrate(database, "django_automigrate")
    migrate(database, "testapp", "0010_checkpoint")
    run = run_command(database.url, "automigrate", "--format", "json")
    assert run.returncode == 0, run.err
    run_id: int = run.json()["databases"][0]["run_id"]
    return run_id


def _in_a_terminal(database: FreshDatabase, answer: str, *args: str) -> Result:
    """``automigrate ARGS`` with a terminal on stdin that answers ``answer``."""
    import os
    import subprocess

    controller, terminal = os.openpty()
    process = subprocess.Popen(
        manage_args("automigrate", *args),
        cwd=REPO,
        env=child_env(database.url),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    os.write(controller, f"{answer}\n".encode())
    try:
        return finish(process)
    finally:
        os.close(controller)


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_without_a_terminal_a_rollback_is_refused_unless_no_input(
    database: FreshDatabase,
) -> None:
    run_id = _applied_run(database)
    before = (database.schema_dump(), database.migration_rows())

    refused = run_command(database.url, "automigrate", "--rollback", str(run_id))
    refused_json = run_command(database.url, "automigrate", "--rollback", "--format", "json")
    unchanged = (database.schema_dump(), database.migration_rows())
    done = run_command(database.url, "automigrate", "--rollback", str(run_id), "--noinput")

    assert refused.returncode == 2
    assert "pass --no-input to go ahead" in refused.err
    assert (
        f"unapply 35 migration(s) of run #{run_id} on 'default', dropping 15 table(s) and "
        "2 column(s)" in refused.err
    )
    assert refused_json.returncode == 2
    assert refused_json.json()["ok"] is False
    assert unchanged == before
    assert done.returncode == 0, done.err
    assert f"rolled back run #{run_id}" in done.out


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_in_a_terminal_a_rollback_lists_what_goes_and_asks(database: FreshDatabase) -> None:
    run_id = _applied_run(database)
    before = (database.schema_dump(), database.migration_rows())

    cancelled = _in_a_terminal(database, "no", "--rollback")
    unchanged = (database.schema_dump(), database.migration_rows())
    confirmed = _in_a_terminal(database, "yes", "--rollback")

    assert cancelled.returncode == 0, cancelled.err
    assert "Type 'yes' to continue, or 'no' to cancel:" in cancelled.out
    assert "  testapp.0023_final_checkpoint" in cancelled.out
    tables, _, columns = cancelled.out.partition("Columns dropped, with their data:")
    assert "Tables dropped, with their data:" in tables
    for table in ("auth_user", "auth_user_groups", "django_session", "testapp_book_tags"):
        assert f"\n  {table}\n" in tables  # many-to-many tables go too
    assert "  testapp_author.active\n  testapp_book.price\n" in columns
    assert "Rollback cancelled; nothing was changed." in cancelled.out
    assert unchanged == before
    assert confirmed.returncode == 0, confirmed.err
    assert f"rolled back run #{run_id}" in confirmed.out
    assert (database.schema_dump(), database.migration_rows()) != before
