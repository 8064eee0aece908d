"""Closing the rows of runs whose process stopped mid-run: the decisions, in process.

The real kills are in test_faults.py; here each in-flight state is set up directly and the
verdict checked: finished, undone by its transaction, or possibly half-applied (refused).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

import django_automigrate
from django_automigrate.models import MigrationRun, Status
from django_automigrate.run.interrupted import close_interrupted

PENDING = "testapp.0023_final_checkpoint"
APPLIED = "testapp.0022_seed_tags"


@pytest.fixture(autouse=True)
def _fresh_history(one_pending: None) -> Iterator[None]:
    MigrationRun.objects.all().delete()
    yield
    MigrationRun.objects.all().delete()


def running(in_flight: str) -> MigrationRun:
    return MigrationRun.objects.create(
        database="default",
        trigger="command",
        status=Status.RUNNING,
        started_at=timezone.now(),
        in_flight=in_flight,
        applied=["testapp.0021_author_active"],
    )


def closed(run: MigrationRun) -> MigrationRun:
    close_interrupted(connection)
    run.refresh_from_db()
    return run


def test_nothing_in_flight_is_interrupted_and_left_nothing_half_done() -> None:
    run = closed(running(""))

    assert run.status == Status.INTERRUPTED
    assert not run.half_applied
    assert run.error_summary.startswith("interrupted: its process ended")
    assert run.finished_at is not None


def test_a_migration_in_flight_that_is_recorded_had_finished() -> None:
    run = closed(running(APPLIED))

    assert run.status == Status.INTERRUPTED
    assert not run.half_applied
    assert run.applied == ["testapp.0021_author_active", APPLIED]


def test_an_unrecorded_atomic_migration_was_undone_by_its_transaction() -> None:
    run = closed(running(PENDING))  # SQLite: transactional DDL, and the migration is atomic

    assert not run.half_applied
    assert "the migration's transaction undid it" in run.error_summary


def test_a_migration_this_code_does_not_know_may_be_half_applied_and_is_refused() -> None:
    run = closed(running("testapp.0099_from_a_newer_release"))

    result = django_automigrate.migrate()

    assert run.half_applied
    assert run.failed_migration == "testapp.0099_from_a_newer_release"
    report = result.databases[0]
    assert report.status == "needs_attention"
    assert report.exit_code == 1
    assert report.run_id == run.pk
    assert f"--mark-fixed {run.pk}" in report.error
    assert "sqlmigrate testapp 0099_from_a_newer_release" in report.error


def test_a_migration_being_unapplied_and_still_recorded_is_not_finished() -> None:
    recorded = closed(running(f"unapplying {APPLIED}"))
    gone = closed(running(f"unapplying {PENDING}"))

    # Still recorded: its reversal had not finished (atomic here, so its transaction undid it).
    assert "while unapplying" in recorded.error_summary
    assert "transaction undid it" in recorded.error_summary
    # No longer recorded: the reversal had finished.
    assert "no migration was left half-done" in gone.error_summary


def test_a_run_with_nothing_pending_closes_a_dead_run_left_running() -> None:
    MigrationRecorder(connection).record_applied("testapp", "0023_final_checkpoint")
    run = running(PENDING)

    result = django_automigrate.migrate()
    run.refresh_from_db()

    assert result.databases[0].status == "nothing_to_do"
    assert run.status == Status.INTERRUPTED
    assert run.applied[-1] == PENDING
