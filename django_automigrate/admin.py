"""The history in the admin: read-only; nobody adds, changes or deletes runs here.

The list reads at a glance in six columns that fit 1,280 px beside the admin's sidebars: per run
its id and start, its database (the trigger under it), a coloured status badge (the status in
words too), how many migrations it applied of those planned, a human duration (with a notable
lock wait under it) and a short summary that fits the status (the error's first line for a
failure, the run a rollback undid, nothing for a plain success). A half-applied migration is
flagged where it is true. A run's page shows its plan, what it applied and rolled back, its
timings and its traceback, grouped so that a failure reads top down.

Everything shown comes from the database and goes through ``format_html``: escaped, never markup.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from django_automigrate.conf import get_settings
from django_automigrate.fleet import registry
from django_automigrate.models import (
    DeferredOperation,
    FleetMember,
    MigrationRun,
    Status,
    Trigger,
    read_rollback_summary,
)

#: The badge tone of each status: green for success, red for failures, amber for a failure that
#: was undone, blue while it runs. The status is always written out too: colour is not the only
#: signal.
STATUS_TONES: dict[str, str] = {
    Status.RUNNING: "info",
    Status.SUCCEEDED: "ok",
    Status.FAILED: "error",
    Status.ROLLED_BACK: "warning",
    Status.TIMED_OUT: "error",
    Status.INTERRUPTED: "error",
}

#: How much of an error's first line the list shows (the whole line is the summary's tooltip).
SUMMARY_CHARS = 72

#: A lock wait this long or longer is shown under the duration in the list.
NOTABLE_LOCK_WAIT = datetime.timedelta(seconds=1)

NBSP = "\N{NO-BREAK SPACE}"


def format_duration(value: datetime.timedelta | float | None) -> str:
    """A duration for people: ``0.43 s``, ``12.5 s``, ``2 min 5 s``, ``1 h 3 min``; ``—``: none."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if 0 < seconds < 0.005:
        return f"{sign}< 0.01 s"
    if round(seconds, 2) < 10:
        return f"{sign}{seconds:.2f} s"
    if round(seconds, 1) < 60:
        return f"{sign}{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{sign}{minutes} min {rest} s" if rest else f"{sign}{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _when(moment: datetime.datetime | None) -> str:
    if moment is None:
        return "—"
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return date_format(moment, "Y-m-d H:i:s")


def _short_when(moment: datetime.datetime) -> str:
    """``Dec 2, 01:05`` this year, ``2025-12-02 01:05`` before: short enough for the list."""
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    this_year = moment.year == timezone.localdate().year
    return date_format(moment, "M j, H:i" if this_year else "Y-m-d H:i")


def _run_url(run_id: int | str) -> str:
    return reverse("admin:django_automigrate_migrationrun_change", args=(run_id,))


def _numbered(labels: Sequence[str]) -> SafeString:
    if not labels:
        return format_html("<span>{}</span>", "none")
    items = format_html_join("", "<li><code>{}</code></li>", ((label,) for label in labels))
    return format_html('<ol class="automigrate-labels">{}</ol>', items)


def status_badge(run: MigrationRun) -> SafeString:
    """The status, written out, in a badge coloured by its tone."""
    tone = STATUS_TONES.get(run.status, "neutral")
    return format_html(
        '<span class="automigrate-badge automigrate-badge-{}" data-status="{}">{}</span>',
        tone,
        run.status,
        run.get_status_display(),
    )


def _half_applied_help(run: MigrationRun) -> str:
    if run.resolved_at is not None:
        return f"Marked fixed by hand at {_when(run.resolved_at)}."
    return (
        f"{run.failed_migration or 'The failed migration'} ran part of its SQL, which no "
        "transaction undid: repair it by hand, then run "
        f"manage.py automigrate --mark-fixed {run.pk}."
    )


def half_applied_marker(run: MigrationRun) -> SafeString:
    """A warning marker where a migration was left half-applied; nothing elsewhere."""
    if not run.half_applied:
        return SafeString("")
    if run.resolved_at is None:
        return format_html(
            '<span class="automigrate-marker automigrate-marker-warning" title="{}">'
            "⚠ half-applied</span>",
            _half_applied_help(run),
        )
    return format_html(
        '<span class="automigrate-marker automigrate-marker-resolved" title="{}">'
        "half-applied, fixed</span>",
        _half_applied_help(run),
    )


def summary(run: MigrationRun) -> SafeString:
    """One line that says the right thing for the run's status (empty for a plain success)."""
    if run.trigger == Trigger.ROLLBACK:
        read = read_rollback_summary(run.error_summary)
        if read is not None:
            target, stopped = read
            undone = format_html(
                '<span class="automigrate-summary automigrate-summary-rollback">'
                'rolled back <a href="{}">run #{}</a></span>',
                _run_url(target),
                target,
            )
            detail = _first_line(stopped)
            if not detail:
                return undone
            return format_html(
                '{} <span class="automigrate-summary automigrate-summary-error" title="{}">'
                "— {}</span>",
                undone,
                detail,
                Truncator(detail).chars(SUMMARY_CHARS),
            )
    if run.status == Status.RUNNING:
        if not run.in_flight:
            return SafeString("")
        doing = run.in_flight  # "unapplying <label>" says so itself; otherwise a label
        if not doing.startswith("unapplying "):
            doing = f"applying {doing}"
        return format_html('<span class="automigrate-summary">{}</span>', doing)
    line = _first_line(run.error_summary)
    if not line:
        return SafeString("")
    return format_html(
        '<span class="automigrate-summary automigrate-summary-error" title="{}">{}</span>',
        line,
        Truncator(line).chars(SUMMARY_CHARS),
    )


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """What the tool writes, shown: nobody adds, changes or deletes rows here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MigrationRun)
class MigrationRunAdmin(ReadOnlyAdmin):
    list_display = (
        "run",
        "database_column",
        "status_column",
        "migrations",
        "duration_column",
        "summary_column",
    )
    list_filter = ("status", "trigger", "database", "half_applied", "started_at")
    search_fields = ("error_summary", "failed_migration", "planned", "host", "release")
    search_help_text = "Search migration names, error text, host and release; #12 finds run 12."
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    readonly_fields = (
        *(field.name for field in MigrationRun._meta.fields),
        "status_badge_field",
        "error_field",
        "rollback_of_field",
        "planned_list",
        "applied_list",
        "rolled_back_list",
        "half_applied_field",
        "in_flight_field",
        "duration_field",
        "lock_wait_field",
        "traceback_text",
    )

    class Media:
        css = {"all": ("django_automigrate/admin.css",)}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        is_rollback = obj is not None and obj.trigger == Trigger.ROLLBACK
        outcome = "rollback_of_field" if is_rollback else "error_field"
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (
                None,
                {"fields": ("database", "trigger", "status_badge_field", "release", outcome)},
            ),
            (
                "Migrations",
                {
                    "fields": (
                        "planned_list",
                        "applied_list",
                        "failed_migration",
                        "in_flight_field",
                        "rollback",
                        "rolled_back_list",
                        "half_applied_field",
                        "resolved_at",
                    )
                },
            ),
            (
                "Timings",
                {
                    "fields": (
                        "started_at",
                        "finished_at",
                        "duration_field",
                        "lock_wait_field",
                        "lock",
                    )
                },
            ),
            (
                "Where it ran",
                {"fields": ("host", "pid", "django_version", "automigrate_version")},
            ),
        ]
        if obj is not None and obj.traceback:
            fieldsets.append(("Traceback", {"fields": ("traceback_text",)}))
        return fieldsets

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[MigrationRun], search_term: str
    ) -> tuple[QuerySet[MigrationRun], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = re.fullmatch(r"#?(\d{1,18})", search_term.strip())
        if number is not None:
            found |= queryset.filter(pk=int(number[1]))
        return found, may_have_duplicates

    # The list.

    @admin.display(description="run", ordering="started_at")
    def run(self, run: MigrationRun) -> SafeString:
        return format_html(
            '<span class="automigrate-run">#{}</span><br>'
            '<span class="automigrate-quiet automigrate-started" title="{}">{}</span>',
            run.pk,
            _when(run.started_at),
            _short_when(run.started_at),
        )

    @admin.display(description="database", ordering="database")
    def database_column(self, run: MigrationRun) -> SafeString:
        return format_html(
            '{}<br><span class="automigrate-quiet automigrate-small" title="trigger">{}</span>',
            run.database,
            run.get_trigger_display(),
        )

    @admin.display(description="status", ordering="status")
    def status_column(self, run: MigrationRun) -> SafeString:
        return format_html("{} {}", status_badge(run), half_applied_marker(run))

    @admin.display(description="applied")
    def migrations(self, run: MigrationRun) -> SafeString:
        """Applied of planned; for a rollback run, reversed of planned."""
        if run.trigger == Trigger.ROLLBACK:
            done, what = len(run.rolled_back), "reversed"
        elif run.rolled_back:
            done, what = len(run.applied), f"{len(run.rolled_back)} reversed"
        else:
            return format_html("{} of {}", len(run.applied), len(run.planned))
        return format_html(
            '{} of {}<br><span class="automigrate-quiet automigrate-small">{}</span>',
            done,
            len(run.planned),
            what,
        )

    @admin.display(description="duration", ordering="duration")
    def duration_column(self, run: MigrationRun) -> SafeString:
        if run.duration is None and run.status == Status.RUNNING:
            text, note = format_duration(timezone.now() - run.started_at), "so far"
        else:
            text, note = format_duration(run.duration), ""
        if run.lock_wait is not None and run.lock_wait >= NOTABLE_LOCK_WAIT:
            # Wrapped after "lock wait", never inside the duration.
            note = "lock wait " + format_duration(run.lock_wait).replace(" ", NBSP)
        if not note:
            return format_html('<span class="automigrate-duration">{}</span>', text)
        return format_html(
            '<span class="automigrate-duration">{}</span>'
            '<br><span class="automigrate-quiet automigrate-small">{}</span>',
            text,
            note,
        )

    @admin.display(description="summary", empty_value="")
    def summary_column(self, run: MigrationRun) -> SafeString:
        return summary(run)

    # A run's page.

    @admin.display(description="status")
    def status_badge_field(self, run: MigrationRun) -> SafeString:
        return status_badge(run)

    @admin.display(description="error")
    def error_field(self, run: MigrationRun) -> SafeString:
        if not run.error_summary:
            return format_html("{}", "none")
        return format_html('<div class="automigrate-error">{}</div>', run.error_summary)

    @admin.display(description="summary")
    def rollback_of_field(self, run: MigrationRun) -> SafeString:
        return summary(run) or format_html("{}", run.error_summary or "none")

    @admin.display(description="planned")
    def planned_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.planned)

    @admin.display(description="applied")
    def applied_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.applied)

    @admin.display(description="rolled back")
    def rolled_back_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.rolled_back)

    @admin.display(description="half applied")
    def half_applied_field(self, run: MigrationRun) -> SafeString:
        if not run.half_applied:
            return format_html("{}", "no")
        return format_html(
            '{}<div class="automigrate-quiet automigrate-small automigrate-help">{}</div>',
            half_applied_marker(run),
            _half_applied_help(run),
        )

    @admin.display(description="in flight")
    def in_flight_field(self, run: MigrationRun) -> str:
        """What it was applying when last heard of (the model's help text would render as
        markup here: it names ``<label>``)."""
        return run.in_flight or "—"

    @admin.display(description="duration")
    def duration_field(self, run: MigrationRun) -> str:
        return format_duration(run.duration)

    @admin.display(description="lock wait")
    def lock_wait_field(self, run: MigrationRun) -> str:
        return format_duration(run.lock_wait)

    @admin.display(description="traceback")
    def traceback_text(self, run: MigrationRun) -> SafeString:
        return format_html('<pre class="automigrate-traceback">{}</pre>', run.traceback or "none")


@admin.register(FleetMember)
class FleetMemberAdmin(ReadOnlyAdmin):
    """The processes that registered, as ``--fleet`` lists them: the code each runs, and
    whether it is still live (seen within three heartbeats, not stopped)."""

    list_display = ("process", "kind", "release", "graph", "state", "last_seen")
    list_filter = ("kind", "release")
    search_fields = ("host", "release", "graph")
    ordering = ("-last_seen", "id")

    @admin.display(description="process", ordering="host")
    def process(self, member: FleetMember) -> str:
        return f"{member.host} pid {member.pid}"

    @admin.display(description="state")
    def state(self, member: FleetMember) -> str:
        if member.stopped_at is not None:
            return "stopped"
        expiry = get_settings().fleet_expiry
        return "live" if registry.is_live(member, timezone.now(), expiry) else "gone (no heartbeat)"


@admin.register(DeferredOperation)
class DeferredOperationAdmin(ReadOnlyAdmin):
    """Database work deferred while older code served, and the contract step that ran it."""

    list_display = ("operation", "description", "kind", "deferred_at", "state")
    list_filter = ("database", "kind", ("contracted_at", admin.EmptyFieldListFilter))
    search_fields = ("migration", "description")
    ordering = ("-deferred_at", "id")

    @admin.display(description="operation", ordering="migration")
    def operation(self, row: DeferredOperation) -> str:
        return f"{row.database}: {row.migration} #{row.operation_index + 1}"

    @admin.display(description="state", ordering="contracted_at")
    def state(self, row: DeferredOperation) -> SafeString:
        if row.contracted_at is None:
            return format_html("{}", "waiting for older code to go")
        if row.contracted_by_id is None:
            return format_html("done {}", _short_when(row.contracted_at))
        return format_html(
            'done {} by <a href="{}">run #{}</a>',
            _short_when(row.contracted_at),
            _run_url(row.contracted_by_id),
            row.contracted_by_id,
        )
