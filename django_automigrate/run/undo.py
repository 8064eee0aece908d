"""Bringing a database back to its state before a failed run.

* All-or-nothing: where the backend has transactional DDL (PostgreSQL, SQLite) and every planned
  migration is atomic, the whole plan runs in one transaction, so a failure undoes everything.
* Otherwise the migrations the run applied are reversed, newest first, with Django's own
  backwards machinery, stopping at the first one that is irreversible.
* A failed migration that ran part of its SQL outside a transaction (MySQL/MariaDB DDL, or an
  ``atomic = False`` migration) is *half-applied*: no tool can undo that for certain, so nothing
  more is touched and a person must look.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation

from django_automigrate.db_errors import is_connection_lost, is_lock_timeout
from django_automigrate.exceptions import LockLost
from django_automigrate.locks import MigrationLock
from django_automigrate.run import deferral, indexes
from django_automigrate.run.applier import ApplyOutcome
from django_automigrate.run.failures import failing_operation
from django_automigrate.run.history import UNAPPLYING
from django_automigrate.run.plan import Plan
from django_automigrate.run.timeouts import RetryPolicy, keeps_write, retrying
from django_automigrate.run.transactions import (
    RollBack,
    one_transaction,
    runs_in_one_transaction,
    transactional,
)

TRANSACTION = "transaction"
REVERSE = "reverse"


@dataclasses.dataclass
class ReverseOutcome:
    rolled_back: list[str] = dataclasses.field(default_factory=list)
    #: Why reversing stopped before the end (an irreversible migration, a failure), or "".
    stopped: str = ""
    #: The error that stopped it, when one did.
    error: BaseException | None = None
    #: The migration whose reversal failed after writes outside a transaction, which stay (it
    #: is then half-applied), and how many.
    half_reversed: str = ""
    writes_kept: int = 0


class _KeptWrites:
    """A ``connection.execute_wrapper`` counting the writes that succeed and stay whatever comes
    next: outside a transaction, or any on a backend without transactional DDL."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self._connection = connection
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        if keeps_write(self._connection, sql):
            self.count += 1
        return result


def reverse(
    connection: BaseDatabaseWrapper,
    applied: Sequence[str],
    *,
    lock: MigrationLock,
    on_start: Callable[[str], None],
) -> ReverseOutcome:
    """Unapply ``applied`` (labels, oldest first) newest first; stop at an irreversible one.

    Each step first confirms the lock and reads ``django_migrations`` afresh: a migration is
    reversed only while this process may migrate and only if it is still applied, as this run
    left it. ``on_start`` names each one (``unapplying <label>``) before it begins.
    """
    outcome = ReverseOutcome()
    for label in reversed(applied):
        try:
            lock.verify()
        except LockLost as exc:
            outcome.stopped = f"the lock was lost before {label} ({exc.detail})"
            return outcome
        executor = MigrationExecutor(connection)
        key = tuple(label.split(".", 1))
        migration = executor.loader.graph.nodes.get(key)
        if migration is None:
            outcome.stopped = f"{label} is no longer in the migration graph"
            return outcome
        if key not in executor.loader.applied_migrations:
            outcome.stopped = f"{label} is no longer applied (changed outside this run)"
            return outcome
        irreversible = first_irreversible(migration)
        if irreversible is not None:
            outcome.stopped = (
                f"{label} is irreversible ({irreversible.describe()}); it and the migrations "
                "applied before it stay applied"
            )
            return outcome
        on_start(UNAPPLYING + label)
        # Operations whose database work is still deferred are reversed as they were applied.
        deferral.rewrite_for_reverse(connection, migration)
        # Django removes a migration's record after committing its reversal: in a transaction
        # of ours, the two commit together, so a kill between them leaves no doubt.
        step = (
            one_transaction(connection) if transactional(connection, migration) else nullcontext()
        )
        kept = _KeptWrites(connection)
        try:
            with step, connection.execute_wrapper(kept):
                executor.migrate(executor.loader.graph.leaf_nodes(), plan=[(migration, True)])
        except Exception as exc:
            outcome.stopped = f"reversing {label} failed: {type(exc).__name__}: {exc}"
            outcome.error = exc
            if kept.count and not transactional(connection, migration):
                outcome.half_reversed, outcome.writes_kept = label, kept.count
            return outcome
        outcome.rolled_back.append(label)
        on_start("")
    return outcome


def first_irreversible(migration: Migration) -> Operation | None:
    return next((op for op in migration.operations if not op.reversible), None)


@dataclasses.dataclass
class Undo:
    """What a failure left, after whatever undoing was possible."""

    #: ``rolled_back`` when the database is as before the run, else ``failed``.
    status: str
    #: ``transaction``, ``reverse`` or "" (nothing was undone).
    mode: str
    #: Migrations the run applied and that are applied no more.
    rolled_back: list[str]
    #: Migrations the run applied that are still applied.
    still_applied: list[str]
    half_applied: bool = False
    detail: str = ""


def apply_undoably(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    apply: Callable[[], ApplyOutcome],
    *,
    rollback_on_failure: bool,
    lock: MigrationLock,
    on_start: Callable[[str], None],
    retry: RetryPolicy | None = None,
    announce: Callable[[ApplyOutcome, int, float], None] = lambda outcome, number, pause: None,
) -> tuple[ApplyOutcome, Undo | None]:
    """Run ``apply`` (the migrate run); on failure, undo what can be undone.

    A statement that gave up waiting for a lock is tried again under ``retry``, never while
    the run holds locks: an all-or-nothing run is rolled back whole before each pause.
    Returns the outcome and, when it failed, what the failure left behind.
    """
    retry = retry or RetryPolicy(retries=0)
    if rollback_on_failure and runs_in_one_transaction(connection, plan):
        outcome = retrying(
            lambda: _all_or_nothing(connection, apply),
            policy=retry,
            retriable=lambda tried: is_lock_timeout(tried.error),
            announce=announce,
        )
        if outcome.error is None:
            return outcome, None
        return outcome, Undo(
            status="rolled_back",
            mode=TRANSACTION,
            rolled_back=list(outcome.applied),
            still_applied=[],
            detail="The run was one transaction, rolled back: the database is as before it.",
        )

    applied: list[str] = []
    #: Invalid indexes the last attempt's CREATE INDEX CONCURRENTLY left when it gave up.
    leftovers: list[indexes.InvalidIndex] = []

    def attempt() -> ApplyOutcome:
        # Each attempt goes on from where the last one stopped: what they applied adds up.
        if leftovers and (error := indexes.drop_left_behind(connection, leftovers)) is not None:
            return ApplyOutcome(applied=list(applied), error=error)  # nothing else was tried
        before = indexes.listed_quietly(connection) if retry.retries else None
        tried = apply()
        applied.extend(tried.applied)
        tried.applied = list(applied)
        if retry.retries and is_lock_timeout(tried.error):
            leftovers[:] = indexes.left_behind(connection, before)
        return tried

    outcome = retrying(
        attempt,
        policy=retry,
        retriable=lambda tried: is_lock_timeout(tried.error) and _left_nothing(connection, tried),
        announce=announce,
    )
    if outcome.error is None:
        return outcome, None
    half = _half_applied(connection, outcome)
    if half:
        return outcome, Undo(
            status="failed",
            mode="",
            rolled_back=[],
            still_applied=list(outcome.applied),
            half_applied=True,
            detail=half,
        )
    if not rollback_on_failure:
        return outcome, Undo(
            status="failed", mode="", rolled_back=[], still_applied=list(outcome.applied)
        )
    if not outcome.applied:
        return outcome, Undo(
            status="rolled_back",
            mode=REVERSE,
            rolled_back=[],
            still_applied=[],
            detail="Nothing had been applied yet: the database is as before the run.",
        )
    if isinstance(outcome.error, LockLost) or is_connection_lost(outcome.error):
        # Unprotected now (the session that held the lock is gone, or the lease is): another
        # process may be migrating. Reverse nothing.
        return outcome, Undo(
            status="failed",
            mode="",
            rolled_back=[],
            still_applied=list(outcome.applied),
            detail="Nothing was reversed, since the lock is lost: run automigrate again.",
        )
    reversed_ = reverse(connection, outcome.applied, lock=lock, on_start=on_start)
    still = [label for label in outcome.applied if label not in reversed_.rolled_back]
    if reversed_.half_reversed:
        # Recorded as applied, partly undone: the next run must not take it for applied.
        first_failure = outcome.failed_migration or "the run"
        outcome.failed_migration = reversed_.half_reversed
        return outcome, Undo(
            status="failed",
            mode=REVERSE,
            rolled_back=reversed_.rolled_back,
            still_applied=still,
            half_applied=True,
            detail=(
                f"After {first_failure} failed, {reversed_.stopped}, after "
                f"{reversed_.writes_kept} statement(s) outside a transaction: "
                f"{reversed_.half_reversed} is half-applied. Fix the database by hand, then "
                "record it with 'manage.py automigrate --mark-fixed RUN_ID'."
            ),
        )
    if reversed_.stopped:
        return outcome, Undo(
            status="failed",
            mode=REVERSE,
            rolled_back=reversed_.rolled_back,
            still_applied=still,
            detail=f"Rolling back stopped: {reversed_.stopped}.",
        )
    return outcome, Undo(
        status="rolled_back",
        mode=REVERSE,
        rolled_back=reversed_.rolled_back,
        still_applied=[],
        detail="The migrations this run applied were reversed: the database is as before it.",
    )


def _all_or_nothing(
    connection: BaseDatabaseWrapper, apply: Callable[[], ApplyOutcome]
) -> ApplyOutcome:
    """``apply`` in one transaction, rolled back whole when it fails."""
    outcome = ApplyOutcome()
    try:
        with one_transaction(connection):
            outcome = apply()
            if outcome.error is not None:
                raise RollBack
    except RollBack:
        pass
    except Error as exc:
        if not is_lock_timeout(exc):
            raise
        # SQLite: the write lock was still busy when the busy timeout ran out at BEGIN.
        outcome = ApplyOutcome(error=exc)
    return outcome


def _left_nothing(connection: BaseDatabaseWrapper, outcome: ApplyOutcome) -> bool:
    """Whether the failed migration left no change behind (none ran, or its transaction undid
    them): only then may it run again. Part of it run outside a transaction never runs twice."""
    return outcome.statements_before_failure == 0 or bool(
        outcome.failed is not None and transactional(connection, outcome.failed)
    )


def _half_applied(connection: BaseDatabaseWrapper, outcome: ApplyOutcome) -> str:
    """A description of the half-applied failed migration, or "" when it left nothing behind."""
    migration = outcome.failed
    if migration is None or outcome.statements_before_failure == 0:
        return ""
    if connection.features.can_rollback_ddl and migration.atomic:
        return ""  # its own transaction undid it
    label = outcome.failed_migration
    index = failing_operation(outcome.error, migration) if outcome.error else None
    operations = [op.describe() for op in migration.operations]
    if index is None:
        ran = f"{outcome.statements_before_failure} statement(s) ran before it failed"
    else:
        done = "; ".join(operations[:index]) or "none complete"
        ran = (
            f"operations that had run: {done}; failing: {operations[index]} "
            f"after {outcome.statements_before_failure} statement(s) of this migration)"
        )
    return (
        f"{label} is half-applied on {connection.alias!r} ({ran}); its changes were not in a "
        "transaction, so no tool can undo them for certain. Fix the database by hand, then "
        "record it with 'manage.py automigrate --mark-fixed RUN_ID'."
    )
