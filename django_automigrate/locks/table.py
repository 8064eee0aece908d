"""``LOCK_BACKEND = "table"``: a lease row in a table of the app's own.

For connections that break session locks (PgBouncer in transaction pooling) and for backends
without a native lock. The row names its owner (host, pid, a token) and an expiry that a
heartbeat thread extends while the run lasts; a lease whose holder died is taken over once it
expired. Every statement stands alone (autocommit), and every time is the database server's, so
that a pooler may hand each statement to another server connection and clocks never disagree.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid

from django.db import DatabaseError, IntegrityError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import LockLost
from django_automigrate.locks.base import ConnectionLock, dedicated_connection, process_identity

logger = logging.getLogger("django_automigrate")

TABLE = "django_automigrate_lease"
LEASE_NAME = "migrations"
POLL_SECONDS = 0.5

#: The database server's clock, in seconds since the epoch.
_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
}
_REAL = {"postgresql": "double precision", "mysql": "DOUBLE"}


def _now(connection: BaseDatabaseWrapper) -> str:
    return _NOW.get(connection.vendor, "CURRENT_TIMESTAMP")


class TableLeaseLock(ConnectionLock):
    def __init__(self, connection: BaseDatabaseWrapper, lease_seconds: float) -> None:
        super().__init__(connection)
        self.lease_seconds = lease_seconds
        self.owner = f"{process_identity()} token {uuid.uuid4().hex[:12]}"[:255]
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self._lost = ""

    @property
    def name(self) -> str:
        return f"lease row {LEASE_NAME!r} in table {TABLE}"

    def on_connect(self) -> None:
        real = _REAL.get(self.connection.vendor, "double precision")
        connection = self.lock_connection
        with connection.cursor() as cursor:
            try:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (name varchar(64) PRIMARY KEY, "
                    f"owner varchar(255) NOT NULL, acquired_at {real} NOT NULL, "
                    f"expires_at {real} NOT NULL)"
                )
            except DatabaseError:
                # Processes creating it at the same moment can collide even with IF NOT
                # EXISTS (PostgreSQL: a unique violation in pg_type): it exists, all is well.
                if TABLE not in connection.introspection.table_names(cursor):
                    raise

    def try_acquire(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            if self._attempt():
                self._held = True
                self._start_heartbeat()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _attempt(self) -> bool:
        now = _now(self.connection)
        with self.lock_connection.cursor() as cursor:
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
        self._heartbeat = threading.Thread(
            target=self._renew, name="django-automigrate-lease", daemon=True
        )
        self._heartbeat.start()

    def _renew(self) -> None:
        # A connection of the thread's own: Django connections are not shared across threads.
        connection = dedicated_connection(self.connection)
        try:
            while not self._stop.wait(self.lease_seconds / 3):
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {TABLE} SET expires_at = {_now(connection)} + %s "
                            "WHERE name = %s AND owner = %s",
                            [self.lease_seconds, LEASE_NAME, self.owner],
                        )
                        renewed = cursor.rowcount
                except DatabaseError as exc:
                    logger.warning(
                        "automigrate: %s: renewing the lease failed: %s", self.alias, exc
                    )
                    continue  # the lease lasts a while yet: try again at the next beat
                if not renewed:
                    self._lost = "another process took the lease over after it expired"
                    return
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def verify(self) -> None:
        if self._lost:
            raise LockLost(self.alias, self.name, self._lost)
        try:
            with self.lock_connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT owner, expires_at > {_now(self.connection)} FROM {TABLE} "
                    "WHERE name = %s",
                    [LEASE_NAME],
                )
                row = cursor.fetchone()
        except DatabaseError as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if row is None or row[0] != self.owner:
            raise LockLost(self.alias, self.name, "the lease belongs to another process now")
        if not row[1]:
            raise LockLost(self.alias, self.name, "the lease expired")

    def holder(self) -> str | None:
        with self.lock_connection.cursor() as cursor:
            cursor.execute(
                f"SELECT owner, expires_at - {_now(self.connection)} FROM {TABLE} WHERE name = %s",
                [LEASE_NAME],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        owner, remaining = row
        if float(remaining) < 0:
            return f"{owner} (lease expired {-float(remaining):.0f}s ago: it will be taken over)"
        return f"{owner} (lease expires in {float(remaining):.0f}s unless renewed)"

    def unlock_statement(self) -> tuple[str, list[str | int]]:
        return f"DELETE FROM {TABLE} WHERE name = %s AND owner = %s", [LEASE_NAME, self.owner]

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
            self._heartbeat = None
        super().release()  # deletes our row; an unreleased lease expires by itself anyway
