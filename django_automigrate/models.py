"""The history of runs: one row per run that applied, rolled back or failed something."""

from __future__ import annotations

import re

from django.db import models


class Trigger(models.TextChoices):
    STARTUP = "startup", "startup"
    COMMAND = "command", "command"
    ROLLBACK = "rollback", "rollback"


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
