"""``--dry-run``: what a run would do, with its SQL and warnings, touching nothing.

The plan is the runner's own (:func:`~django_automigrate.run.plan.pending_work`); the SQL is what
``sqlmigrate`` would print, generated for the whole plan in order (each migration against the
state the ones before it leave); no lock is taken, no table is created, nothing is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.locks import NoLock, lock_for
from django_automigrate.run.database import database_exists
from django_automigrate.run.plan import (
    Plan,
    full_plan_labels,
    migration_label,
    pending_work,
    run_order,
)
from django_automigrate.run.safety import SafetyWarning, operation_warnings


@dataclasses.dataclass
class MigrationPreview:
    migration: str
    #: Whether it would run in one transaction (``atomic`` and the backend has transactional DDL).
    transaction: bool
    operations: list[str]
    #: The statements, as ``sqlmigrate`` prints them; None when they could not be generated.
    sql: list[str] | None
    sql_error: str = ""
    warnings: list[SafetyWarning] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["warnings"] = [warning.to_dict() for warning in self.warnings]
        return data


@dataclasses.dataclass
class DatabasePreview:
    alias: str
    vendor: str
    database_exists: bool
    lock: str
    #: Who holds the migration lock right now (read without taking it), or None.
    lock_holder: str | None
    migrations: list[MigrationPreview] = dataclasses.field(default_factory=list)
    #: Squashed migrations a run would only record (see the runner).
    unrecorded_squashes: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    #: False when no lock could be chosen (``lock`` then says why); not part of the JSON.
    lock_usable: bool = True
    #: Whether a run may create the missing database (CREATE_DATABASE); not part of the JSON.
    may_create: bool = False

    @property
    def warning_count(self) -> int:
        return sum(len(m.warnings) for m in self.migrations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "vendor": self.vendor,
            "database_exists": self.database_exists,
            "lock": self.lock,
            "lock_holder": self.lock_holder,
            "migrations": [m.to_dict() for m in self.migrations],
            "unrecorded_squashes": self.unrecorded_squashes,
            "error": self.error,
            "summary": {"migrations": len(self.migrations), "warnings": self.warning_count},
        }


def preview(aliases: list[str], conf: AutomigrateSettings) -> list[DatabasePreview]:
    return [_preview_database(connections[alias], conf) for alias in aliases]


def _preview_database(
    connection: BaseDatabaseWrapper, conf: AutomigrateSettings
) -> DatabasePreview:
    try:
        lock = lock_for(connection, conf, use_lock=conf.use_lock)
    except ConfigurationError as exc:
        lock = NoLock(connection)
        lock_problem = str(exc)
    else:
        lock_problem = ""
    result = DatabasePreview(
        alias=connection.alias,
        vendor=connection.vendor,
        database_exists=True,
        lock=lock_problem or lock.name,
        lock_holder=None,
        lock_usable=not lock_problem,
    )
    try:
        if not database_exists(connection):
            result.database_exists = False
            result.may_create = conf.create_database
            result.migrations = [
                MigrationPreview(label, False, [], None, "the database does not exist yet")
                for label in full_plan_labels()
            ]
            return result
        result.lock_holder = lock.safe_holder()
        result.lock = lock_problem or lock.name  # now that it knows the database's identity
        pending = pending_work(connection)
        result.unrecorded_squashes = pending.unrecorded_squashes
        result.migrations = _previews(connection, run_order(pending.plan, history=conf.history))
    except (AutomigrateError, Error, ImproperlyConfigured) as exc:
        result.error = str(exc)
    finally:
        lock.release()  # holds nothing: closes the connection it used to ask
    return result


def _previews(connection: BaseDatabaseWrapper, plan: Plan) -> list[MigrationPreview]:
    if not plan:
        return []
    loader = MigrationLoader(connection)
    # Two states move through the plan together: one of bare model states to judge each
    # operation against (cheap), and one whose rendered apps the SQL generation mutates in
    # place, as the executor does (rendering it afresh for every migration is quadratic).
    models_state = _applied_state(loader)
    sql_state = models_state.clone()
    previews = []
    for migration, _backwards in plan:
        warnings = []
        for operation in migration.operations:
            warnings.extend(operation_warnings(operation, migration.app_label, models_state))
            operation.state_forwards(migration.app_label, models_state)
        sql, error = _collect_sql(connection, migration, sql_state)
        if error:
            sql_state = models_state.clone()  # a failed apply leaves it half-changed
        previews.append(
            MigrationPreview(
                migration=migration_label(migration),
                transaction=bool(migration.atomic and connection.features.can_rollback_ddl),
                operations=[operation.describe() for operation in migration.operations],
                sql=sql,
                sql_error=error,
                warnings=warnings,
            )
        )
    return previews


def _applied_state(loader: MigrationLoader) -> ProjectState:
    """The project state the applied migrations leave (what the executor starts from)."""
    applied = [key for key in loader.graph.nodes if key in loader.applied_migrations]
    if not applied:
        return ProjectState(real_apps=loader.unmigrated_apps)
    return loader.project_state(applied, at_end=True)


def _collect_sql(
    connection: BaseDatabaseWrapper, migration: Migration, state: ProjectState
) -> tuple[list[str] | None, str]:
    try:
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            migration.apply(state, editor, collect_sql=True)
    except Exception as exc:
        # Some SQL depends on introspecting tables that earlier migrations of the plan would
        # create: sqlmigrate has the same limit. The rest of the plan is still shown.
        return None, f"{type(exc).__name__}: {exc}"
    return [str(statement) for statement in editor.collected_sql], ""
