"""The run: plan → lock → plan again → apply → record → release, for each database in order.

:func:`migrate` is the public API; the command and the startup hook use it. What it returns is in
``results.py`` (re-exported here), its log lines in ``runlog.py``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
import traceback
from collections.abc import Sequence
from typing import TextIO

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings, get_settings
from django_automigrate.exceptions import (
    AutomigrateError,
    ConfigurationError,
    DatabaseMissing,
    LockTimeout,
    PlanError,
)
from django_automigrate.locks import MigrationLock, lock_for
from django_automigrate.models import MigrationRun, Status, Trigger
from django_automigrate.reporting import events
from django_automigrate.reporting.runlog import log_summary, wait_logger
from django_automigrate.run.applier import ApplyOutcome, apply_plan
from django_automigrate.run.database import ensure_database
from django_automigrate.run.history import HistoryRecorder, unresolved_half_applied
from django_automigrate.run.plan import HISTORY_APP, migration_label, pending_work, run_order
from django_automigrate.run.results import (
    DATABASE_MISSING,
    FAILED_STATUSES,
    LOCK_TIMEOUT,
    NEEDS_ATTENTION,
    NOT_RUN,
    NOTHING_TO_DO,
    DatabaseResult,
    RunResult,
    describe_error,
)
from django_automigrate.run.timeouts import is_lock_timeout, statement_lock_timeout, with_retries
from django_automigrate.run.undo import apply_undoably

__all__ = [
    "DATABASE_MISSING",
    "LOCK_TIMEOUT",
    "NEEDS_ATTENTION",
    "NOTHING_TO_DO",
    "NOT_RUN",
    "DatabaseResult",
    "RunResult",
    "migrate",
    "resolve_aliases",
]

logger = logging.getLogger("django_automigrate")


def resolve_aliases(databases: Sequence[str] | None, conf: AutomigrateSettings) -> list[str]:
    """The aliases to run, in order; raises :class:`ConfigurationError` for an unknown one."""
    aliases = list(dict.fromkeys(databases or conf.aliases()))
    unknown = [alias for alias in aliases if alias not in settings.DATABASES]
    if unknown:
        raise ConfigurationError(
            f"Unknown database alias {unknown[0]!r}. Known aliases: "
            + ", ".join(repr(alias) for alias in settings.DATABASES)
            + "."
        )
    return aliases


def migrate(
    databases: Sequence[str] | None = None,
    *,
    trigger: str = Trigger.COMMAND,
    use_lock: bool | None = None,
    lock_timeout: float | None = None,
    create_database: bool | None = None,
    stdout: TextIO | None = None,
    verbosity: int = 1,
) -> RunResult:
    """Bring ``databases`` (default: the ``DATABASES`` setting) up to date, one after another.

    Each database: compute the plan; if nothing is pending, return at once (no lock, no write);
    else take the lock, compute the plan again, apply it with Django's ``migrate`` machinery,
    record the run and release the lock. A database that fails stops the run: the ones after it
    are reported ``not_run``. Configuration errors raise :class:`ConfigurationError`; lock
    timeouts and failed migrations are reported in the result, see :attr:`RunResult.exit_code`.

    A database that does not exist is created first when ``create_database`` (default: the
    ``CREATE_DATABASE`` setting) allows, else reported ``database_missing``.

    ``stdout`` receives Django's usual ``migrate`` output (``Applying …  OK``) when given.
    """
    conf = get_settings()
    aliases = resolve_aliases(databases, conf)
    options = _RunOptions(
        conf=conf,
        trigger=str(trigger),
        use_lock=conf.use_lock if use_lock is None else use_lock,
        lock_timeout=conf.lock_timeout if lock_timeout is None else lock_timeout,
        stdout=stdout if stdout is not None else io.StringIO(),
        verbosity=verbosity,
        create_database=conf.create_database if create_database is None else create_database,
    )
    if lock_timeout is not None and lock_timeout < 0:
        raise ConfigurationError(
            f"The lock timeout must be 0 or more seconds, not {lock_timeout!r}."
        )
    # Every lock is chosen before any database is touched: a backend without a lock is a
    # configuration error, reported before the first migration rather than halfway.
    locks = {
        alias: lock_for(connections[alias], conf, use_lock=options.use_lock) for alias in aliases
    }
    results: list[DatabaseResult] = []
    for alias in aliases:
        if any(r.exit_code for r in results):
            results.append(DatabaseResult(alias=alias, status=NOT_RUN))
            continue
        result = _migrate_database(alias, locks[alias], options)
        if options.created.get(alias):
            result.created_database = True
        log_summary(result, options.trigger)
        events.ended(
            result,
            trigger=options.trigger,
            waited_for_lock=options.use_lock and bool(result.lock),
            pending=_left_pending(result),
            started=options.started.get(alias, False),
        )
        results.append(result)
    return RunResult(results)


def _left_pending(result: DatabaseResult) -> int | None:
    """How many migrations are still pending after ``result``, when it tells (a failure before
    the plan was made, an unreachable database say, does not)."""
    if result.planned and result.status in (LOCK_TIMEOUT, *FAILED_STATUSES):
        applied = set(result.applied)
        return sum(1 for label in result.planned if label not in applied)
    return None


@dataclasses.dataclass(frozen=True)
class _RunOptions:
    conf: AutomigrateSettings
    trigger: str
    use_lock: bool
    lock_timeout: float
    stdout: TextIO
    verbosity: int
    create_database: bool
    #: Aliases whose database this run created.
    created: dict[str, bool] = dataclasses.field(default_factory=dict)
    #: Aliases whose run began applying (``run_started`` was sent).
    started: dict[str, bool] = dataclasses.field(default_factory=dict)


def _migrate_database(alias: str, lock: MigrationLock, options: _RunOptions) -> DatabaseResult:
    started_at = timezone.now()
    started = time.monotonic()
    connection = connections[alias]

    def elapsed() -> float:
        return time.monotonic() - started

    try:
        if ensure_database(connection, create=options.create_database):
            options.created[alias] = True
        pending = pending_work(connection)
    except DatabaseMissing as exc:
        return DatabaseResult(alias, DATABASE_MISSING, duration=elapsed(), error=str(exc))
    except (AutomigrateError, DatabaseError) as exc:
        return DatabaseResult(
            alias, Status.FAILED, duration=elapsed(), error=describe_error(alias, exc)
        )
    if pending.empty:
        return DatabaseResult(alias, NOTHING_TO_DO, duration=elapsed())
    try:
        # Only when something is pending: a half-applied migration is never recorded applied.
        stuck = unresolved_half_applied(alias)
    except DatabaseError as exc:
        return DatabaseResult(
            alias, Status.FAILED, duration=elapsed(), error=describe_error(alias, exc)
        )
    if stuck is not None:
        return _refusal(alias, stuck, elapsed())

    planned = [migration_label(m) for m, _ in pending.plan]
    try:
        lock_wait = lock.acquire(options.lock_timeout, on_wait=wait_logger(alias, lock.name))
    except LockTimeout as exc:
        lock.release()
        return DatabaseResult(
            alias, LOCK_TIMEOUT, planned, duration=elapsed(), lock_wait=exc.waited,
            lock=lock.name, error=str(exc),
        )  # fmt: skip
    except (AutomigrateError, DatabaseError, OSError) as exc:
        # OSError: the SQLite lock file cannot be created (unwritable folder, a directory there).
        lock.release()
        return DatabaseResult(
            alias, Status.FAILED, planned, duration=elapsed(), lock=lock.name,
            error=describe_error(alias, exc),
        )  # fmt: skip

    try:
        # Another process may have applied some or all of it while we waited.
        try:
            pending = pending_work(connection)
        except (PlanError, DatabaseError) as exc:
            return DatabaseResult(
                alias, Status.FAILED, planned, duration=elapsed(), lock_wait=lock_wait,
                lock=lock.name, error=describe_error(alias, exc),
            )  # fmt: skip
        if not pending.empty and (stuck := unresolved_half_applied(alias)) is not None:
            # Another process may have left it half-applied while this one waited.
            return _refusal(alias, stuck, elapsed())
        if pending.empty:
            return DatabaseResult(
                alias, NOTHING_TO_DO, duration=elapsed(), lock_wait=lock_wait, lock=lock.name,
                applied_by_another_process=True,
            )  # fmt: skip
        # In the order the run applies them: the history's own migrations first (below).
        planned = [
            migration_label(m) for m, _ in run_order(pending.plan, history=options.conf.history)
        ]
        # The history table first, in a step of its own: then the run is recorded from its
        # start, and undoing a failure (one transaction, or reversing) never takes the record
        # of the failure with it. Nothing depends on these migrations, so any order is valid.
        own = [m for m, _ in pending.plan if m.app_label == HISTORY_APP]
        own_outcome = ApplyOutcome()
        if own and options.conf.history:
            own_outcome = apply_plan(
                connection,
                lock=lock,
                stdout=options.stdout,
                verbosity=options.verbosity,
                log_details=options.conf.log_details,
                on_applied=lambda labels: None,
                app_label=HISTORY_APP,
            )
            if own_outcome.error is not None:
                return DatabaseResult(
                    alias, Status.FAILED, planned, own_outcome.applied, duration=elapsed(),
                    lock_wait=lock_wait, lock=lock.name,
                    failed_migration=own_outcome.failed_migration,
                    error=describe_error(alias, own_outcome.error),
                )  # fmt: skip
            pending = pending_work(connection)
        if pending.unrecorded_squashes:
            logger.info(
                "automigrate: %s: recording squashed migration(s) already applied through the "
                "migrations they replace: %s",
                alias,
                ", ".join(pending.unrecorded_squashes),
                extra={"database": alias},
            )
        recorder = HistoryRecorder(
            alias=alias,
            trigger=options.trigger,
            enabled=options.conf.history,
            started_at=started_at,
            lock_wait=lock_wait,
            lock_name=lock.name,
            planned=planned,
        )
        recorder.start(lock_held=options.use_lock)
        options.started[alias] = True
        events.started(
            alias=alias,
            trigger=options.trigger,
            planned=planned,
            run_id=recorder.row.pk if recorder.row is not None else None,
        )
        apply = with_retries(
            lambda: apply_plan(
                connection,
                lock=lock,
                stdout=options.stdout,
                verbosity=options.verbosity,
                log_details=options.conf.log_details,
                on_applied=recorder.applied,
            ),
            # Retries are for the guard this run set; without it, a lock timeout is the
            # database's own setting speaking, and is reported at once.
            retries=options.conf.statement_lock_retries
            if options.conf.statement_lock_timeout
            else 0,
            connection=connection,
        )
        with statement_lock_timeout(connection, options.conf.statement_lock_timeout):
            outcome, undo = apply_undoably(
                connection,
                pending.plan,
                apply,
                rollback_on_failure=options.conf.rollback_on_failure,
            )
        if undo is None:
            status, error, trace, applied = str(Status.SUCCEEDED), "", "", outcome.applied
        else:
            assert outcome.error is not None
            status, applied = undo.status, undo.still_applied
            if is_lock_timeout(outcome.error):
                status = str(Status.TIMED_OUT)  # whatever was undone: rollback says what
            run_ref = str(recorder.row.pk) if recorder.row is not None else "RUN_ID"
            detail = undo.detail.replace("RUN_ID", run_ref)
            message = describe_error(alias, outcome.error)
            error = f"{message.rstrip('.')}. {detail}" if detail else message
            trace = "".join(traceback.format_exception(outcome.error))
        applied = own_outcome.applied + applied
        run_id = recorder.finish(
            status=status,
            applied=applied,
            failed_migration=outcome.failed_migration,
            error_summary=error,
            traceback=trace,
            rollback=undo.mode if undo else "",
            rolled_back=undo.rolled_back if undo else [],
            half_applied=bool(undo and undo.half_applied),
        )
        if run_id is not None:
            error = error.replace("RUN_ID", str(run_id))
        return DatabaseResult(
            alias, status, planned, applied, duration=elapsed(), lock_wait=lock_wait,
            lock=lock.name, run_id=run_id, failed_migration=outcome.failed_migration, error=error,
            rollback=undo.mode if undo else "", rolled_back=undo.rolled_back if undo else [],
            half_applied=bool(undo and undo.half_applied),
        )  # fmt: skip
    finally:
        lock.release()


def _refusal(alias: str, stuck: MigrationRun, duration: float) -> DatabaseResult:
    return DatabaseResult(
        alias, NEEDS_ATTENTION, duration=duration, run_id=stuck.pk,
        failed_migration=stuck.failed_migration, half_applied=True,
        error=(
            f"Refusing to migrate {alias!r}: run #{stuck.pk} left {stuck.failed_migration} "
            "half-applied, and nobody has recorded fixing it. Repair the database by hand, "
            f"then run 'manage.py automigrate --mark-fixed {stuck.pk}'."
        ),
    )  # fmt: skip
