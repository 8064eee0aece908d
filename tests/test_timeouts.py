"""STATEMENT_LOCK_TIMEOUT: a migration that would block traffic waiting for a table lock gives up,
retries, and is reported as timed out, never as a generic error."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.servers import FreshDatabase
from tests.utils import Result, finish, start_command

pytestmark = [
    pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True),
    pytest.mark.drivers,
]


def hold_table_lock(
    database: FreshDatabase, seconds: float, release: threading.Event | None = None
) -> threading.Thread:
    """Another session keeps a lock on testapp_book (as a long report query would), for
    ``seconds`` or until ``release`` is set."""
    ready = threading.Event()
    release = release or threading.Event()

    def hold() -> None:
        with database.connect() as connection:
            cursor: Any = connection.cursor()
            if database.vendor == "postgresql":
                connection.autocommit = False
                cursor.execute("LOCK TABLE testapp_book IN ACCESS SHARE MODE")
            else:
                cursor.execute("LOCK TABLES testapp_book READ")
            ready.set()
            release.wait(seconds)
            if database.vendor == "postgresql":
                connection.rollback()
            else:
                cursor.execute("UNLOCK TABLES")

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(30)
    return thread


def prepare(database: FreshDatabase) -> None:
    for args in (("django_automigrate",), ("testapp", "0014_review_created")):
        result = finish(start_command(database.url, "migrate", *args))
        assert result.returncode == 0, result.err


def automigrate_with_statement_timeout(database: FreshDatabase, *, retries: int) -> Result:
    """``automigrate --format json`` with a 0.5 s statement lock timeout and ``retries``."""
    return finish(
        start_command(
            database.url, "automigrate", "--format", "json",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5",
            AUTOMIGRATE_STATEMENT_LOCK_RETRIES=str(retries),
        )
    )  # fmt: skip


def test_a_statement_that_cannot_get_its_lock_times_out_and_says_so(
    database: FreshDatabase,
) -> None:
    prepare(database)
    before = database.migration_rows()
    holder = hold_table_lock(database, 15)

    result = automigrate_with_statement_timeout(database, retries=1)
    holder.join()

    assert result.returncode == 4, result.err
    report = result.json()["databases"][0]
    assert report["status"] == "timed_out"
    assert report["failed_migration"] == "testapp.0015_book_price"
    assert "testapp.0015_book_price gave up waiting for a lock (attempt 1 of 2)" in result.err
    assert "retrying in" in result.err
    assert database.history_rows()[-1]["status"] == "timed_out"
    assert database.migration_rows() == before  # rolled back: nothing is half-done


def test_a_retry_succeeds_once_the_lock_is_released(database: FreshDatabase) -> None:
    prepare(database)
    release = threading.Event()
    holder = hold_table_lock(database, 120, release)
    run = start_command(
        database.url, "automigrate", "--format", "json",
        AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="5",
    )  # fmt: skip
    assert run.stderr is not None
    log = []
    for line in run.stderr:  # the handshake: the first attempt timed out
        log.append(line)
        if "retrying" in line:
            break
    release.set()
    holder.join()

    out, err = run.communicate(timeout=180)
    result = Result(run.returncode, out, "".join(log) + err)

    assert result.returncode == 0, result.err
    assert "retrying" in result.err
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert ("testapp", "0023_final_checkpoint") in database.migration_rows()
