"""``--dry-run``: what a run would do, with its SQL, warnings and lock forecast, touching nothing.

The plan is the runner's own (:func:`~django_automigrate.run.plan.pending_work`); the SQL is what
``sqlmigrate`` would print, generated for the whole plan in order (each migration against the
state the ones before it leave); no lock is taken, no table is created, nothing is written. The
forecast (:mod:`~django_automigrate.run.forecast`) reads the catalog to say what each statement
would lock, for how long, and who holds those tables now.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.locks import NoLock, lock_for
from django_automigrate.run import forecast as lock_forecast
from django_automigrate.run.database import database_exists
from django_automigrate.run.plan import Plan, full_plan_labels, pending_work, run_order
from django_automigrate.run.safety import SafetyWarning
from django_automigrate.run.sqlplan import plan_sql

logger = logging.getLogger("django_automigrate")


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
    #: What its statements would lock and for how long; None when there is no database yet.
    forecast: lock_forecast.MigrationForecast | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "transaction": self.transaction,
            "operations": list(self.operations),
            "sql": list(self.sql) if self.sql is not None else None,
            "sql_error": self.sql_error,
            "warnings": [warning.to_dict() for warning in self.warnings],
            "forecast": self.forecast.to_dict() if self.forecast is not None else None,
        }


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
    #: What a run would defer while older code serves, why it would refuse, and for whom.
    deferred: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    incompatible: str = ""
    waiting_for: str = ""

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
            "deferred": self.deferred,
            "incompatible": self.incompatible,
            "waiting_for": self.waiting_for,
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
        rewrite = None
        if conf.defer_incompatible and conf.history and pending.plan:
            rewrite = _judge(connection, pending.plan, conf, result)
        result.migrations = _previews(
            connection, run_order(pending.plan, history=conf.history), conf, rewrite
        )
    except (AutomigrateError, Error, ImproperlyConfigured) as exc:
        result.error = str(exc)
    finally:
        lock.release()  # holds nothing: closes the connection it used to ask
    return result


def _judge(
    connection: BaseDatabaseWrapper, plan: Plan, conf: AutomigrateSettings, result: DatabasePreview
) -> Callable[[Migration], None]:
    """What a run would defer or refuse beside the older code serving now (run.deferral); the
    rewriter that holds the deferred work back, as the run's does, for the SQL shown."""
    from django.db.migrations.loader import MigrationLoader

    from django_automigrate.run import deferral
    from django_automigrate.run.sqlplan import applied_state

    start = applied_state(MigrationLoader(connection))
    judgement = deferral.judge(connection, plan, expiry=conf.fleet_expiry, start=start)
    result.deferred = [judged.to_dict() for judged in judgement.deferred]
    result.incompatible = judgement.refusal(connection.alias) or ""
    if judgement.waiting_for:
        result.waiting_for = judgement.serving()
    return deferral.Rewriter(connection.alias, judgement, run_id=None)


def _previews(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    conf: AutomigrateSettings,
    rewrite: Callable[[Migration], None] | None = None,
) -> list[MigrationPreview]:
    previews = [
        MigrationPreview(
            migration=planned.label,
            transaction=planned.transaction,
            operations=[operation.describe() for operation in planned.migration.operations],
            sql=planned.sql,
            sql_error=planned.error,
            warnings=planned.warnings,
        )
        for planned in plan_sql(connection, plan, rewrite)
    ]
    if previews:
        _forecast(connection, previews, rollback_on_failure=conf.rollback_on_failure)
    return previews


def _forecast(
    connection: BaseDatabaseWrapper, previews: list[MigrationPreview], *, rollback_on_failure: bool
) -> None:
    """Fill in each preview's lock forecast. A forecast that fails leaves the rest of the dry
    run intact: each migration then says why it has none."""
    planned = [
        lock_forecast.PlannedMigration(p.migration, p.sql, p.transaction, p.sql_error)
        for p in previews
    ]
    try:
        forecasts = lock_forecast.forecast_plan(
            connection, planned, rollback_on_failure=rollback_on_failure
        )
    except Exception as exc:
        logger.warning("automigrate: the lock forecast failed: %s", exc, exc_info=True)
        reason = f"no forecast: {type(exc).__name__}: {exc}"
        forecasts = [lock_forecast.MigrationForecast(lock_forecast.UNKNOWN, reason, seconds=None)
                     for _ in previews]  # fmt: skip
    for preview, forecast in zip(previews, forecasts, strict=True):
        preview.forecast = forecast
