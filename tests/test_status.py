"""The state the health check reports, in process on the test database (the real servers, through
gunicorn, are in test_health_http)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from health_check.exceptions import ServiceUnavailable

from django_automigrate import status
from django_automigrate.health import Migrations
from django_automigrate.models import MigrationRun, Status, Trigger

pytestmark = pytest.mark.django_db(transaction=True)

LAST = "0023_final_checkpoint"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    status.clear_cache()
    yield
    status.clear_cache()


def _run(state: str, **fields: Any) -> MigrationRun:
    values: dict[str, Any] = {
        "database": "default",
        "trigger": Trigger.STARTUP,
        "started_at": timezone.now(),
        "host": "web-2",
        "planned": ["testapp.0022_seed_tags", f"testapp.{LAST}"],
    }
    values.update(fields)
    return MigrationRun.objects.create(status=state, **values)


def test_an_up_to_date_database_is_healthy() -> None:
    assert status.database_statuses() == [status.DatabaseStatus("default", True)]
    Migrations().run()  # raises nothing


def test_pending_migrations_are_counted_and_named(two_pending: None) -> None:
    (current,) = status.database_statuses()

    assert not current.healthy
    assert current.reason == "2 migrations pending on default"
    assert current.pending == ("testapp.0022_seed_tags", f"testapp.{LAST}")
    with pytest.raises(ServiceUnavailable, match="2 migrations pending on default"):
        Migrations().run()


def test_a_history_that_no_longer_matters_does_not_make_it_unhealthy() -> None:
    # Nothing is pending for this code: an old failure (since fixed by hand, or by a release that
    # dropped the migration) and a row left "running" by a killed process say nothing about now.
    _run(Status.FAILED, failed_migration=f"testapp.{LAST}")
    _run(Status.RUNNING)

    assert status.database_status("default").healthy


def test_a_run_in_progress_is_named_with_its_start_and_host(two_pending: None) -> None:
    started = timezone.now() - datetime.timedelta(minutes=3)
    run = _run(Status.RUNNING, started_at=started)

    reason = status.database_status("default").reason

    clock = timezone.localtime(started).strftime("%H:%M:%S")
    assert reason.startswith(f"migration in progress on default since {clock}")
    assert f"(run #{run.pk}, host web-2); 2 migrations pending" in reason


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (Status.FAILED, "failed"),
        (Status.ROLLED_BACK, "failed and was rolled back"),
        (Status.TIMED_OUT, "timed out waiting for a table lock"),
    ],
)
def test_a_failed_last_run_is_named(two_pending: None, state: str, words: str) -> None:
    _run(Status.SUCCEEDED, started_at=timezone.now() - datetime.timedelta(days=1))
    run = _run(
        state,
        failed_migration=f"testapp.{LAST}",
        error_summary="Database error on 'default': ProgrammingError: syntax error at ALTER",
        traceback="Traceback (most recent call last): ...",
    )

    reason = status.database_status("default").reason

    assert reason == f"last run #{run.pk} on default {words}; 2 migrations pending"


def test_a_timed_out_run_names_who_held_the_table(two_pending: None) -> None:
    blocker = {"id": 12896, "state": "idle in transaction", "query": "SELECT 1"}
    run = _run(
        Status.TIMED_OUT,
        failed_migration=f"testapp.{LAST}",
        lock_waits=[{"migration": f"testapp.{LAST}", "seconds": 2.0, "blockers": [blocker]}],
    )

    reason = status.database_status("default").reason

    assert reason == (
        f"last run #{run.pk} on default timed out waiting for a table lock held by session "
        "12896 (idle in transaction); 2 migrations pending"
    )


def test_a_half_applied_migration_asks_for_a_person_whatever_came_after(two_pending: None) -> None:
    stuck = _run(
        Status.FAILED,
        failed_migration=f"testapp.{LAST}",
        half_applied=True,
        started_at=timezone.now() - datetime.timedelta(hours=1),
    )
    _run(Status.FAILED)  # a later refusal or failure does not hide it

    reason = status.database_status("default").reason

    assert reason == (
        f"run #{stuck.pk} left testapp.{LAST} half-applied on default: repair it, then run "
        f"'manage.py automigrate --mark-fixed {stuck.pk}'"
    )
    stuck.resolved_at = timezone.now()
    stuck.save()
    assert "half-applied" not in status.database_status("default").reason


def test_the_plan_is_cached_until_django_migrations_changes(
    two_pending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans: list[str] = []
    answers: list[str] = []
    real_plan = status.pending_work  # type: ignore[attr-defined]
    real_answer = status.nothing_pending  # type: ignore[attr-defined]

    def counting_plan(connection: Any) -> Any:
        plans.append(connection.alias)
        return real_plan(connection)

    def counting_answer(connection: Any) -> bool:
        answers.append(connection.alias)
        return bool(real_answer(connection))

    monkeypatch.setattr(status, "pending_work", counting_plan)
    monkeypatch.setattr(status, "nothing_pending", counting_answer)

    for _ in range(5):
        assert not status.database_status("default").healthy
    assert plans == answers == ["default"]  # the loader was built once for five calls

    call_command("migrate", "testapp", "0022", verbosity=0)  # another "replica" migrates
    assert status.database_status("default").pending == (f"testapp.{LAST}",)
    call_command("migrate", verbosity=0)
    assert status.database_status("default").healthy
    assert status.database_status("default").healthy
    assert answers == ["default", "default", "default"]  # once per change of django_migrations
    # Up to date is read from the files and rows alone: no third full plan.
    assert plans == ["default", "default"]


def test_unapplying_and_applying_another_migration_is_seen(two_pending: None) -> None:
    # Same row count after: one row deleted, another added. The fingerprint still moves.
    assert status.database_status("default").pending == (
        "testapp.0022_seed_tags",
        f"testapp.{LAST}",
    )
    call_command("migrate", "testapp", "0022", verbosity=0)
    call_command("migrate", "testapp", "0020", verbosity=0)
    call_command("migrate", "testapp", "0021", verbosity=0)

    assert status.database_status("default").pending == (
        "testapp.0022_seed_tags",
        f"testapp.{LAST}",
    )


def test_an_unknown_alias_and_invalid_settings_are_reasons() -> None:
    assert status.database_status("replica").reason == "unknown database alias 'replica'"
    with override_settings(AUTOMIGRATE={"LOCK_TIMEOUT": "soon"}):
        (current,) = status.database_statuses()
    assert current.reason == "invalid AUTOMIGRATE settings: see 'manage.py check'"
    with pytest.raises(ServiceUnavailable, match="unknown database alias 'replica'"):
        Migrations(alias="replica").run()


def test_the_check_is_keyed_by_alias_for_the_health_check_outputs() -> None:
    assert repr(Migrations()) == "Migrations(alias=None)"
    assert repr(Migrations(alias="other")) == "Migrations(alias='other')"


def test_this_processs_own_startup_run_in_progress_is_named(
    two_pending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Background mode: the process serves while its run waits for the lock or has not yet
    # written its history row (the very first run creates the table).
    from django_automigrate import startup

    since = timezone.now()
    running = startup.StartupState(startup.IN_PROGRESS, started_at=since)
    monkeypatch.setattr(startup, "state", lambda: running)

    reason = status.database_status("default").reason

    clock = timezone.localtime(since).strftime("%H:%M:%S")
    assert reason.startswith(f"migration in progress on default since {clock}")
    assert reason.endswith("(this process's startup run); 2 migrations pending")


def test_a_running_row_whose_lock_nobody_holds_is_a_stopped_run(two_pending: None) -> None:
    from django.db import connection

    from django_automigrate.conf import get_settings
    from django_automigrate.locks import lock_for

    lock = lock_for(connection, get_settings(), use_lock=True)
    run = _run(Status.RUNNING, lock=lock.name)

    reason = status.database_status("default").reason
    assert reason.startswith(f"run #{run.pk} on default stopped before it finished (host web-2")
    assert reason.endswith(
        "the next run closes it as interrupted and takes over; 2 migrations pending"
    )

    lock.acquire(1)  # a live run holds it: in progress, as the row says
    try:
        assert status.database_status("default").reason.startswith(
            "migration in progress on default since"
        )
    finally:
        lock.release()

    # A run without the lock (--no-lock), or under another kind of lock: nothing tells.
    MigrationRun.objects.filter(pk=run.pk).update(lock="none (locking disabled)")
    assert "in progress" in status.database_status("default").reason
