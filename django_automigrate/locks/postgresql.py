"""PostgreSQL: a session-level advisory lock, taken by the session that runs the migrations.

Session level, never transaction level: Django commits each migration on its own, and
``atomic = False`` migrations run outside any transaction. A session lock held outside a
transaction does not block ``CREATE INDEX CONCURRENTLY`` (which waits only for transactions), so
the migrating session may hold it. The lock ends with its session, so a killed process, a
terminated backend or a server idle timeout stops the work and frees the lock at once.
"""

from __future__ import annotations

import hashlib

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import LockLost
from django_automigrate.locks.base import SessionLock, process_identity

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


class PostgresAdvisoryLock(SessionLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._key: int | None = None
        self._database = str(self.connection.settings_dict.get("NAME") or "")
        self._application_name: str | None = None

    def _identify(self) -> None:
        """Read the database's real name (the key depends on it) once connected."""
        if self._key is not None:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            row = cursor.fetchone()
        assert row is not None
        self._database = row[0]
        self._key = advisory_key(self._database)

    @property
    def key(self) -> int:
        self._identify()
        assert self._key is not None
        return self._key

    @property
    def name(self) -> str:
        key = self._key if self._key is not None else advisory_key(self._database)
        return f"pg_advisory_lock({key}) of database {self._database!r}"

    def try_acquire(self) -> bool:
        # Tried, never a blocking pg_advisory_lock(): a statement blocked on the lock holds a
        # snapshot, and the holder's CREATE INDEX CONCURRENTLY waits for every such snapshot
        # while the blocked statement waits for the holder: a deadlock. A waiter that polls is
        # idle between its sub-millisecond statements, and holds nothing anyone waits for.
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            row = cursor.fetchone()
        if not row or not row[0]:
            return False
        self._held = True
        with self.connection.cursor() as cursor:
            # Waiters and operators see who holds the lock in application_name.
            cursor.execute(
                "SELECT current_setting('application_name'), "
                "set_config('application_name', %s, false)",
                [f"django-automigrate {process_identity()}"[:63]],
            )
            self._application_name = cursor.fetchone()[0]
        return True

    def release(self) -> None:
        held = self._held
        super().release()
        if held and self._application_name is not None and self.connection.connection:
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('application_name', %s, false)",
                        [self._application_name],
                    )
            except Exception:
                pass  # the session is gone: nothing left to put back
            self._application_name = None

    def verify(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid::bigint = %s AND objid::bigint = %s"
                    " AND objsubid = 1",
                    [*self._split_key()],
                )
                row = cursor.fetchone()
        except Error as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if not row or not row[0]:
            raise LockLost(
                self.alias,
                self.name,
                "the server no longer lists it in pg_locks for this session (a pooler in "
                "transaction mode hands statements to other sessions: use LOCK_BACKEND 'table')",
            )

    def holder(self) -> str | None:
        with self.connection.cursor() as cursor:
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
        return "SELECT pg_advisory_unlock(%s)::int", [self.key]

    def _split_key(self) -> tuple[int, int]:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return unsigned >> 32, unsigned & 0xFFFFFFFF
