"""MySQL and MariaDB: a named user lock (``GET_LOCK``) on a connection of its own.

Named locks are server-wide, so the name carries the database's name; MySQL limits names to
64 characters, so a long one is hashed. The lock is released when its connection closes.
"""

from __future__ import annotations

import hashlib
import math

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import AutomigrateError, LockLost
from django_automigrate.locks.base import ConnectionLock

MAX_LOCK_NAME = 64
PREFIX = "django_automigrate:"


def lock_name(database_name: str) -> str:
    """``django_automigrate:<database>``; past 64 characters ``django_automigrate:<its sha1>``."""
    name = PREFIX + database_name
    if len(name) <= MAX_LOCK_NAME:
        return name
    return PREFIX + hashlib.sha1(database_name.encode()).hexdigest()


class MySQLNamedLock(ConnectionLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._lock_name = lock_name(str(connection.settings_dict.get("NAME") or ""))

    def on_connect(self) -> None:
        with self.lock_connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            row = cursor.fetchone()
        if row and row[0]:
            self._lock_name = lock_name(row[0])

    @property
    def name(self) -> str:
        return f"GET_LOCK({self._lock_name!r})"

    def try_acquire(self, wait: float) -> bool:
        # GET_LOCK takes whole seconds on MySQL; a negative timeout would mean "forever".
        seconds = max(0, math.ceil(wait))
        with self.lock_connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [self._lock_name, seconds])
            row = cursor.fetchone()
        if row is None or row[0] is None:
            raise AutomigrateError(
                f"GET_LOCK({self._lock_name!r}) returned an error on database {self.alias!r}."
            )
        self._held = row[0] == 1
        return self._held

    def verify(self) -> None:
        try:
            with self.lock_connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", [self._lock_name])
                row = cursor.fetchone()
        except DatabaseError as exc:
            raise LockLost(self.alias, self.name, f"its connection failed: {exc}") from exc
        if not row or row[0] != 1:
            raise LockLost(
                self.alias, self.name, "the server says this connection no longer holds it"
            )

    def holder(self) -> str | None:
        with self.lock_connection.cursor() as cursor:
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
