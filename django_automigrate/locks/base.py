"""The interface every migration lock implements, and the wait loop they share."""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterator

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from django_automigrate.exceptions import LockTimeout

logger = logging.getLogger("django_automigrate")

#: How often a waiting process asks who holds the lock, to say so in its log.
WAIT_CHUNK_SECONDS = 10.0
#: The first pause between two tries for a held lock; each pause doubles, up to the longest.
FIRST_PAUSE_SECONDS = 0.05
#: The longest pause: a waiter notices a release within about this long.
LONGEST_PAUSE_SECONDS = 1.0
#: A pause lasts at least this many times the last try (connect, ask, close), up to 10 s: on a
#: loaded server or machine, where a try takes long, waiters hold a connection 1/100 of the time.
LOADED_PAUSE_FACTOR = 100
LOADED_PAUSE_LIMIT = 10.0

WaitCallback = Callable[[str | None, float], None]


class NoLongerNeeded(Exception):
    """A waiter learnt that another process did the work it waited to do."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no longer needed after {waited:.1f}s")
        self.waited = waited


def pauses() -> Iterator[float]:
    """The pauses of a waiter between its tries: doubling up to :data:`LONGEST_PAUSE_SECONDS`,
    each a random part (half to all) of its bound, so that replicas started together do not
    try together ("equal jitter")."""
    bound = FIRST_PAUSE_SECONDS
    while True:
        yield random.uniform(bound / 2, bound)
        bound = min(bound * 2, LONGEST_PAUSE_SECONDS)


def close_unless_in_transaction(connection: BaseDatabaseWrapper) -> None:
    """Close ``connection`` unless a transaction is open on it: a process that waits holds no
    connection it does not use (Django reopens it on the next query)."""
    if not connection.in_atomic_block:
        with contextlib.suppress(Exception):
            connection.close()


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
    def try_acquire(self) -> bool:
        """Take the lock if it is free now, without waiting; True when held. Waiting is
        :meth:`acquire`'s alone: one loop, the same back-off for every backend."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock back; never raises (a lost lock is only logged)."""

    @abc.abstractmethod
    def verify(self) -> None:
        """Raise :class:`~django_automigrate.exceptions.LockLost` unless the lock is still ours."""

    @abc.abstractmethod
    def holder(self) -> str | None:
        """Who holds the lock now, as the server tells it, or None; never takes the lock."""

    def forget(self) -> None:  # noqa: B027 - a no-op unless the lock lives on that connection
        """The connection of the run ended: a lock it held ended with it (nothing to release)."""

    def lost(self) -> str:
        """Why the lock is known to be lost without asking the server, or "" (cheap: called
        before every statement of a run by :meth:`guard`)."""
        return ""

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """While the migrations run: refuse every statement once the lock is known lost.

        A session lock needs nothing here (the session that would run the statement is the one
        that held the lock); a lease held elsewhere does.
        """
        yield

    def acquire(
        self,
        timeout: float,
        on_wait: WaitCallback | None = None,
        unneeded: Callable[[], bool] | None = None,
    ) -> float:
        """Wait at most ``timeout`` seconds for the lock; return the seconds waited.

        A waiter holds no connection while it sleeps (:meth:`idle`), and at most one while
        it tries: hundreds of replicas waiting together must not use up the server's
        connections. Raises :class:`LockTimeout` naming the lock and its holder, and
        :class:`NoLongerNeeded` when ``unneeded()``, asked after each failed try on the same
        connection, says the work was done by another process meanwhile.
        """
        started = time.monotonic()
        if self.try_acquire():
            return time.monotonic() - started
        next_report = 0.0
        tried_at = started
        for pause in pauses():
            self.idle()
            # A try that took long means a loaded server or machine: fewer tries help it most.
            pause = max(
                pause, min(LOADED_PAUSE_FACTOR * (time.monotonic() - tried_at), LOADED_PAUSE_LIMIT)
            )
            waited = time.monotonic() - started
            remaining = timeout - waited
            if remaining <= 0:
                holder = self.safe_holder()
                self.idle()
                raise LockTimeout(self.alias, self.name, waited, holder)
            if on_wait is not None and waited >= next_report:
                on_wait(self.safe_holder(), waited)
                self.idle()
                next_report = waited + WAIT_CHUNK_SECONDS
            time.sleep(min(pause, remaining))
            tried_at = time.monotonic()
            if self.try_acquire():
                return time.monotonic() - started
            if unneeded is not None and unneeded():
                self.idle()
                raise NoLongerNeeded(time.monotonic() - started)
        raise AssertionError("unreachable")  # pragma: no cover - pauses() never ends

    def idle(self) -> None:
        """Between two tries: close the connection the tries use (reopened by the next)."""
        close_unless_in_transaction(self.connection)

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


class SessionLock(MigrationLock):
    """A lock held by the database session that runs the migrations.

    The lock and the work live and die together: whatever ends that session (a kill of the
    process, ``pg_terminate_backend``/``KILL``, a server idle timeout, a cut network) releases
    the lock at the same moment it stops the work, so no other process can take the lock while
    this one still migrates. A lock on a connection of its own could be lost while the
    migrations went on. Session-level, never transaction-level: each migration commits on its
    own, and ``atomic = False`` ones run outside any transaction.
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._held = False

    @abc.abstractmethod
    def unlock_statement(self) -> tuple[str, list[str | int]]:
        """The SQL that gives the lock back: a query returning 1 (or true) when it was held."""

    def forget(self) -> None:
        self._held = False

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            sql, params = self.unlock_statement()
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
        except Exception as exc:
            # The session is gone or unusable: closing it is what releases a session lock, and
            # a pooled connection must not go back to its pool still holding one.
            logger.warning("automigrate: releasing %s on %r failed: %s", self.name, self.alias, exc)
            with contextlib.suppress(Exception):
                self.connection.close()
            return
        if not row or row[0] != 1:
            logger.warning("automigrate: %s was not held at release on %r", self.name, self.alias)


class NoLock(MigrationLock):
    """``USE_LOCK = False`` / ``--no-lock``: nothing is taken; other processes may migrate too."""

    @property
    def name(self) -> str:
        return "none (locking disabled)"

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def verify(self) -> None:
        pass

    def holder(self) -> str | None:
        return None
