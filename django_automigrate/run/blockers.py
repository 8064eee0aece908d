"""Who blocks a migration: the database sessions that hold the locks it waits for.

Two questions, asked of the server's own catalog:

* :func:`blocking`: which sessions block a given session now (PostgreSQL ``pg_blocking_pids``;
  MySQL ``performance_schema.metadata_locks``; MariaDB ``METADATA_LOCK_INFO`` when that plugin is
  installed, else every session with an open transaction, the only sessions that can hold a
  table's metadata lock);
* :func:`holding`: which sessions hold a lock on given tables that a statement taking a given
  PostgreSQL lock mode would wait for (the forecast asks it before anything runs).

:class:`LockWaitWatch` asks the first question in a thread of its own, on a connection of its
own, while a run applies migrations: a statement that waits is seen waiting, and its blockers are
named in the log, in the history and in the error when it gives up. Nothing here may break a run:
a watcher that cannot ask stops asking.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.locks.base import dedicated_connection

logger = logging.getLogger("django_automigrate")

#: How often the watcher asks; a tenth of the default statement lock timeout (2 s) is enough to
#: see every wait that matters, and one catalog query every 0.2 s costs the server nothing.
POLL_SECONDS = 0.2

#: A wait shorter than this is ordinary lock traffic: it is recorded, not logged as a warning.
LOG_AFTER_SECONDS = 1.0

QUERY_CHARS = 200

#: PostgreSQL's table lock modes, weakest first, and which modes each one conflicts with
#: (https://www.postgresql.org/docs/current/explicit-locking.html, table 13.2).
PG_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
_PG_CONFLICTS: dict[str, frozenset[str]] = {
    "AccessShareLock": frozenset({"AccessExclusiveLock"}),
    "RowShareLock": frozenset({"ExclusiveLock", "AccessExclusiveLock"}),
    "RowExclusiveLock": frozenset(
        {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
    ),
    "ShareUpdateExclusiveLock": frozenset(
        {
            "ShareUpdateExclusiveLock",
            "ShareLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        }
    ),
    "ShareLock": frozenset(
        {
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        }
    ),
    "ShareRowExclusiveLock": frozenset(set(PG_MODES[2:])),
    "ExclusiveLock": frozenset(set(PG_MODES[1:])),
    "AccessExclusiveLock": frozenset(PG_MODES),
}


def conflicts(mode: str) -> frozenset[str]:
    """The PostgreSQL lock modes that a statement taking ``mode`` must wait for."""
    return _PG_CONFLICTS[mode]


@dataclasses.dataclass(frozen=True)
class Session:
    """A database session that holds a lock another one needs."""

    id: int
    #: ``active``, ``idle in transaction``... (PostgreSQL), or MySQL's command and state.
    state: str
    query: str
    query_start: datetime.datetime | None = None
    transaction_start: datetime.datetime | None = None
    user: str = ""
    application: str = ""
    #: What it holds, when the server says (``AccessShareLock on shop_order``).
    holds: str = ""
    #: Only a candidate: it has an open transaction, but the server (MySQL/MariaDB without a
    #: view of metadata locks) cannot say whether it holds the lock waited for.
    candidate: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("query_start", "transaction_start"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data

    def describe(self, now: datetime.datetime | None = None) -> str:
        """``pid 4242 (idle in transaction, transaction open 35s, app "worker"): SELECT ...``"""
        now = now or datetime.datetime.now(datetime.UTC)
        facts = [self.state or "unknown state"]
        if self.transaction_start is not None:
            facts.append(f"transaction open {_age(now, self.transaction_start)}")
        elif self.query_start is not None:
            facts.append(f"query running {_age(now, self.query_start)}")
        if self.holds:
            facts.append(f"holds {self.holds}")
        if self.application:
            facts.append(f"app {self.application!r}")
        query = " ".join(self.query.split())
        return f"session {self.id} ({', '.join(facts)})" + (f": {query}" if query else "")


def _age(now: datetime.datetime, then: datetime.datetime) -> str:
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_all(sessions: Sequence[Session]) -> str:
    """One line naming every blocker, for a log or an error message."""
    if not sessions:
        return ""
    now = datetime.datetime.now(datetime.UTC)
    return "; ".join(session.describe(now) for session in sessions)


def blocked_by(sessions: Sequence[Session]) -> str:
    """``blocked by session 4242 (…)``; for mere candidates ``possibly blocked by …``, saying
    why the server cannot tell; "" for none."""
    if not sessions:
        return ""
    if all(session.candidate for session in sessions):
        return (
            f"possibly blocked by {describe_all(sessions)} (sessions with an open transaction: "
            "this server does not show metadata locks)"
        )
    return f"blocked by {describe_all([s for s in sessions if not s.candidate])}"


def session_id(connection: BaseDatabaseWrapper) -> int | None:
    """The server's id of ``connection``'s session (PostgreSQL pid, MySQL connection id)."""
    query = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
    if connection.vendor not in query:
        return None
    with connection.cursor() as cursor:
        cursor.execute(query[connection.vendor])
        return int(cursor.fetchone()[0])


_PG_SESSION_COLUMNS = (
    "a.pid, coalesce(a.state, ''), a.query_start, a.xact_start, coalesce(a.usename, ''), "
    f"coalesce(a.application_name, ''), left(coalesce(a.query, ''), {QUERY_CHARS})"
)


def blocking(connection: BaseDatabaseWrapper, waiter: int) -> list[Session]:
    """The sessions that block session ``waiter`` right now ([] when it waits for nothing)."""
    if connection.vendor == "postgresql":
        return _pg_sessions(
            connection,
            # In FROM, pg_blocking_pids() (volatile, and it locks the lock manager) runs once,
            # not once per row of pg_stat_activity.
            f"SELECT {_PG_SESSION_COLUMNS}, '' FROM unnest(pg_blocking_pids(%s)) AS b(pid) "
            "JOIN pg_stat_activity a ON a.pid = b.pid ORDER BY a.xact_start NULLS LAST, a.pid",
            [waiter],
        )
    if connection.vendor == "mysql":
        return _mysql_blocking(connection, waiter)
    return []


def holding(connection: BaseDatabaseWrapper, tables: Sequence[str], mode: str) -> list[Session]:
    """The other sessions holding (or queued for) a lock on ``tables`` that ``mode`` conflicts
    with: who a statement taking ``mode`` on them would wait for now. PostgreSQL only."""
    if connection.vendor != "postgresql" or not tables:
        return []
    return _pg_sessions(
        connection,
        f"SELECT {_PG_SESSION_COLUMNS}, string_agg(DISTINCT l.mode || ' on ' || c.relname, ', ') "
        "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND l.mode = ANY(%s) "
        "AND l.relation = ANY(ARRAY(SELECT to_regclass(t)::oid FROM unnest(%s::text[]) t "
        "WHERE to_regclass(t) IS NOT NULL)) "
        "GROUP BY 1, 2, 3, 4, 5, 6, 7 "
        "ORDER BY a.xact_start NULLS LAST, a.pid",
        [sorted(conflicts(mode)), [connection.ops.quote_name(t) for t in tables]],
    )


def _pg_sessions(connection: BaseDatabaseWrapper, sql: str, params: list[Any]) -> list[Session]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        Session(
            id=int(pid),
            state=state,
            query_start=query_start,
            transaction_start=xact_start,
            user=user,
            application=application,
            query=query,
            holds=holds or "",
        )
        for pid, state, query_start, xact_start, user, application, query, holds in rows
    ]


def _mysql_blocking(connection: BaseDatabaseWrapper, waiter: int) -> list[Session]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE ID = %s",
            [waiter],
        )
        row = cursor.fetchone()
        if row is None or "lock" not in str(row[0]).lower():
            return []
        ids = _mysql_lock_holders(cursor, waiter)
        exact = ids is not None
        # Without a view of metadata locks, every session with an open transaction may hold the
        # table: those are the only candidates, and they are named as such.
        cursor.execute(
            "SELECT p.ID, p.COMMAND, COALESCE(p.STATE, ''), p.TIME, "
            f"LEFT(COALESCE(p.INFO, t.trx_query, ''), {QUERY_CHARS}), p.USER, "
            "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) "
            "FROM information_schema.PROCESSLIST p "
            "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
            "WHERE p.ID <> %s AND p.ID <> CONNECTION_ID() "
            + ("" if exact else "AND t.trx_mysql_thread_id IS NOT NULL ")
            + "ORDER BY t.trx_started, p.ID",
            [waiter],
        )
        rows = cursor.fetchall()
    # Ages come from the server's clock (its NOW() and TIME), so that time zones cannot skew them.
    now = datetime.datetime.now(datetime.UTC)
    sessions = []
    for pid, command, state, seconds, query, user, transaction_age in rows:
        if ids is not None and int(pid) not in ids:
            continue
        idle = str(command) == "Sleep"
        in_transaction = transaction_age is not None
        label = ("idle in transaction" if in_transaction else "idle") if idle else state
        sessions.append(
            Session(
                id=int(pid),
                state=str(label or command),
                query="" if idle else str(query or ""),
                query_start=None if idle else now - datetime.timedelta(seconds=int(seconds or 0)),
                transaction_start=(
                    now - datetime.timedelta(seconds=int(transaction_age))
                    if in_transaction
                    else None
                ),
                user=str(user or ""),
                candidate=not exact,
            )
        )
    return sessions


def _mysql_lock_holders(cursor: Any, waiter: int) -> set[int] | None:
    """The ids of sessions holding the metadata lock ``waiter`` waits for, or None when the
    server does not show metadata locks (MariaDB without the METADATA_LOCK_INFO plugin, MySQL
    with performance_schema off)."""
    with contextlib.suppress(Exception):
        cursor.execute(
            "SELECT DISTINCT ht.PROCESSLIST_ID FROM performance_schema.metadata_locks w "
            "JOIN performance_schema.threads wt ON wt.THREAD_ID = w.OWNER_THREAD_ID "
            "JOIN performance_schema.metadata_locks h ON h.OBJECT_TYPE = w.OBJECT_TYPE "
            "AND h.OBJECT_SCHEMA <=> w.OBJECT_SCHEMA AND h.OBJECT_NAME <=> w.OBJECT_NAME "
            "AND h.LOCK_STATUS = 'GRANTED' AND h.OWNER_THREAD_ID <> w.OWNER_THREAD_ID "
            "JOIN performance_schema.threads ht ON ht.THREAD_ID = h.OWNER_THREAD_ID "
            "WHERE w.LOCK_STATUS = 'PENDING' AND wt.PROCESSLIST_ID = %s",
            [waiter],
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT @@performance_schema")
        if cursor.fetchone()[0]:
            return {int(r[0]) for r in rows if r[0] is not None}
    with contextlib.suppress(Exception):
        cursor.execute(
            "SELECT DISTINCT h.THREAD_ID FROM information_schema.METADATA_LOCK_INFO h "
            "WHERE h.THREAD_ID <> %s AND h.TABLE_NAME <> '' AND EXISTS (SELECT 1 FROM "
            "information_schema.PROCESSLIST p WHERE p.ID = %s AND p.DB <=> h.TABLE_SCHEMA "
            "AND p.INFO LIKE CONCAT('%%', h.TABLE_NAME, '%%'))",
            [waiter, waiter],
        )
        return {int(r[0]) for r in cursor.fetchall()}
    return None


@dataclasses.dataclass
class LockWait:
    """One wait of the migrating session, as the watcher saw it."""

    migration: str
    #: Seconds from the first sight of the wait to the last (a lower bound of its length).
    seconds: float
    blockers: list[Session]

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "seconds": round(self.seconds, 1),
            "blockers": [session.to_dict() for session in self.blockers],
        }


class LockWaitWatch:
    """Watches a migrating session from a thread and a connection of its own, and notes every
    lock wait it sees: which migration waited, for how long, behind which sessions.

    ``current()`` names the migration being applied (the watcher's label for a wait).
    """

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        current: Callable[[], str],
        *,
        poll_seconds: float = POLL_SECONDS,
        enabled: bool = True,
    ) -> None:
        self._enabled = enabled
        self._connection = connection
        self._current = current
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.waits: list[LockWait] = []
        self._open: LockWait | None = None
        self._open_since = 0.0
        self._logged = False

    @contextlib.contextmanager
    def watching(self) -> Iterator[LockWaitWatch]:
        waiter = None
        if self._enabled and self._connection.vendor in ("postgresql", "mysql"):
            try:
                waiter = session_id(self._connection)
            except Exception:  # a run that cannot ask is a run without a watcher
                logger.debug("automigrate: lock wait watcher not started", exc_info=True)
        if waiter is not None:
            self._thread = threading.Thread(
                target=self._watch, args=(waiter,), name="automigrate-lock-watch", daemon=True
            )
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=10)

    def last_blockers(self) -> list[Session]:
        """The blockers of the latest wait seen (the one a timed-out statement gave up on)."""
        with self._lock:
            latest = self._open or (self.waits[-1] if self.waits else None)
            return list(latest.blockers) if latest else []

    def all_waits(self) -> list[LockWait]:
        with self._lock:
            return [*self.waits, *([self._open] if self._open else [])]

    def _watch(self, waiter: int) -> None:
        # Made in this thread (Django ties a connection to its thread), outside any pool.
        try:
            observer = dedicated_connection(self._connection)
        except Exception:  # no connection to spare (max_connections): a run without a watcher
            logger.debug("automigrate: lock wait watcher not started", exc_info=True)
            return
        try:
            while not self._stop.wait(self._poll):
                try:
                    blockers = blocking(observer, waiter)
                except Exception:
                    logger.debug("automigrate: lock wait watcher stopped", exc_info=True)
                    return
                self._see(blockers)
        finally:
            self._see([])
            with contextlib.suppress(Exception):
                observer.close()

    def _see(self, blockers: list[Session]) -> None:
        now = time.monotonic()
        with self._lock:
            if not blockers:
                if self._open is not None:
                    self.waits.append(self._open)
                self._open = None
                return
            migration = self._current()
            if self._open is None or self._open.migration != migration:
                if self._open is not None:
                    self.waits.append(self._open)
                self._open = LockWait(migration, 0.0, blockers)
                self._open_since = now
                self._logged = False
            else:
                self._open.blockers = blockers
                self._open.seconds = now - self._open_since
            wait, log = self._open, not self._logged and self._open.seconds >= LOG_AFTER_SECONDS
            if log:
                self._logged = True
        if log:
            logger.warning(
                "automigrate: %s: %s is waiting for a lock, %s",
                self._connection.alias,
                wait.migration or "a statement",
                blocked_by(wait.blockers),
                extra={"database": self._connection.alias, "migration": wait.migration},
            )
