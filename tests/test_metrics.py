"""Metrics in one process (test_health_http reads them added up over gunicorn's workers)."""

from __future__ import annotations

import threading

import prometheus_client
import pytest
from django.test import Client

import django_automigrate
from django_automigrate.reporting import metrics

pytestmark = pytest.mark.django_db(transaction=True)


def _value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_run_counts_times_and_resets_pending(one_pending: None, client: Client) -> None:
    runs = {"database": "default", "status": "succeeded", "trigger": "command"}
    before = _value("automigrate_runs_total", **runs)
    durations = _value(
        "automigrate_run_duration_seconds_count", database="default", status="succeeded"
    )

    assert django_automigrate.migrate().ok

    assert _value("automigrate_runs_total", **runs) == before + 1
    assert (
        _value("automigrate_run_duration_seconds_count", database="default", status="succeeded")
        == durations + 1
    )
    assert _value("automigrate_pending_migrations", database="default") == 0
    assert _value("automigrate_last_success_timestamp_seconds", database="default") > 0
    response = client.get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'automigrate_runs_total{database="default",status="succeeded",trigger="command"}' in (
        response.content.decode()
    )


def test_a_failed_run_leaves_its_migrations_counted_pending(
    one_pending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("AUTOMIGRATE_TEST_FAIL", "0023_final_checkpoint")
        assert not django_automigrate.migrate().ok

    assert _value("automigrate_pending_migrations", database="default") == 1


def test_a_refused_run_counts_but_is_no_migration_run_duration(
    one_pending: None,
) -> None:
    from django.utils import timezone

    from django_automigrate.models import MigrationRun

    MigrationRun.objects.create(
        database="default", trigger="command", status="failed", started_at=timezone.now(),
        failed_migration="testapp.0023_final_checkpoint", half_applied=True,
    )  # fmt: skip
    labels = {"database": "default", "status": "needs_attention"}
    runs_before = _value("automigrate_runs_total", trigger="command", **labels)
    durations_before = _value("automigrate_run_duration_seconds_count", **labels)

    assert django_automigrate.migrate().databases[0].status == "needs_attention"

    assert _value("automigrate_runs_total", trigger="command", **labels) == runs_before + 1
    assert _value("automigrate_run_duration_seconds_count", **labels) == durations_before


def test_without_prometheus_client_nothing_is_recorded_and_the_view_says_why(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "prometheus_client", None)

    metrics.record_run(
        alias="default", status="succeeded", trigger="command", duration=1.0, lock_wait=0.0,
        waited_for_lock=False, pending=0, started=True,
    )  # fmt: skip
    response = client.get("/metrics/")

    assert response.status_code == 501
    assert "pip install 'django-automigrate[prometheus]'" in response.content.decode()


def test_metrics_that_cannot_be_written_never_stop_a_run(
    one_pending: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unwritable(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("/var/run/prometheus/counter_1.db")

    monkeypatch.setattr(metrics, "_get", unwritable)
    monkeypatch.setattr(metrics, "_warned", threading.Event())

    result = django_automigrate.migrate()

    assert result.ok
    assert "cannot record metrics (FileNotFoundError" in caplog.text
