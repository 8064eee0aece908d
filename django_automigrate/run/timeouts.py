"""A guard against blocking production traffic, and against being failed by it.

* How long a migration's statement may wait for a table lock (PostgreSQL ``lock_timeout``,
  MySQL/MariaDB ``lock_wait_timeout``, SQLite's busy timeout). A DDL statement that waits for a
  table lock makes every query behind it wait too: better to give up after a second or two, let
  traffic through, and try again.
* Statements that let traffic through while they wait (``CREATE INDEX CONCURRENTLY``) get a
  budget of their own: cutting them short leaves an invalid index for nothing.
* Retries with jittered exponential back-off. The pause is always taken holding no lock of the
  run: an all-or-nothing run is rolled back whole and tried again (its earlier migrations' locks
  would otherwise stall traffic during the pause); a run of separate transactions retries the
  migration that gave up, whose own transaction is gone.
* On SQLite, every transaction of the run begins ``IMMEDIATE``: it waits for the write lock up
  front (within the busy timeout), where a deferred transaction that read first would fail at
  once with "database is locked" when another connection writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.db_errors import is_lock_timeout

__all__ = [
    "RetryPolicy",
    "StatementBudget",
    "TransactionBudget",
    "is_lock_timeout",
    "retry_pauses",
    "retrying",
    "statement_lock_timeout",
]

logger = logging.getLogger("django_automigrate")

FIRST_PAUSE_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0

#: Statements that let reads and writes through while they wait for their locks (PostgreSQL):
#: they wait for older transactions, never queue traffic behind them.
NONBLOCKING = re.compile(
    r"^\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY"
    r"|REINDEX\b.*\bCONCURRENTLY|ALTER\s+TABLE\b.*\bVALIDATE\s+CONSTRAINT"
    r"|ALTER\s+TABLE\b.*\bDETACH\s+PARTITION\b.*\bCONCURRENTLY)",
    re.IGNORECASE | re.DOTALL,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after which pauses, a statement that gave up waiting is tried again."""

    retries: int
    first_pause: float = FIRST_PAUSE_SECONDS
    longest_pause: float = MAX_BACKOFF_SECONDS


def retry_pauses(policy: RetryPolicy) -> Iterator[float]:
    """Doubling pauses up to ``longest_pause``, each a random part (half to all) of its bound
    ("equal jitter"): replicas that gave up together do not come back together."""
    bound = policy.first_pause
    while True:
        yield random.uniform(bound / 2, bound)
        bound = min(bound * 2, policy.longest_pause)


def retrying(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    retriable: Callable[[T], bool],
    announce: Callable[[T, int, float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt()``, again after a pause while ``retriable(result)`` and retries remain.

    The caller's ``attempt`` must hold no transaction when it returns: the pause is taken
    between attempts, with nothing of the run's locked. ``announce(result, attempt, pause)``
    says so before each pause.
    """
    pauses = retry_pauses(policy)
    for number in range(1, policy.retries + 2):
        result = attempt()
        if number > policy.retries or not retriable(result):
            return result
        pause = next(pauses)
        announce(result, number, pause)
        sleep(pause)
    raise AssertionError("unreachable")


class StatementBudget:
    """A ``connection.execute_wrapper`` that sets each statement's lock timeout just before it
    runs, when it differs from the one in force:

    * ``seconds`` for every statement, until the current migration has kept a write (one
      outside a transaction, or any on a backend without transactional DDL). From then on the
      session's own setting: a statement that gave up there would leave the migration half
      applied, which no retry may repair, so finishing it is the lesser wait.
    * ``concurrent`` for statements that let traffic through while they wait, when they run
      outside a transaction (inside one, earlier locks of the transaction are held meanwhile:
      they get ``seconds``).

    :meth:`migration_started` starts each migration (and each reversal) afresh.
    """

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        *,
        base: Any,
        concurrent: Any,
        unlimited: Any,
        bookkeeping: tuple[str, ...] = (),
    ) -> None:
        #: Tables of the run's own records (the history): writing them is no migration's.
        self._bookkeeping = bookkeeping
        self._connection = connection
        self._base, self._concurrent, self._unlimited = base, concurrent, unlimited
        self._current = base
        self._kept_write = False
        self._setting = False  # setting the timeout runs a statement through this wrapper too

    def migration_started(self) -> None:
        self._kept_write = False

    def _wanted(self, sql: str) -> Any:
        if self._kept_write:
            return self._unlimited
        if not self._connection.in_atomic_block and NONBLOCKING.match(sql):
            return self._concurrent
        return self._base

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if self._setting:
            return execute(sql, params, many, context)
        text = str(sql)
        wanted = self._wanted(text)
        if wanted != self._current:
            self._setting = True
            try:
                _set(self._connection, wanted)
            finally:
                self._setting = False
            self._current = wanted
        result = execute(sql, params, many, context)
        if any(table in text for table in self._bookkeeping):
            return result
        if keeps_write(self._connection, text):
            self._kept_write = True
        return result


class TransactionBudget:
    """The budget behind a transaction pooler (PgBouncer in transaction mode), where a session
    setting lands on whichever server connection answers, and stays there for other clients:
    the limit is set with ``SET LOCAL`` in each transaction of the run, and dies with it. A
    statement outside any transaction may reach any server connection: it keeps the server's
    own setting."""

    def __init__(self, connection: BaseDatabaseWrapper, limit: str) -> None:
        self._connection = connection
        self._limit = limit
        self._transaction: object | None = None  # the outermost atomic block it was set in
        self._setting = False

    def migration_started(self) -> None:
        pass

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        connection = self._connection
        if self._setting or not connection.in_atomic_block:
            return execute(sql, params, many, context)
        outermost = connection.atomic_blocks[0]
        if outermost is not self._transaction:
            self._setting = True
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [self._limit])
            finally:
                self._setting = False
            self._transaction = outermost  # held: its id cannot be reused meanwhile
        return execute(sql, params, many, context)


class _NoBudget:
    """What :func:`statement_lock_timeout` yields where it sets nothing per statement."""

    def migration_started(self) -> None:
        pass


#: How statements that write nothing begin (the applier counts the others as writes).
READS = ("SELECT", "SHOW", "EXPLAIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "SET", "PRAGMA", "WITH")


def is_write(sql: object) -> bool:
    return not str(sql).lstrip().upper().startswith(READS)


def keeps_write(connection: BaseDatabaseWrapper, sql: object) -> bool:
    """Whether ``sql``, run just now, wrote something that stays whatever comes next: outside
    a transaction, or on a backend whose DDL no rollback undoes."""
    return is_write(sql) and (
        not connection.in_atomic_block or not connection.features.can_rollback_ddl
    )


@contextlib.contextmanager
def statement_lock_timeout(
    connection: BaseDatabaseWrapper,
    seconds: float | None,
    *,
    concurrent: float | None = None,
    pooled: bool = False,
    bookkeeping: tuple[str, ...] = (),
) -> Iterator[StatementBudget | TransactionBudget | _NoBudget]:
    """Limit lock waits of the connection's statements for the duration of the block:
    ``seconds`` for every statement, ``concurrent`` for those that let traffic through while
    they wait (None: no limit). Yields the budget, whose ``migration_started()`` the caller
    calls as each migration begins.

    Set at session level (so that no rollback undoes it), and put back afterwards; with
    ``pooled`` (PostgreSQL behind a transaction pooler), per transaction instead.
    ``bookkeeping``: the tables of the run's own records, whose writes are no migration's.
    """
    if connection.vendor == "sqlite":
        with _sqlite_waits_for_write_lock(connection, seconds):
            yield _NoBudget()
        return
    if pooled and connection.vendor == "postgresql":
        if not seconds:
            yield _NoBudget()
            return
        with connection.execute_wrapper(
            pooled_budget := TransactionBudget(connection, f"{max(1, round(seconds * 1000))}ms")
        ):
            yield pooled_budget
        return
    if connection.vendor not in ("postgresql", "mysql") or (not seconds and not concurrent):
        yield _NoBudget()
        return
    previous = _read_timeout(connection)
    if connection.vendor == "mysql":
        if not seconds:
            yield _NoBudget()
            return
        base: Any = max(1, math.ceil(seconds))
        own: Any = base  # no statement of MySQL lets traffic through while it waits
    else:
        # Milliseconds, at least 1 (0 means "no limit" to PostgreSQL); no limit of ours keeps
        # the session's own setting.
        base = f"{max(1, round(seconds * 1000))}ms" if seconds else previous
        own = f"{max(1, round(concurrent * 1000))}ms" if concurrent else "0"
    _set(connection, base)
    budget = StatementBudget(
        connection, base=base, concurrent=own, unlimited=previous, bookkeeping=bookkeeping
    )
    try:
        with connection.execute_wrapper(budget):
            yield budget
    finally:
        with contextlib.suppress(Exception):
            _set(connection, previous)


def _read_timeout(connection: BaseDatabaseWrapper) -> Any:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('lock_timeout')")
        else:
            cursor.execute("SELECT @@SESSION.lock_wait_timeout")
        return cursor.fetchone()[0]


def _set(connection: BaseDatabaseWrapper, value: Any) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # is_local false: a rolled-back transaction must not undo it.
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [value])
        else:
            cursor.execute("SET SESSION lock_wait_timeout = %s", [value])


@contextlib.contextmanager
def _sqlite_waits_for_write_lock(
    connection: BaseDatabaseWrapper, seconds: float | None
) -> Iterator[None]:
    """Transactions that take the write lock when they begin, waiting for it up to ``seconds``
    (or the connection's own timeout: ``OPTIONS["timeout"]``, 5 s by default)."""
    connection.ensure_connection()
    previous_mode = getattr(connection, "transaction_mode", None)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        previous_busy = cursor.fetchone()[0]
        if seconds:
            cursor.execute(f"PRAGMA busy_timeout = {max(1, round(seconds * 1000))}")
    connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
    try:
        yield
    finally:
        connection.transaction_mode = previous_mode  # type: ignore[attr-defined]
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(previous_busy)}")
