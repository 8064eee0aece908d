"""``LOCK_BACKEND = "table"``: a lease row in a table of the app's own.

For connections that break session locks (PgBouncer in transaction pooling) and for backends
without a native lock. The row names its owner (host, pid, a token) and an expiry that a
heartbeat thread extends while the run lasts; a lease whose holder died is taken over once it
expired. Every statement stands alone (autocommit), and every time is the database server's, so
that a pooler may hand each statement to another server connection and clocks never disagree.

A lease can be lost while its holder lives (its renewals fail: a cut network, a stalled pooler).
The holder must then stop before anyone else may take the lease over: when half of the
lease have passed since the last renewal that the server confirmed, the heartbeat cancels the
statement the migrations are running, and :meth:`TableLeaseLock.guard` refuses every later one.
That leaves half the lease as margin before the row can expire (a loaded machine may be slow
to act), and renewals every quarter of the lease tolerate one that fails.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.db import Error, IntegrityError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import LockLost
from django_automigrate.locks.base import MigrationLock, dedicated_connection, process_identity

logger = logging.getLogger("django_automigrate")

TABLE = "django_automigrate_lease"
LEASE_NAME = "migrations"

#: The database server's clock, in seconds since the epoch.
_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
}
_REAL = {"postgresql": "double precision", "mysql": "DOUBLE"}


def _now(connection: BaseDatabaseWrapper) -> str:
    return _NOW.get(connection.vendor, "CURRENT_TIMESTAMP")


class TableLeaseLock(MigrationLock):
    def __init__(self, connection: BaseDatabaseWrapper, lease_seconds: float) -> None:
        super().__init__(connection)
        self.lease_seconds = lease_seconds
        self.owner = f"{process_identity()} token {uuid.uuid4().hex[:12]}"[:255]
        self._lease_connection: BaseDatabaseWrapper | None = None
        self._held = False
        self._heartbeat: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self._lost = ""
        #: When the server last confirmed a renewal (monotonic), read by the watchdog.
        self._confirmed = 0.0
        #: The migrating session's server id (MySQL), read while it is idle, for ``KILL``.
        self._work_session: int | None = None

    @property
    def name(self) -> str:
        return f"lease row {LEASE_NAME!r} in table {TABLE}"

    @property
    def lease_connection(self) -> BaseDatabaseWrapper:
        """Where the lease row is read and written. While the lease is awaited, the run's own
        connection (idle then: one connection a waiter, so that many replicas fit a default
        server's max_connections); once held, a connection of the lock's own, in autocommit,
        so that the migrations' transactions never hold the lease row's changes back."""
        if not self._held:
            return self.connection
        if self._lease_connection is None:
            self._lease_connection = dedicated_connection(self.connection)
        return self._lease_connection

    def _create_table(self) -> None:
        real = _REAL.get(self.connection.vendor, "double precision")
        connection = self.lease_connection
        with connection.cursor() as cursor:
            try:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (name varchar(64) PRIMARY KEY, "
                    f"owner varchar(255) NOT NULL, acquired_at {real} NOT NULL, "
                    f"expires_at {real} NOT NULL)"
                )
            except Error:
                # Processes creating it at the same moment can collide even with IF NOT
                # EXISTS (PostgreSQL: a unique violation in pg_type): it exists, all is well.
                if TABLE not in connection.introspection.table_names(cursor):
                    raise

    def try_acquire(self) -> bool:
        self._create_table()
        if not self._attempt():
            return False
        self._held = True
        self._work_session = _session_id(self.connection)
        self._start_heartbeat()
        return True

    def _attempt(self) -> bool:
        now = _now(self.connection)
        with self.lease_connection.cursor() as cursor:
            cursor.execute(
                f"SELECT owner FROM {TABLE} WHERE name = %s AND expires_at < {now}", [LEASE_NAME]
            )
            expired = cursor.fetchone()
            if expired is not None:
                cursor.execute(
                    f"DELETE FROM {TABLE} WHERE name = %s AND owner = %s AND expires_at < {now}",
                    [LEASE_NAME, expired[0]],
                )
                if cursor.rowcount:
                    logger.warning(
                        "automigrate: %s: took over the expired migration lease of %s "
                        "(its holder stopped renewing it)",
                        self.alias,
                        expired[0],
                        extra={"database": self.alias, "holder": expired[0]},
                    )
            try:
                cursor.execute(
                    f"INSERT INTO {TABLE} (name, owner, acquired_at, expires_at) "
                    f"VALUES (%s, %s, {now}, {now} + %s)",
                    [LEASE_NAME, self.owner, self.lease_seconds],
                )
            except IntegrityError:
                return False
        return True

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._lost = ""
        self._confirmed = time.monotonic()
        self._heartbeat = threading.Thread(
            target=self._renew, name="django-automigrate-lease", daemon=True
        )
        self._heartbeat.start()
        # A thread of its own: a renewal can hang (a stalled pooler, a row lock, a dead
        # network) without raising, and the deadline must be kept all the same.
        self._watchdog = threading.Thread(
            target=self._watch, name="django-automigrate-lease-watchdog", daemon=True
        )
        self._watchdog.start()

    def _renew(self) -> None:
        # A connection of the thread's own: Django connections are not shared across threads.
        connection = dedicated_connection(self.connection)
        try:
            while not self._stop.wait(self.lease_seconds / 4):
                sent = time.monotonic()  # the server's expiry is later than this
                try:
                    _limit_statement_time(connection, self.lease_seconds / 4)
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {TABLE} SET expires_at = {_now(connection)} + %s "
                            "WHERE name = %s AND owner = %s",
                            [self.lease_seconds, LEASE_NAME, self.owner],
                        )
                        renewed = cursor.rowcount
                except Error as exc:
                    with contextlib.suppress(Exception):
                        connection.close()  # the next beat reconnects
                    logger.warning(
                        "automigrate: %s: renewing the lease failed: %s", self.alias, exc
                    )
                    continue  # the watchdog gives up in time; until then, try again
                if not renewed:
                    self._lose("another process took the lease over after it expired")
                    return
                self._confirmed = sent
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _watch(self) -> None:
        give_up_after = self.lease_seconds / 2
        while not self._stop.wait(self.lease_seconds / 16):
            silent = time.monotonic() - self._confirmed
            if silent > give_up_after:
                self._lose(
                    f"no renewal was confirmed for {silent:.1f}s of a {self.lease_seconds:g}s lease"
                )
                return

    def _lose(self, why: str) -> None:
        """Stop the work before the lease can expire: mark it lost, end what runs now."""
        if self._lost or self._stop.is_set():
            return
        self._lost = why
        logger.error(
            "automigrate: %s: the migration lease is lost (%s); stopping the migrations",
            self.alias,
            why,
            extra={"database": self.alias, "lock": self.name},
        )
        _stop_work(self.connection, self._work_session)

    def lost(self) -> str:
        return self._lost

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        def refuse_when_lost(
            execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
        ) -> Any:
            if self._lost:
                raise LockLost(self.alias, self.name, self._lost)
            return execute(sql, params, many, context)

        connection: Any = self.connection  # _commit and _rollback: Django's, not in its stubs
        commit = connection._commit
        patched = "_commit" in vars(connection)  # by a guard around this one

        def commit_unless_lost() -> None:
            # Work done under a lost lease never commits: the statements the guard refuses
            # are not all (a data migration's transaction commits when its Python returns),
            # and the KILL that ends the session can come too late (MySQL). It is rolled back
            # here, before Django turns autocommit on, which on MySQL commits what is open.
            if self._lost:
                with contextlib.suppress(Error):
                    connection._rollback()
                raise LockLost(self.alias, self.name, self._lost)
            commit()

        connection._commit = commit_unless_lost
        try:
            with connection.execute_wrapper(refuse_when_lost):
                yield
        finally:
            if patched:
                connection._commit = commit
            else:
                del connection._commit  # the class's own again

    def verify(self) -> None:
        if self._lost:
            raise LockLost(self.alias, self.name, self._lost)
        try:
            with self.lease_connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT owner, expires_at > {_now(self.connection)} FROM {TABLE} "
                    "WHERE name = %s",
                    [LEASE_NAME],
                )
                row = cursor.fetchone()
        except Error as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if row is None or row[0] != self.owner:
            raise LockLost(self.alias, self.name, "the lease belongs to another process now")
        if not row[1]:
            raise LockLost(self.alias, self.name, "the lease expired")

    def holder(self) -> str | None:
        """The owner of a lease that has not expired; an expired lease is free to take."""
        connection = self.lease_connection
        with connection.cursor() as cursor:
            if TABLE not in connection.introspection.table_names(cursor):
                return None  # never used here: asking must not create it
            cursor.execute(
                f"SELECT owner, expires_at - {_now(connection)} FROM {TABLE} WHERE name = %s",
                [LEASE_NAME],
            )
            row = cursor.fetchone()
        if row is None or float(row[1]) < 0:
            return None
        owner, remaining = row
        return f"{owner} (lease expires in {float(remaining):.0f}s unless renewed)"

    def release(self) -> None:
        self._stop.set()
        for thread in (self._heartbeat, self._watchdog):
            if thread is not None:
                thread.join(timeout=10)
        self._heartbeat = self._watchdog = None
        try:
            if self._held:
                with self.lease_connection.cursor() as cursor:
                    cursor.execute(
                        f"DELETE FROM {TABLE} WHERE name = %s AND owner = %s",
                        [LEASE_NAME, self.owner],
                    )
        except Exception as exc:
            # An unreleased lease expires by itself.
            logger.warning("automigrate: releasing %s on %r failed: %s", self.name, self.alias, exc)
        finally:
            self._held = False
            self._close_lease_connection()

    def _close_lease_connection(self) -> None:
        if self._lease_connection is not None:
            with contextlib.suppress(Exception):
                self._lease_connection.close()
            self._lease_connection = None


def _session_id(connection: BaseDatabaseWrapper) -> int | None:
    """The server's id of ``connection``'s session (MySQL ``CONNECTION_ID()``), else None."""
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _limit_statement_time(connection: BaseDatabaseWrapper, seconds: float) -> None:
    """Make a renewal give up instead of hanging (on a row lock, say)."""
    if connection.connection is not None:
        return  # set once per connection
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET statement_timeout = %s", [max(1, int(seconds * 1000))])
        elif connection.vendor == "mysql":
            cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [max(1, int(seconds))])


def _stop_work(connection: BaseDatabaseWrapper, session: int | None) -> None:
    """End what ``connection`` (another thread's) runs now; best effort, since the guard refuses
    its next statement anyway.

    PostgreSQL: a cancel request (psycopg 3 and psycopg2, safe from another thread, and routed
    by PgBouncer to the right server connection); the transaction it aborts can only roll back.
    MySQL: ``KILL`` of the whole session, since a cancelled statement would leave the rest of
    its transaction free to commit.
    """
    raw: Any = connection.connection
    try:
        if connection.vendor == "postgresql" and raw is not None:
            raw.cancel()
        elif connection.vendor == "mysql" and session is not None:
            killer = dedicated_connection(connection)
            try:
                with killer.cursor() as cursor:
                    cursor.execute(f"KILL {int(session)}")
            finally:
                killer.close()
    except Exception as exc:
        logger.warning(
            "automigrate: %s: could not stop the running work: %s", connection.alias, exc
        )
