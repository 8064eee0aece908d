"""``automigrate --dry-run``: the plan, its SQL and warnings, and a hard guarantee of no writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from django_automigrate.locks.sqlite import lock_path
from tests.servers import FreshDatabase, Server
from tests.test_locks import kill, start_holder
from tests.utils import REPO, run_command

SCHEMA = json.loads((REPO / "docs" / "schemas" / "dry-run-v1.schema.json").read_text())
DANGER = "tests.dangerapp"


def dry_run(database: FreshDatabase, *args: str, extra_apps: str = "") -> dict[str, Any]:
    result = run_command(
        database.url,
        "automigrate",
        "--dry-run",
        "--format",
        "json",
        *args,
        AUTOMIGRATE_TEST_EXTRA_APPS=extra_apps,
    )
    assert result.returncode == 0, result.err
    document: dict[str, Any] = result.json()
    jsonschema.validate(document, SCHEMA)
    return document


def snapshot(database: FreshDatabase) -> tuple[object, ...]:
    extra: object = None
    if database.vendor == "sqlite":
        extra = (database.path.read_bytes(), lock_path(database.path).exists())
    return (
        database.tables(),
        database.schema_dump(),
        database.migration_rows(),
        database.history_rows(),
        extra,
    )


def test_a_dry_run_on_a_fresh_database_touches_nothing(database: FreshDatabase) -> None:
    before = snapshot(database)

    document = dry_run(database)

    assert snapshot(database) == before
    assert database.tables() == set()  # not even django_migrations
    (report,) = document["databases"]
    assert report["summary"]["migrations"] >= 20
    assert all(m["sql"] is not None for m in report["migrations"] if m["sql_error"] == "")


def test_a_dry_run_on_a_partly_migrated_database_touches_nothing(database: FreshDatabase) -> None:
    partial = run_command(database.url, "migrate", "testapp", "0012_book_tags")
    assert partial.returncode == 0, partial.err
    before = snapshot(database)

    document = dry_run(database)

    assert snapshot(database) == before
    planned = [m["migration"] for m in document["databases"][0]["migrations"]]
    assert "testapp.0012_book_tags" not in planned
    assert "testapp.0013_review" in planned


def test_the_dry_run_plan_is_what_a_run_then_applies_in_order(database: FreshDatabase) -> None:
    run_command(database.url, "migrate", "testapp", "0005_book_published")

    planned = [m["migration"] for m in dry_run(database)["databases"][0]["migrations"]]
    run = run_command(database.url, "automigrate", "--format", "json")

    assert run.returncode == 0, run.err
    assert planned == run.json()["databases"][0]["applied"]


def test_an_up_to_date_database_has_nothing_to_apply(database: FreshDatabase) -> None:
    assert run_command(database.url, "automigrate").returncode == 0

    text = run_command(database.url, "automigrate", "--dry-run")
    document = dry_run(database)

    assert text.returncode == 0
    assert "nothing to apply" in text.out
    assert document["summary"] == {"migrations": 0, "warnings": 0}


def test_the_lock_holder_is_shown_without_taking_the_lock(database: FreshDatabase) -> None:
    holder = start_holder(database)
    try:
        document = dry_run(database)
    finally:
        kill(holder)

    report = document["databases"][0]
    assert report["lock_holder"]
    expected = "connection" if database.vendor == "mysql" else f"pid {holder.pid}"
    assert expected in report["lock_holder"]


def test_warnings_fire_on_dangerous_operations_only(database: FreshDatabase) -> None:
    document = dry_run(database, extra_apps=DANGER)

    by_migration = {
        m["migration"]: sorted(w["code"] for w in m["warnings"])
        for m in document["databases"][0]["migrations"]
    }
    assert by_migration["dangerapp.0001_initial"] == []
    assert by_migration["dangerapp.0002_dangerous"] == [
        "drop_column",
        "drop_table",
        "narrowing",
        "not_null_without_default",
        "run_python_irreversible",
        "run_sql_irreversible",
    ]
    assert by_migration["dangerapp.0003_safe"] == []
    assert document["summary"]["warnings"] == sum(len(codes) for codes in by_migration.values())


def test_text_output_lists_migrations_sql_warnings_and_a_summary(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()

    result = run_command(
        database.url, "automigrate", "--dry-run", AUTOMIGRATE_TEST_EXTRA_APPS=DANGER
    )

    assert result.returncode == 0, result.err
    out = result.out
    assert "default (sqlite):" in out
    assert "lock: file lock" in out
    assert ": free" in out
    assert "dangerapp.0002_dangerous" in out
    assert "! drop_table: Delete model Obsolete" in out
    assert 'DROP TABLE "dangerapp_obsolete";' in out
    assert out.strip().splitlines()[-1].startswith("Summary: default: ")


def test_each_alias_is_previewed_with_database(tmp_path: Path) -> None:
    server = Server("sqlite", folder=tmp_path)
    first, second = server.create_database(), server.create_database()
    assert run_command(first.url, "automigrate").returncode == 0

    only_other = run_command(
        first.url,
        "automigrate",
        "--dry-run",
        "--format",
        "json",
        "--database",
        "other",
        AUTOMIGRATE_TEST_OTHER_DATABASE_URL=second.url,
    )
    both = run_command(
        first.url,
        "automigrate",
        "--dry-run",
        "--format",
        "json",
        "--database",
        "default",
        "--database",
        "other",
        AUTOMIGRATE_TEST_OTHER_DATABASE_URL=second.url,
    )

    assert [d["alias"] for d in only_other.json()["databases"]] == ["other"]
    assert only_other.json()["summary"]["migrations"] >= 20
    summaries = [(d["alias"], d["summary"]["migrations"]) for d in both.json()["databases"]]
    assert summaries[0] == ("default", 0)
    assert summaries[1][0] == "other"
    assert second.tables() == set()


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_a_missing_database_is_previewed_without_being_created(server: Server) -> None:
    if server.vendor == "sqlite":
        assert server.folder is not None
        url = f"sqlite:///{server.folder / 'missing' / 'db.sqlite3'}"
    else:
        url = server.url_for("automigrate_t_never_created")
    database = FreshDatabase(server, "automigrate_t_never_created", url)

    document = dry_run(database)

    report = document["databases"][0]
    assert report["database_exists"] is False
    assert report["summary"]["migrations"] >= 20
    assert all(m["sql"] is None for m in report["migrations"])
    if server.vendor == "sqlite":
        assert server.folder is not None
        assert not (server.folder / "missing").exists()
    else:
        with server.admin_connection() as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database.name,))
            assert cursor.fetchall() == []


def test_a_lock_that_cannot_be_chosen_is_reported_not_raised(tmp_path: Path) -> None:
    database = Server("sqlite", folder=tmp_path).create_database()

    result = run_command(
        database.url,
        "automigrate",
        "--dry-run",
        "--format",
        "json",
        "--skip-checks",
        "--database",
        "legacy",
        AUTOMIGRATE_TEST_DUMMY_ALIAS="legacy",
    )

    report = result.json()["databases"][0]
    assert "has no native migration lock" in report["lock"]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("create", "said"),
    [
        ("true", "a run would create it (CREATE_DATABASE is on)"),
        ("false", "CREATE_DATABASE is off: a run would stop with exit code 2"),
    ],
)
def test_a_missing_database_is_said_once_with_what_a_run_would_do(
    tmp_path: Path, create: str, said: str
) -> None:
    missing = tmp_path / "not-yet.sqlite3"
    result = run_command(
        f"sqlite:///{missing}", "automigrate", "--dry-run", AUTOMIGRATE_CREATE_DATABASE=create
    )

    assert result.returncode == 0, result.err
    assert result.out.count("does not exist yet") == 1
    assert said in result.out
    assert "(no SQL:" not in result.out  # once for the database, not once per migration
    assert "1. contenttypes.0001_initial" in result.out
    assert not missing.exists()


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_the_sql_of_a_changed_key_includes_the_foreign_keys_of_other_apps(
    database: FreshDatabase,
) -> None:
    """pkapp.0002 makes Parent's key a bigint; pkchildapp (applied, but no ancestor of it)
    points at it. The plan's SQL starts from every applied migration, as the executor does, so
    the child's column is altered too, and the forecast sees that table."""
    apps = "tests.pkapp,tests.pkchildapp"
    result = run_command(
        database.url, "migrate", "pkchildapp", "0001", AUTOMIGRATE_TEST_EXTRA_APPS=apps
    )
    assert result.returncode == 0, result.err

    document = dry_run(database, extra_apps=apps)

    (change,) = [
        m
        for m in document["databases"][0]["migrations"]
        if m["migration"] == "pkapp.0002_parent_id_bigint"
    ]
    sql = "\n".join(change["sql"])
    assert 'ALTER TABLE "pkchildapp_child" ALTER COLUMN "parent_id" TYPE bigint' in sql
    tables = {t["table"] for s in change["forecast"]["statements"] for t in s["tables"]}
    assert "pkchildapp_child" in tables
