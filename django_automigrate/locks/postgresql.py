"""PostgreSQL: a session-level advisory lock on a connection of its own.

Session level, never transaction level: Django commits each migration on its own, and
``atomic = False`` migrations (``CREATE INDEX CONCURRENTLY``) run outside any transaction.
The lock is released when its connection closes, so a killed process never leaves it behind.
"""

from __future__ import annotations

import hashlib

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import AutomigrateError, LockLost
from django_automigrate.locks.base import ConnectionLock, process_identity

LOCK_NOT_AVAILABLE = "55P03"

_HOLDER_SQL = """
SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1
"""


def advisory_key(database_name: str) -> int:
    """The advisory lock key of a database: the first 8 bytes of SHA-256 of
    ``"django-automigrate:<database name>"``, as a signed 64-bit integer.

    In ``pg_locks`` it shows as ``classid = key >> 32 & 0xFFFFFFFF``,
    ``objid = key & 0xFFFFFFFF``, ``objsubid = 1``.
    """
    digest = hashlib.sha256(f"django-automigrate:{database_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresAdvisoryLock(ConnectionLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._key: int | None = None
        self._database = str(self.connection.settings_dict.get("NAME") or "")

    def on_connect(self) -> None:
        with self.lock_connection.cursor() as cursor:
            # Waiters and operators see who holds the lock in pg_stat_activity.application_name.
            cursor.execute(
                "SELECT set_config('application_name', %s, false), current_database()",
                [f"django-automigrate {process_identity()}"[:63]],
            )
            row = cursor.fetchone()
        assert row is not None
        self._database = row[1]
        self._key = advisory_key(self._database)

    @property
    def key(self) -> int:
        if self._key is None:
            self.lock_connection  # noqa: B018 - connecting reads the database's identity
        assert self._key is not None
        return self._key

    @property
    def name(self) -> str:
        key = self._key if self._key is not None else advisory_key(self._database)
        return f"pg_advisory_lock({key}) of database {self._database!r}"

    def try_acquire(self, wait: float) -> bool:
        key = self.key
        with self.lock_connection.cursor() as cursor:
            if wait < 0.001:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                row = cursor.fetchone()
                self._held = bool(row and row[0])
                return self._held
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false)", [f"{int(wait * 1000)}ms"]
            )
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            except DatabaseError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                    return False
                raise AutomigrateError(
                    f"Could not take the migration lock on database {self.alias!r}: {exc}"
                ) from exc
            finally:
                cursor.execute("SELECT set_config('lock_timeout', '0', false)")
            self._held = True
            return True

    def verify(self) -> None:
        try:
            with self.lock_connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid::bigint = %s AND objid::bigint = %s"
                    " AND objsubid = 1",
                    [*self._split_key()],
                )
                row = cursor.fetchone()
        except DatabaseError as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if not row or not row[0]:
            raise LockLost(self.alias, self.name, "the server no longer lists it in pg_locks")

    def holder(self) -> str | None:
        with self.lock_connection.cursor() as cursor:
            cursor.execute(_HOLDER_SQL, [*self._split_key()])
            row = cursor.fetchone()
        if row is None:
            return None
        pid, application, address, since = row
        parts = [f"PostgreSQL backend pid {pid}"]
        if application:
            parts.append(f"application {application!r}")
        if address:
            parts.append(f"client {address}")
        if since is not None:
            parts.append(f"connected since {since:%Y-%m-%d %H:%M:%S %Z}".strip())
        return ", ".join(parts)

    def unlock_statement(self) -> tuple[str, list[str | int]]:
        return "SELECT pg_advisory_unlock(%s)", [self.key]

    def _split_key(self) -> tuple[int, int]:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return unsigned >> 32, unsigned & 0xFFFFFFFF
