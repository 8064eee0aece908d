"""One run on one database: the only implementation of plan → lock → plan again → record →
work → record → report, used by :func:`~django_automigrate.run.runner.migrate` (the command
and startup runs) and by ``--rollback``.

The order under the lock matters, and is the same for both kinds of work:

1. the history's own migrations, when pending (so the run is recorded from its start);
2. rows of runs whose process stopped mid-run are closed as ``interrupted``
   (:mod:`~django_automigrate.run.interrupted`), since holding the lock proves them dead;
3. a database left half-applied is refused until a person marks it fixed;
4. the plan is made again (another process may have migrated while we waited);
5. the run's row is written, the work done, the row finished.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from django.db import Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from django_automigrate.conf import LOCK_IMPACT_LEVELS, AutomigrateSettings
from django_automigrate.db_errors import is_connection_lost, is_deadlock, is_lock_timeout
from django_automigrate.exceptions import AutomigrateError, DatabaseMissing, LockTimeout
from django_automigrate.locks import MigrationLock
from django_automigrate.locks.base import NoLongerNeeded, close_unless_in_transaction
from django_automigrate.models import MigrationRun, Status, Trigger, rollback_summary
from django_automigrate.reporting import events
from django_automigrate.reporting.runlog import log_summary, wait_logger
from django_automigrate.run import deferral, uptodate
from django_automigrate.run.blockers import Session, blocked_by
from django_automigrate.run.database import ensure_database
from django_automigrate.run.history import (
    HistoryRecorder,
    history_alias,
    history_table_exists,
    unresolved_half_applied,
)
from django_automigrate.run.interrupted import close_interrupted, refusal_message
from django_automigrate.run.plan import (
    HISTORY_APP,
    Plan,
    applied_without_file_warning,
    fast_answer,
    load_migration_files,
    migration_label,
    pending_work,
    run_order,
)
from django_automigrate.run.results import DatabaseResult, Outcome, describe_error

if TYPE_CHECKING:
    from django_automigrate.run.applier import ApplyOutcome
    from django_automigrate.run.timeouts import RetryPolicy
    from django_automigrate.run.undo import ReverseOutcome

logger = logging.getLogger("django_automigrate")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How every database of one run is run."""

    conf: AutomigrateSettings
    trigger: str
    use_lock: bool
    lock_timeout: float
    stdout: TextIO
    verbosity: int
    create_database: bool


class _Stop(Exception):
    """Ends a run early with its result (a refusal, a failure to plan, nothing to do)."""

    def __init__(self, result: DatabaseResult) -> None:
        super().__init__(result.status)
        self.result = result


class Work(abc.ABC):
    """What a run does once it holds the lock: apply the pending plan, or undo one run."""

    trigger: str
    #: Whether signals and metrics report a run that never began its work (a lock timeout, a
    #: refusal): a rollback that changed nothing is reported by the command alone.
    reports_unstarted = True
    #: Whether the history's own migrations, applied first, are listed as planned and applied.
    lists_own_migrations = True
    #: Whether a lock held by another process means "nothing to do" (background work that the
    #: next heartbeat tries again) rather than a lock timeout.
    yields_to_holder = False
    #: Applied migrations without a file, as the last plan found them.
    applied_without_file: list[str] = []  # replaced by each plan, never mutated

    @abc.abstractmethod
    def plan(self, connection: BaseDatabaseWrapper, *, before_lock: bool) -> list[str] | None:
        """The labels the work will touch, planned now; None when there is nothing to do.

        ``before_lock``: the plan made before the lock is tried. It may close the connection
        (a session lock is not on it yet), and may return ``[]``: there is work for sure,
        listed under the lock (then the processes that wait never make Django's plan)."""

    @abc.abstractmethod
    def carry_out(self, session: DatabaseRun, recorder: HistoryRecorder) -> DatabaseResult:
        """Do the work and finish the history row; return what happened."""

    def done_elsewhere(self, connection: BaseDatabaseWrapper) -> bool:
        """Asked between two tries for the lock: did another process do this work meanwhile?
        Cheap, and never sure by default."""
        return False

    def prepare(self) -> None:  # noqa: B027 - most work has nothing to read from disk first
        """What the plan reads without a database, read before connecting."""


class DatabaseRun:
    """One run of ``work`` on the database ``alias``, under ``lock``."""

    def __init__(self, alias: str, lock: MigrationLock, work: Work, options: RunOptions) -> None:
        self.alias = alias
        self.lock = lock
        self.work = work
        self.options = options
        self.connection = connections[alias]
        self.started_at = timezone.now()
        self._started = time.monotonic()
        self.lock_wait = 0.0
        self.created_database = False
        self.locked = False
        #: The history's own migrations this run applied first.
        self.own_applied: list[str] = []
        #: The run began its work (``run_started`` was sent).
        self.began = False

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def result(self, status: Outcome | str, **fields: object) -> DatabaseResult:
        """A result of this run, with its duration, lock wait and lock filled in."""
        fields.setdefault("duration", self.elapsed())
        fields.setdefault("lock_wait", self.lock_wait)
        if self.locked:
            fields.setdefault("lock", self.lock.name)
        result = DatabaseResult(self.alias, str(status), **fields)  # type: ignore[arg-type]
        result.created_database = self.created_database
        result.applied_without_file = list(self.work.applied_without_file)
        return result

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> DatabaseResult:
        """Carry the work out and report it (log line, signals, metrics)."""
        try:
            result = self._run()
        except _Stop as stop:
            result = stop.result
        log_summary(result, self.work.trigger)
        if not self.began and not self.work.reports_unstarted:
            return result
        events.ended(
            result,
            trigger=self.work.trigger,
            waited_for_lock=self.options.use_lock and bool(result.lock),
            pending=_left_pending(result),
            started=self.began,
        )
        return result

    def _run(self) -> DatabaseResult:
        try:
            self.work.prepare()
            if ensure_database(self.connection, create=self.options.create_database):
                self.created_database = True
            planned = self.work.plan(self.connection, before_lock=True)
        except DatabaseMissing as exc:
            return self.result(Outcome.DATABASE_MISSING, error=str(exc))
        except (AutomigrateError, Error) as exc:
            return self.result(Outcome.FAILED, error=describe_error(self.alias, exc))
        if planned is None:
            self._close_interrupted_if_any()
            return self.result(Outcome.NOTHING_TO_DO)
        self._refuse_if_half_applied()  # before waiting for a lock we could not use anyway
        with self._locked(planned):
            self._apply_own_migrations(planned)
            if self.options.conf.history and self.options.use_lock:
                # Only a lock holder knows that the runs still marked running are dead.
                close_interrupted(self.connection)
            self._refuse_if_half_applied()
            try:
                planned_now = self.work.plan(self.connection, before_lock=False)
            except (AutomigrateError, Error) as exc:
                return self.result(
                    Outcome.FAILED, planned=planned, error=describe_error(self.alias, exc)
                )
            if planned_now is None and not self.own_applied:
                return self.result(Outcome.NOTHING_TO_DO, applied_by_another_process=True)
            if self.work.lists_own_migrations:
                # The history's own migrations were applied a moment ago, by this run.
                planned_now = self.own_applied + (planned_now or [])
            assert planned_now is not None
            recorder = HistoryRecorder(
                alias=self.alias,
                trigger=self.work.trigger,
                enabled=self.options.conf.history,
                started_at=self.started_at,
                lock_wait=self.lock_wait,
                lock_name=self.lock.name,
                planned=planned_now,
            )
            recorder.start()
            self.began = True
            events.started(
                alias=self.alias,
                trigger=self.work.trigger,
                planned=planned_now,
                run_id=recorder.row.pk if recorder.row is not None else None,
            )
            return self.work.carry_out(self, recorder)
        raise AssertionError("unreachable")  # pragma: no cover - _locked re-raises or returns

    @contextlib.contextmanager
    def _locked(self, planned: list[str]) -> Iterator[None]:
        try:
            self.lock_wait = self.lock.acquire(
                self.options.lock_timeout,
                on_wait=wait_logger(self.alias, self.lock.name),
                unneeded=lambda: self.work.done_elsewhere(self.connection),
            )
        except NoLongerNeeded as done:
            # The holder brought the database up to date: taking the lock in turn only to find
            # that out would keep hundreds of replicas waiting one after another.
            raise _Stop(
                self.result(
                    Outcome.NOTHING_TO_DO, applied_by_another_process=True, lock_wait=done.waited
                )
            ) from done
        except LockTimeout as exc:
            self.lock.release()
            if self.work.yields_to_holder:
                # Whoever holds the lock is migrating or doing this very work: not a failure.
                raise _Stop(self.result(Outcome.NOTHING_TO_DO, lock_wait=exc.waited)) from exc
            planned = planned or self._listed()
            raise _Stop(
                self.result(
                    Outcome.LOCK_TIMEOUT,
                    planned=planned,
                    lock_wait=exc.waited,
                    lock=self.lock.name,
                    error=str(exc),
                )
            ) from exc
        except (AutomigrateError, Error, OSError) as exc:
            # OSError: the SQLite lock file cannot be created (unwritable folder, a directory).
            self.lock.release()
            raise _Stop(
                self.result(
                    Outcome.FAILED,
                    planned=planned,
                    lock=self.lock.name,
                    error=describe_error(self.alias, exc),
                )
            ) from exc
        self.locked = True
        try:
            yield
        finally:
            self.lock.release()

    def _listed(self) -> list[str]:
        """What the work would touch, for the report of a run that never had the lock."""
        try:
            return self.work.plan(self.connection, before_lock=False) or []
        except (AutomigrateError, Error):
            return []

    def _refuse_if_half_applied(self) -> None:
        try:
            stuck = unresolved_half_applied(self.alias)
        except Error as exc:
            raise _Stop(self.result(Outcome.FAILED, error=describe_error(self.alias, exc))) from exc
        if stuck is not None:
            raise _Stop(
                self.result(
                    Outcome.NEEDS_ATTENTION,
                    run_id=stuck.pk,
                    failed_migration=stuck.failed_migration,
                    half_applied=True,
                    error=refusal_message(self.alias, stuck),
                )
            )

    def _apply_own_migrations(self, planned: list[str]) -> None:
        """The history's own migrations, in a step of their own, before anything is recorded:
        then the run is recorded from its start, and undoing a failure never takes the record
        of the failure with it. Nothing depends on them, so this order is as valid as Django's.
        """
        if not self.options.conf.history:
            return
        try:
            if fast_answer(self.connection).up_to_date:
                return  # the usual case once another process has migrated: no plan to make
            own = [m for m, _ in pending_work(self.connection).plan if m.app_label == HISTORY_APP]
        except (AutomigrateError, Error) as exc:
            raise _Stop(
                self.result(Outcome.FAILED, planned=planned, error=describe_error(self.alias, exc))
            ) from exc
        if not own:
            return
        from django_automigrate.run.applier import apply_plan
        from django_automigrate.run.timeouts import statement_lock_timeout
        from django_automigrate.run.undo import apply_undoably

        conf = self.options.conf
        # The history table is read by every health probe: altering it waits no longer than
        # any other table, and retries as the plan's migrations do.
        with (
            self.lock.guard(),
            statement_lock_timeout(
                self.connection, conf.statement_lock_timeout, pooled=_pooled(conf)
            ) as budget,
        ):

            def starting(label: str) -> None:
                if label:
                    budget.migration_started()

            outcome, _ = apply_undoably(
                self.connection,
                [],
                lambda: apply_plan(
                    self.connection,
                    lock=self.lock,
                    stdout=self.options.stdout,
                    verbosity=self.options.verbosity,
                    log_details=conf.log_details,
                    on_start=starting,
                    app_label=HISTORY_APP,
                ),
                rollback_on_failure=False,  # each of them is atomic where DDL can roll back
                lock=self.lock,
                on_start=starting,
                retry=_retry_policy(conf, self.connection),
                announce=lambda tried, number, pause: _announce_retry(
                    self.connection, conf, tried, number, pause, []
                ),
            )
        self.own_applied = outcome.applied
        if outcome.error is not None:
            self._after_connection_loss(outcome.error)
            raise _Stop(
                self.result(
                    Outcome.FAILED,
                    planned=planned,
                    applied=outcome.applied,
                    failed_migration=outcome.failed_migration,
                    error=describe_error(self.alias, outcome.error),
                )
            )

    def _close_interrupted_if_any(self) -> None:
        """Nothing pending, yet a row may still say ``running`` (its process was killed after
        its last migration). One indexed query finds out; only then is the lock tried, without
        waiting, to close it."""
        if not self.options.use_lock or not self.options.conf.history:
            return
        using = history_alias(self.alias)
        try:
            running = (
                MigrationRun.objects.using(using)
                .filter(database=self.alias, status=Status.RUNNING)
                .exists()
            )
        except Error:
            return  # no history table yet (or an older one): nothing to close
        if not running:
            return
        try:
            if self.lock.try_acquire():
                close_interrupted(self.connection)
        except (AutomigrateError, Error, OSError) as exc:
            logger.debug("automigrate: %s: could not close interrupted runs: %s", self.alias, exc)
        finally:
            self.lock.release()

    def _after_connection_loss(self, error: BaseException | None) -> None:
        """A session that died took its lock with it: forget the lock, and close the
        connection so that recording the outcome opens a new one."""
        if is_connection_lost(error):
            self.lock.forget()
            with contextlib.suppress(Exception):
                self.connection.close()


def _with_blockers(message: str, connection: BaseDatabaseWrapper, blockers: list[Session]) -> str:
    """A lock timeout's message, with who held the lock and how to end it."""
    if connection.vendor == "sqlite":
        return (
            f"{message.rstrip('.')}. Another connection held the database's write lock "
            "(SQLite cannot say which): find the writer, or raise STATEMENT_LOCK_TIMEOUT."
        )
    if not blockers:
        return message
    phrase = blocked_by(blockers)
    said = f"{message.rstrip('.')}. {phrase[0].upper()}{phrase[1:]}."
    exact = [session for session in blockers if not session.candidate]
    if not exact:
        return said  # never a command to end a session that may be innocent
    end = "SELECT pg_terminate_backend({})" if connection.vendor == "postgresql" else "KILL {}"
    return f"{said} To end them: {'; '.join(end.format(session.id) for session in exact)}."


def _pooled(conf: AutomigrateSettings) -> bool:
    """Whether the connection may pass through a transaction pooler: the table lease lock is
    the setting for PgBouncer in transaction mode, where session settings leak to other
    clients."""
    return conf.lock_backend == "table"


def _retry_policy(conf: AutomigrateSettings, connection: BaseDatabaseWrapper) -> RetryPolicy:
    from django_automigrate.run.timeouts import RetryPolicy

    # Retries are for the guard a run sets (SQLite's busy timeout always is one); without it, a
    # lock timeout is the database's own setting speaking, and is reported at once.
    guarded = conf.statement_lock_timeout or connection.vendor == "sqlite"
    return RetryPolicy(retries=conf.statement_lock_retries if guarded else 0)


def _announce_retry(
    connection: BaseDatabaseWrapper,
    conf: AutomigrateSettings,
    tried: ApplyOutcome,
    number: int,
    pause: float,
    blockers: list[Session],
) -> None:
    said = blocked_by(blockers)
    logger.warning(
        "automigrate: %s: %s %s (attempt %d of %d)%s; retrying in %.1fs, holding no lock meanwhile",
        connection.alias,
        tried.failed_migration or "the run",
        "met a deadlock with another session"
        if is_deadlock(tried.error)
        else "gave up waiting for a lock",
        number,
        conf.statement_lock_retries + 1,
        f", {said}" if said else "",
        pause,
        extra={"database": connection.alias, "migration": tried.failed_migration},
    )


def _left_pending(result: DatabaseResult) -> int | None:
    """How many migrations are still pending after ``result``, when it tells (a failure before
    the plan was made, an unreachable database say, does not)."""
    failed = (Outcome.LOCK_TIMEOUT, Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.TIMED_OUT)
    if result.planned and result.status in failed:
        applied = set(result.applied)
        return sum(1 for label in result.planned if label not in applied)
    return None


# --- the two kinds of work ----------------------------------------------------------------------


class ApplyPending(Work):
    """Apply every pending migration, as ``manage.py migrate`` would."""

    def __init__(self, trigger: str, conf: AutomigrateSettings) -> None:
        self.trigger = trigger
        self.conf = conf
        self._plan: Plan = []
        self._watch: uptodate.Watch | None = None

    def prepare(self) -> None:
        # The migration files are listed before the connection opens: hundreds of replicas
        # starting on a busy machine then hold it for a query, not for the listing too.
        self._watch = uptodate.Watch()

    def done_elsewhere(self, connection: BaseDatabaseWrapper) -> bool:
        if self._watch is None:
            self._watch = uptodate.Watch()
        return self._watch.up_to_date(connection)

    def plan(self, connection: BaseDatabaseWrapper, *, before_lock: bool) -> list[str] | None:
        # Under the lock the files are listed afresh: that answer rests on nothing read before.
        answer = fast_answer(connection, self._watch if before_lock else None)
        if answer.up_to_date:
            self.applied_without_file = []
            return None
        if before_lock and answer.certainly_pending:
            return []
        if before_lock:
            # The imports happen without a connection; the plan then holds one briefly.
            close_unless_in_transaction(connection)
            load_migration_files()
        pending = pending_work(connection)
        if pending.applied_without_file and not self.applied_without_file:
            logger.warning(
                applied_without_file_warning(connection.alias, pending),
                extra={"database": connection.alias},
            )
        self.applied_without_file = pending.applied_without_file
        if pending.empty:
            return None
        if pending.unrecorded_squashes:
            logger.info(
                "automigrate: %s: recording squashed migration(s) already applied through the "
                "migrations they replace: %s",
                connection.alias,
                ", ".join(pending.unrecorded_squashes),
                extra={"database": connection.alias},
            )
        self._plan = pending.plan
        # In the order the run applies them: the history's own migrations first.
        return [migration_label(m) for m, _ in run_order(pending.plan, history=self.conf.history)]

    def _over_the_limit(
        self, session: DatabaseRun, judgement: deferral.Judgement | None
    ) -> tuple[Outcome, str, str] | None:
        """MAX_LOCK_IMPACT: why the plan may not run (outcome, error, the first migration
        concerned), or None when it may. Judged on what the run executes: deferred work held
        back (a rewriter of its own: collecting SQL, it notes what it would queue)."""
        limit = self.conf.max_lock_impact
        if limit is None or limit == LOCK_IMPACT_LEVELS[-1] or not self._plan:
            return None  # nothing is worse than the worst level: no forecast needed
        from django_automigrate.run import impact

        first = migration_label(self._plan[0][0])
        try:
            forecasts = impact.forecast_pending(
                session.connection,
                self._plan,
                rollback_on_failure=self.conf.rollback_on_failure,
                rewrite=deferral.Rewriter(session.alias, judgement, run_id=None),
            )
            over = impact.over_limit(forecasts, limit)
        except Exception as exc:  # a gate that cannot judge does not let the plan through
            return (
                Outcome.FAILED,
                f"The lock forecast for MAX_LOCK_IMPACT={limit} failed, so nothing was applied: "
                f"{type(exc).__name__}: {exc}. "
                + impact.OVERRIDE.format(level=LOCK_IMPACT_LEVELS[-1]),
                first,
            )
        if not over:
            return None
        applied = "none of the plan" if session.own_applied else "nothing"
        return (
            Outcome.TOO_DISRUPTIVE,
            f"{applied} was applied: {impact.refusal(over, limit)}",
            over[0].migration,
        )

    def _judge(self, session: DatabaseRun) -> deferral.Judgement | None:
        """Which operations wait for the older code serving (None: every one runs now)."""
        if not (self.conf.defer_incompatible and self.conf.history) or not self._plan:
            return None
        if self.trigger not in (Trigger.STARTUP, Trigger.COMMAND):
            return None
        from django.db.migrations.loader import MigrationLoader

        from django_automigrate.run.sqlplan import applied_state

        start = applied_state(MigrationLoader(session.connection))
        return deferral.judge(
            session.connection, self._plan, expiry=self.conf.fleet_expiry, start=start
        )

    @staticmethod
    def _refused(
        session: DatabaseRun, recorder: HistoryRecorder, outcome: Outcome, error: str, at: str
    ) -> DatabaseResult:
        """A run that applies nothing of its plan, recorded as failed at ``at``: the history and
        the health check then say why the migrations are still pending."""
        run_id = recorder.finish(
            status=Status.FAILED,
            applied=session.own_applied,
            failed_migration=at,
            error_summary=error,
        )
        return session.result(
            outcome,
            planned=recorder.fields["planned"],
            applied=session.own_applied,
            run_id=run_id,
            failed_migration=at,
            error=error,
        )

    def carry_out(self, session: DatabaseRun, recorder: HistoryRecorder) -> DatabaseResult:
        # Imported when there is work: a start that finds nothing to do never pays for them.
        from django_automigrate.run import indexes
        from django_automigrate.run.applier import ApplyOutcome, apply_plan
        from django_automigrate.run.blockers import LockWaitWatch
        from django_automigrate.run.timeouts import statement_lock_timeout
        from django_automigrate.run.undo import Undo, apply_undoably

        connection, options, conf = session.connection, session.options, self.conf
        judgement = self._judge(session)
        if judgement is not None and (refusal := judgement.refusal(session.alias)) is not None:
            at = (judgement.refused or judgement.deferred)[0].migration
            return self._refused(session, recorder, Outcome.INCOMPATIBLE, refusal, at)
        if (over := self._over_the_limit(session, judgement)) is not None:
            return self._refused(session, recorder, *over)
        rewrite = deferral.Rewriter(
            connection.alias, judgement, recorder.row.pk if recorder.row is not None else None
        )

        if judgement is not None and judgement.deferred:
            recorder.deferred = [j.to_dict() for j in judgement.deferred]
            logger.warning(
                "automigrate: %s: deferring %d operation(s) while %s serves: %s. They run once "
                "that code is gone (or with 'manage.py automigrate --contract').",
                connection.alias,
                len(judgement.deferred),
                judgement.serving(),
                "; ".join(f"{j.migration} {j.verdict.reason}" for j in judgement.deferred),
                extra={"database": connection.alias},
            )
        # Behind a transaction pooler the run's server session changes from one transaction
        # to the next: the blockers of the one it started on would be someone else's.
        watch = LockWaitWatch(connection, lambda: recorder.current, enabled=not _pooled(conf))

        def announce(tried: ApplyOutcome, number: int, pause: float) -> None:
            # Only what left nothing behind is retried: a kill during the pause must not make
            # the next lock holder suspect the migration of being half-applied.
            recorder.in_flight("")
            _announce_retry(connection, conf, tried, number, pause, watch.last_blockers())

        invalid: indexes.IndexReport | None = None  # None: the run failed before listing them
        try:
            with (
                session.lock.guard(),
                statement_lock_timeout(
                    connection,
                    conf.statement_lock_timeout,
                    concurrent=conf.concurrent_statement_lock_timeout,
                    pooled=_pooled(conf),
                    bookkeeping=(MigrationRun._meta.db_table,),
                ) as budget,
                watch.watching(),
            ):

                def starting(label: str) -> None:
                    recorder.in_flight(label)  # a write of ours, before the budget starts afresh
                    if label:
                        budget.migration_started()

                # Outside any transaction still (an all-or-nothing run opens its own later), so
                # that an invalid index can be dropped CONCURRENTLY.
                invalid = indexes.before_run(
                    connection,
                    lambda: indexes.collect_plan_sql(connection, self._plan),
                    rebuild=conf.rebuild_invalid_indexes,
                )
                invalid.log(connection.alias)
                if refusal := invalid.refusal():
                    # Applying would fail at that migration, after the ones before it, or
                    # record it over an index that serves no query: stop before either.
                    failed = next(iter(invalid.in_the_way().values()))
                    return self._refused(session, recorder, Outcome.FAILED, refusal, failed)
                outcome, undo = apply_undoably(
                    connection,
                    self._plan,
                    lambda: apply_plan(
                        connection,
                        lock=session.lock,
                        stdout=options.stdout,
                        verbosity=options.verbosity,
                        log_details=conf.log_details,
                        on_start=starting,
                        on_applied=recorder.applied,
                        rewrite=rewrite,
                    ),
                    rollback_on_failure=conf.rollback_on_failure,
                    lock=session.lock,
                    on_start=starting,
                    retry=_retry_policy(conf, connection),
                    announce=announce,
                )
        except Error as exc:
            # The transaction of an all-or-nothing run could not even be rolled back: its
            # session is gone, and the server undid the transaction with it.
            outcome = ApplyOutcome(error=exc)
            undo = Undo(
                status=Status.FAILED,
                mode="",
                rolled_back=[],
                still_applied=[],
                detail="Its connection was lost; the server rolled its transaction back.",
            )
        recorder.lock_waits = [wait.to_dict() for wait in watch.all_waits()]
        session._after_connection_loss(outcome.error)
        if not is_connection_lost(outcome.error):
            for index in indexes.after_run(connection, before=invalid):
                logger.warning(
                    "automigrate: %s: %s",
                    connection.alias,
                    index.advice(),
                    extra={"database": connection.alias},
                )
        own = session.own_applied
        if undo is None:
            run_id = recorder.finish(status=Status.SUCCEEDED, applied=own + outcome.applied)
            return session.result(
                Outcome.SUCCEEDED,
                planned=recorder.fields["planned"],
                applied=own + outcome.applied,
                run_id=run_id,
                deferred=recorder.deferred or [],
            )
        assert outcome.error is not None
        status = undo.status
        if is_lock_timeout(outcome.error):
            status = Status.TIMED_OUT  # whatever was undone: rollback says what
        run_ref = str(recorder.row.pk) if recorder.row is not None else "RUN_ID"
        message = describe_error(session.alias, outcome.error)
        if is_lock_timeout(outcome.error):
            message = _with_blockers(message, connection, watch.last_blockers())
        detail = undo.detail.replace("RUN_ID", run_ref)
        error = f"{message.rstrip('.')}. {detail}" if detail else message
        applied = own + undo.still_applied
        trace = "".join(traceback.format_exception(outcome.error))
        run_id = recorder.finish(
            status=status,
            applied=applied,
            failed_migration=outcome.failed_migration,
            error_summary=error,
            traceback=trace,
            rollback=undo.mode,
            rolled_back=undo.rolled_back,
            half_applied=undo.half_applied,
        )
        if run_id is not None:
            error = error.replace("RUN_ID", str(run_id))
        return session.result(
            status,
            planned=recorder.fields["planned"],
            applied=applied,
            run_id=run_id,
            failed_migration=outcome.failed_migration,
            error=error,
            rollback=undo.mode,
            rolled_back=undo.rolled_back,
            half_applied=undo.half_applied,
            traceback=trace,
        )


class UndoRun(Work):
    """Unapply what one recorded run applied (``--rollback RUN_ID``)."""

    trigger = str(Trigger.ROLLBACK)
    reports_unstarted = False
    lists_own_migrations = False

    def __init__(self, run: MigrationRun) -> None:
        self.run = run
        self.backwards: Plan = []

    def plan(self, connection: BaseDatabaseWrapper, *, before_lock: bool) -> list[str] | None:
        from django_automigrate.run.rollback import plan_rollback

        if not history_table_exists(history_alias(connection.alias)):
            raise AutomigrateError(f"No history on {connection.alias!r}: nothing to roll back.")
        self.run.refresh_from_db(using=history_alias(connection.alias))
        target = plan_rollback(self.run)  # raises RollbackRefused when unsafe
        self.backwards = target.plan
        return target.labels

    def carry_out(self, session: DatabaseRun, recorder: HistoryRecorder) -> DatabaseResult:
        from django_automigrate.run.transactions import (
            RollBack,
            one_transaction,
            runs_in_one_transaction,
        )
        from django_automigrate.run.undo import ReverseOutcome, reverse

        connection = session.connection
        whole = runs_in_one_transaction(connection, self.backwards)
        labels = [migration_label(m) for m, _ in self.backwards]  # newest first
        # The same stepping as undoing a failed run: each step confirms the lock, finds the
        # migration still applied, names it in flight, and commits with its record.

        def unapply() -> ReverseOutcome:
            return reverse(connection, labels[::-1], lock=session.lock, on_start=recorder.in_flight)

        with session.lock.guard():
            if whole:
                outcome = ReverseOutcome()
                try:
                    with one_transaction(connection):
                        outcome = unapply()
                        if outcome.stopped:
                            raise RollBack
                except RollBack:
                    outcome.rolled_back = []  # the transaction took every step back with it
            else:
                outcome = unapply()
        session._after_connection_loss(outcome.error)
        mode = "transaction" if whole else "reverse"
        summary = rollback_summary(self.run.pk, outcome.stopped)
        trace = "".join(traceback.format_exception(outcome.error)) if outcome.error else ""
        status = Outcome.FAILED if outcome.stopped else Outcome.SUCCEEDED
        run_id = recorder.finish(
            status=str(status),
            applied=[],
            error_summary=summary,
            traceback=trace,
            rollback=mode,
            rolled_back=outcome.rolled_back,
        )
        return session.result(
            status,
            planned=recorder.fields["planned"],
            run_id=run_id,
            rolled_back=outcome.rolled_back,
            rollback=mode,
            error=summary if outcome.stopped else "",
            traceback=trace,
        )
