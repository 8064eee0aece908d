"""Writing :class:`MigrationRun` rows: a row when a run starts, updated when it ends.

The table may not exist when a run starts (the very first run creates it): the row is then
written when the run ends. History must never stop a run, so its errors are logged, not raised.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Sequence

import django
from django.db import Error, connections, router
from django.utils import timezone

from django_automigrate import __version__
from django_automigrate.exceptions import ConfigurationError
from django_automigrate.models import MigrationRun, Status

logger = logging.getLogger("django_automigrate")

#: Environment variables read, in order, for the release label of a run.
RELEASE_VARIABLES = (
    "AUTOMIGRATE_RELEASE",
    "RELEASE_VERSION",
    "HEROKU_RELEASE_VERSION",
    "SOURCE_VERSION",
    "GIT_COMMIT",
    "GIT_SHA",
)


def release_label() -> str:
    for variable in RELEASE_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value[:255]
    return ""


def history_alias(alias: str) -> str:
    """Where runs of ``alias`` are recorded: ``alias`` itself unless routers keep the model out."""
    if router.allow_migrate_model(alias, MigrationRun):
        return alias
    return router.db_for_write(MigrationRun) or alias


def history_table_exists(using: str) -> bool:
    connection = connections[using]
    with connection.cursor() as cursor:
        return MigrationRun._meta.db_table in connection.introspection.table_names(cursor)


#: How ``in_flight`` names a migration being reversed (its record goes last, not first).
UNAPPLYING = "unapplying "


class HistoryRecorder:
    """Records one run of one database."""

    def __init__(
        self,
        *,
        alias: str,
        trigger: str,
        enabled: bool,
        started_at: datetime.datetime,
        lock_wait: float,
        lock_name: str,
        planned: Sequence[str],
    ) -> None:
        self.alias = alias
        self.using = history_alias(alias)
        self.enabled = enabled
        self.row: MigrationRun | None = None
        #: The migration being applied, as last named by :meth:`in_flight` ("" when none is).
        self.current = ""
        #: The lock waits the run's watcher saw (:class:`~django_automigrate.run.blockers.LockWait`
        #: as dicts), written with the outcome.
        self.lock_waits: list[dict[str, object]] = []
        #: The operations whose database work the run deferred (or, contracting, did).
        self.deferred: list[dict[str, object]] | None = None
        self.fields = {
            "database": alias,
            "trigger": trigger,
            "started_at": started_at,
            "lock_wait": datetime.timedelta(seconds=lock_wait),
            "lock": lock_name[:255],
            "planned": list(planned),
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "django_version": django.get_version(),
            "automigrate_version": __version__,
            "release": release_label(),
        }

    def start(self) -> None:
        """Write the ``running`` row, when the table exists."""
        if not self.enabled:
            return
        try:
            if not history_table_exists(self.using):
                return
            self.row = MigrationRun.objects.using(self.using).create(
                status=Status.RUNNING, **self.fields
            )
        except Error as exc:
            logger.error("automigrate: %s: could not record the run's start: %s", self.alias, exc)

    def in_flight(self, label: str) -> None:
        """Name the migration about to run (or ``unapplying <label>``; "" once none is).

        Written before it starts and outside its transaction (Django calls the progress
        callback before opening it), so that a run killed inside it says which one it was.
        """
        self.current = label
        if self.row is None:
            return
        try:
            MigrationRun.objects.using(self.using).filter(pk=self.row.pk).update(
                in_flight=label[:255]
            )
        except Error as exc:
            logger.error("automigrate: %s: could not record progress: %s", self.alias, exc)

    def applied(self, applied: Sequence[str]) -> None:
        """Keep the row's applied list current, so that a run killed midway is described
        exactly by its row."""
        self.current = ""
        if self.row is None:
            return
        try:
            MigrationRun.objects.using(self.using).filter(pk=self.row.pk).update(
                applied=list(applied), in_flight=""
            )
        except Error as exc:
            logger.error("automigrate: %s: could not record progress: %s", self.alias, exc)

    def finish(
        self,
        *,
        status: str,
        applied: Sequence[str],
        failed_migration: str = "",
        error_summary: str = "",
        traceback: str = "",
        rollback: str = "",
        rolled_back: Sequence[str] = (),
        half_applied: bool = False,
    ) -> int | None:
        """Write the outcome; return the row's id (None when history is off or unwritable)."""
        if not self.enabled:
            return None
        finished_at = timezone.now()
        outcome = {
            "status": status,
            "finished_at": finished_at,
            "duration": finished_at - self.fields["started_at"],  # type: ignore[operator]
            "applied": list(applied),
            "failed_migration": failed_migration[:255],
            "error_summary": error_summary,
            "traceback": traceback,
            "rollback": rollback,
            "rolled_back": list(rolled_back),
            "half_applied": half_applied,
        }
        outcome["in_flight"] = ""
        outcome["lock_waits"] = self.lock_waits
        if self.deferred is not None:
            outcome["deferred"] = self.deferred
        try:
            if self.row is not None:
                for field, value in outcome.items():
                    setattr(self.row, field, value)
                # Only a row still running: a process that lost its lock finishes after another
                # one may already have closed its row as interrupted, which stays the truth.
                still_running = MigrationRun.objects.using(self.using).filter(
                    pk=self.row.pk, status=Status.RUNNING
                )
                if not still_running.update(**outcome):
                    self.row.refresh_from_db(using=self.using)
                    return self.row.pk
            elif history_table_exists(self.using):
                self.row = MigrationRun.objects.using(self.using).create(**self.fields, **outcome)
            else:
                logger.warning(
                    "automigrate: %s: run not recorded: the history table does not exist yet "
                    "(the run stopped before django_automigrate's migration was applied)",
                    self.alias,
                )
                return None
            if "RUN_ID" in self.row.error_summary:  # a message that tells which run to name
                self.row.error_summary = self.row.error_summary.replace("RUN_ID", str(self.row.pk))
                self.row.save(using=self.using, update_fields=["error_summary"])
        except Error as exc:
            logger.error("automigrate: %s: could not record the run's outcome: %s", self.alias, exc)
            return None
        return self.row.pk


def unresolved_half_applied(alias: str) -> MigrationRun | None:
    """The latest run that left a migration of ``alias`` half-applied, unless marked fixed."""
    using = history_alias(alias)
    try:
        if not history_table_exists(using):
            return None
        return (
            MigrationRun.objects.using(using)
            .filter(database=alias, half_applied=True, resolved_at__isnull=True)
            .order_by("-started_at", "-id")
            .first()
        )
    except Error:
        # The history table is older than this version's (its migrations are pending, maybe
        # being applied by another process right now): it can hold no half-applied run.
        return None


def mark_fixed(run_id: int, aliases: Sequence[str]) -> MigrationRun:
    """Record that a person fixed, by hand, what run ``run_id`` left half-applied."""
    for alias in aliases:
        using = history_alias(alias)
        if not history_table_exists(using):
            continue
        run = MigrationRun.objects.using(using).filter(pk=run_id, database=alias).first()
        if run is None:
            continue
        if not run.half_applied:
            raise ConfigurationError(
                f"Run #{run_id} on {alias!r} left nothing half-applied: there is nothing to mark."
            )
        if run.resolved_at is None:
            run.resolved_at = timezone.now()
            run.save(using=using, update_fields=["resolved_at"])
        return run
    raise ConfigurationError(
        f"No run #{run_id} in the history of " + ", ".join(repr(a) for a in aliases) + "."
    )
