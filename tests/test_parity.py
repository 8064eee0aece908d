"""automigrate does what migrate does, and nothing when nothing is pending."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from django_automigrate.locks.sqlite import lock_path
from tests.servers import FreshDatabase, Server
from tests.test_locks import kill, start_holder
from tests.utils import run_command


def test_the_schema_equals_the_one_plain_migrate_produces(server: Server) -> None:
    with_migrate, with_automigrate = server.create_database(), server.create_database()
    try:
        plain = run_command(with_migrate.url, "migrate")
        ours = run_command(with_automigrate.url, "automigrate")

        assert plain.returncode == 0, plain.err
        assert ours.returncode == 0, ours.err
        assert with_automigrate.schema_dump() == with_migrate.schema_dump()
        assert with_automigrate.migration_rows() == with_migrate.migration_rows()
        # The squash and the migrations it replaces are all recorded, as migrate records them.
        rows = with_automigrate.migration_rows()
        assert ("squashapp", "0001_squashed_0003_pin_first") in rows
        assert ("squashapp", "0002_note_pinned") in rows
        assert ("otherapp", "0002_shelf_position") in rows
    finally:
        with_migrate.drop()
        with_automigrate.drop()


def test_run_before_and_cross_app_dependencies_are_honoured(database: FreshDatabase) -> None:
    result = run_command(database.url, "automigrate", "--format", "json")

    applied = result.json()["databases"][0]["applied"]
    position = {label: index for index, label in enumerate(applied)}
    assert position["otherapp.0002_shelf_position"] < position["testapp.0015_book_price"]
    assert position["testapp.0004_book"] < position["otherapp.0001_initial"]
    assert position["otherapp.0001_initial"] < position["testapp.0016_alter_author_name"]


def _migrated(database: FreshDatabase) -> None:
    result = run_command(database.url, "automigrate")
    assert result.returncode == 0, result.err


def _snapshot(database: FreshDatabase) -> tuple[object, ...]:
    return (database.schema_dump(), database.migration_rows(), database.history_rows())


def test_nothing_pending_takes_no_lock(database: FreshDatabase) -> None:
    _migrated(database)
    holder = start_holder(database)
    try:
        result = run_command(database.url, "automigrate", "--lock-timeout", "1")
    finally:
        kill(holder)

    # Had it asked for the lock, it would have waited 1s and exited 3.
    assert result.returncode == 0, result.err
    assert "nothing to do" in result.out


def test_nothing_pending_writes_nothing(database: FreshDatabase) -> None:
    _migrated(database)
    before = _snapshot(database)
    url = _read_only_url(database)

    result = run_command(url, "automigrate")

    assert result.returncode == 0, result.err
    assert "nothing to do" in result.out
    assert _snapshot(database) == before


def test_nothing_pending_on_sqlite_leaves_the_file_and_the_lock_file_alone(tmp_path: Path) -> None:
    server = Server("sqlite", folder=tmp_path)
    database = server.create_database()
    _migrated(database)
    lock_file = lock_path(database.path)
    lock_file.unlink()
    digest = hashlib.sha256(database.path.read_bytes()).hexdigest()
    modified = database.path.stat().st_mtime_ns

    result = run_command(database.url, "automigrate")

    assert result.returncode == 0, result.err
    assert not lock_file.exists()
    assert hashlib.sha256(database.path.read_bytes()).hexdigest() == digest
    assert database.path.stat().st_mtime_ns == modified


def _read_only_url(database: FreshDatabase) -> str:
    """A URL for a user that may read the database and nothing else: any write would fail."""
    if database.vendor == "sqlite":
        return database.url
    user, password = f"ro_{database.name[-12:]}", "read-only-pw"
    if database.vendor == "postgresql":
        database.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        database.execute(f'GRANT CONNECT ON DATABASE "{database.name}" TO {user}')
        database.execute(f"GRANT USAGE ON SCHEMA public TO {user}")
        database.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
        database.execute(f"REVOKE CREATE ON SCHEMA public FROM {user}")
    else:
        database.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        database.execute(f"GRANT SELECT ON `{database.name}`.* TO '{user}'@'%'")
    database.users.append(user)
    return database.server.url_for(database.name, user=user, password=password)


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_check_exits_1_while_pending_and_0_after(database: FreshDatabase) -> None:
    pending = run_command(database.url, "automigrate", "--check")
    pending_json = run_command(database.url, "automigrate", "--check", "--format", "json")
    _migrated(database)
    done = run_command(database.url, "automigrate", "--check", "--format", "json")

    assert pending.returncode == 1
    assert "pending" in pending.out
    assert pending_json.returncode == 1
    assert len(pending_json.json()["pending"]["default"]) >= 20
    assert done.returncode == 0
    assert done.json() == {
        "schema_version": 1,
        "command": "check",
        "pending": {"default": []},
        "deferred": {"default": []},
        "missing_databases": [],
        "applied_without_file": {"default": []},
        "ok": True,
    }
    assert len(database.history_rows()) == 1


def test_check_writes_nothing_on_a_fresh_database(database: FreshDatabase) -> None:
    result = run_command(database.url, "automigrate", "--check")

    assert result.returncode == 1
    assert database.tables() == set()


def test_json_run_output_parses_and_describes_the_run(database: FreshDatabase) -> None:
    result = run_command(database.url, "automigrate", "--format", "json")

    document = json.loads(result.out)
    assert document["schema_version"] == 1
    assert document["command"] == "run"
    assert document["ok"] is True
    assert document["exit_code"] == 0
    (report,) = document["databases"]
    assert report["alias"] == "default"
    assert report["status"] == "succeeded"
    assert report["applied"] == report["planned"]
    assert report["run_id"] == database.history_rows()[0]["id"]


def test_a_squash_applied_through_its_replaced_migrations_is_recorded(
    database: FreshDatabase,
) -> None:
    # As on a database migrated before the squash existed: the replaced migrations are recorded,
    # the squash is not. migrate records it on its next run, and so must automigrate, or the
    # squash would be applied again once the replaced migrations are deleted from disk.
    _migrated(database)
    squash = ("squashapp", "0001_squashed_0003_pin_first")
    database.execute(
        "DELETE FROM django_migrations WHERE app = %s AND name = %s"
        if database.vendor != "sqlite"
        else "DELETE FROM django_migrations WHERE app = ? AND name = ?",
        squash,
    )

    result = run_command(database.url, "automigrate", "--format", "json")

    assert result.returncode == 0, result.err
    assert squash in database.migration_rows()
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert result.json()["databases"][0]["applied"] == []
