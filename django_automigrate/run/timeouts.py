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


@contextlib.contextmanager
def statement_lock_timeout(
    connection: BaseDatabaseWrapper, seconds: float | None, *, concurrent: float | None = None
) -> Iterator[None]:
    """Limit lock waits of the connection's statements for the duration of the block:
    ``seconds`` for every statement, ``concurrent`` for those that let traffic through while
    they wait (None: no limit).

    Set at session level and outside any transaction (so that no rollback undoes it), and put
    back afterwards.
    """
    if connection.vendor == "sqlite":
        with _sqlite_waits_for_write_lock(connection, seconds):
            yield
        return
    if connection.vendor not in ("postgresql", "mysql") or (not seconds and not concurrent):
        yield
        return
    previous = _read_timeout(connection)
    if connection.vendor == "mysql":
        if not seconds:
            yield
            return
        _set(connection, max(1, math.ceil(seconds)))
    else:
        # Milliseconds, at least 1 (0 means "no limit" to PostgreSQL); no limit of ours keeps
        # the session's own setting.
        base = f"{max(1, round(seconds * 1000))}ms" if seconds else previous
        _set(connection, base)
    try:
        if connection.vendor == "postgresql" and seconds != concurrent:
            own = f"{max(1, round(concurrent * 1000))}ms" if concurrent else "0"
            with connection.execute_wrapper(_ConcurrentBudget(connection, base, own)):
                yield
        else:
            yield
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


class _ConcurrentBudget:
    """A ``connection.execute_wrapper`` that gives non-blocking statements their own lock
    timeout, set just before each one and put back after it.

    Such statements run outside transactions (PostgreSQL refuses ``CONCURRENTLY`` inside one),
    so a session-level setting around each is exact.
    """

    def __init__(self, connection: BaseDatabaseWrapper, base: str, concurrent: str) -> None:
        self._connection = connection
        self._base = base
        self._concurrent = concurrent

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not NONBLOCKING.match(str(sql)):
            return execute(sql, params, many, context)
        _set(self._connection, self._concurrent)
        try:
            return execute(sql, params, many, context)
        finally:
            _set(self._connection, self._base)


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
