"""The history of runs: one row per run that applied, rolled back or failed something."""

from __future__ import annotations

import re

from django.db import models


class Trigger(models.TextChoices):
    STARTUP = "startup", "startup"
    COMMAND = "command", "command"
    ROLLBACK = "rollback", "rollback"
    #: The deferred work of earlier runs, once no older code serves (``--contract``).
    CONTRACT = "contract", "contract"


class Status(models.TextChoices):
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    ROLLED_BACK = "rolled_back", "rolled back"
    TIMED_OUT = "timed_out", "timed out"
    #: Its process ended mid-run (killed, its connection lost); closed by the next lock holder.
    INTERRUPTED = "interrupted", "interrupted"


#: The ``error_summary`` of a ``--rollback`` run: which run it undid, and why it stopped if it
#: did. Written by the run session, read back by the admin: one format for both.
_ROLLBACK_SUMMARY = re.compile(r"rollback of run #(?P<run>\d+)(?::\s*(?P<detail>.*))?", re.DOTALL)


def rollback_summary(run_id: int, stopped: str = "") -> str:
    """The ``error_summary`` of a rollback of run ``run_id`` (``stopped``: why it stopped)."""
    return f"rollback of run #{run_id}" + (f": {stopped}" if stopped else "")


def read_rollback_summary(summary: str) -> tuple[int, str] | None:
    """(the undone run's id, why it stopped or "") from :func:`rollback_summary`'s text."""
    match = _ROLLBACK_SUMMARY.match(summary)
    return (int(match["run"]), match["detail"] or "") if match else None


class MigrationRun(models.Model):
    """One run of django-automigrate against one database."""

    database = models.CharField(max_length=100, help_text="The database alias migrated.")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(help_text="When the run started (before the lock wait).")
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True, help_text="started_at to finished_at.")
    lock_wait = models.DurationField(
        null=True, blank=True, help_text="Time spent waiting for the lock."
    )
    lock = models.CharField(max_length=255, blank=True, help_text="The lock that guarded the run.")
    planned = models.JSONField(
        default=list, help_text="Migrations planned under the lock, in order."
    )
    applied = models.JSONField(default=list, help_text="Migrations this run applied, in order.")
    failed_migration = models.CharField(max_length=255, blank=True)
    # db_default: rows written by code older than this column (a rolling deploy) stay valid.
    in_flight = models.CharField(
        max_length=255,
        blank=True,
        db_default="",
        help_text="The migration being applied (or 'unapplying <label>') right now; written "
        "before it starts, so that a run killed inside it says which.",
    )
    rollback = models.CharField(
        max_length=20,
        blank=True,
        help_text="How a failure was undone: transaction (all-or-nothing), reverse, or empty.",
    )
    rolled_back = models.JSONField(
        default=list, help_text="Migrations this run applied, then reversed after the failure."
    )
    half_applied = models.BooleanField(
        default=False,
        help_text="The failed migration ran part of its SQL, which no transaction undid.",
    )
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="When a person recorded that the state was fixed by hand."
    )
    # null: rows written by code older than this column (a rolling deploy) stay valid.
    lock_waits = models.JSONField(
        null=True,
        blank=True,
        help_text="Lock waits of the run's statements: migration, seconds, blocking sessions.",
    )
    # null: rows written by code older than this column (a rolling deploy) stay valid.
    deferred = models.JSONField(
        null=True,
        blank=True,
        help_text="Operations applied to Django's state only, their database work deferred "
        "until no older code serves (or, for a contract run, the ones it did).",
    )
    error_summary = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    django_version = models.CharField(max_length=50, blank=True)
    automigrate_version = models.CharField(max_length=50, blank=True)
    release = models.CharField(
        max_length=255, blank=True, help_text="Release label from the environment."
    )

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = (models.Index(fields=("database", "-started_at"), name="automigrate_db_started"),)
        verbose_name = "migration run"

    def __str__(self) -> str:
        return f"run #{self.pk} on {self.database}: {self.status}"


class FleetMember(models.Model):
    """One process serving (or working) with this project's code: what the contract step waits
    for. Renewed by the process's heartbeat; a process that stops beating is gone."""

    key = models.CharField(max_length=64, unique=True, help_text="host, pid and start time.")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    kind = models.CharField(max_length=50, help_text="web, worker, cron: what the process does.")
    release = models.CharField(max_length=255, blank=True)
    graph = models.CharField(max_length=32, help_text="Fingerprint of the migration graph.")
    leaves = models.JSONField(default=list, help_text="The latest migration of each app.")
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-last_seen", "id")
        verbose_name = "fleet member"

    def __str__(self) -> str:
        return f"{self.kind} {self.host}:{self.pid} ({self.release or self.graph})"


class DeferredOperation(models.Model):
    """An operation applied to Django's migration state whose database work waits for the
    contract step: the older code still serving would fail without it."""

    database = models.CharField(max_length=100)
    migration = models.CharField(max_length=255, help_text="app_label.migration_name")
    operation_index = models.PositiveIntegerField()
    description = models.CharField(max_length=255)
    kind = models.CharField(max_length=30, help_text="What is deferred: drop_column, …")
    deferred_by = models.ForeignKey(
        MigrationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deferred_at = models.DateTimeField()
    contracted_by = models.ForeignKey(
        MigrationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    contracted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(
                fields=("database", "migration", "operation_index"),
                name="automigrate_deferred_once",
            ),
        )
        verbose_name = "deferred operation"

    def __str__(self) -> str:
        return f"{self.migration} #{self.operation_index}: {self.description}"
