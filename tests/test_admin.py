"""The history in the admin is read-only."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from django_automigrate.models import MigrationRun


@pytest.fixture
def run() -> MigrationRun:
    return MigrationRun.objects.create(
        database="default",
        trigger="command",
        status="failed",
        started_at=timezone.now(),
        duration=datetime.timedelta(seconds=2),
        planned=["testapp.0001_initial"],
        applied=[],
        failed_migration="testapp.0001_initial",
        error_summary="RuntimeError: boom",
    )


@pytest.mark.django_db
def test_the_list_shows_runs_with_filters(admin_client: Client, run: MigrationRun) -> None:
    response = admin_client.get("/admin/django_automigrate/migrationrun/?status__exact=failed")

    assert response.status_code == 200
    content = response.content.decode()
    assert "By status" in content
    assert "By trigger" in content
    assert f"/admin/django_automigrate/migrationrun/{run.pk}/change/" in content


@pytest.mark.django_db
def test_the_detail_view_shows_the_error_and_cannot_save(
    admin_client: Client, run: MigrationRun
) -> None:
    url = f"/admin/django_automigrate/migrationrun/{run.pk}/change/"

    response = admin_client.get(url)
    posted = admin_client.post(url, {"status": "succeeded"})

    assert response.status_code == 200
    assert "RuntimeError: boom" in response.content.decode()
    assert 'name="_save"' not in response.content.decode()
    assert posted.status_code == 403
    run.refresh_from_db()
    assert run.status == "failed"


@pytest.mark.django_db
def test_nobody_can_add_or_delete_runs(admin_client: Client, run: MigrationRun) -> None:
    add = admin_client.get("/admin/django_automigrate/migrationrun/add/")
    delete = admin_client.post(
        f"/admin/django_automigrate/migrationrun/{run.pk}/delete/", {"post": "yes"}
    )

    assert add.status_code == 403
    assert delete.status_code == 403
    assert MigrationRun.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
def test_the_detail_view_shows_plan_applied_timings_and_traceback(admin_client: Client) -> None:
    run = MigrationRun.objects.create(
        database="default",
        trigger="startup",
        status="rolled_back",
        started_at=timezone.now(),
        duration=datetime.timedelta(seconds=7),
        lock_wait=datetime.timedelta(seconds=3),
        planned=["testapp.0001_initial", "testapp.0002_<b>"],
        applied=[],
        rolled_back=["testapp.0001_initial"],
        failed_migration="testapp.0002_<b>",
        rollback="transaction",
        error_summary="RuntimeError: boom",
        traceback="Traceback (most recent call last):\n  RuntimeError: boom",
    )

    content = admin_client.get(f"/admin/django_automigrate/migrationrun/{run.pk}/change/")
    html = content.content.decode()

    assert "<li><code>testapp.0001_initial</code></li>" in html
    assert "<li><code>testapp.0002_&lt;b&gt;</code></li>" in html  # escaped, never markup
    for heading in ("Migrations", "Timings", "Where it ran", "Traceback"):
        assert f">{heading}<" in html
    assert "0:00:07" in html
    assert "0:00:03" in html
    assert "Traceback (most recent call last):" in html


@pytest.mark.django_db
def test_the_list_filters_by_date_and_database(admin_client: Client, run: MigrationRun) -> None:
    today = timezone.localdate()
    response = admin_client.get(
        "/admin/django_automigrate/migrationrun/"
        f"?database=default&started_at__year={today.year}&started_at__month={today.month}"
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "By database" in content
    assert "By started at" in content
    assert "0 of 1" in content  # applied of planned
