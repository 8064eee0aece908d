"""``automigrate --rollback [RUN_ID]``: undo what one recorded run applied.

The backwards plan is Django's own (``MigrationExecutor.migration_plan`` to the state just before
the run's first migration of each app). It is refused, before anything is touched, when it would
also unapply migrations that later runs applied (they depend on this run's), or when a migration
in it is irreversible. It runs in the same run session as every run (under the lock, planned
again once the lock is held, recorded with trigger ``rollback``); where DDL is transactional it
runs in one transaction.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.locks import lock_for
from django_automigrate.models import MigrationRun, Trigger
from django_automigrate.run.history import history_alias, history_table_exists
from django_automigrate.run.plan import HISTORY_APP, Plan, migration_label
from django_automigrate.run.results import DatabaseResult
from django_automigrate.run.session import DatabaseRun, RunOptions, UndoRun
from django_automigrate.run.undo import first_irreversible


class RollbackRefused(AutomigrateError):
    """The rollback would unapply later runs' migrations, or meets an irreversible one."""


@dataclasses.dataclass
class RollbackPlan:
    alias: str
    run: MigrationRun
    plan: Plan
    #: The loader the plan was made with: the preview and the losses read it again, not the disk.
    loader: MigrationLoader

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
    unknown = [".".join(key) for key in still if key not in graph.nodes]
    if unknown:
        # A newer release applied them: only code that has their files can unapply them.
        raise RollbackRefused(
            f"Refusing to roll back run #{run.pk}: this code has no migration file for "
            f"{', '.join(unknown)} (a newer release applied it). Run --rollback from a release "
            "that has it. Nothing was changed."
        )
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
    return RollbackPlan(run.database, run, plan, executor.loader)


@dataclasses.dataclass(frozen=True)
class Losses:
    """What a rollback drops: tables (``CreateModel`` undone) and ``table.column``s
    (``AddField`` undone, on tables that stay)."""

    tables: list[str]
    columns: list[str]


def losses(target: RollbackPlan) -> Losses:
    """The tables and columns that unapplying ``target`` drops, named as in the database now."""
    from django.core.exceptions import FieldDoesNotExist
    from django.db.migrations import operations

    state = target.loader.project_state()  # every migration on disk applied, as now
    tables: dict[str, None] = {}
    columns: dict[str, None] = {}

    def model(app_label: str, name: str) -> Any:
        try:
            return state.apps.get_model(app_label, name)
        except LookupError:  # renamed or deleted later in the same plan
            return None

    for migration, _ in target.plan:
        for operation in migration.operations:
            if isinstance(operation, operations.CreateModel):
                found = model(migration.app_label, operation.name)
                default = f"{migration.app_label}_{operation.name.lower()}"
                tables[found._meta.db_table if found else default] = None
                for field in found._meta.local_many_to_many if found else ():
                    if field.remote_field.through._meta.auto_created:
                        tables[field.remote_field.through._meta.db_table] = None
            elif isinstance(operation, operations.AddField):
                found = model(migration.app_label, operation.model_name)
                if found is None:
                    continue
                try:
                    field = found._meta.get_field(operation.name)
                except FieldDoesNotExist:
                    continue
                table = found._meta.db_table
                if field.many_to_many:
                    tables[field.remote_field.through._meta.db_table] = None
                elif field.column:
                    columns[f"{table}.{field.column}"] = None
    kept = [column for column in columns if column.split(".", 1)[0] not in tables]
    return Losses(sorted(tables), sorted(kept))


def roll_back(
    target: RollbackPlan, conf: AutomigrateSettings, *, use_lock: bool, lock_timeout: float
) -> DatabaseResult:
    """Carry out ``target`` under the lock, planning it again once the lock is held; the same
    run session as every other run (history, logs, signals, metrics)."""
    connection = connections[target.alias]
    lock = lock_for(connection, conf, use_lock=use_lock)
    options = RunOptions(
        conf=conf,
        trigger=str(Trigger.ROLLBACK),
        use_lock=use_lock,
        lock_timeout=lock_timeout,
        stdout=io.StringIO(),
        verbosity=0,
        create_database=False,
    )
    return DatabaseRun(target.alias, lock, UndoRun(target.run), options).run()


def preview_sql(target: RollbackPlan) -> list[tuple[str, list[str]]]:
    """(label, statements) for each migration of the backwards plan, as sqlmigrate shows them."""
    loader = target.loader
    previews = []
    for migration, backwards in target.plan:
        node = loader.graph.nodes[(migration.app_label, migration.name)]
        statements = loader.collect_sql([(node, backwards)])
        previews.append((migration_label(migration), [str(s) for s in statements]))
    return previews
