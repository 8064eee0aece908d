"""The history in the admin: read-only; nobody adds, changes or deletes runs here.

The list filters by status, database, trigger and date; a run's page shows its plan, what it
applied and rolled back, its timings and its error, grouped so that a failure reads top down.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_automigrate.models import MigrationRun


def _numbered(labels: list[str]) -> SafeString:
    if not labels:
        return format_html("<span>{}</span>", "none")
    items = format_html_join("", "<li><code>{}</code></li>", ((label,) for label in labels))
    return format_html('<ol style="margin: 0; padding-left: 1.5em">{}</ol>', items)


@admin.register(MigrationRun)
class MigrationRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "started_at",
        "database",
        "trigger",
        "status",
        "applied_count",
        "duration",
        "lock_wait",
        "host",
        "release",
    )
    list_filter = ("status", "database", "trigger", "started_at", "half_applied")
    search_fields = ("host", "release", "error_summary", "failed_migration")
    date_hierarchy = "started_at"
    fieldsets = (
        (None, {"fields": ("database", "trigger", "status", "release", "error_summary")}),
        (
            "Migrations",
            {
                "fields": (
                    "planned_list",
                    "applied_list",
                    "failed_migration",
                    "rollback",
                    "rolled_back_list",
                    "half_applied",
                    "resolved_at",
                )
            },
        ),
        ("Timings", {"fields": ("started_at", "finished_at", "duration", "lock_wait", "lock")}),
        (
            "Where it ran",
            {"fields": ("host", "pid", "django_version", "automigrate_version")},
        ),
        ("Traceback", {"fields": ("traceback_text",), "classes": ("collapse",)}),
    )
    readonly_fields = (
        *(field.name for field in MigrationRun._meta.fields),
        "planned_list",
        "applied_list",
        "rolled_back_list",
        "traceback_text",
    )

    @admin.display(description="applied")
    def applied_count(self, run: MigrationRun) -> str:
        return f"{len(run.applied)} of {len(run.planned)}"

    @admin.display(description="planned")
    def planned_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.planned)

    @admin.display(description="applied")
    def applied_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.applied)

    @admin.display(description="rolled back")
    def rolled_back_list(self, run: MigrationRun) -> SafeString:
        return _numbered(run.rolled_back)

    @admin.display(description="traceback")
    def traceback_text(self, run: MigrationRun) -> SafeString:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', run.traceback or "none")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
