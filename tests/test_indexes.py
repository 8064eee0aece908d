"""Invalid indexes left by a failed CREATE INDEX CONCURRENTLY: made for real on PostgreSQL,
found, told apart from one being built, and dropped only when a pending migration creates them
again."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from django_automigrate.run.indexes import (
    InvalidIndex,
    after_run,
    before_run,
    collect_plan_sql,
    drop,
    invalid_indexes,
    planned_index_names,
)
from tests.servers import FreshDatabase, Server
from tests.utils import finish, run_command, start_command, stderr_lines

T = TypeVar("T")

postgresql = pytest.mark.parametrize("server", ["postgresql"], indirect=True)

INDEXAPP = "tests.indexapp"


def leave_invalid_unique_index(database: FreshDatabase, name: str, table: str, column: str) -> None:
    """A unique index built concurrently over duplicates: the build fails, the index stays."""
    with pytest.raises(Exception, match="could not create unique index"):
        database.execute(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON {table} ({column})')


def shop_tables(database: FreshDatabase) -> None:
    """shop_order and shop_customer, each with duplicate values in every text column."""
    database.execute("CREATE TABLE shop_order (id int PRIMARY KEY, email text, code text)")
    database.execute("INSERT INTO shop_order VALUES (1, 'a@x.org', 'A'), (2, 'a@x.org', 'A')")
    database.execute("CREATE TABLE shop_customer (id int PRIMARY KEY, email text)")
    database.execute("INSERT INTO shop_customer VALUES (1, 'a@x.org'), (2, 'a@x.org')")


def names(indexes: Sequence[InvalidIndex]) -> list[str]:
    return [index.name for index in indexes]


def index_state(database: FreshDatabase, name: str) -> tuple[Any, ...] | None:
    """(indisvalid,) of the index, or None when there is none of that name."""
    rows = database.query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s",
        (name,),
    )
    return rows[0] if rows else None


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """The probe's first answer that is not None. The probe is the synchronisation; the pause
    between two probes only spares the server."""
    deadline = time.monotonic() + timeout
    while (answer := probe()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return answer


def waiting_build(database: FreshDatabase) -> int | None:
    """The pid of a CREATE INDEX CONCURRENTLY that has created its (invalid) index and waits for
    a writer's transaction, as the progress view and pg_locks tell."""
    rows = database.query(
        "SELECT p.pid FROM pg_stat_progress_create_index p "
        "JOIN pg_locks l ON l.pid = p.pid AND NOT l.granted "
        "WHERE p.datname = current_database() AND p.index_relid <> 0 "
        "AND p.phase = 'waiting for writers before build'"
    )
    return int(rows[0][0]) if rows else None


@contextlib.contextmanager
def open_write(database: FreshDatabase, insert: str) -> Iterator[None]:
    """A transaction that wrote a row and stays open: a CREATE INDEX CONCURRENTLY on that table
    waits for it before it builds."""
    with database.connect() as connection:
        connection.autocommit = False
        cursor = connection.cursor()
        cursor.execute(insert)
        try:
            yield
        finally:
            connection.rollback()


# --- which index names a migration's SQL creates ------------------------------------------------


def test_planned_index_names_reads_djangos_statements() -> None:
    statements = [
        "--",
        "-- Create index shop_order_code_idx on field(s) code of model order",
        "--",
        'CREATE INDEX CONCURRENTLY "shop_order_email_idx" ON "shop_order" ("email")',
        'CREATE UNIQUE INDEX "shop_order_ref_uniq" ON "shop_order" ("ref") WHERE "ref" IS NOT NULL',
        'ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_number_key" UNIQUE ("number")',
        'ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_total_check" CHECK ("total" >= 0)',
        "CREATE INDEX IF NOT EXISTS Shop_Order_Note_Idx ON shop_order (note)",
        "COMMENT ON TABLE shop_order IS 'CREATE INDEX decoy ON shop_order (x)'",
        'ALTER INDEX "shop_order_old_idx" RENAME TO "shop_order_new_idx"',
    ]

    assert planned_index_names(statements) == {
        "shop_order_email_idx",
        "shop_order_ref_uniq",
        "shop_order_number_key",
        "shop_order_note_idx",  # unquoted: folded to lower case, as PostgreSQL does
        "shop_order_new_idx",
    }


def test_a_name_the_sql_drops_first_is_not_in_the_way() -> None:
    statements = [
        'DROP INDEX CONCURRENTLY IF EXISTS "shop_order_email_idx"',
        'CREATE INDEX CONCURRENTLY "shop_order_email_idx" ON "shop_order" ("email")',
        'CREATE INDEX "shop_order_code_idx" ON "shop_order" ("code")',
        'DROP INDEX "shop_order_code_idx"',
    ]

    assert planned_index_names(statements) == {"shop_order_code_idx"}


def test_a_long_name_is_cut_as_postgresql_cuts_it() -> None:
    long_name = "i" * 70

    assert planned_index_names([f'CREATE INDEX "{long_name}" ON t (c)']) == {"i" * 63}


# --- the catalog --------------------------------------------------------------------------------


@postgresql
def test_a_failed_concurrent_build_leaves_an_invalid_index_that_is_found(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    shop_tables(database)
    database.execute("CREATE INDEX shop_order_id_idx ON shop_order (id)")
    leave_invalid_unique_index(database, "shop_order_email_uniq", "shop_order", "email")
    connection = django_connect(database)

    found = invalid_indexes(connection)

    assert names(found) == ["shop_order_email_uniq"]  # neither the valid index nor the pkey
    (index,) = found
    assert (index.schema, index.table, index.ready) == ("public", "shop_order", False)
    assert index.definition == (
        "CREATE UNIQUE INDEX shop_order_email_uniq ON public.shop_order USING btree (email)"
    )
    assert index.size >= 0
    assert index.describe() == (
        'invalid index "shop_order_email_uniq" on shop_order '
        "(left by a failed CREATE INDEX CONCURRENTLY)"
    )
    assert index.to_dict()["drop_sql"] == (
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."shop_order_email_uniq"'
    )


@postgresql
def test_only_the_schemas_on_the_search_path_are_read(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    database.execute("CREATE SCHEMA archive")
    database.execute("CREATE TABLE archive.old_order (email text)")
    database.execute("INSERT INTO archive.old_order VALUES ('a'), ('a')")
    leave_invalid_unique_index(database, "old_order_email_uniq", "archive.old_order", "email")
    connection = django_connect(database)

    assert invalid_indexes(connection) == []
    with connection.cursor() as cursor:
        cursor.execute("SET search_path TO public, archive")
    assert [(i.schema, i.name) for i in invalid_indexes(connection)] == [
        ("archive", "old_order_email_uniq")
    ]


@postgresql
@pytest.mark.parametrize("viewer", ["superuser", "unprivileged role"])
def test_an_index_being_built_is_not_listed(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any], viewer: str
) -> None:
    shop_tables(database)
    leave_invalid_unique_index(database, "shop_order_code_uniq", "shop_order", "code")
    leave_invalid_unique_index(database, "shop_customer_email_uniq", "shop_customer", "email")
    looking = database
    if viewer != "superuser":
        # Another role's progress row shows only its pid: the build is found through its lock.
        role = f"{database.name}_reader"
        database.execute(f'CREATE ROLE "{role}" LOGIN')
        database.users.append(role)
        url = database.server.url_for(database.name, user=role)
        looking = FreshDatabase(database.server, database.name, url)
    connection = django_connect(looking)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            database.execute("CREATE INDEX CONCURRENTLY shop_order_email_idx ON shop_order (email)")
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    with open_write(database, "INSERT INTO shop_order VALUES (3, 'c@example.com', 'C')"):
        builder = threading.Thread(target=build, daemon=True)
        builder.start()
        wait_until(lambda: waiting_build(database), "the concurrent build to wait")

        listed = names(invalid_indexes(connection))
        assert index_state(database, "shop_order_email_idx") == (False,)  # invalid, being built
    builder.join(60)

    assert not builder.is_alive()
    assert errors == []
    assert "shop_order_email_idx" not in listed
    if viewer == "superuser":
        assert listed == ["shop_customer_email_uniq", "shop_order_code_uniq"]
    else:
        # Without the index's oid, every invalid index of the table being built waits its turn.
        assert listed == ["shop_customer_email_uniq"]
    assert index_state(database, "shop_order_email_idx") == (True,)
    after = names(invalid_indexes(connection))
    assert after == ["shop_customer_email_uniq", "shop_order_code_uniq"]


def test_other_backends_have_none(
    tmp_path: Path, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    connection = django_connect(Server("sqlite", folder=tmp_path).create_database())
    asked: list[bool] = []

    def sql() -> Mapping[str, Sequence[str]]:
        asked.append(True)
        return {}

    assert invalid_indexes(connection) == []
    report = before_run(connection, sql, rebuild=True)
    assert (report.found, report.dropped, asked) == ([], [], [])
    assert after_run(connection) == []


# --- before and after a run ---------------------------------------------------------------------

SHOP_PLAN = {
    "shop.0002_order_email": [
        "--",
        "-- Create index shop_order_code_uniq on field(s) code of model order",  # not SQL
        "--",
        'CREATE UNIQUE INDEX CONCURRENTLY "shop_order_email_uniq" ON "shop_order" ("email")',
    ]
}


@postgresql
def test_without_rebuild_nothing_is_dropped_and_the_report_says_what_to_do(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    shop_tables(database)
    leave_invalid_unique_index(database, "shop_order_email_uniq", "shop_order", "email")
    leave_invalid_unique_index(database, "shop_order_code_uniq", "shop_order", "code")
    connection = django_connect(database)

    report = before_run(connection, SHOP_PLAN, rebuild=False)

    assert report.dropped == []
    assert names(report.found) == ["shop_order_code_uniq", "shop_order_email_uniq"]
    code, email = report.found
    assert report.recreated_by == {email: "shop.0002_order_email"}
    messages = {text.split(":")[0]: (level, text) for level, text in report.messages()}
    level, text = messages[email.describe()]
    assert level == logging.WARNING
    assert 'shop.0002_order_email creates it again and will fail with "already exists"' in text
    assert 'AUTOMIGRATE["REBUILD_INVALID_INDEXES"] = True' in text
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."shop_order_email_uniq";' in text
    level, text = messages[code.describe()]
    assert "No pending migration creates it" in text
    assert 'REINDEX INDEX CONCURRENTLY "public"."shop_order_code_uniq"' in text
    assert names(invalid_indexes(connection)) == ["shop_order_code_uniq", "shop_order_email_uniq"]


@postgresql
def test_rebuild_drops_only_the_index_a_pending_migration_creates_again(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    shop_tables(database)
    leave_invalid_unique_index(database, "shop_order_email_uniq", "shop_order", "email")
    leave_invalid_unique_index(database, "shop_order_code_uniq", "shop_order", "code")
    connection = django_connect(database)
    asked: list[bool] = []

    def sql() -> Mapping[str, Sequence[str]]:
        asked.append(True)
        return SHOP_PLAN

    report = before_run(connection, sql, rebuild=True)

    assert asked == [True]
    assert names(report.dropped) == ["shop_order_email_uniq"]
    assert names(report.kept) == ["shop_order_code_uniq"]
    assert index_state(database, "shop_order_email_uniq") is None
    assert index_state(database, "shop_order_code_uniq") == (False,)  # nothing recreates it
    dropped = [text for level, text in report.messages() if level == logging.INFO]
    assert dropped == [
        'dropped invalid index "shop_order_email_uniq" on shop_order (left by a failed CREATE '
        "INDEX CONCURRENTLY): shop.0002_order_email creates it again."
    ]
    assert report.to_dict()["invalid_indexes"][1]["dropped"] is True
    # After the run: only what is new since; the index kept was reported before.
    assert after_run(connection, before=report) == []
    assert names(after_run(connection)) == ["shop_order_code_uniq"]


@postgresql
def test_with_no_plan_given_nothing_is_dropped_even_with_rebuild(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    shop_tables(database)
    leave_invalid_unique_index(database, "shop_order_email_uniq", "shop_order", "email")
    connection = django_connect(database)

    report = before_run(connection, None, rebuild=True)

    assert (names(report.found), report.dropped, report.plan_read) == (
        ["shop_order_email_uniq"], [], False
    )  # fmt: skip
    ((level, text),) = report.messages()
    assert level == logging.WARNING
    assert text == report.found[0].advice()
    assert 'fails with "already exists" until it is dropped' in text


@postgresql
def test_with_no_invalid_index_the_plan_sql_is_never_made(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    shop_tables(database)
    connection = django_connect(database)

    def sql() -> Mapping[str, Sequence[str]]:
        raise AssertionError("the plan's SQL was made with no invalid index to look for")

    report = before_run(connection, sql, rebuild=True)

    assert (report.found, report.messages(), report.error) == ([], [], "")


# --- end to end: a migration whose earlier attempt failed ---------------------------------------


def fail_the_index_migration(database: FreshDatabase) -> None:
    """indexapp.0002 (AddIndexConcurrently) tried once, and cancelled while it waited for a
    writer: its index is left invalid and the migration pending."""
    result = run_command(
        database.url, "migrate", "indexapp", "0001", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP
    )
    assert result.returncode == 0, result.err
    with open_write(database, "INSERT INTO indexapp_order (email) VALUES ('a@example.com')"):
        child = start_command(
            database.url, "migrate", "indexapp", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP
        )
        pid = wait_until(lambda: waiting_build(database), "the migration's concurrent build")
        database.execute("SELECT pg_cancel_backend(%s)", (pid,))
        result = finish(child)
    assert result.returncode != 0
    assert "canceling statement due to user request" in result.err
    assert index_state(database, "indexapp_order_email_idx") == (False,)
    assert ("indexapp", "0002_order_email_idx") not in database.migration_rows()


def migrate_again(database: FreshDatabase) -> None:
    result = run_command(database.url, "migrate", "indexapp", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP)
    assert result.returncode == 0, result.err
    assert index_state(database, "indexapp_order_email_idx") == (True,)
    assert ("indexapp", "0002_order_email_idx") in database.migration_rows()


@postgresql
def test_the_migration_fails_on_its_own_invalid_index_until_it_is_dropped(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    fail_the_index_migration(database)

    again = run_command(database.url, "migrate", "indexapp", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP)
    assert again.returncode != 0
    assert 'relation "indexapp_order_email_idx" already exists' in again.err

    (index,) = invalid_indexes(django_connect(database))
    assert index.name == "indexapp_order_email_idx"
    drop(django_connect(database), index)
    migrate_again(database)


@contextlib.contextmanager
def registered_connection(database: FreshDatabase, alias: str) -> Iterator[Any]:
    """A connection to ``database`` in ``django.db.connections`` (as a run's is): the migration
    loader reads django_migrations through the connection's alias."""
    import environ
    from django.db import connections
    from django.db.utils import ConnectionHandler

    config = environ.Env.db_url_config(database.url)
    connection = ConnectionHandler({"default": config, alias: config})[alias]
    connections[alias] = connection
    try:
        yield connection
    finally:
        del connections[alias]
        connection.close()


@postgresql
def test_before_run_with_the_plans_own_sql_lets_the_migration_run_again(
    database: FreshDatabase, django_db_blocker: Any, settings: Any
) -> None:
    fail_the_index_migration(database)
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.indexapp"]
    with django_db_blocker.unblock(), registered_connection(database, "indexes") as connection:
        run_the_plan_after_before_run(database, connection)


def run_the_plan_after_before_run(database: FreshDatabase, connection: Any) -> None:
    from django.db.migrations.executor import MigrationExecutor

    plan = MigrationExecutor(connection).migration_plan([("indexapp", "0002_order_email_idx")])

    sql = collect_plan_sql(connection, plan)
    report = before_run(connection, lambda: sql, rebuild=True)

    assert list(sql) == ["indexapp.0002_order_email_idx"]
    assert planned_index_names(sql["indexapp.0002_order_email_idx"]) == {"indexapp_order_email_idx"}
    assert names(report.dropped) == ["indexapp_order_email_idx"]
    assert report.recreated_by == {report.dropped[0]: "indexapp.0002_order_email_idx"}
    migrate_again(database)
    assert after_run(connection, before=report) == []


# --- through a run, as a user meets it --------------------------------------------------------


@postgresql
def test_a_run_names_the_invalid_index_and_with_the_setting_rebuilds_it(
    database: FreshDatabase,
) -> None:
    fail_the_index_migration(database)

    plain = run_command(database.url, "automigrate", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP)

    assert plain.returncode == 1
    assert (
        'Nothing was applied: indexapp.0002_order_email_idx creates invalid index "indexapp_'
        'order_email_idx" on indexapp_order' in plain.err
    )
    assert "REBUILD_INVALID_INDEXES" in plain.err
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."indexapp_order_email_idx"' in plain.err
    rows = database.migration_rows()
    assert ("indexapp", "0002_order_email_idx") not in rows
    assert not [name for app, name in rows if app == "testapp"]  # stopped before the first
    assert index_state(database, "indexapp_order_email_idx") == (False,)

    rebuilt = run_command(
        database.url,
        "automigrate",
        AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP,
        AUTOMIGRATE_REBUILD_INVALID_INDEXES="true",
    )

    assert rebuilt.returncode == 0, rebuilt.err
    assert index_state(database, "indexapp_order_email_idx") == (True,)
    assert ("indexapp", "0002_order_email_idx") in database.migration_rows()


@postgresql
def test_a_concurrent_build_that_gives_up_is_retried_without_the_index_it_left(
    database: FreshDatabase,
) -> None:
    """With a budget for CONCURRENTLY, the build that waits for a writer gives up and leaves its
    index invalid; the retry drops that index first, and builds it once the writer is gone."""
    result = run_command(
        database.url, "migrate", "indexapp", "0001", AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP
    )
    assert result.returncode == 0, result.err
    with open_write(database, "INSERT INTO indexapp_order (email) VALUES ('a@example.com')"):
        run = start_command(
            database.url, "automigrate",
            AUTOMIGRATE_TEST_EXTRA_APPS=INDEXAPP,
            AUTOMIGRATE_ENVIRONMENT="production",
            AUTOMIGRATE_CONCURRENT_STATEMENT_LOCK_TIMEOUT="0.3",
            AUTOMIGRATE_STATEMENT_LOCK_RETRIES="30",
        )  # fmt: skip
        log, retries = [], 0
        # The handshake: the build gave up twice, and was dropped once.
        for line in stderr_lines(run):
            log.append(line)
            retries += "retrying in" in line
            if retries == 2:
                break
    _out, err = run.communicate(timeout=180)
    output = "".join(log) + err

    assert run.returncode == 0, output
    assert "indexapp.0002_order_email_idx gave up waiting for a lock (attempt 1 of 31)" in output
    assert "left invalid by the attempt that gave up" in output
    assert index_state(database, "indexapp_order_email_idx") == (True,)
    assert ("indexapp", "0002_order_email_idx") in database.migration_rows()
