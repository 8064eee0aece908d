"""MySQL and MariaDB: a named user lock (``GET_LOCK``), taken by the session that migrates.

Named locks are server-wide, so the name carries the database's name; MySQL limits names to
64 characters, so a long one is hashed. The lock belongs to the session, not to a transaction
(the implicit commit of each DDL statement keeps it), and ends with the session: a killed
process, a ``KILL`` or a ``wait_timeout`` stops the work and frees the lock at the same moment.
"""

from __future__ import annotations

import hashlib

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import AutomigrateError, LockLost
from django_automigrate.locks.base import SessionLock

MAX_LOCK_NAME = 64
PREFIX = "django_automigrate:"


def lock_name(database_name: str) -> str:
    """``django_automigrate:<database>``; past 64 characters ``django_automigrate:<its sha1>``."""
    name = PREFIX + database_name
    if len(name) <= MAX_LOCK_NAME:
        return name
    return PREFIX + hashlib.sha1(database_name.encode()).hexdigest()


class MySQLNamedLock(SessionLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._lock_name = lock_name(str(connection.settings_dict.get("NAME") or ""))

    def _identify(self) -> None:
        """The lock name comes from the database the session is really using."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            row = cursor.fetchone()
        if row and row[0]:
            self._lock_name = lock_name(row[0])

    @property
    def name(self) -> str:
        return f"GET_LOCK({self._lock_name!r})"

    def try_acquire(self) -> bool:
        self._identify()
        with self.connection.cursor() as cursor:
            # A timeout of 0: one try; a waiting GET_LOCK would hold its connection meanwhile.
            cursor.execute("SELECT GET_LOCK(%s, 0)", [self._lock_name])
            row = cursor.fetchone()
        if row is None or row[0] is None:
            raise AutomigrateError(
                f"GET_LOCK({self._lock_name!r}) returned an error on database {self.alias!r}."
            )
        self._held = row[0] == 1
        return self._held

    def verify(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", [self._lock_name])
                row = cursor.fetchone()
        except Error as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if not row or row[0] != 1:
            raise LockLost(
                self.alias, self.name, "the server says this connection no longer holds it"
            )

    def holder(self) -> str | None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", [self._lock_name])
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return None
            connection_id = row[0]
            cursor.execute(
                "SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = %s",
                [connection_id],
            )
            process = cursor.fetchone()
        if process is None:
            return f"connection {connection_id}"
        user, host, seconds = process
        return (
            f"connection {connection_id} (user {user!r} from {host}, in its state for {seconds}s)"
        )

    def unlock_statement(self) -> tuple[str, list[str | int]]:
        return "SELECT RELEASE_LOCK(%s)", [self._lock_name]
