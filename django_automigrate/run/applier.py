"""Applying a plan with Django's own ``migrate`` command, watched migration by migration.

We call ``migrate`` rather than the executor alone so that a run does exactly what
``manage.py migrate`` does: ``prepare_database``, the ``pre_migrate``/``post_migrate`` signals
(content types, permissions), the recorder, squashed-migration bookkeeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, TextIO

from django.core.management import call_command
from django.core.management.commands import migrate as django_migrate
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from django_automigrate.locks import MigrationLock
from django_automigrate.reporting.runlog import progress_level
from django_automigrate.run.failures import failing_operation
from django_automigrate.run.plan import migration_label
from django_automigrate.run.timeouts import is_write
from django_automigrate.run.transactions import one_transaction, transactional

logger = logging.getLogger("django_automigrate")

#: Statements that change nothing: not counted when judging whether a failure left changes.


@dataclasses.dataclass
class ApplyOutcome:
    applied: list[str] = dataclasses.field(default_factory=list)
    failed_migration: str = ""
    error: BaseException | None = None
    #: The migration that failed, and how many of its statements had succeeded by then.
    failed: Migration | None = None
    statements_before_failure: int = 0


class _WatchedMigrate(django_migrate.Command):
    """``migrate`` that checks the lock before each migration and notes what was applied."""

    def __init__(
        self,
        *,
        connection: BaseDatabaseWrapper,
        lock: MigrationLock,
        outcome: ApplyOutcome,
        log_details: bool,
        alias: str,
        on_start: Callable[[str], None],
        on_applied: Callable[[list[str]], None],
        rewrite: Callable[[Migration], None],
    ) -> None:
        super().__init__()
        self._rewrite = rewrite
        self._connection = connection
        #: The transaction of ours around the current migration and its record, when open.
        self._transaction: contextlib.ExitStack | None = None
        self._on_start = on_start
        self._on_applied = on_applied
        self._lock = lock
        self._outcome = outcome
        self._log_details = log_details
        self._alias = alias
        self._current: str = ""
        self._current_migration: Migration | None = None
        self._current_started = 0.0
        #: Writes that succeeded since the current migration started: outside any transaction
        #: (kept whatever happens next), and inside one (kept only if it committed).
        self.statements = 0
        self.transactional_statements = 0

    def count_statement(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """A ``connection.execute_wrapper``: counts the writes that succeed."""
        result = execute(sql, params, many, context)
        if is_write(sql):
            if context["connection"].in_atomic_block:
                self.transactional_statements += 1
            else:
                self.statements += 1
        return result

    def migration_progress_callback(
        self, action: str, migration: Migration | None = None, fake: bool = False
    ) -> None:
        if action == "apply_start" and migration is not None:
            # Never apply a migration unprotected: a lost lock stops the run here.
            self._lock.verify()
            # The executor's own instance, about to be applied: its deferred operations are
            # wrapped now (run.deferral), on every attempt alike.
            self._rewrite(migration)
            self._current = migration_label(migration)
            self._current_migration = migration
            self._current_started = time.monotonic()
            self._on_start(self._current)  # a write of ours: counted before the reset
            self.statements = 0
            self.transactional_statements = 0
            if transactional(self._connection, migration):
                # Django commits a migration with deferred SQL (indexes, foreign keys) before
                # it writes its django_migrations row: a kill between the two would leave it
                # applied but unrecorded. In a transaction of ours, the work and its record
                # commit together, so an interrupted run leaves no doubt.
                self._transaction = contextlib.ExitStack()
                self._transaction.enter_context(one_transaction(self._connection))
            if self._log_details:
                logger.log(
                    progress_level(logging.INFO),
                    "automigrate: %s: applying %s",
                    self._alias,
                    self._current,
                    extra={"database": self._alias, "migration": self._current},
                )
        elif action == "apply_success" and migration is not None:
            commit, self._transaction = self._transaction, None
            if commit is not None:
                commit.close()
            label = migration_label(migration)
            self._outcome.applied.append(label)
            self._current = ""
            self._current_migration = None
            self._on_applied(self._outcome.applied)
            if self._log_details:
                seconds = time.monotonic() - self._current_started
                logger.log(
                    progress_level(logging.INFO),
                    "automigrate: %s: applied %s in %.2fs",
                    self._alias,
                    label,
                    seconds,
                    extra={"database": self._alias, "migration": label, "duration": seconds},
                )
        super().migration_progress_callback(action, migration, fake)

    def abort(self, error: BaseException) -> None:
        """Roll back the transaction of the migration that failed, if one is open."""
        rollback, self._transaction = self._transaction, None
        if rollback is not None:
            with contextlib.suppress(Exception):  # a dead connection: the server rolled back
                rollback.__exit__(type(error), error, error.__traceback__)

    @property
    def current(self) -> str:
        return self._current

    @property
    def current_migration(self) -> Migration | None:
        return self._current_migration


def apply_plan(
    connection: BaseDatabaseWrapper,
    *,
    lock: MigrationLock,
    stdout: TextIO,
    verbosity: int,
    log_details: bool,
    on_start: Callable[[str], None] = lambda label: None,
    on_applied: Callable[[list[str]], None] = lambda labels: None,
    app_label: str | None = None,
    rewrite: Callable[[Migration], None] = lambda migration: None,
) -> ApplyOutcome:
    """Run ``migrate`` on ``connection``'s alias (only ``app_label``'s migrations, when given);
    never raises, the outcome holds any error.

    ``on_start(label)`` is called before each migration begins, outside its transaction;
    ``on_applied(labels)`` after each one, with every label applied so far; ``rewrite`` may
    change the operations of each migration before it is applied (deferred work).
    """
    outcome = ApplyOutcome()
    command = _WatchedMigrate(
        connection=connection,
        lock=lock,
        outcome=outcome,
        log_details=log_details,
        alias=connection.alias,
        on_start=on_start,
        on_applied=on_applied,
        rewrite=rewrite,
    )
    options: dict[str, Any] = {
        "database": connection.alias,
        "interactive": False,
        "verbosity": verbosity,
        "skip_checks": True,
        "stdout": stdout,
        "no_color": True,
    }
    try:
        with connection.execute_wrapper(command.count_statement):
            call_command(command, *([app_label] if app_label else []), **options)
    except Exception as exc:
        command.abort(exc)
        outcome.error = exc
        outcome.failed_migration = command.current
        outcome.failed = command.current_migration
        if command.current_migration is not None:
            # Writes made in a transaction were undone with it, unless an earlier operation of
            # the migration committed them (the failing operation is not the first).
            index = failing_operation(exc, command.current_migration)
            kept = command.transactional_statements if index not in (None, 0) else 0
            outcome.statements_before_failure = command.statements + kept
    return outcome
