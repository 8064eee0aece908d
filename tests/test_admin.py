"""The history in the admin: read-only, and readable at a glance."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_automigrate.admin import STATUS_TONES, format_duration
from django_automigrate.models import MigrationRun, Status, Trigger


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
    assert "7.00 s" in html  # duration, for people
    assert "3.00 s" in html  # lock wait
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


LIST = "/admin/django_automigrate/migrationrun/"


def _run(**fields: Any) -> MigrationRun:
    values: dict[str, Any] = {
        "database": "default",
        "trigger": Trigger.COMMAND,
        "status": Status.SUCCEEDED,
        "started_at": timezone.now(),
        "duration": datetime.timedelta(seconds=0.429176),
        "planned": ["testapp.0001_initial"],
        "applied": ["testapp.0001_initial"],
    }
    values.update(fields)
    return MigrationRun.objects.create(**values)


def _row(html: str, run: MigrationRun) -> str:
    """The changelist's table row of ``run``."""
    link = f'href="{LIST}{run.pk}/change/'
    rows = [row for row in html.split("<tr")[1:] if link in row]
    assert len(rows) == 1, f"no single row for run #{run.pk}"
    return rows[0].split("</tr>")[0]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (datetime.timedelta(seconds=0.429176), "0.43 s"),
        (0.429176, "0.43 s"),
        (datetime.timedelta(seconds=125), "2 min 5 s"),
        (datetime.timedelta(seconds=3780), "1 h 3 min"),
        (None, "—"),
        (datetime.timedelta(0), "0.00 s"),
        (datetime.timedelta(milliseconds=2), "< 0.01 s"),
        (datetime.timedelta(seconds=12.34), "12.3 s"),
        (datetime.timedelta(seconds=59.97), "1 min"),
        (datetime.timedelta(seconds=120), "2 min"),
        (datetime.timedelta(seconds=3599.7), "1 h"),
        (datetime.timedelta(hours=26, minutes=1), "26 h 1 min"),
    ],
)
def test_durations_read_as_people_say_them(
    duration: datetime.timedelta | float | None, expected: str
) -> None:
    assert format_duration(duration) == expected


def test_every_status_has_a_badge_tone() -> None:
    assert set(STATUS_TONES) == set(Status.values)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "text", "tone"),
    [
        (Status.RUNNING, "running", "info"),
        (Status.SUCCEEDED, "succeeded", "ok"),
        (Status.FAILED, "failed", "error"),
        (Status.ROLLED_BACK, "rolled back", "warning"),
        (Status.TIMED_OUT, "timed out", "error"),
        (Status.INTERRUPTED, "interrupted", "error"),
    ],
)
def test_the_list_shows_each_status_as_a_badge_in_words(
    admin_client: Client, status: str, text: str, tone: str
) -> None:
    run = _run(status=status, error_summary="" if status == Status.SUCCEEDED else "boom")

    row = _row(admin_client.get(LIST).content.decode(), run)

    assert (
        f'<span class="automigrate-badge automigrate-badge-{tone}" data-status="{status}">'
        f"{text}</span>"
    ) in row


@pytest.mark.django_db
def test_the_list_fits_in_six_columns_with_a_human_duration(admin_client: Client) -> None:
    run = _run(
        trigger=Trigger.STARTUP,
        duration=datetime.timedelta(seconds=125),
        lock_wait=datetime.timedelta(seconds=3780),
        planned=["testapp.0001_initial", "testapp.0002_second", "testapp.0003_third"],
        applied=["testapp.0001_initial", "testapp.0002_second", "testapp.0003_third"],
    )

    html = admin_client.get(LIST).content.decode()
    row = _row(html, run)
    header = html.split("<thead>")[1].split("</thead>")[0]

    assert header.count("<th") == 6
    for column in ("run", "database", "status", "applied", "duration", "summary"):
        assert f">{column.capitalize()}</" in header
    assert f'<span class="automigrate-run">#{run.pk}</span>' in row
    assert "startup</span>" in row  # the trigger, under the database
    assert ">3 of 3</td>" in row
    assert '<span class="automigrate-duration">2 min 5 s</span>' in row
    assert "lock wait 1\N{NO-BREAK SPACE}h\N{NO-BREAK SPACE}3\N{NO-BREAK SPACE}min" in row
    assert "0:02:05" not in row
    assert "host" not in header.lower()


@pytest.mark.django_db
def test_a_successful_run_shows_no_half_applied_marker_nor_summary(admin_client: Client) -> None:
    run = _run()

    row = _row(admin_client.get(LIST).content.decode(), run)
    page = admin_client.get(f"{LIST}{run.pk}/change/").content.decode()

    assert "half-applied" not in row
    assert "automigrate-summary" not in row
    assert "icon-no" not in row
    assert "icon-no" not in page  # no red icon on the run's page either
    assert "automigrate-marker" not in page


@pytest.mark.django_db
def test_a_half_applied_run_is_flagged_until_fixed(admin_client: Client) -> None:
    run = _run(
        status=Status.FAILED,
        applied=[],
        failed_migration="testapp.0001_initial",
        half_applied=True,
        error_summary="Database error on 'default': OperationalError: no such table",
    )
    fixed = _run(
        status=Status.FAILED,
        applied=[],
        half_applied=True,
        resolved_at=timezone.now(),
        error_summary="Database error on 'default': OperationalError: no such table",
    )

    html = admin_client.get(LIST).content.decode()
    page = admin_client.get(f"{LIST}{run.pk}/change/").content.decode()

    assert "automigrate-marker-warning" in _row(html, run)
    assert "⚠ half-applied" in _row(html, run)
    assert f"--mark-fixed {run.pk}" in _row(html, run)
    assert "automigrate-marker-warning" not in _row(html, fixed)
    assert "half-applied, fixed" in _row(html, fixed)
    assert "⚠ half-applied" in page


@pytest.mark.django_db
def test_a_failure_summary_is_the_errors_first_line(admin_client: Client) -> None:
    run = _run(
        status=Status.FAILED,
        applied=[],
        error_summary="RuntimeError: boom\nsecond line that stays on the run's page",
    )

    row = _row(admin_client.get(LIST).content.decode(), run)

    assert "automigrate-summary-error" in row
    assert "RuntimeError: boom" in row
    assert "second line" not in row


@pytest.mark.django_db
def test_a_rollback_runs_summary_is_not_filed_as_an_error(admin_client: Client) -> None:
    undone = _run(planned=["testapp.0001_initial"], applied=["testapp.0001_initial"])
    rollback = _run(
        trigger=Trigger.ROLLBACK,
        planned=["testapp.0001_initial"],
        applied=[],
        rolled_back=["testapp.0001_initial"],
        rollback="transaction",
        error_summary=f"rollback of run #{undone.pk}",
    )

    row = _row(admin_client.get(LIST).content.decode(), rollback)
    page = admin_client.get(f"{LIST}{rollback.pk}/change/").content.decode()

    assert f'rolled back <a href="{LIST}{undone.pk}/change/">run #{undone.pk}</a>' in row
    assert "automigrate-summary-error" not in row
    assert '1 of 1<br><span class="automigrate-quiet automigrate-small">reversed</span>' in row
    body = page.split('id="content"')[1]
    assert "Error" not in body
    assert "error:" not in body
    assert f"run #{undone.pk}</a>" in page


@pytest.mark.django_db
def test_a_failed_rollback_run_says_why(admin_client: Client) -> None:
    rollback = _run(
        trigger=Trigger.ROLLBACK,
        status=Status.FAILED,
        applied=[],
        error_summary="rollback of run #7: testapp.0001_initial failed: RuntimeError: boom",
    )

    row = _row(admin_client.get(LIST).content.decode(), rollback)

    assert "rolled back <a" in row
    assert "automigrate-summary-error" in row
    assert "testapp.0001_initial failed: RuntimeError: boom" in row


@pytest.mark.django_db
def test_a_running_run_says_what_it_applies(admin_client: Client) -> None:
    run = _run(status=Status.RUNNING, duration=None, applied=[], in_flight="testapp.0001_initial")

    row = _row(admin_client.get(LIST).content.decode(), run)

    assert "applying testapp.0001_initial" in row
    assert "so far" in row


@pytest.mark.django_db
def test_html_from_the_database_is_escaped(admin_client: Client) -> None:
    run = _run(
        status=Status.FAILED,
        applied=[],
        database="<i>db</i>",
        error_summary='<script>alert("x")</script> & <b>bold</b>',
        traceback="Traceback (most recent call last):\n  <script>alert(1)</script>",
    )

    html = admin_client.get(LIST).content.decode()
    page = admin_client.get(f"{LIST}{run.pk}/change/").content.decode()

    for content in (html, page):
        assert "<script>alert" not in content
        assert "<b>bold</b>" not in content
        assert "<i>db</i>" not in content
        assert (
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            in content
        )
    assert '<pre class="automigrate-traceback">' in page
    assert "  &lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.django_db
def test_search_finds_migration_names_error_text_and_run_ids(admin_client: Client) -> None:
    by_name = _run(planned=["testapp.0042_find_me"], applied=["testapp.0042_find_me"])
    by_error = _run(status=Status.FAILED, applied=[], error_summary="ValueError: needle")
    other = _run()

    def found(term: str) -> str:
        return admin_client.get(LIST, {"q": term}).content.decode()

    assert f"{LIST}{by_name.pk}/change/" in found("0042_find")
    assert f"{LIST}{other.pk}/change/" not in found("0042_find")
    assert f"{LIST}{by_error.pk}/change/" in found("needle")
    assert f"{LIST}{other.pk}/change/" in found(f"#{other.pk}")


@pytest.mark.django_db
def test_the_list_is_newest_first(admin_client: Client) -> None:
    older = _run(started_at=timezone.now() - datetime.timedelta(days=1))
    newer = _run()

    html = admin_client.get(LIST).content.decode()

    assert html.index(f"{LIST}{newer.pk}/change/") < html.index(f"{LIST}{older.pk}/change/")


@pytest.mark.django_db
def test_the_fleet_and_the_deferred_work_are_listed_read_only(admin_client: Client) -> None:
    from django_automigrate.models import DeferredOperation, FleetMember

    now = timezone.now()
    common = {"kind": "web", "graph": "a249865fabd77216", "leaves": {}, "started_at": now}
    FleetMember.objects.create(key="1", host="web-1", pid=11, release="41", last_seen=now, **common)
    FleetMember.objects.create(
        key="2", host="web-2", pid=12, release="40", last_seen=now - datetime.timedelta(hours=1),
        **common,
    )  # fmt: skip
    contract = MigrationRun.objects.create(
        database="default", trigger="contract", status="succeeded", started_at=now
    )
    waiting = {"database": "default", "migration": "shop.0002_release_b", "deferred_at": now}
    DeferredOperation.objects.create(
        operation_index=0, description="Remove field legacy_code from order", kind="drop_column",
        **waiting,
    )  # fmt: skip
    DeferredOperation.objects.create(
        operation_index=2, description="Delete model Coupon", kind="drop_table",
        contracted_at=now, contracted_by=contract, **waiting,
    )  # fmt: skip

    fleet = admin_client.get("/admin/django_automigrate/fleetmember/").content.decode()
    deferred = admin_client.get("/admin/django_automigrate/deferredoperation/").content.decode()
    add = admin_client.get("/admin/django_automigrate/deferredoperation/add/")
    pages = [
        admin_client.get(f"/admin/django_automigrate/{model}/{row.pk}/change/").status_code
        for model, row in (
            ("fleetmember", FleetMember.objects.first()),
            ("deferredoperation", DeferredOperation.objects.first()),
        )
        if row is not None
    ]

    assert "web-1 pid 11" in fleet
    assert "web-2 pid 12" in fleet
    assert fleet.count(">live<") == 1
    assert "gone (no heartbeat)" in fleet
    assert "default: shop.0002_release_b #1" in deferred
    assert "waiting for older code to go" in deferred
    assert f'by <a href="/admin/django_automigrate/migrationrun/{contract.pk}/change/">' in deferred
    assert add.status_code == 403
    assert pages == [200, 200]
