"""db_errors on real errors from real servers, under the drivers the tests run with
(``AUTOMIGRATE_TEST_DRIVERS``): lock timeouts, cancelled and timed-out statements, and
connections ended by the server are told apart the same way by every driver."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import Error as DatabaseError

from django_automigrate import db_errors
from tests import drivers
from tests.servers import FreshDatabase
from tests.test_locks import kill
from tests.utils import Result, start_command, start_lock_holder

pytestmark = pytest.mark.drivers

postgresql_only = pytest.mark.parametrize("server", ["postgresql"], indirect=True)
mysql_only = pytest.mark.parametrize("server", ["mysql"], indirect=True)

Connect = Callable[[FreshDatabase], Any]
ADVISORY_KEY = 4242
USER_LOCK = "django_automigrate_test_db_errors"


def error_of(connection: Any, sql: str) -> DatabaseError:
    """The error Django raises for ``sql`` on ``connection``, as the lock and run code see it."""
    with pytest.raises(DatabaseError) as info, connection.cursor() as cursor:
        cursor.execute(sql)
    error = info.value
    # Raised by the driver the tests run with, not by a default one loaded behind our back.
    assert error.__cause__ is not None
    module = type(error.__cause__).__module__.split(".")[0]
    assert {"MySQLdb": "mysqlclient"}.get(module, module) == drivers.requested()[connection.vendor]
    return error


def assert_classified(error: DatabaseError, *, lock_timeout: bool, connection_lost: bool) -> None:
    expected = {"lock_timeout": lock_timeout, "connection_lost": connection_lost}
    # Django's error and the driver's own, which it wraps, read the same.
    for each in (error, error.__cause__):
        found = {
            "lock_timeout": db_errors.is_lock_timeout(each),
            "connection_lost": db_errors.is_connection_lost(each),
        }
        assert found == expected, f"{type(each).__module__}.{type(each).__name__}: {each!r}"


def backend_id(connection: Any) -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        row = cursor.fetchone()
    return int(row[0])


class Operator:
    """Another session on the same server: watches sessions and ends them."""

    def __init__(self, database: FreshDatabase, connection: Any) -> None:
        self.vendor = database.vendor
        self.cursor = connection.cursor()

    def state(self, backend: int) -> str | None:
        """What the server says session ``backend`` does: "<wait>:<query>"; None once gone."""
        if self.vendor == "postgresql":
            self.cursor.execute(
                "SELECT coalesce(wait_event_type, '') || ':' || coalesce(query, '') "
                "FROM pg_stat_activity WHERE pid = %s",
                (backend,),
            )
        else:
            self.cursor.execute(
                "SELECT concat(coalesce(STATE, ''), ':', coalesce(INFO, '')) "
                "FROM information_schema.PROCESSLIST WHERE ID = %s",
                (backend,),
            )
        row = self.cursor.fetchone()
        return None if row is None else str(row[0])

    def wait_for(self, backend: int, done: Callable[[str | None], bool], what: str) -> None:
        """Ask the server until the session's state is ``done``: a handshake through it."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if done(self.state(backend)):
                return
        raise AssertionError(f"session {backend} never got to {what}: {self.state(backend)!r}")

    def end(self, backend: int) -> None:
        """End the session, as an operator or a failover does; return once it is gone."""
        if self.vendor == "postgresql":
            self.cursor.execute("SELECT pg_terminate_backend(%s)", (backend,))
            assert self.cursor.fetchone()[0] is True
        else:
            self.cursor.execute(f"KILL CONNECTION {int(backend)}")
        self.wait_for(backend, lambda state: state is None, "its end")

    def cancel(self, backend: int) -> None:
        """Cancel the session's statement, not the session."""
        if self.vendor == "postgresql":
            self.cursor.execute("SELECT pg_cancel_backend(%s)", (backend,))
        else:
            self.cursor.execute(f"KILL QUERY {int(backend)}")


@pytest.fixture
def operator(database: FreshDatabase) -> Iterator[Operator]:
    with database.connect() as connection:
        yield Operator(database, connection)


@contextlib.contextmanager
def meanwhile(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` in a thread while the block runs (it waits for a statement in the block);
    re-raise what it raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(60)
    assert not thread.is_alive()
    if failures:
        raise failures[0]


def waits_on(fragment: str, wait: str) -> Callable[[str | None], bool]:
    """A session state: waiting (``wait`` is what the server calls it) in a statement that
    contains ``fragment``."""

    def done(state: str | None) -> bool:
        return state is not None and state.startswith(wait) and fragment in state

    return done


# Lock timeouts ---------------------------------------------------------------------------------


@postgresql_only
@pytest.mark.parametrize("held", ["advisory lock", "table lock"])
def test_a_postgresql_lock_timeout_is_a_lock_timeout(
    database: FreshDatabase, django_connect: Connect, held: str
) -> None:
    database.execute("CREATE TABLE t (id int PRIMARY KEY)")
    waiter = django_connect(database)
    with database.connect() as holder:
        cursor = holder.cursor()
        if held == "advisory lock":
            cursor.execute(f"SELECT pg_advisory_lock({ADVISORY_KEY})")
            statement = f"SELECT pg_advisory_lock({ADVISORY_KEY})"
        else:
            holder.autocommit = False
            cursor.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            statement = "SELECT * FROM t"
        with waiter.cursor() as waiting:
            waiting.execute("SET lock_timeout = '200ms'")

        error = error_of(waiter, statement)

    assert "lock timeout" in str(error)
    assert db_errors.sqlstate(error) == db_errors.PG_LOCK_NOT_AVAILABLE
    assert db_errors.mysql_errno(error) is None
    assert_classified(error, lock_timeout=True, connection_lost=False)
    with waiter.cursor() as cursor:  # the session is fine: a lock timeout is not a lost one
        cursor.execute("SELECT 1")


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_deadlock_victim_counts_as_a_lock_timeout(
    database: FreshDatabase, django_connect: Connect, operator: Operator
) -> None:
    """Two sessions update rows 1 and 2 in opposite orders. The server fails one statement to
    end the cycle and rolls that transaction back: like a lock timeout, it holds nothing now,
    so a migration it happens to is retried, not failed."""
    mysql = database.vendor == "mysql"
    database.execute(f"CREATE TABLE t (id int PRIMARY KEY, n int){' ENGINE=InnoDB' * mysql}")
    database.execute("INSERT INTO t VALUES " + ", ".join(f"({i}, 0)" for i in range(1, 12)))
    victim = django_connect(database)
    with database.connect() as other:
        cursor = other.cursor()
        other_id = backend_id_raw(cursor, database.vendor)
        if mysql:
            cursor.execute("START TRANSACTION")
            # InnoDB rolls back the lighter transaction: the other one writes more rows.
            cursor.execute("UPDATE t SET n = 1 WHERE id >= 2")
        else:
            other.autocommit = False
            # PostgreSQL fails the session whose deadlock check runs first: never the other's.
            cursor.execute("SET deadlock_timeout = '60s'")
            cursor.execute("UPDATE t SET n = 1 WHERE id = 2")
        victim.set_autocommit(False)
        with victim.cursor() as mine:
            mine.execute("UPDATE t SET n = 2 WHERE id = 1")
        with meanwhile(lambda: cursor.execute("UPDATE t SET n = 1 WHERE id = 1")):
            operator.wait_for(other_id, lock_waiting(operator, other_id), "its row lock wait")
            error = error_of(victim, "UPDATE t SET n = 2 WHERE id = 2")
            victim.rollback()  # PostgreSQL keeps the failed transaction's locks until then
        other.rollback()

    assert db_errors.is_deadlock(error), repr(error)
    assert "deadlock" in str(error).lower()
    assert_classified(error, lock_timeout=True, connection_lost=False)
    victim.set_autocommit(True)
    with victim.cursor() as cursor:  # the session is fine
        cursor.execute("SELECT 1")


def backend_id_raw(cursor: Any, vendor: str) -> int:
    cursor.execute(
        "SELECT pg_backend_pid()" if vendor == "postgresql" else "SELECT CONNECTION_ID()"
    )
    return int(cursor.fetchone()[0])


def lock_waiting(operator: Operator, backend: int) -> Callable[[str | None], bool]:
    """A session state: waiting for a row lock (PostgreSQL's wait event; MySQL and MariaDB say
    "Updating" all the while an UPDATE waits)."""

    def done(state: str | None) -> bool:
        if state is None:
            return False
        if operator.vendor == "postgresql":
            return state.startswith("Lock:")
        return state.lower().startswith("updating:") and "WHERE id = 1" in state

    return done


@mysql_only
@pytest.mark.parametrize("held", ["table lock", "row lock"])
def test_a_mysql_lock_wait_timeout_is_a_lock_timeout(
    database: FreshDatabase, django_connect: Connect, held: str
) -> None:
    database.execute("CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB")
    database.execute("INSERT INTO t VALUES (1)")
    waiter = django_connect(database)
    with database.connect() as holder:
        cursor = holder.cursor()
        if held == "table lock":
            # A metadata lock: what DDL waits for, bounded by lock_wait_timeout.
            cursor.execute("LOCK TABLES t WRITE")
            setting, statement = "lock_wait_timeout", "SELECT * FROM t"
        else:
            cursor.execute("START TRANSACTION")
            cursor.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
            setting, statement = "innodb_lock_wait_timeout", "UPDATE t SET id = 2 WHERE id = 1"
        with waiter.cursor() as waiting:
            waiting.execute(f"SET SESSION {setting} = 1")

        error = error_of(waiter, statement)

    assert db_errors.mysql_errno(error) == db_errors.MYSQL_LOCK_WAIT_TIMEOUT
    assert db_errors.sqlstate(error) is None  # MySQL's SQLSTATEs are not PostgreSQL's
    assert_classified(error, lock_timeout=True, connection_lost=False)
    with waiter.cursor() as cursor:
        cursor.execute("SELECT 1")


# Statements that end for other reasons ---------------------------------------------------------


@postgresql_only
def test_a_postgresql_statement_timeout_is_neither(
    database: FreshDatabase, django_connect: Connect
) -> None:
    waiter = django_connect(database)
    with waiter.cursor() as cursor:
        cursor.execute("SET statement_timeout = '100ms'")

    error = error_of(waiter, "SELECT pg_sleep(30)")

    assert db_errors.sqlstate(error) == db_errors.PG_QUERY_CANCELED
    assert_classified(error, lock_timeout=False, connection_lost=False)


@mysql_only
def test_a_mariadb_statement_timeout_is_neither(
    database: FreshDatabase, django_connect: Connect
) -> None:
    waiter = django_connect(database)
    with waiter.cursor() as cursor:
        cursor.execute("SET SESSION max_statement_time = 0.1")

    error = error_of(waiter, "SELECT SLEEP(30) FROM (SELECT 1) AS one")

    # A SLEEP() cut short reads as interrupted (1317) or as the timeout itself (1969).
    assert db_errors.mysql_errno(error) in (
        db_errors.MYSQL_QUERY_INTERRUPTED,
        *db_errors.MYSQL_STATEMENT_TIMEOUT,
    )
    assert_classified(error, lock_timeout=False, connection_lost=False)


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_cancelled_lock_wait_is_neither(
    database: FreshDatabase, django_connect: Connect, operator: Operator
) -> None:
    waiter = django_connect(database)
    backend = backend_id(waiter)
    with database.connect() as holder:
        if database.vendor == "postgresql":
            holder.cursor().execute(f"SELECT pg_advisory_lock({ADVISORY_KEY})")
            statement, waiting = f"SELECT pg_advisory_lock({ADVISORY_KEY})", ("Lock:", "pg_adv")
        else:
            database.execute("CREATE TABLE t (id int PRIMARY KEY)")
            holder.cursor().execute("LOCK TABLES t WRITE")
            statement, waiting = "SELECT * FROM t", ("Waiting for table metadata lock:", "FROM t")

        def cancel() -> None:
            operator.wait_for(backend, waits_on(waiting[1], waiting[0]), "its lock wait")
            operator.cancel(backend)

        with meanwhile(cancel):
            error = error_of(waiter, statement)

    assert_classified(error, lock_timeout=False, connection_lost=False)


# Connections ended by the server ---------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_connection_ended_while_idle_is_lost_and_stays_lost(
    database: FreshDatabase, django_connect: Connect, operator: Operator
) -> None:
    victim = django_connect(database)

    operator.end(backend_id(victim))
    first = error_of(victim, "SELECT 1")
    second = error_of(victim, "SELECT 1")

    assert_classified(first, lock_timeout=False, connection_lost=True)
    # The driver now says the connection is closed (psycopg2 InterfaceError, PyMySQL
    # InterfaceError(0, ''), mysqlclient 2006): still lost.
    assert_classified(second, lock_timeout=False, connection_lost=True)


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_connection_ended_while_it_waits_for_the_lock_is_lost(
    database: FreshDatabase, django_connect: Connect, operator: Operator
) -> None:
    waiter = django_connect(database)
    backend = backend_id(waiter)
    with database.connect() as holder:
        if database.vendor == "postgresql":
            # The advisory lock of the lock code, waited for as the lock code waits for it.
            holder.cursor().execute(f"SELECT pg_advisory_lock({ADVISORY_KEY})")
            with waiter.cursor() as cursor:
                cursor.execute("SET lock_timeout = '60s'")
            statement = f"SELECT pg_advisory_lock({ADVISORY_KEY})"
            waiting = waits_on("pg_advisory_lock", "Lock:")
        else:
            holder.cursor().execute(f"SELECT GET_LOCK('{USER_LOCK}', 0)")
            statement = f"SELECT GET_LOCK('{USER_LOCK}', 60)"
            waiting = waits_on("GET_LOCK", "User lock:")

        def end() -> None:
            operator.wait_for(backend, waiting, "its lock wait")
            operator.end(backend)

        with meanwhile(end):
            error = error_of(waiter, statement)

    assert_classified(error, lock_timeout=False, connection_lost=True)
    assert_classified(error_of(waiter, "SELECT 1"), lock_timeout=False, connection_lost=True)


# Replicas waiting through many lock-wait slices ------------------------------------------------

#: Logged before each slice of the wait for the migration lock (django_automigrate/locks/base.py
#: MigrationLock.acquire and reporting/runlog.py): a second one means a slice ran out.
WAITING = "waiting for the migration lock"


class Replica:
    """``automigrate`` in a real process; its stderr is read as it comes (for the handshake)."""

    def __init__(self, database: FreshDatabase) -> None:
        self.process = start_command(
            database.url, "automigrate", "--format", "json", "--lock-timeout", "120"
        )
        self.lines: list[str] = []
        self.waited_a_slice = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if sum(WAITING in seen for seen in self.lines) >= 2:
                self.waited_a_slice.set()
        self.waited_a_slice.set()  # it ended: let the test see how

    def finish(self) -> Result:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        with self.process.stdout, self.process.stderr:
            out = self.process.stdout.read()
            self.process.wait(timeout=180)
            self.reader.join(30)
        return Result(self.process.returncode, out, "".join(self.lines))


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_eight_replicas_waiting_through_lock_wait_slices_all_succeed(
    database: FreshDatabase,
) -> None:
    holder = start_lock_holder(database.url, seconds=600)
    replicas: list[Replica] = []
    try:
        replicas.extend(Replica(database) for _ in range(8))
        # Every replica has had at least one slice of its wait run out (the lock_timeout that
        # psycopg2 reported as "canceling statement due to lock timeout") before any gets it.
        for replica in replicas:
            assert replica.waited_a_slice.wait(120)
            assert replica.process.poll() is None, "".join(replica.lines)
    finally:
        kill(holder)  # releases the lock (its session ends with the process)
        results = [replica.finish() for replica in replicas]

    assert [r.returncode for r in results] == [0] * 8, [r.err for r in results if r.returncode]
    assert not [r.err for r in results if "canceling statement" in r.err]
    reports = [json.loads(r.out)["databases"][0] for r in results]
    assert sorted(report["status"] for report in reports) == ["nothing_to_do"] * 7 + ["succeeded"]
    assert len(database.history_rows()) == 1
