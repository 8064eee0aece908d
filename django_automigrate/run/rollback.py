"""``automigrate --rollback [RUN_ID]``: undo what one recorded run applied.

The backwards plan is Django's own (``MigrationExecutor.migration_plan`` to the state just before
the run's first migration of each app). It is refused, before anything is touched, when it would
also unapply migrations that later runs applied (they depend on this run's), or when a migration
in it is irreversible. It runs under the migration lock and is recorded as a run with trigger
``rollback``; where DDL is transactional it runs in one transaction.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.exceptions import AutomigrateError, ConfigurationError, LockTimeout
from django_automigrate.locks import lock_for
from django_automigrate.models import MigrationRun, Status, Trigger
from django_automigrate.reporting import events
from django_automigrate.run.history import (
    HistoryRecorder,
    history_alias,
    history_table_exists,
    unresolved_half_applied,
)
from django_automigrate.run.plan import HISTORY_APP, Plan, migration_label
from django_automigrate.run.undo import first_irreversible, one_transaction, runs_in_one_transaction


class RollbackRefused(AutomigrateError):
    """The rollback would unapply later runs' migrations, or meets an irreversible one."""


@dataclasses.dataclass
class RollbackPlan:
    alias: str
    run: MigrationRun
    plan: Plan

    @property
    def labels(self) -> list[str]:
        return [migration_label(m) for m, _ in self.plan]


def find_run(run_id: int | None, aliases: Sequence[str]) -> MigrationRun:
    """Run ``run_id``, or the latest run that applied something, in the aliases' history."""
    candidates: list[MigrationRun] = []
    for alias in aliases:
        using = history_alias(alias)
        if not history_table_exists(using):
            continue
        runs = MigrationRun.objects.using(using).filter(database=alias)
        if run_id is not None:
            candidates.extend(runs.filter(pk=run_id))
        else:
            latest = (
                runs.exclude(trigger=Trigger.ROLLBACK)
                .exclude(applied=[])
                .order_by("-started_at", "-id")
                .first()
            )
            if latest is not None:
                candidates.append(latest)
    if not candidates:
        which = f"No run #{run_id}" if run_id is not None else "No run that applied migrations"
        raise ConfigurationError(
            f"{which} in the history of " + ", ".join(repr(a) for a in aliases) + "."
        )
    return max(candidates, key=lambda run: (run.started_at, run.pk))


def plan_rollback(run: MigrationRun) -> RollbackPlan:
    """The backwards plan that undoes ``run``; raises :class:`RollbackRefused` when unsafe."""
    connection = connections[run.database]
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    # A migration belongs to the latest run that applied it (a later run may have applied it
    # again after it was unapplied by hand). The history's own migrations stay: undoing them
    # would erase the record of this rollback.
    later_runs = (
        MigrationRun.objects.using(history_alias(run.database))
        .filter(database=run.database, started_at__gte=run.started_at)
        .exclude(pk=run.pk)
        .exclude(trigger=Trigger.ROLLBACK)
    )
    reapplied = {label for later in later_runs for label in later.applied}
    applied_keys = [
        tuple(label.split(".", 1))
        for label in run.applied
        if not label.startswith(f"{HISTORY_APP}.") and label not in reapplied
    ]
    still = [key for key in applied_keys if key in executor.loader.applied_migrations]
    if not still:
        raise RollbackRefused(
            f"Nothing to roll back: none of the migrations run #{run.pk} applied is applied now."
        )
    targets = []
    for app_label in dict.fromkeys(key[0] for key in still):
        first = next(key for key in still if key[0] == app_label)
        parents = [p for p in graph.node_map[first].parents if p.key[0] == app_label]
        targets.append(parents[0].key if parents else (app_label, None))
    plan = executor.migration_plan(targets)
    ours = {".".join(key) for key in still}
    later = [migration_label(m) for m, _ in plan if migration_label(m) not in ours]
    if later:
        raise RollbackRefused(
            f"Refusing to roll back run #{run.pk}: later runs applied migrations that depend on "
            f"it ({', '.join(later)}). Roll those back first."
        )
    for migration, _ in plan:
        operation = first_irreversible(migration)
        if operation is not None:
            raise RollbackRefused(
                f"Refusing to roll back run #{run.pk}: {migration_label(migration)} is "
                f"irreversible ({operation.describe()}). Nothing was changed."
            )
    return RollbackPlan(run.database, run, plan)


@dataclasses.dataclass
class RollbackResult:
    alias: str
    run_id: int | None
    rolled_back: list[str]
    status: str
    error: str = ""
    lock_wait: float = 0.0
    duration: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.status == Status.SUCCEEDED else (3 if self.status == "lock_timeout" else 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def roll_back(
    target: RollbackPlan, conf: AutomigrateSettings, *, use_lock: bool, lock_timeout: float
) -> RollbackResult:
    """Carry out ``target`` under the lock, planning it again once the lock is held.

    Signals and metrics report a rollback that started; one refused, or whose lock was not had
    in time, changed nothing and is reported by the command alone.
    """
    began: list[bool] = []
    result = _roll_back(target, conf, use_lock=use_lock, lock_timeout=lock_timeout, began=began)
    if not began:
        return result
    events.ended(
        result,
        trigger=Trigger.ROLLBACK,
        waited_for_lock=use_lock,
        pending=None,
        started=True,
    )
    return result


def _roll_back(
    target: RollbackPlan,
    conf: AutomigrateSettings,
    *,
    use_lock: bool,
    lock_timeout: float,
    began: list[bool],
) -> RollbackResult:
    connection = connections[target.alias]
    started_at, started = timezone.now(), time.monotonic()
    try:
        lock = lock_for(connection, conf, use_lock=use_lock)
    except ConfigurationError as exc:
        return RollbackResult(target.alias, None, [], Status.FAILED, str(exc))
    try:
        lock_wait = lock.acquire(lock_timeout)
    except LockTimeout as exc:
        lock.release()
        return RollbackResult(target.alias, None, [], "lock_timeout", str(exc), exc.waited)
    try:
        target = plan_rollback(target.run)  # the state may have changed while we waited
        stuck = unresolved_half_applied(target.alias)
        if stuck is not None:
            raise RollbackRefused(
                f"Refusing to roll back: run #{stuck.pk} left {stuck.failed_migration} "
                f"half-applied. Repair it by hand, then 'manage.py automigrate --mark-fixed "
                f"{stuck.pk}'."
            )
        recorder = HistoryRecorder(
            alias=target.alias,
            trigger=Trigger.ROLLBACK,
            enabled=conf.history,
            started_at=started_at,
            lock_wait=lock_wait,
            lock_name=lock.name,
            planned=target.labels,
        )
        recorder.start(lock_held=use_lock)
        began.append(True)  # from here on, signals and metrics report it
        events.started(
            alias=target.alias,
            trigger=Trigger.ROLLBACK,
            planned=target.labels,
            run_id=recorder.row.pk if recorder.row is not None else None,
        )
        error, trace = _unapply(connection, target)
        status = Status.FAILED if error else Status.SUCCEEDED
        rolled_back = [] if error else target.labels
        summary = f"rollback of run #{target.run.pk}" + (f": {error}" if error else "")
        run_id = recorder.finish(
            status=status,
            applied=[],
            error_summary=summary if error else f"rollback of run #{target.run.pk}",
            traceback=trace,
            rollback="transaction"
            if runs_in_one_transaction(connection, target.plan)
            else "reverse",
            rolled_back=rolled_back,
        )
        return RollbackResult(
            target.alias, run_id, rolled_back, status, error, lock_wait, time.monotonic() - started
        )
    except (RollbackRefused, DatabaseError) as exc:
        return RollbackResult(target.alias, None, [], Status.FAILED, str(exc), lock_wait)
    finally:
        lock.release()


def _unapply(connection: BaseDatabaseWrapper, target: RollbackPlan) -> tuple[str, str]:
    executor = MigrationExecutor(connection)
    plan = [(executor.loader.graph.nodes[(m.app_label, m.name)], True) for m, _ in target.plan]
    try:
        if runs_in_one_transaction(connection, plan):
            with one_transaction(connection):
                executor.migrate(executor.loader.graph.leaf_nodes(), plan=plan)
        else:
            executor.migrate(executor.loader.graph.leaf_nodes(), plan=plan)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
    return "", ""


def preview_sql(target: RollbackPlan) -> list[tuple[str, list[str]]]:
    """(label, statements) for each migration of the backwards plan, as sqlmigrate shows them."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connections[target.alias], replace_migrations=True)
    previews = []
    for migration, backwards in target.plan:
        node = loader.graph.nodes[(migration.app_label, migration.name)]
        statements = loader.collect_sql([(node, backwards)])
        previews.append((migration_label(migration), [str(s) for s in statements]))
    return previews
