"""Migrating beside live traffic: a run that meets a session holding its table waits, gives up
after STATEMENT_LOCK_TIMEOUT, names the blocker, pauses holding no lock, and succeeds once the
blocker goes; the traffic beside it is never stuck behind a pausing run.

The traffic (``tests/traffic.py``) reads ``testapp_review``, which the run's first migration
alters, and allows each of its queries 5 s of lock waiting. The blocker holds ``testapp_book``,
which the run's second migration alters, through four retries (at least 5.75 s of timeouts and
pauses). A run that paused inside its transaction would keep ``testapp_review`` locked all that
time, and the traffic's queries would fail; one that pauses holding nothing delays them by at
most one statement lock timeout.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import FreshDatabase
from tests.utils import REPO, Result, child_env, finish, start_command, stderr_lines

every_backend = pytest.mark.parametrize("server", ["sqlite", "postgresql", "mysql"], indirect=True)
pytestmark = pytest.mark.drivers

#: How many retries the run announces before the blocker lets go.
RETRIES_BEFORE_RELEASE = {"postgresql": 4, "mysql": 2, "sqlite": 2}


class Blocker:
    """Another session that holds ``testapp_book`` (PostgreSQL, MySQL: a read in an open
    transaction, like a slow report; SQLite: an open write transaction) until released."""

    def __init__(self, database: FreshDatabase) -> None:
        self.database = database
        self.ready = threading.Event()
        self.release = threading.Event()
        self.id = 0
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        vendor = self.database.vendor
        if vendor == "sqlite":
            connection: Any = sqlite3.connect(self.database.path, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO testapp_tag (name) VALUES ('held')")
            self.ready.set()
            self.release.wait(120)
            connection.rollback()
            connection.close()
            return
        with self.database.connect() as connection:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT pg_backend_pid()" if vendor == "postgresql" else "SELECT CONNECTION_ID()"
            )
            self.id = int(cursor.fetchone()[0])
            if vendor == "postgresql":
                connection.autocommit = False
            else:
                cursor.execute("START TRANSACTION")
            cursor.execute("SELECT COUNT(*) FROM testapp_book")
            cursor.fetchall()
            self.ready.set()
            self.release.wait(120)
            connection.rollback()

    @contextlib.contextmanager
    def holding(self) -> Iterator[Blocker]:
        self.thread.start()
        assert self.ready.wait(30)
        try:
            yield self
        finally:
            self.release.set()
            self.thread.join(30)


@contextlib.contextmanager
def traffic(database: FreshDatabase, folder: Path) -> Iterator[dict[str, Any]]:
    """The traffic process, running for the duration of the block; its report fills the dict."""
    stop = folder / "stop-traffic"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.traffic", database.vendor, database.url, str(stop)],
        cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", (
        process.stderr.read() if process.stderr else ""
    )
    report: dict[str, Any] = {}
    try:
        yield report
    finally:
        stop.touch()
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        report.update(json.loads(out.strip().splitlines()[-1]))


def prepare(database: FreshDatabase) -> None:
    for args in (("django_automigrate",), ("testapp", "0013_review")):
        result = finish(start_command(database.url, "migrate", *args))
        assert result.returncode == 0, result.err


@every_backend
def test_a_blocked_run_waits_names_the_blocker_and_never_stalls_the_traffic(
    database: FreshDatabase, tmp_path: Path
) -> None:
    prepare(database)
    blocker = Blocker(database)
    with traffic(database, tmp_path) as report, blocker.holding():
        run = start_command(
            database.url, "automigrate", "--format", "json",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="30",
        )  # fmt: skip
        log, retries = [], 0
        for line in stderr_lines(run):  # the handshake: the run has given up and paused this often
            log.append(line)
            retries += "retrying in" in line
            if retries == RETRIES_BEFORE_RELEASE[database.vendor]:
                break
        blocker.release.set()
        out, err = run.communicate(timeout=180)
    result = Result(run.returncode, out, "".join(log) + err)

    assert result.returncode == 0, result.err
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert ("testapp", "0023_final_checkpoint") in database.migration_rows()
    assert "gave up waiting for a lock (attempt 1 of 31)" in result.err
    assert "holding no lock meanwhile" in result.err
    (waits,) = database.query(
        "SELECT lock_waits FROM django_automigrate_migrationrun ORDER BY id DESC LIMIT 1"
    )[0]
    if database.vendor != "sqlite":
        # Named while it blocked: in the log, and in the run's history row.
        assert "testapp.0015_book_price gave up waiting for a lock" in result.err
        assert f"blocked by session {blocker.id} (idle in transaction" in result.err
        recorded = json.loads(waits) if isinstance(waits, str) else waits
        assert recorded
        assert recorded[0]["migration"] == "testapp.0015_book_price"
        assert blocker.id in [session["id"] for session in recorded[0]["blockers"]]
    # The traffic's queries never waited out their 5 s: the run paused holding nothing.
    print(f"\n{database.vendor}: traffic {report['rounds']} rounds, longest query "
          f"{report['longest']:.2f}s, {retries} retries before the blocker went")  # fmt: skip
    assert report["errors"] == 0, report["first_error"]


@every_backend
def test_a_run_that_stays_blocked_times_out_naming_the_blocker_and_how_to_end_it(
    database: FreshDatabase,
) -> None:
    prepare(database)
    with Blocker(database).holding() as blocker:
        result = finish(
            start_command(
                database.url, "automigrate", "--format", "json",
                AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="1",
            )
        )  # fmt: skip

    assert result.returncode == 4, result.err
    report = result.json()["databases"][0]
    assert report["status"] == "timed_out"
    if database.vendor == "sqlite":
        assert "Another connection held the database's write lock" in report["error"]
    else:
        end = "SELECT pg_terminate_backend" if database.vendor == "postgresql" else "KILL"
        assert f"locked by session {blocker.id} (idle in transaction" in report["error"]
        if report["error"].find("Possibly blocked by") < 0:
            assert f"To end them: {end}({blocker.id})" in report["error"] or (
                f"To end them: {end} {blocker.id}" in report["error"]
            )
        else:
            # MySQL/MariaDB without a view of metadata locks: only candidates, and no command
            # that could end an innocent session.
            assert database.vendor == "mysql"
            assert "this server does not show metadata locks" in report["error"]
            assert "To end them" not in report["error"]
    if database.vendor == "sqlite":
        # The blocker held the database's one write lock throughout: not even the history row
        # could be written, and the log says so.
        assert "run's outcome: database is locked" in result.err
    else:
        assert database.history_rows()[-1]["status"] == "timed_out"


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_a_sqlite_run_beside_writing_traffic_waits_instead_of_failing(
    database: FreshDatabase, tmp_path: Path
) -> None:
    """The startup run beside a serving release: it used to fail at once with "database is
    locked" while the other release inserted."""
    prepare(database)
    with traffic(database, tmp_path) as report:
        result = finish(start_command(database.url, "automigrate", "--format", "json"))

    assert result.returncode == 0, result.err
    assert "database is locked" not in result.err
    assert ("testapp", "0023_final_checkpoint") in database.migration_rows()
    print(f"\nsqlite beside the run alone: traffic {report['rounds']} rounds, longest query "
          f"{report['longest']:.2f}s")  # fmt: skip
    assert report["errors"] == 0, report["first_error"]


def waited_past_its_timeout(database: FreshDatabase, table: str, seconds: int) -> bool:
    """Whether an ALTER TABLE of ``table`` has been waiting for a lock for ``seconds`` or more,
    as the server itself tells."""
    if database.vendor == "postgresql":
        rows = database.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s "
            "AND now() - query_start >= make_interval(secs => %s)",
            (f'ALTER TABLE "{table}"%', seconds),
        )
    else:
        rows = database.query(
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE STATE LIKE '%%metadata lock%%' "
            "AND INFO LIKE %s AND TIME >= %s",
            (f"ALTER TABLE `{table}`%", seconds),
        )
    return bool(rows)


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_migration_that_kept_a_write_is_never_left_half_applied_by_the_timeout(
    database: FreshDatabase,
) -> None:
    """budgetapp.0002 alters two tables outside a transaction. Its second statement meets a
    reader of budgetapp_box: it waits past STATEMENT_LOCK_TIMEOUT, as giving up there would
    leave the migration half-applied, and finishes once the reader goes."""
    apps = {"AUTOMIGRATE_TEST_EXTRA_APPS": "tests.budgetapp"}
    result = finish(start_command(database.url, "migrate", "budgetapp", "0001", **apps))
    assert result.returncode == 0, result.err
    with database.connect() as reader:
        cursor = reader.cursor()
        if database.vendor == "postgresql":
            reader.autocommit = False
        else:
            cursor.execute("START TRANSACTION")
        cursor.execute("SELECT COUNT(*) FROM budgetapp_box")
        cursor.fetchall()
        run = start_command(
            database.url, "automigrate", "--format", "json",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="1", AUTOMIGRATE_ENVIRONMENT="production", **apps,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not waited_past_its_timeout(database, "budgetapp_box", 3):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the ALTER of budgetapp_box never waited"
            time.sleep(0.05)
        reader.rollback()
    result = finish(run)

    assert result.returncode == 0, result.err
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert ("budgetapp", "0002_shelf_position_box_size") in database.migration_rows()


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_the_history_tables_own_migration_waits_and_retries_like_the_others(
    database: FreshDatabase,
) -> None:
    """Every health probe reads the history table: altering it behind a reader gives up after
    the timeout and retries holding nothing, instead of queueing the probes behind it."""
    for args in ((), ("django_automigrate", "0003")):
        result = finish(start_command(database.url, "migrate", *args))
        assert result.returncode == 0, result.err
    with database.connect() as reader:
        reader.autocommit = False
        reader.cursor().execute("SELECT COUNT(*) FROM django_automigrate_migrationrun")
        run = start_command(
            database.url, "automigrate",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="20",
        )  # fmt: skip
        log = []
        for line in stderr_lines(run):  # the handshake: it gave up once and paused
            log.append(line)
            if "retrying in" in line:
                break
        reader.rollback()
    _out, err = run.communicate(timeout=180)
    output = "".join(log) + err

    assert run.returncode == 0, output
    assert "django_automigrate.0004_lock_waits gave up waiting for a lock (attempt 1 of 21)" in (
        output
    )
    assert ("django_automigrate", "0004_lock_waits") in database.migration_rows()


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_run_killed_while_it_pauses_leaves_nothing_to_repair(database: FreshDatabase) -> None:
    """Killed (SIGKILL) between two attempts, the run holds nothing and had left nothing: the
    next lock holder closes its row as interrupted, and migrates, with no migration suspected
    of being half-applied (on MySQL/MariaDB that would stop every later run)."""
    prepare(database)
    with Blocker(database).holding():
        run = start_command(
            database.url, "automigrate",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="0.5", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="30",
        )  # fmt: skip
        for line in stderr_lines(run):  # the handshake: it gave up and is pausing
            if "retrying in" in line:
                break
        run.kill()
        run.communicate(timeout=60)
    result = finish(start_command(database.url, "automigrate", "--format", "json"))

    assert result.returncode == 0, result.err
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert [row["status"] for row in database.history_rows()] == ["interrupted", "succeeded"]


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_run_chosen_as_a_deadlocks_victim_is_retried_and_the_traffic_goes_on(
    database: FreshDatabase,
) -> None:
    """The application holds testapp_book, then reads testapp_review, while the run (one
    transaction) has altered testapp_review and waits to alter testapp_book: a deadlock. The
    server fails the run's statement; the run rolls back, pauses holding nothing and retries,
    and the application's read goes through. (The application session's deadlock_timeout is
    raised so that the server's choice of victim is the run's, as it is when the run waits
    first.)"""
    prepare(database)
    with database.connect() as application:
        application.autocommit = False
        cursor = application.cursor()
        cursor.execute("SET deadlock_timeout = '60s'")
        cursor.execute("SELECT COUNT(*) FROM testapp_book")
        run = start_command(
            database.url, "automigrate", "--format", "json",
            AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT="30", AUTOMIGRATE_STATEMENT_LOCK_RETRIES="3",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not waited_past_its_timeout(database, "testapp_book", 0):  # the handshake
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the ALTER of testapp_book never waited"
        # The run holds testapp_review since its first migration: this read closes the cycle.
        cursor.execute("SELECT COUNT(*) FROM testapp_review")
        assert cursor.fetchone()[0] == 0
        application.rollback()
    result = finish(run)

    assert result.returncode == 0, result.err
    assert result.json()["databases"][0]["status"] == "succeeded"
    assert "met a deadlock with another session (attempt 1 of 4)" in result.err
    assert ("testapp", "0023_final_checkpoint") in database.migration_rows()
