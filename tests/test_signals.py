"""Signals and the admins' mail, in process (test_replicas shows the signals across processes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.core import mail
from django.test import override_settings

import django_automigrate
from django_automigrate import signals
from django_automigrate.models import MigrationRun
from django_automigrate.run.runner import DatabaseResult

pytestmark = pytest.mark.django_db(transaction=True)

LAST = "testapp.0023_final_checkpoint"
# Django 6 takes addresses; (name, address) pairs are deprecated there and all 5.2 reads.
ADMINS: list[Any] = (
    ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
)


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every signal sent, in order, as (name, kwargs)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name in ("run_started", "run_finished", "run_failed"):

        def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
            calls.append((name, {"sender": sender, **kwargs}))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield calls
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_a_successful_run_sends_started_then_finished_once(
    one_pending: None, received: list[tuple[str, dict[str, Any]]]
) -> None:
    result = django_automigrate.migrate()

    assert [name for name, _ in received] == ["run_started", "run_finished"]
    (_, started), (_, finished) = received
    run = MigrationRun.objects.get()
    assert started == {
        "signal": signals.run_started,
        "sender": MigrationRun,
        "alias": "default",
        "trigger": "command",
        "planned": [LAST],
        "run_id": run.pk,
    }
    assert finished["result"] is result.databases[0]
    assert isinstance(finished["result"], DatabaseResult)
    assert finished["result"].applied == [LAST]
    assert (finished["alias"], finished["trigger"], finished["run_id"]) == (
        "default",
        "command",
        run.pk,
    )
    assert set(finished) == {"signal", "sender", "alias", "trigger", "run_id", "result"}


def test_nothing_to_do_sends_nothing(received: list[tuple[str, dict[str, Any]]]) -> None:
    django_automigrate.migrate()

    assert received == []


def test_a_failed_run_sends_started_then_failed_once_and_mails_the_admins_once(
    one_pending: None,
    received: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        monkeypatch.context() as patch,
        override_settings(
            ADMINS=ADMINS,
            AUTOMIGRATE={"MAIL_ADMINS_ON_FAILURE": True},
        ),
    ):
        patch.setenv("AUTOMIGRATE_TEST_FAIL", "0023_final_checkpoint")
        result = django_automigrate.migrate(trigger="startup")

    assert result.databases[0].status == "rolled_back"
    assert [name for name, _ in received] == ["run_started", "run_failed"]
    failed = received[1][1]
    run = MigrationRun.objects.get()
    assert failed["run_id"] == run.pk
    assert failed["trigger"] == "startup"
    assert failed["result"].failed_migration == LAST
    assert failed["error"] == result.databases[0].error
    assert "injected failure in 0023_final_checkpoint" in failed["error"]

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com"]
    assert message.subject.endswith(
        f"automigrate: run #{run.pk} on default rolled_back ({run.host})"
    )
    assert f"Failed migration: {LAST}" in message.body
    assert "injected failure in 0023_final_checkpoint" in message.body
    assert "Traceback (most recent call last)" in message.body  # the admins may see it


def test_no_mail_unless_the_setting_is_on(
    one_pending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        monkeypatch.context() as patch,
        override_settings(
            ADMINS=ADMINS,
        ),
    ):
        patch.setenv("AUTOMIGRATE_TEST_FAIL", "0023_final_checkpoint")
        result = django_automigrate.migrate()

    assert not result.ok
    assert mail.outbox == []


def test_a_receiver_that_raises_is_logged_and_changes_nothing(
    one_pending: None, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("chat webhook is down")

    signals.run_started.connect(broken)
    try:
        result = django_automigrate.migrate()
    finally:
        signals.run_started.disconnect(broken)

    assert result.ok
    assert result.applied == [LAST]
    assert "a receiver of run_started raised RuntimeError: chat webhook is down" in caplog.text
