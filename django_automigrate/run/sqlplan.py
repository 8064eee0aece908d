"""The SQL a plan would run, migration by migration, as ``sqlmigrate`` prints it, without running
it; with the dry run's warnings on the way. One walk through the plan serves the dry run, the lock
forecast's gate and the rebuild of invalid indexes.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from django_automigrate.run.plan import Plan, migration_label
from django_automigrate.run.safety import SafetyWarning, operation_warnings

logger = logging.getLogger("django_automigrate")


@dataclasses.dataclass
class MigrationSql:
    migration: Migration
    #: The statements as ``sqlmigrate`` prints them; None when they could not be generated.
    sql: list[str] | None
    #: Why not, when they could not.
    error: str
    #: Whether it runs in one transaction (its locks are then held until it commits).
    transaction: bool
    warnings: list[SafetyWarning] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return migration_label(self.migration)


def plan_sql(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    rewrite: Callable[[Migration], None] | None = None,
) -> list[MigrationSql]:
    """Each forward migration of ``plan``, in order, with its SQL, each generated against the
    state the ones before it leave (as the executor would apply them). ``rewrite``: what the run
    does to each migration before applying it (:class:`~.deferral.Rewriter`: deferred database
    work held back), done here to a copy, so that the SQL is what the run would execute."""
    forwards = [migration for migration, backwards in plan if not backwards]
    if not forwards:
        return []
    loader = MigrationLoader(connection)
    # Two states move through the plan together: one of bare model states to judge each
    # operation against (cheap), and one whose rendered apps the SQL generation mutates in
    # place, as the executor does (rendering it afresh for every migration is quadratic). Both
    # start from every applied migration, as the executor's does: the plan's ancestors alone
    # would miss the models of other apps that point at a changed one (their foreign keys are
    # altered too when its primary key changes type).
    models_state = applied_state(loader)
    sql_state = models_state.clone()
    result = []
    for migration in forwards:
        warnings = []
        for operation in migration.operations:
            warnings.extend(operation_warnings(operation, migration.app_label, models_state))
            operation.state_forwards(migration.app_label, models_state)
        if rewrite is not None:
            migration = copy.copy(migration)  # the rewriter replaces the copy's operations
            rewrite(migration)
        sql, error = _collect(connection, migration, sql_state)
        if error:
            sql_state = models_state.clone()  # a failed apply leaves it half changed
        result.append(
            MigrationSql(
                migration=migration,
                sql=sql,
                error=error,
                transaction=bool(migration.atomic and connection.features.can_rollback_ddl),
                warnings=warnings,
            )
        )
    return result


def applied_state(loader: MigrationLoader) -> ProjectState:
    """The project state the applied migrations leave (what the executor starts from)."""
    applied = [key for key in loader.graph.nodes if key in loader.applied_migrations]
    if not applied:
        return ProjectState(real_apps=loader.unmigrated_apps)
    return loader.project_state(applied, at_end=True)


def _collect(
    connection: BaseDatabaseWrapper, migration: Migration, state: ProjectState
) -> tuple[list[str] | None, str]:
    try:
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            # apply() moves ``state`` forward in place, as the executor's does.
            migration.apply(state, editor, collect_sql=True)
    except Exception as exc:
        # Some SQL depends on introspecting tables that earlier migrations of the plan would
        # create: sqlmigrate has the same limit. The rest of the plan is still shown.
        logger.debug(
            "automigrate: %s: no SQL for %s: %s", connection.alias, migration_label(migration), exc
        )
        return None, f"{type(exc).__name__}: {exc}"
    return [str(statement) for statement in editor.collected_sql], ""
