"""The interface every migration lock implements, and the wait loop they share."""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import os
import socket
import time
from collections.abc import Callable

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from django_automigrate.exceptions import LockTimeout

logger = logging.getLogger("django_automigrate")

#: Longest single blocking wait, so that a waiting process logs who holds the lock now and then.
WAIT_CHUNK_SECONDS = 10.0

WaitCallback = Callable[[str | None, float], None]


def process_identity() -> str:
    """``host pid N``: how a lock holder names itself to the processes waiting for it."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def dedicated_connection(connection: BaseDatabaseWrapper) -> BaseDatabaseWrapper:
    """A new, unpooled connection to ``connection``'s database.

    Built from the wrapper's own settings (which the test runner points at the test database),
    without Django's connection pool (``OPTIONS["pool"]``): a session lock left on a connection
    handed back to a pool would outlive the run.
    """
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.get("OPTIONS", {}).pop("pool", None)
    backend = load_backend(settings_dict["ENGINE"])
    wrapper: BaseDatabaseWrapper = backend.DatabaseWrapper(settings_dict, connection.alias)
    return wrapper


class MigrationLock(abc.ABC):
    """A database-wide lock, held for a whole run and released when the holding process dies."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.alias = connection.alias
        self.connection = connection

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """How an operator finds this lock (the advisory key, the lock name, the file path)."""

    @abc.abstractmethod
    def try_acquire(self, wait: float) -> bool:
        """Take the lock, waiting at most ``wait`` seconds (0: do not wait); True when held."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock back; never raises (a lost lock is only logged)."""

    @abc.abstractmethod
    def verify(self) -> None:
        """Raise :class:`~django_automigrate.exceptions.LockLost` unless the lock is still ours."""

    @abc.abstractmethod
    def holder(self) -> str | None:
        """Who holds the lock now, as the server tells it, or None; never takes the lock."""

    def acquire(self, timeout: float, on_wait: WaitCallback | None = None) -> float:
        """Wait at most ``timeout`` seconds for the lock; return the seconds waited.

        Raises :class:`LockTimeout` naming the lock and its holder when the time is up.
        """
        started = time.monotonic()
        if self.try_acquire(0):
            return time.monotonic() - started
        while True:
            waited = time.monotonic() - started
            remaining = timeout - waited
            if remaining <= 0:
                raise LockTimeout(self.alias, self.name, waited, self.safe_holder())
            if on_wait is not None:
                on_wait(self.safe_holder(), waited)
            if self.try_acquire(min(remaining, WAIT_CHUNK_SECONDS)):
                return time.monotonic() - started

    def safe_holder(self) -> str | None:
        """:meth:`holder`, but a failure to find out is an unknown holder, not an error."""
        try:
            return self.holder()
        except Exception:
            return None

    def __enter__(self) -> MigrationLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class ConnectionLock(MigrationLock):
    """A lock held by a database connection of its own, opened from the alias's settings.

    A connection of its own, in autocommit, holds the lock across every migration's transaction
    (and outside them, for ``atomic = False`` migrations) and never shares a transaction with them.
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._lock_connection: BaseDatabaseWrapper | None = None
        self._held = False

    @property
    def lock_connection(self) -> BaseDatabaseWrapper:
        if self._lock_connection is None:
            self._lock_connection = dedicated_connection(self.connection)
            self._lock_connection.ensure_connection()
            self.on_connect()
        return self._lock_connection

    def on_connect(self) -> None:
        """Hook: prepare a fresh lock connection (name it, read the database's identity)."""

    @abc.abstractmethod
    def unlock_statement(self) -> tuple[str, list[str | int]]:
        """The SQL that gives the lock back: a query returning 1 (or true) when the lock was
        held, or a statement returning no rows (then nothing is checked)."""

    def release(self) -> None:
        if self._lock_connection is None:
            return
        try:
            if self._held:
                self._held = False
                sql, params = self.unlock_statement()
                with self._lock_connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    row = cursor.fetchone() if cursor.description else (1,)
                if not row or row[0] != 1:
                    logger.warning(
                        "automigrate: %s was not held at release on %r", self.name, self.alias
                    )
        except Exception as exc:
            # Closing the connection below releases a session lock anyway.
            logger.warning("automigrate: releasing %s on %r failed: %s", self.name, self.alias, exc)
        finally:
            self.close_lock_connection()

    def close_lock_connection(self) -> None:
        if self._lock_connection is not None:
            with contextlib.suppress(Exception):
                self._lock_connection.close()
            self._lock_connection = None


class NoLock(MigrationLock):
    """``USE_LOCK = False`` / ``--no-lock``: nothing is taken; other processes may migrate too."""

    @property
    def name(self) -> str:
        return "none (locking disabled)"

    def try_acquire(self, wait: float) -> bool:
        return True

    def release(self) -> None:
        pass

    def verify(self) -> None:
        pass

    def holder(self) -> str | None:
        return None
