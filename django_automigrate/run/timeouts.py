"""A guard against blocking production traffic: how long a migration's statement may wait for
table locks (PostgreSQL ``lock_timeout``, MySQL/MariaDB ``lock_wait_timeout``), with retries.

A DDL statement that waits for a table lock makes every query behind it wait too: better to give
up after a few seconds, let traffic through, and try again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.db_errors import is_lock_timeout
from django_automigrate.run.applier import ApplyOutcome

__all__ = ["is_lock_timeout", "statement_lock_timeout", "with_retries"]

logger = logging.getLogger("django_automigrate")

MAX_BACKOFF_SECONDS = 10.0


@contextlib.contextmanager
def statement_lock_timeout(
    connection: BaseDatabaseWrapper, seconds: float | None
) -> Iterator[None]:
    """Limit lock waits of the connection's statements for the duration of the block.

    Set at session level and outside any transaction (so that no rollback undoes it), and put
    back afterwards. SQLite has no such setting: its ``OPTIONS["timeout"]`` already applies.
    """
    if not seconds or connection.vendor not in ("postgresql", "mysql"):
        yield
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('lock_timeout')")
            previous = cursor.fetchone()[0]
            milliseconds = max(1, round(seconds * 1000))  # 0 would mean "no limit"
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{milliseconds}ms"])
        else:
            cursor.execute("SELECT @@SESSION.lock_wait_timeout")
            previous = cursor.fetchone()[0]
            cursor.execute("SET SESSION lock_wait_timeout = %s", [max(1, math.ceil(seconds))])
    try:
        yield
    finally:
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])
            else:
                cursor.execute("SET SESSION lock_wait_timeout = %s", [previous])


def with_retries(
    apply: Callable[[], ApplyOutcome], *, retries: int, connection: BaseDatabaseWrapper
) -> Callable[[], ApplyOutcome]:
    """``apply``, tried again (up to ``retries`` times, with backoff) after a lock timeout that
    left nothing half-done; what each attempt applied adds up in the returned outcome."""

    def attempt_all() -> ApplyOutcome:
        applied: list[str] = []
        for attempt in range(retries + 1):
            outcome = apply()
            applied.extend(outcome.applied)
            outcome.applied = applied
            if not is_lock_timeout(outcome.error) or attempt == retries:
                return outcome
            undone = outcome.statements_before_failure == 0 or bool(
                connection.features.can_rollback_ddl and outcome.failed and outcome.failed.atomic
            )
            if not undone:
                return outcome  # part of it ran outside a transaction: never run it twice
            pause = min(MAX_BACKOFF_SECONDS, 2.0**attempt)
            logger.warning(
                "automigrate: %s: %s timed out waiting for a table lock (attempt %d of %d); "
                "retrying in %.0fs",
                connection.alias,
                outcome.failed_migration or "a statement",
                attempt + 1,
                retries + 1,
                pause,
                extra={"database": connection.alias, "migration": outcome.failed_migration},
            )
            time.sleep(pause)
        raise AssertionError("unreachable")

    return attempt_all
